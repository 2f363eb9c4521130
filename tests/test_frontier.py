"""examples/frontier.py end to end on a small slice of real MNIST: trains, resumes,
converts, times, and writes the JSON rows, the tables and the plot."""

import json
import os
from pathlib import Path

import pytest
from script_helpers import load_script

REPO = Path(__file__).resolve().parent.parent
MNIST_DIR = Path(os.environ.get("CONDCOMP_MNIST_DIR",
                               REPO.parent / "shared" / "datasets" / "mnist"))
ROW_KEYS = {"dataset", "train_size", "val_size", "test_size", "model", "hidden", "num_blocks",
            "budget", "estimator", "teacher", "precision", "seeds", "test_errors",
            "test_error_mean", "test_error_sd", "active", "macs", "b1_ms", "b32_ms", "cpu"}


def test_frontier_harness_small(tmp_path, capsys):
    if not (MNIST_DIR / "train-images-idx3-ubyte.gz").is_file():
        if os.environ.get("CONDCOMP_REQUIRE_REAL_DATA") == "1":
            pytest.fail(f"MNIST idx files not in {MNIST_DIR}")
        pytest.skip(f"MNIST idx files not in {MNIST_DIR} (set $CONDCOMP_MNIST_DIR)")
    from tflite_helpers import require_ops_library

    require_ops_library()
    frontier = load_script("examples/frontier.py")

    args = ["--dataset", "mnist", "--data-dir", str(MNIST_DIR), "--runs", str(tmp_path / "runs"),
            "--out", str(tmp_path / "out"), "--dense", "128", "--kd-dense", "32",
            "--condnet", "128:4:1:straight_through:1", "128:4:1:reinforce:0",
            "128:4:1:routing:1:warm", "--teacher", "dense_h128",
            "--seeds", "0", "1", "--epochs", "1", "--max-train", "600", "--val-size", "200",
            "--timing-rounds", "2", "--timing-runs", "2"]
    assert frontier.main(args) == 0
    rows = json.loads((tmp_path / "out" / "frontier_mnist.json").read_text())
    assert len(rows) == 5 * 3  # 5 models x (float32, dynamic, int8)
    for row in rows:
        assert ROW_KEYS <= set(row), ROW_KEYS - set(row)
        assert row["seeds"] == [0, 1] and len(row["test_errors"]) == 2
        assert row["train_size"] == 600 and row["val_size"] == 200 and row["test_size"] == 10000
        assert row["b1_ms"] > 0 and row["b32_ms"] > 0 and 0 <= row["test_error_mean"] <= 1
    condnet = next(r for r in rows if r["model"] == "condnet" and r["estimator"] == "reinforce")
    assert condnet["active"] == 0.25 and condnet["budget"] == "top_k=1"
    assert condnet["macs"] == 784 * 32 + 32 * 32 + 32 * 10 + 784 * 4 + 32 * 4
    assert {r["teacher"] for r in rows} == {None, "dense_h128"}
    # The warm-started routing condnet: dense_h128's weights, gated, scaled by its gates.
    warm = next(r for r in rows if r["estimator"] == "routing")
    assert warm["warm_start"] == "dense_h128" and warm["teacher"] is None
    import keras

    from keras_condcomp.layers import gated_layers

    run = tmp_path / "runs" / warm["name"] / "seed0"
    network = keras.models.load_model(run / "model.keras").network
    assert all(layer.scale_by_gate for layer in gated_layers(network))
    markdown = (tmp_path / "out" / "frontier_mnist.md").read_text()
    assert "## Ablation" in markdown and "## Dominance" in markdown
    assert (tmp_path / "out" / "frontier_mnist.png").stat().st_size > 10_000
    # Resumable: a second run trains nothing and converts nothing again.
    stamps = {p: p.stat().st_mtime for p in (tmp_path / "runs").rglob("*") if p.is_file()
              and p.suffix in (".keras", ".tflite")}
    capsys.readouterr()
    assert frontier.main(args + ["--skip-timing", "--measure-only"]) == 0
    assert all(p.stat().st_mtime == t for p, t in stamps.items())
    # Files of another converter format are converted again.
    old = next((tmp_path / "runs").rglob("tflite_format.txt"))
    old.write_text("1\n")
    assert frontier.main(args + ["--skip-timing", "--measure-only"]) == 0
    again = [p for p in stamps if p.parent == old.parent and p.suffix == ".tflite"]
    assert len(again) == 3 and all(p.stat().st_mtime > stamps[p] for p in again)
    from keras_condcomp.converter import FORMAT_VERSION

    assert old.read_text().strip() == str(FORMAT_VERSION)
    # The report is rewritten from the JSON alone, identically.
    (tmp_path / "out" / "frontier_mnist.md").unlink()
    assert frontier.main(args + ["--report-only"]) == 0
    assert (tmp_path / "out" / "frontier_mnist.md").read_text() == markdown
    # The speed tools of issue 24 on the same runs: the invoke profile of a
    # condnet against its dense peer, and the efficiency rows.
    efficiency = load_script("benchmarks/efficiency.py")
    profile_invoke = load_script("benchmarks/profile_invoke.py")

    runs = tmp_path / "runs"
    condnet_run = runs / "condnet_h128_b4_k1_straight_through_a1" / "seed0"
    assert profile_invoke.main([str(condnet_run), str(runs / "dense_h128" / "seed0"),
                                "--data-dir", str(MNIST_DIR), "--rounds", "1", "--runs", "2",
                                "--batches", "1", "--out", str(tmp_path / "out"),
                                "--name", "small"]) == 0
    report = json.loads((tmp_path / "out" / "profile_small.json").read_text())
    assert report["cpu"] and set(report["caches"]) >= {"L2"}
    assert [(r["batch"], r["precision"]) for r in report["results"]] == [
        (1, "float32"), (1, "int8")]
    for result in report["results"]:
        for stream in ("different", "repeated"):
            s = result["streams"][stream]
            assert len(s["condcomp_layers"]) == 2 and len(s["dense_layers"]) == 3
            first = s["condcomp_layers"][0]
            # top-1 of 4 blocks of 32 units over 784 inputs, the policy on top
            assert first["macs"] == 784 * 32
            assert first["phase1_us"] > 0 and first["phase2_us"] > 0
            assert first["all_weight_bytes"] > first["weight_bytes_per_invoke"] > 0
            assert s["condnet_ms"] > 0 and s["dense_ms"] > 0
        repeated = result["streams"]["repeated"]["condcomp_layers"][0]
        assert repeated["working_set_bytes"] <= result["streams"]["different"][
            "condcomp_layers"][0]["working_set_bytes"]
    assert "## batch 1, int8" in (tmp_path / "out" / "profile_small.md").read_text()
    assert efficiency.main([str(runs), "--data-dir", str(MNIST_DIR), "--equal-mac-dense",
                            "dense_h32_kd-dense_h128", "--rounds", "1", "--runs-per-round", "2",
                            "--batches", "1", "--out", str(tmp_path / "out")]) == 0
    table = json.loads((tmp_path / "out" / "efficiency.json").read_text())["rows"]
    assert len(table) == 3 * 3  # 3 condnets x 3 precisions
    for row in table:
        assert {"model", "precision", "batch", "threads", "cpu", "condnet_ms",
                "equal_mac_dense_ms", "ratio", "full_dense_ms"} <= set(row)
        assert row["ratio"] == pytest.approx(row["condnet_ms"] / row["equal_mac_dense_ms"])
        assert row["full_dense_ms"] > 0  # dense_h128 is trained
    # --models times only the named condnets; an unknown name is an error.
    chosen = "condnet_h128_b4_k1_straight_through_a1"
    assert efficiency.main([str(runs), "--data-dir", str(MNIST_DIR), "--equal-mac-dense",
                            "dense_h32_kd-dense_h128", "--rounds", "1", "--runs-per-round", "1",
                            "--batches", "1", "--precisions", "int8", "--models", chosen,
                            "--out", str(tmp_path / "chosen"), "--name", "efficiency_cpu"]) == 0
    rows = json.loads((tmp_path / "chosen" / "efficiency_cpu.json").read_text())["rows"]
    assert (tmp_path / "chosen" / "efficiency_cpu.md").exists()
    assert [(r["model"], r["precision"]) for r in rows] == [(chosen, "int8")]
    with pytest.raises(SystemExit):
        efficiency.main([str(runs), "--data-dir", str(MNIST_DIR), "--models", "condnet_nope"])
    # Two op library builds on the same models (here one library twice: same
    # outputs, both timed).
    compare = load_script("benchmarks/compare_libraries.py")
    from keras_condcomp import litert

    library = litert.library_path()
    models = [str(condnet_run / f"model_{p}.tflite") for p in ("float32", "int8")]
    assert compare.main([library, library, "--models", *models, "--data-dir", str(MNIST_DIR),
                         "--batches", "1", "4", "--rounds", "1", "--runs-per-round", "2",
                         "--out", str(tmp_path / "out"), "--name", "libs"]) == 0
    report = json.loads((tmp_path / "out" / "libs.json").read_text())
    assert report["cpu"] and report["library_a"] == report["library_b"] == library
    assert [(Path(r["model"]).name, r["batch"]) for r in report["rows"]] == [
        ("model_float32.tflite", 1), ("model_float32.tflite", 4),
        ("model_int8.tflite", 1), ("model_int8.tflite", 4)]
    for row in report["rows"]:
        assert row["a_ms"] > 0 and row["b_ms"] > 0
        assert row["ratio"] == pytest.approx(row["b_ms"] / row["a_ms"])
        assert row["max_abs_output_difference"] == 0
    assert "| B / A |" in (tmp_path / "out" / "libs.md").read_text()
    with pytest.raises(SystemExit):
        compare.main([library, str(tmp_path / "missing.so"), "--models", *models])
    # Two conversions of one model (here float32 against int8): B runs --models-b.
    assert compare.main([library, library, "--models", *models, "--models-b", *models[::-1],
                         "--data-dir", str(MNIST_DIR), "--batches", "1", "--rounds", "1",
                         "--runs-per-round", "2", "--out", str(tmp_path / "out"),
                         "--name", "models"]) == 0
    report = json.loads((tmp_path / "out" / "models.json").read_text())
    assert [(Path(r["model"]).name, Path(r["model_b"]).name) for r in report["rows"]] == [
        ("model_float32.tflite", "model_int8.tflite"),
        ("model_int8.tflite", "model_float32.tflite")]
    assert all(0 < r["max_abs_output_difference"] < 0.5 for r in report["rows"])
    assert "(B: " in (tmp_path / "out" / "models.md").read_text()
    with pytest.raises(SystemExit):
        compare.main([library, library, "--models", *models, "--models-b", models[0]])
