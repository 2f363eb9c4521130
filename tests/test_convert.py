"""tflite/convert.py: one custom op per gated layer, its options and block-major weights,
the dense baseline, the SavedModel it goes through, and CLI errors.

Needs TensorFlow only (not the native op library).
"""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from tflite_helpers import REPO, custom_ops, load_convert, model_t, tensor_value

import keras_condcomp as kc

CONVERT = os.path.join(REPO, "tflite", "convert.py")
INT8_REPORT = "max |CondComp op - keras int8 reference of its layer| = "


@pytest.fixture(scope="module")
def cv():
    return load_convert()


def _net(seed=0):
    keras.utils.set_random_seed(seed)
    net = keras.Sequential([
        keras.Input((12,)),
        kc.GatedDense(16, num_blocks=4, activation="relu", threshold=0.4),
        kc.GatedDense(10, num_blocks=2, activation="tanh", use_bias=False),
        keras.layers.Dense(3),
    ])
    rng = np.random.default_rng(seed)
    for layer in net.layers[:2]:
        layer.policy.kernel.assign(rng.normal(0, 1, layer.policy.kernel.shape).astype("f4"))
        layer.policy.bias.assign(rng.normal(0, 1, layer.policy.bias.shape).astype("f4"))
    return net


def test_one_custom_op_per_gated_layer_with_options_and_block_major_weights(cv):
    from flatbuffers import flexbuffers

    net = _net()
    data = cv.convert(net)
    assert cv.op_counts(data) == {"CondCompGatedDense": 2}
    m = model_t(data)
    ops = custom_ops(m, "CondCompGatedDense")
    options = [flexbuffers.Loads(bytes(bytearray(op.customOptions))) for _, op in ops]
    by_act = {o["activation"]: o for o in options}
    assert by_act["relu"] == {"activation": "relu", "threshold": pytest.approx(0.4),
                              "input_block_size": 0}
    # The second layer reads the first one's output: look for zero blocks of 4;
    # the output Dense (3 units) is folded into it.
    assert by_act["tanh"] == {"activation": "tanh", "threshold": 0.5, "input_block_size": 4,
                              "head_units": 3}
    layers = {16: net.layers[0], 10: net.layers[1]}
    for sub, op in ops:
        kernel_bm = tensor_value(m, sub, op.inputs[1])
        layer = layers[kernel_bm.shape[0] * kernel_bm.shape[2]]
        kernel, k = layer.kernel.numpy(), layer.num_blocks
        np.testing.assert_array_equal(  # [D, K*bs] -> [K, D, bs], written out independently
            kernel_bm, kernel.reshape(kernel.shape[0], k, -1).transpose(1, 0, 2))
        # block j of the output is kernel[:, j*bs:(j+1)*bs], contiguous in kernel_bm[j]
        bs = layer.block_size
        np.testing.assert_array_equal(kernel_bm[1], layer.kernel.numpy()[:, bs:2 * bs])
        bias = tensor_value(m, sub, op.inputs[2])
        expected_bias = (layer.bias.numpy() if layer.bias is not None
                         else np.zeros(layer.units, "f4"))
        np.testing.assert_array_equal(bias, expected_bias)
        np.testing.assert_array_equal(tensor_value(m, sub, op.inputs[3]),
                                      layer.policy.kernel.numpy())
        np.testing.assert_array_equal(tensor_value(m, sub, op.inputs[4]),
                                      layer.policy.bias.numpy())
        # the folded output layer: its kernel and bias, last
        assert len(op.inputs) == (7 if layer is net.layers[1] else 5)
        if layer is net.layers[1]:
            np.testing.assert_array_equal(tensor_value(m, sub, op.inputs[5]),
                                          net.layers[2].kernel.numpy())
            np.testing.assert_array_equal(tensor_value(m, sub, op.inputs[6]),
                                          net.layers[2].bias.numpy())
    assert "call" not in net.layers[0].__dict__  # export patch removed
    assert "call" not in net.layers[2].__dict__ and net.layers[2].input_spec is not None


def test_conv_options_and_layout(cv):
    from flatbuffers import flexbuffers

    keras.utils.set_random_seed(1)
    net = keras.Sequential([
        keras.Input((12, 12, 3)),
        kc.GatedConv2D(6, (3, 2), num_blocks=3, strides=(2, 1), padding="same",
                       activation="relu"),
        kc.GatedConv2D(4, 3, num_blocks=2, dilation_rate=2),
    ])
    data = cv.convert(net)
    m = model_t(data)
    ops = custom_ops(m, "CondCompGatedConv2D")
    assert len(ops) == 2
    opts = sorted((flexbuffers.Loads(bytes(bytearray(op.customOptions))) for _, op in ops),
                  key=lambda o: o["stride_h"])
    assert opts[0] == {"activation": "linear", "threshold": 0.5, "input_block_size": 2,
                       "padding": "valid", "stride_h": 1, "stride_w": 1, "dilation_h": 2,
                       "dilation_w": 2}
    assert opts[1]["stride_h"] == 2 and opts[1]["padding"] == "same"
    for sub, op in ops:
        kbm = tensor_value(m, sub, op.inputs[1])
        layer = net.layers[0] if kbm.shape[1:3] == (3, 2) else net.layers[1]
        kernel, k = layer.kernel.numpy(), layer.num_blocks
        np.testing.assert_array_equal(  # [KH, KW, C, K*bs] -> [K, KH, KW, C, bs]
            kbm, kernel.reshape(kernel.shape[:3] + (k, -1)).transpose(3, 0, 1, 2, 4))


