"""The real LiteRT runtime on aarch64: ai-edge-litert's aarch64 wheel under qemu-user.

tflite/arm/litert_sysroot.sh unpacks Debian's aarch64 python3.11 and the
aarch64 wheels of ai-edge-litert and numpy; tflite/arm/build.sh cross-builds
the op library. Models converted here (a digits condnet trained in the test
and the 784-2048-2048-2048-10 benchmark condnet at tau 0.25) run through
`keras_condcomp.litert.Interpreter` in that Python (no TensorFlow, no Keras
there) and must equal the x86 Keras outputs within 1e-5, at batch N and one
example at a time; the builtin-op model of the same network (XNNPACK aarch64)
too.

Needs root + apt (the arm64 .deb files), pip and qemu-user, and the aarch64
cross compiler; skipped otherwise unless $CONDCOMP_REQUIRE_ARM=1 (CI).
"""

import json
import os
import platform
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
from script_helpers import load_script
from sklearn.datasets import load_digits
from tflite_helpers import REPO, load_convert

import keras_condcomp as kc

ARM = os.path.join(REPO, "tflite", "arm")
QEMU = os.environ.get("QEMU", "qemu-aarch64")
REQUIRED = os.environ.get("CONDCOMP_REQUIRE_ARM") == "1"
TOL = 1e-5

_missing = [t for t in ("aarch64-linux-gnu-gcc", QEMU, "apt-get", "dpkg-deb")
            if not shutil.which(t)]
if platform.machine() != "x86_64":
    _missing.append("an x86-64 host (this test cross-runs aarch64 under qemu)")
if _missing and REQUIRED:
    raise RuntimeError(f"$CONDCOMP_REQUIRE_ARM=1 but {', '.join(_missing)} not available")
# Python under qemu-aarch64 (about 2 minutes for the module): the slow step.
pytestmark = [pytest.mark.skipif(bool(_missing), reason=f"needs {', '.join(_missing)}"),
              pytest.mark.slow]


def _run(cmd, timeout=900, **kwargs):
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)
    assert res.returncode == 0, f"{cmd}:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    return res


@pytest.fixture(scope="module")
def aarch64(tmp_path_factory):
    """`(sysroot, site, op library)` for the aarch64 LiteRT runs."""
    if os.geteuid() != 0 and not os.path.exists(os.path.join(REPO, "build", "arm-litert", ".done")):
        if REQUIRED:
            pytest.fail("tflite/arm/litert_sysroot.sh needs root (apt) and CONDCOMP_REQUIRE_ARM=1")
        pytest.skip("tflite/arm/litert_sysroot.sh needs root (apt)")
    _run(["bash", os.path.join(ARM, "litert_sysroot.sh")])
    out = tmp_path_factory.mktemp("arm_ops")
    _run(["bash", os.path.join(ARM, "build.sh")], env=dict(os.environ, BUILD_DIR=str(out)))
    base = os.path.join(REPO, "build", "arm-litert")
    return (os.path.join(base, "root"), os.path.join(base, "site"),
            str(out / "libcondcomp_tflite_ops.so"))


def _run_aarch64(aarch64, model, x, tmp_path, custom_ops=True):
    root, site, library = aarch64
    np.save(tmp_path / "x.npy", x)
    args = [QEMU, "-L", root, os.path.join(root, "usr", "bin", "python3.11"),
            os.path.join(ARM, "litert_run.py"), str(model), str(tmp_path / "x.npy"),
            str(tmp_path / "y.npy")] + ([] if custom_ops else ["--no-custom-ops"])
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": f"{site}:{REPO}",
           "CONDCOMP_TFLITE_OPS": library, "CONDCOMP_RUNTIME": "litert", "PYTHONNOUSERSITE": "1"}
    res = _run(args, env=env)
    assert "machine aarch64 runtime litert" in res.stdout, res.stdout
    return np.load(tmp_path / "y.npy")


def _digits_condnet():
    data = load_digits()
    x, y = (data.data / 16.0).astype("float32"), data.target
    keras.utils.set_random_seed(0)
    network = keras.Sequential([keras.Input((64,)),
                                kc.GatedDense(128, 8, activation="relu", tau=0.5),
                                kc.GatedDense(128, 8, activation="relu", tau=0.5),
                                keras.layers.Dense(10, activation="softmax")])
    model = kc.CondCompModel(network, estimator="reinforce")
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=3, batch_size=64, verbose=0)
    return network, x[:48]


