"""The README's usage example runs as written (so the front page cannot rot)."""

import re
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_usage_example_trains_saves_and_checkpoints(tmp_path, monkeypatch):
    block = re.search(r"## Using it\n\n```python\n(.*?)```", README.read_text(), re.S)
    assert block, "README.md lost its '## Using it' python example"
    code = block.group(1).replace("epochs=40", "epochs=2")
    monkeypatch.chdir(tmp_path)  # it writes model.keras and best.keras
    rng = np.random.default_rng(0)
    namespace = {"x": rng.random((128, 784), dtype=np.float32), "y": rng.integers(0, 10, 128)}
    exec(compile(code, str(README), "exec"), namespace)  # noqa: S102 - our own README
    history = namespace["model"].history.history
    assert len(history["loss"]) == 2 and "flop_fraction" in history
    assert (tmp_path / "model.keras").stat().st_size > 0 and (tmp_path / "best.keras").exists()


def test_readme_gating_example_runs_as_written(tmp_path, monkeypatch):
    block = re.search(r"### Gate a model you already have.*?```python\n(.*?)```",
                      README.read_text(), re.S)
    assert block, "README.md lost its gating example"
    code = re.sub(r"epochs=\d+", "epochs=1", block.group(1))
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    namespace = {"x": rng.random((256, 784), dtype=np.float32), "y": rng.integers(0, 10, 256),
                 "x_val": rng.random((128, 784), dtype=np.float32)}
    exec(compile(code, str(README), "exec"), namespace)  # noqa: S102 - our own README
    report = namespace["report"]
    assert len(report.gated) == 2 and len(report.skipped) == 1
    assert (tmp_path / "gated.keras").stat().st_size > 0