def test_saved_model_body_is_the_reference_semantics(cv, tmp_path):
    import tensorflow as tf

    net = _net(2)
    cv.export_saved_model(net, str(tmp_path))
    loaded = tf.saved_model.load(str(tmp_path))
    x = np.random.default_rng(3).normal(size=(7, 12)).astype("f4")
    np.testing.assert_allclose(loaded.serve(x).numpy(), net(x, training=False).numpy(),
                               atol=1e-5)


def test_dense_baseline_has_only_builtin_ops(cv):
    data = cv.convert(_net(), dense=True)
    counts = cv.op_counts(data)
    assert counts["FULLY_CONNECTED"] == 3 and "CondCompGatedDense" not in counts
    assert set(counts) <= {"FULLY_CONNECTED", "TANH"}


def test_rejects_unconvertible_layers(cv):
    net = keras.Sequential([keras.Input((4,)), kc.GatedDense(4, num_blocks=2,
                                                             inference_mode="sample")])
    with pytest.raises(cv.ConversionError, match="inference_mode"):
        cv.convert(net)
    net = keras.Sequential([keras.Input((4,)), kc.GatedDense(4, num_blocks=2,
                                                             activation=lambda t: t * 2)])
    with pytest.raises(cv.ConversionError, match="activation"):
        cv.convert(net)
    # A model without gated layers is not refused: it converts with builtin ops.
    data = cv.convert(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]))
    assert cv.op_counts(data) == {"FULLY_CONNECTED": 1}


def _run_cli(*args):
    """tflite/convert.py as a program (exit status, stderr free of TF logging)."""
    return subprocess.run([sys.executable, CONVERT, *args], capture_output=True, text=True,
                          timeout=300)


def _run_main(capsys, *args):
    """The same command line through `main` in this process (no TensorFlow
    start-up per call): what each option does, not what the program prints
    on start-up, which the _run_cli checks cover."""
    cv = load_convert()
    capsys.readouterr()
    try:
        code = cv.main(list(args))
    except SystemExit as e:  # argparse errors
        code = e.code
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, captured.out, captured.err)


def test_cli_errors_name_the_argument(tmp_path, capsys):
    res = _run_cli(str(tmp_path / "missing.keras"), "-o", str(tmp_path / "o.tflite"))
    assert res.returncode == 2 and "argument MODEL: file not found" in res.stderr
    other = tmp_path / "model.txt"
    other.write_text("x")
    res = _run_main(capsys, str(other), "-o", str(tmp_path / "o.tflite"))
    assert res.returncode == 2 and "argument MODEL: expected a .keras" in res.stderr
    plain = tmp_path / "plain.keras"
    keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]).save(str(plain))
    res = _run_main(capsys, str(plain), "-o", str(tmp_path / "nodir" / "o.tflite"))
    assert res.returncode == 2 and "argument -o/--output: directory does not exist" in res.stderr
    # A plain model converts (builtin ops), as the dense baseline of a condnet.
    res = _run_main(capsys, str(plain), "-o", str(tmp_path / "o.tflite"), "--verify", "4")
    assert res.returncode == 0 and "dense baseline (builtin ops)" in res.stdout


def test_cli_writes_model_and_prints_summary(tmp_path, capsys):
    model = kc.CondCompModel(_net(4), estimator="reinforce")
    path = str(tmp_path / "m.keras")
    model.save(path)
    res = _run_cli(path, "-o", str(tmp_path / "m.tflite"))
    assert res.returncode == 0, res.stderr
    assert "CondCompGatedDense: 2" in res.stdout and "FULLY_CONNECTED" not in res.stdout
    assert "dense (3 units) folded into its op" in res.stdout, res.stdout
    assert os.path.getsize(tmp_path / "m.tflite") > 0
    res = _run_main(capsys, path, "-o", str(tmp_path / "d.tflite"), "--dense")
    assert res.returncode == 0, res.stderr
    assert "dense baseline" in res.stdout and "FULLY_CONNECTED: 3" in res.stdout
    assert "CondCompGatedDense:" not in res.stdout


