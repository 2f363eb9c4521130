"""`keras_condcomp.litert` without the custom ops: library lookup, runtime choice,
version gate, and the interleaved timing every benchmark relies on.

The interpreter running the custom ops is tested in test_tflite_ops.py, and
a missing or foreign library in test_bad_input.py.
"""

import os

import keras
import numpy as np
import pytest

from keras_condcomp import litert


def test_library_lookup_order(tmp_path, monkeypatch):
    monkeypatch.delenv(litert.LIBRARY_ENV, raising=False)
    candidates = litert._candidates()
    assert candidates[0].endswith(os.path.join("build", "tflite_ops", litert.LIBRARY_NAME))
    assert candidates[1] == os.path.join(os.path.dirname(litert.__file__), litert.LIBRARY_NAME)
    # $CONDCOMP_TFLITE_OPS replaces the search: nothing else is looked at.
    path = tmp_path / "ops.so"
    monkeypatch.setenv(litert.LIBRARY_ENV, str(path))
    assert litert._candidates() == [str(path)]
    assert litert.library_path() is None and not litert.library_available()
    path.write_bytes(b"")
    assert litert.library_path() == str(path)


def test_version_gate_refuses_untested_runtimes_unless_allowed(monkeypatch):
    assert litert._version("2.21.0") == (2, 21)
    assert litert._version("2.3.0rc1") == (2, 3)
    assert litert._version("2.22.0-dev20261201") == (2, 22)
    monkeypatch.delenv(litert.UNTESTED_ENV, raising=False)
    low, high = litert.TESTED_VERSIONS["tensorflow"]
    litert._check_tested("tensorflow", ".".join(map(str, low)) + ".0")
    for version in (".".join(map(str, high)) + ".0", f"{low[0]}.{low[1] - 1}.9"):
        with pytest.raises(litert.OpsLibraryError, match=f"this is tensorflow {version}"):
            litert._check_tested("tensorflow", version)
    monkeypatch.setenv(litert.UNTESTED_ENV, "1")
    litert._check_tested("tensorflow", ".".join(map(str, high)) + ".0")


def test_resolve_runtime(monkeypatch):
    monkeypatch.delenv(litert.RUNTIME_ENV, raising=False)
    name, module, version = litert.resolve_runtime("tensorflow")
    assert name == "tensorflow" and hasattr(module, "Interpreter") and version
    with pytest.raises(ValueError, match="Received: runtime='tflite'"):
        litert.resolve_runtime("tflite")
    monkeypatch.setenv(litert.RUNTIME_ENV, "tensorflow")
    assert litert.resolve_runtime()[0] == "tensorflow"
    try:
        import ai_edge_litert  # noqa: F401
    except ImportError:
        with pytest.raises(ValueError, match="needs the `ai_edge_litert` package"):
            litert.resolve_runtime("litert")
    else:
        assert litert.resolve_runtime("litert")[0] == "litert"


def test_cpu_name_is_recorded():
    name = litert.cpu_name()
    assert isinstance(name, str) and name.strip()


class _CountingInterpreter:
    """Stands in for an interpreter: records which input each invoke saw."""

    def __init__(self, log, key):
        self.log, self.key, self.current = log, key, None

    def get_input_details(self):
        return [{"index": 0}]

    def set_tensor(self, index, value):
        self.current = int(value)

    def invoke(self):
        self.log.append((self.key, self.current))


def test_time_interleaved_visits_every_job_each_round_and_drops_the_warmup():
    log = []
    jobs = {key: (_CountingInterpreter(log, key), [0, 1, 2]) for key in ("a", "b", "c")}
    medians = litert.time_interleaved(jobs, rounds=4, runs=5, warmup=2, seed=3)
    assert set(medians) == {"a", "b", "c"} and all(m >= 0 for m in medians.values())
    # (warmup + rounds) rounds of `runs` settling and `runs` recorded invokes per
    # job, a round one job after another.
    assert len(log) == 6 * 10 * 3
    rounds = [log[i:i + 30] for i in range(0, len(log), 30)]
    orders = []
    for r, visits in enumerate(rounds):
        keys = [key for key, _ in visits]
        order = keys[::10]
        assert keys == [key for key in order for _ in range(10)]  # one job at a time
        assert sorted(order) == ["a", "b", "c"]  # each job once per round
        orders.append(order)
        # Each job cycles through its inputs across rounds, settling on the same ones.
        assert [value for key, value in visits if key == "a"] == [
            (r * 5 + i) % 3 for i in range(5)] * 2
    assert len({tuple(order) for order in orders}) > 1  # the order is shuffled


def test_interpreter_for_batch_resizes_and_times_a_builtin_model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)])
    from keras_condcomp.converter import convert

    content = convert(model, dense=True)
    interpreter = litert.interpreter_for_batch(content, batch=3, custom_ops=False)
    assert list(interpreter.get_input_details()[0]["shape"]) == [3, 8]
    x = np.random.default_rng(0).normal(size=(3, 8)).astype("float32")
    times = litert.invoke_times(interpreter, [x], runs=4)
    assert len(times) == 4 and all(t > 0 for t in times)
    y = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.testing.assert_allclose(y, model.predict(x, verbose=0), rtol=1e-5, atol=1e-5)
