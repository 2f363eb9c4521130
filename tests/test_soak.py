"""Load: 100,000 single-example invocations of the custom-op interpreter from 4 threads.

Each thread owns an interpreter (the runtime's rule: one interpreter per
thread) of the same converted condnet and runs 25,000 single-example
`invoke()` calls on random inputs (1 in 100 has a NaN or Inf). Every 500th
input/output pair is kept and compared with Keras at the end; resident memory
(VmRSS) is read after a warm-up and at the end and must not grow by more than
a fixed bound. Slow: CI's slow step. The figures are printed (pytest -s).
"""

import threading
import time

import keras
import numpy as np
import pytest
from tflite_helpers import load_convert, require_ops_library

import keras_condcomp as kc
from keras_condcomp import litert

pytestmark = pytest.mark.slow

THREADS = 4
CALLS_PER_THREAD = 25_000
WARMUP_CALLS = 2_000
KEEP_EVERY = 500
RSS_GROWTH_BOUND_MB = 16.0
TOL = 1e-5


def _rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmRSS in /proc/self/status")


def random_bias():
    return keras.initializers.RandomNormal(0, 0.3)


def _network():
    keras.utils.set_random_seed(3)
    net = keras.Sequential([
        keras.Input((64,)),
        kc.GatedDense(128, 8, activation="relu", bias_initializer=random_bias()),
        kc.GatedDense(128, 8, activation="relu", bias_initializer=random_bias()),
        keras.layers.Dense(10, activation="softmax"),
    ])
    rng = np.random.default_rng(0)
    for layer in kc.layers.gated_layers(net):
        k = layer.policy.kernel
        k.assign(rng.normal(0, 3.0 / np.sqrt(k.shape[0]), k.shape).astype("f4"))
    return net


RUNTIMES = ["tensorflow"] + (["litert"] if litert.resolve_runtime()[0] == "litert" else [])


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_100k_invocations_from_4_threads_match_keras_and_hold_memory(runtime):
    require_ops_library()
    network = _network()
    data = load_convert().convert(network)
    kept = [[] for _ in range(THREADS)]
    errors = []
    rss = {}
    warm = threading.Barrier(THREADS + 1)
    done_warmup = threading.Barrier(THREADS + 1)

    def worker(t):
        try:
            interp = litert.Interpreter(model_content=data, num_threads=1,
                                        runtime=runtime)._interpreter
            inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
            interp.resize_tensor_input(inp["index"], [1, 64])
            interp.allocate_tensors()
            rng = np.random.default_rng(100 + t)
            for i in range(CALLS_PER_THREAD):
                if i == WARMUP_CALLS:
                    warm.wait()
                    done_warmup.wait()
                x = rng.normal(size=(1, 64)).astype("f4")
                if rng.random() < 0.01:
                    x[0, rng.integers(64)] = rng.choice([np.nan, np.inf, -np.inf])
                interp.set_tensor(inp["index"], x)
                interp.invoke()
                if i % KEEP_EVERY == 0:
                    kept[t].append((x, interp.get_tensor(out["index"]).copy()))
        except Exception as error:  # noqa: BLE001 - reported by the main thread
            errors.append(error)
            warm.abort()
            done_warmup.abort()

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    warm.wait()
    rss["after_warmup"] = _rss_mb()
    done_warmup.wait()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - start
    rss["end"] = _rss_mb()
    assert not errors, errors

    x = np.concatenate([x for pairs in kept for x, _ in pairs])
    y = np.concatenate([y for pairs in kept for _, y in pairs])
    expected = np.asarray(network(x, training=False))
    bad = ~np.isfinite(x).all(axis=1)
    # (Non-finite rows: NaN from the op; XNNPACK softmax after it is not ours to define.)
    np.testing.assert_allclose(y[~bad], expected[~bad], atol=TOL)
    growth = rss["end"] - rss["after_warmup"]
    calls = THREADS * CALLS_PER_THREAD
    print(f"\nsoak: {calls} invocations, {THREADS} threads, {seconds:.1f} s "
          f"({calls / seconds:,.0f}/s); RSS {rss['after_warmup']:.1f} -> {rss['end']:.1f} MB "
          f"(+{growth:.2f} MB); {len(x)} outputs checked against Keras "
          f"({int(bad.sum())} non-finite rows); runtime {runtime}")
    assert growth <= RSS_GROWTH_BOUND_MB, rss