def test_cli_verify_runs_the_tflite_model_against_keras(tmp_path, capsys):
    from tflite_helpers import require_ops_library

    require_ops_library()
    model = kc.CondCompModel(_net(5), estimator="reinforce")
    path = str(tmp_path / "m.keras")
    model.save(path)
    res = _run_cli(path, "-o", str(tmp_path / "m.tflite"), "--verify", "16")
    assert res.returncode == 0, res.stderr
    # No TensorFlow/absl/CUDA start-up or converter logging by default.
    assert res.stderr == "", res.stderr
    dense = _run_main(capsys, path, "-o", str(tmp_path / "m.tflite"), "--verify", "16", "--dense")
    assert dense.returncode == 0, dense.stderr
    for res in (res, dense):
        worst = float(res.stdout.split("max |tflite - keras| = ")[1].split()[0])
        assert worst <= 1e-5
    res = _run_cli(path, "-o", str(tmp_path / "m.tflite"), "--verbose")
    assert res.returncode == 0 and "absl" in res.stderr
    res = _run_main(capsys, path, "-o", str(tmp_path / "q.tflite"), "--quantize", "dynamic",
                    "--verify", "8")
    assert res.returncode == 0, res.stderr
    assert "dynamic-range int8" in res.stdout
    worst = float(res.stdout.split("max |tflite - keras float32| = ")[1].split()[0])
    assert 0 < worst < 0.1  # int8 rounding: reported, not thresholded
    worst = float(res.stdout.split(INT8_REPORT)[1].split()[0])
    assert worst <= 1e-5  # what the int8 ops compute: checked
    assert os.path.getsize(tmp_path / "q.tflite") < os.path.getsize(tmp_path / "m.tflite")
    # The full-integer dense baseline, calibrated on given inputs.
    x_rep = str(tmp_path / "rep.npy")
    np.save(x_rep, np.random.default_rng(0).normal(size=(50, 12)).astype("f4"))
    res = _run_main(capsys, path, "-o", str(tmp_path / "i8.tflite"), "--dense", "--quantize",
                    "int8", "--representative-data", x_rep, "--representative", "20",
                    "--verify", "4")
    assert res.returncode == 0, res.stderr
    assert "full-integer int8" in res.stdout and "FULLY_CONNECTED: 3" in res.stdout
    # The CondComp ops with static activation scales calibrated on the same inputs.
    res = _run_main(capsys, path, "-o", str(tmp_path / "s8.tflite"), "--quantize", "int8",
                    "--representative-data", x_rep, "--representative", "20", "--verify", "8")
    assert res.returncode == 0, res.stderr
    assert "static activation scales" in res.stdout and "CondCompGatedDense: 2" in res.stdout
    worst = float(res.stdout.split(INT8_REPORT)[1].split()[0])
    assert worst <= 1e-5
    cv = load_convert()
    from keras_condcomp.converter.cli import _parse_args  # the CLI's own, not re-exported

    for bad, message in [(["--quantize", "int8"], "needs --representative-data"),
                         (["--dense", "--quantize", "int8"], "needs --representative-data"),
                         (["--representative-data", x_rep], "used by --quantize int8 only"),
                         (["--dense", "--quantize", "int8", "--representative-data", x_rep,
                           "--representative", "0"],
                          "argument --representative: must be a positive integer, got '0'")]:
        with pytest.raises(SystemExit) as exit_info:  # argparse, in this process
            _parse_args([path, "-o", str(tmp_path / "x.tflite"), *bad])
        assert exit_info.value.code == 2
        assert message in capsys.readouterr().err
    # Calibration data that cannot be calibrated on: a clean argument error
    # (found before anything is converted), not a traceback.
    x_nan = str(tmp_path / "nan.npy")
    np.save(x_nan, np.full((4, 12), np.nan, "f4"))
    x_shape = str(tmp_path / "shape.npy")
    np.save(x_shape, np.zeros((4, 5), "f4"))
    for bad, message in [(x_nan, "NaN/Inf"), (x_shape, "")]:
        with pytest.raises(SystemExit) as exit_info:
            cv.main([path, "-o", str(tmp_path / "x.tflite"), "--quantize", "int8",
                     "--representative-data", bad])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert "argument --representative-data: " in err and message in err
    assert not os.path.exists(tmp_path / "x.tflite")
    res = _run_main(capsys, path, "-o", str(tmp_path / "m.tflite"), "--verify", "-1")
    assert res.returncode == 2 and "argument --verify: must be >= 0" in res.stderr


def test_verify_detects_a_model_that_computes_something_else(cv):
    from tflite_helpers import require_ops_library

    require_ops_library()
    net = _net(6)
    data = cv.convert(net)
    net.layers[-1].kernel.assign(net.layers[-1].kernel + 1.0)  # Keras side changed after export
    assert cv.verify(net, data, 8) > 1e-3