@pytest.mark.parametrize("which", ["digits", "mlp2048"])
def test_litert_aarch64_matches_x86_keras(aarch64, tmp_path, which):
    if which == "digits":
        network, x = _digits_condnet()
    else:  # the 784-2048x3 benchmark condnet of the instruction-count table, tau 0.25
        benchmark_condnet = load_script("tflite/arm/litert_insn.py").benchmark_condnet

        network, x = benchmark_condnet(0.25, 2048)
    cv = load_convert()
    expected = np.asarray(network(x, training=False))
    masks = [np.asarray(layer.gate_outputs.mask)
             for layer in kc.layers.gated_layers(network)]
    assert all(0.0 < m.mean() < 1.0 for m in masks)  # blocks really switch on and off
    (tmp_path / "m.tflite").write_bytes(cv.convert(network))
    got = _run_aarch64(aarch64, tmp_path / "m.tflite", x, tmp_path)
    for outputs in got:  # batched, then one example at a time
        np.testing.assert_allclose(outputs, expected, atol=TOL)
    # The builtin-op model of the same network (every block on) on LiteRT's XNNPACK.
    (tmp_path / "d.tflite").write_bytes(cv.convert(network, dense=True))
    dense = _run_aarch64(aarch64, tmp_path / "d.tflite", x, tmp_path, custom_ops=False)
    for layer in kc.layers.gated_layers(network):
        layer.policy.threshold = 0.0  # every block on, as --dense computes
    expected_dense = np.asarray(network(x, training=False))
    for outputs in dense:
        np.testing.assert_allclose(outputs, expected_dense, atol=TOL)


def test_equal_mac_dense_peer_has_the_compared_networks_sizes():
    """litert_insn's equal-multiply-adds peer: the network's input, output and depth."""
    litert_insn = load_script("tflite/arm/litert_insn.py")
    equal_mac_dense, layer_sizes = litert_insn.equal_mac_dense, litert_insn.layer_sizes
    multiply_adds = litert_insn.multiply_adds

    network = keras.Sequential([keras.Input((64,)), kc.GatedDense(128, 8),
                                kc.GatedDense(128, 8), keras.layers.Dense(10)])
    peer = equal_mac_dense(network, 20000)
    # 64h + h^2 + 10h nearest 20,000: h = 109 (19,947 multiply-adds).
    assert layer_sizes(peer) == "64-109-109-10"
    assert multiply_adds(peer, []) == (19947, 19947)


@pytest.mark.slow
def test_litert_aarch64_instruction_count_table_runs(aarch64, tmp_path):
    """tflite/arm/litert_insn.py end to end at tau 0.1 (its full table: benchmarks/)."""
    out = tmp_path / "insn"
    _run([sys.executable, os.path.join(ARM, "litert_insn.py"), "--taus", "0.1", "--invokes", "1",
          "--library", aarch64[2], "--out", str(out)])
    (row,) = json.loads((tmp_path / "insn.json").read_text())
    assert row["dense_xnnpack_insns"] > 0 and row["condcomp_insns"] > 0
    # A tenth of the blocks: fewer instructions than the dense model, short of the ideal.
    assert 1.0 < row["ratio"] < row["ideal"]
    # The equal-multiply-adds dense peer: its width solves 784h + 2h^2 + 10h = the condnet's.
    h = int(row["equal_mac_dense"].split("-")[1])
    assert abs(784 * h + 2 * h * h + 10 * h - row["condnet_multiply_adds"]) <= 2 * h + 800
    assert row["condcomp_over_equal_mac_dense"] == row["condcomp_insns"] / row[
        "equal_mac_dense_insns"]


def random_bias():
    return keras.initializers.RandomNormal(0, 0.3)


def test_litert_aarch64_int8_weights_match_the_dequantized_reference(aarch64, tmp_path):
    """The dynamic-range CondComp ops (int8 weights and activations, NEON sdot) on aarch64."""
    rng = np.random.default_rng(5)
    keras.utils.set_random_seed(5)
    network = keras.Sequential([keras.Input((48,)),
                                kc.GatedDense(64, 8, activation="relu",
                                              bias_initializer=random_bias()),
                                kc.GatedDense(40, 4, activation="tanh")])
    for layer in kc.layers.gated_layers(network):
        k = layer.policy.kernel
        k.assign(rng.normal(0, 3.0 / np.sqrt(k.shape[0]), k.shape).astype("float32"))
    cv = load_convert()
    x = rng.normal(size=(12, 48)).astype("float32")
    (tmp_path / "q.tflite").write_bytes(cv.convert(network, quantize="dynamic"))
    expected, _ = cv.quantized_reference(network, x)
    for outputs in _run_aarch64(aarch64, tmp_path / "q.tflite", x, tmp_path):
        np.testing.assert_allclose(outputs, expected, atol=TOL)
    # The int8 CondCompGatedConv2D (one layer: its input is bit-identical on both sides).
    conv = keras.Sequential([keras.Input((6, 5, 8)),
                             kc.GatedConv2D(40, 3, num_blocks=4, padding="same", activation="relu",
                                            bias_initializer=random_bias())])
    k = conv.layers[0].policy.kernel
    k.assign(rng.normal(0, 3.0 / np.sqrt(k.shape[0]), k.shape).astype("float32"))
    x = rng.normal(size=(5, 6, 5, 8)).astype("float32")
    (tmp_path / "qc.tflite").write_bytes(cv.convert(conv, quantize="dynamic"))
    expected, _ = cv.quantized_reference(conv, x)
    for outputs in _run_aarch64(aarch64, tmp_path / "qc.tflite", x, tmp_path):
        np.testing.assert_allclose(outputs, expected, atol=TOL)
