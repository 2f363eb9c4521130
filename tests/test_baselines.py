import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_tfmot_pruning_baseline_runs_isolated(tmp_path):
    # Runs in its own process: tfmot needs tf-keras (Keras 2), the package is Keras 3.
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "baselines", "tfmot_pruning.py"),
         "--epochs", "2", "--sparsity", "0.5", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.load(open(tmp_path / "results.json"))["rows"]
    assert [r["method"] for r in rows] == ["dense", "tfmot magnitude pruning"]
    assert abs(rows[1]["hidden_mac_fraction"] - 0.5) < 0.02  # pruning really happened
    assert rows[0]["accuracy"] > 0.5


def test_tfmot_baseline_rejects_bad_sparsity(tmp_path):
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "baselines", "tfmot_pruning.py"),
         "--sparsity", "1.5", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode != 0
    assert "sparsity=1.5" in result.stderr
