"""The wheel, as a user gets it: built here, installed into fresh venvs, no source tree.

1. `pip wheel .` builds keras_condcomp with the op library inside
   (`keras_condcomp/libcondcomp_tflite_ops.so`, setup.py's build_ext);
2. a fresh venv with `wheel[train]` (TensorFlow, Keras) converts a trained
   model with `tflite/convert.py --verify 32` and finds the library in its
   own site-packages;
3. a fresh venv with `wheel[runtime]` only (LiteRT + numpy, no TensorFlow,
   no Keras) runs the .tflite through `keras_condcomp.litert.Interpreter`
   and matches the Keras outputs within 1e-5.

Slow (two venvs, TensorFlow installed from pip's cache or the index): CI
runs it in the slow step.
"""

import os
import subprocess
import sys
import textwrap
import zipfile

import keras
import numpy as np
import pytest
from sklearn.datasets import load_digits
from tflite_helpers import REPO

import keras_condcomp as kc

pytestmark = pytest.mark.slow


def _run(args, cwd, **kwargs):
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "CONDCOMP_TFLITE_OPS", "VIRTUAL_ENV")}
    res = subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=env, **kwargs)
    assert res.returncode == 0, f"{args} failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    return res


def _venv(path, requirement, cwd):
    _run([sys.executable, "-m", "venv", str(path)], cwd)
    python = str(path / "bin" / "python")
    _run([python, "-m", "pip", "install", "-q", requirement], cwd, timeout=1200)
    return python


def test_wheel_converts_in_a_fresh_venv_and_runs_on_litert_alone(tmp_path):
    wheels = tmp_path / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
          "-w", str(wheels), REPO], tmp_path, timeout=600)
    (wheel,) = wheels.glob("keras_condcomp-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "keras_condcomp/libcondcomp_tflite_ops.so" in names
    assert "keras_condcomp/litert.py" in names
    # The converter is a subpackage: every module of it, not only the package file.
    assert {f"keras_condcomp/converter/{m}.py" for m in (
        "__init__", "__main__", "network", "export", "quantize", "verify", "cli")} <= set(names)

    # A small trained condnet and its Keras outputs, from this (development) venv.
    data = load_digits()
    x, y = (data.data / 16.0).astype("float32"), data.target
    keras.utils.set_random_seed(0)
    network = keras.Sequential([keras.Input((64,)),
                                kc.GatedDense(64, 8, activation="relu", tau=0.5),
                                kc.GatedDense(64, 8, activation="relu", tau=0.5),
                                keras.layers.Dense(10, activation="softmax")])
    model = kc.CondCompModel(network, estimator="reinforce")
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=2, batch_size=64, verbose=0)
    work = tmp_path / "work"  # no source tree here
    work.mkdir()
    model.save(work / "m.keras")
    np.save(work / "x.npy", x[:40])
    np.save(work / "y.npy", np.asarray(network(x[:40], training=False)))

    train_python = _venv(tmp_path / "train_venv", f"{wheel}[train]", work)
    res = _run([train_python, os.path.join(REPO, "tflite", "convert.py"), "m.keras",
                "-o", "m.tflite", "--verify", "32"], work, timeout=600)
    assert "verified" in res.stdout and res.stderr == ""
    res = _run([train_python, "-c", "import keras_condcomp.litert as l; print(l.library_path())"],
               work)
    assert str(tmp_path / "train_venv") in res.stdout  # the wheel's library, not build/

    runtime_python = _venv(tmp_path / "runtime_venv", f"{wheel}[runtime]", work)
    script = textwrap.dedent("""
        import importlib.util
        import numpy as np
        assert importlib.util.find_spec("tensorflow") is None
        assert importlib.util.find_spec("keras") is None
        import keras_condcomp
        try:
            keras_condcomp.GatedDense
        except ImportError as error:
            assert "keras_condcomp[train]" in str(error)
        else:
            raise AssertionError("GatedDense without Keras should raise ImportError")
        from keras_condcomp.litert import Interpreter
        interp = Interpreter("m.tflite", num_threads=2)
        assert interp.runtime == "litert"
        x, y = np.load("x.npy"), np.load("y.npy")
        err = max(float(np.abs(interp.predict(x) - y).max()),
                  float(np.abs(interp.predict(x[:1]) - y[:1]).max()))
        assert err <= 1e-5, err
        print("litert ok", err)
    """)
    res = _run([runtime_python, "-c", script], work)
    assert "litert ok" in res.stdout
