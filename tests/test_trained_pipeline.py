"""examples/gate_pretrained.py -> benchmarks/benchmark_trained.py on a small real subset.

Fashion-MNIST (Debian's dataset-fashion-mnist, required in CI like
tests/test_real_data.py): dense net, gated copy fine-tuned, equal-FLOPs peer,
then the summary and TFLite timing of the trained models, with the JSON rows
that benchmarks/trained_models.json holds.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tflite_helpers import require_ops_library

REPO = Path(__file__).resolve().parent.parent
FASHION_DIR = Path(os.environ.get("CONDCOMP_FASHION_MNIST_DIR",
                                  "/usr/share/datasets/fashion-mnist"))
ROW_KEYS = {"dataset", "train_size", "test_size", "model", "tau", "seeds", "test_error_mean",
            "test_error_sd", "active_max", "flop_fraction", "tflite_speedup_b1"}


def _run(args, cwd):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(REPO))
    result = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


# About 7 minutes on 2 cores (two trainings, conversions, timing): in the slow step.
@pytest.mark.slow
def test_gate_pretrained_then_benchmark_trained(tmp_path):
    if not (FASHION_DIR / "train-images-idx3-ubyte.gz").is_file():
        message = f"Fashion-MNIST idx files not in {FASHION_DIR}"
        if os.environ.get("CONDCOMP_REQUIRE_REAL_DATA") == "1":
            pytest.fail(message)
        pytest.skip(message)
    require_ops_library()
    runs = []
    for seed in (0, 1):
        out = tmp_path / f"s{seed}"
        _run([str(REPO / "examples" / "gate_pretrained.py"), "--dataset", "fashion_mnist",
              "--data-dir", str(FASHION_DIR), "--max-train", "1500", "--val-size", "300",
              "--hidden", "64", "64", "--num-blocks", "4", "--tau", "0.5", "--seed", str(seed),
              "--dense-epochs", "2", "--finetune-epochs", "1", "--anneal-epochs", "1",
              "--equal-flops-baseline", "--verbose", "0", "--out", str(out)], tmp_path)
        results = json.loads((out / "results.json").read_text())
        assert results["sizes"] == {"train": 1200, "val": 300, "test": 10000}
        hows = [row["how"] for row in results["rows"]]
        assert hows == ["dense", "gated_dense", "dense_equal_flops"]
        gated = results["rows"][1]
        # Calibrated on the validation split: tau there (up to the float noise of
        # sigmas that one fine-tuning epoch leaves close to the threshold).
        for value in gated["val"]["active_fraction"].values():
            assert value == pytest.approx(0.5, abs=0.05)
        assert gated["top_k_budget"]["k"] == 2
        runs.append(str(out))
    stdout = _run([str(REPO / "benchmarks" / "benchmark_trained.py"), *runs, "--timing-runs", "5",
                   "--warmup", "1", "--batches", "1", "--threads", "1",
                   "--out", str(tmp_path / "table")], tmp_path)
    assert ("| fashion_mnist (1200/300/10000) | gated_dense | 4 blocks, baseline=ema | 2 | 0.5 "
            "| threshold | 2 | 0.") in stdout
    # The same models int8: test errors, decisions kept, speed against the int8 dense nets.
    _run([str(REPO / "benchmarks" / "quantized_accuracy.py"), *runs, "--timing-runs", "5",
          "--out", str(tmp_path / "quantized")], tmp_path)
    quantized = json.loads((tmp_path / "quantized.json").read_text())
    assert {r["model"] for r in quantized} == {"dense", "gated_tau0.5", "dense_equal_flops_tau0.5"}
    for r in quantized:
        assert r["test_size"] == 10000 and abs(r["difference"]) < 0.02
        # dense: full-integer; condnets: the int8 ops with calibrated static scales
        assert abs(r["int8_error"] - r["float32_error"]) < 0.02
        if not r["model"].startswith("dense"):
            assert r["mask_agreement"] > 0.95 and r["int8_mask_agreement"] > 0.95
            assert set(r["speed_b1_t1"]) == {"float32", "dynamic", "int8"}
            assert all(v["speedup"] > 0 for v in r["speed_b1_t1"].values())
    assert "| gated_tau0.5 |" in (tmp_path / "quantized.md").read_text()
    rows = json.loads((tmp_path / "table.json").read_text())
    assert {row["how"] for row in rows} == {"dense", "gated_dense", "dense_equal_flops"}
    for row in rows:
        assert ROW_KEYS <= set(row), ROW_KEYS - set(row)
        assert row["seeds"] == [0, 1]
        if row["model"] == "condnet":
            assert row["tflite_speedup_b1"] > 0 and row["tflite_max_abs_err_vs_keras"] < 1e-4
            assert row["budget"] in ("threshold", "top_k=2")
