"""benchmarks/benchmark_conv.py: the conv-layer table, its JSON and its argument checks."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from script_helpers import load_script
from tflite_helpers import require_ops_library

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "benchmarks" / "benchmark_conv.py"


def _run(args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, str(SCRIPT), *args], env=env, capture_output=True,
                          text=True, timeout=600)


def test_benchmark_conv_writes_rows(tmp_path):
    require_ops_library()
    out = tmp_path / "conv"
    res = _run(["--shapes", "6x5x8x8", "--blocks", "2", "--batches", "1", "3", "--rounds", "1",
                "--runs-per-round", "2", "--out", str(out)])
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    data = json.loads(out.with_suffix(".json").read_text())
    rows = data["rows"]
    assert data["cpu"] and data["command"].startswith("python benchmarks/benchmark_conv.py")
    assert {(r["layers"], r["precision"], r["batch"]) for r in rows} == {
        (layers, precision, batch) for layers in (1, 2)
        for precision in ("float32", "dynamic", "int8") for batch in (1, 3)}
    for r in rows:
        assert r["shape"] == "6x5x8x8" and r["top_k"] == 1 and r["cpu"] == data["cpu"]
        assert r["speedup"] == pytest.approx(r["dense_ms"] / r["condcomp_ms"])
        # top_k 1 of 2: half the work of a layer on a dense input, a quarter after a gated one.
        assert r["ideal"] == pytest.approx(2.0 if r["layers"] == 1 else (8 + 8) / (8 + 4) * 2)
        # The op computes what Keras (float32) or the int8 reference computes.
        assert r["max_abs_err"] < (1e-4 if r["precision"] == "float32" else 1e-3), r
    table = out.with_suffix(".md").read_text()
    assert table.count("| 6x5x8x8 |") == len(rows)


@pytest.mark.parametrize("args, message", [
    (["--shapes", "3x3x8"], "argument --shapes: --shapes: expected HxWxCxF, got '3x3x8'"),
    (["--shapes", "4x4x6x8"], "--shapes: C and F must be multiples of --blocks=4"),
    (["--blocks", "1"], "--blocks must be at least 2, got 1"),
    (["--top-k", "5"], "--top-k must be in [1, --blocks], got 5"),
    (["--batches", "0"], "argument --batches: must be a positive integer, got '0'"),
    (["--shapes", "4x4x0x8"], "argument --shapes: must be a positive integer, got '0'"),
])
def test_benchmark_conv_rejects_bad_arguments(args, message, capsys):
    # In-process: a subprocess would spend its time importing TensorFlow.
    benchmark_conv = load_script("benchmarks/benchmark_conv.py")

    with pytest.raises(SystemExit) as info:
        benchmark_conv.parse_args(args)
    assert info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith(f": error: {message}")
