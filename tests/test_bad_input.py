"""Bad input to every public entry point: one test per row of docs/bad_input.md.

Rows already tested elsewhere are named in the table instead of repeated here.
Each test checks the error type and that the message names the argument and
the value (or, for NaN/Inf, the defined result). The TFLite rows that run the
custom ops need the native library (`bash tflite/build_ops.sh`).
"""

import io
import json
import os
import pickle
import re
import subprocess
import sys
import zipfile

import h5py
import keras
import numpy as np
import pytest
from data_helpers import isolate_data_search
from script_helpers import load_script
from tflite_helpers import REPO, load_convert, require_ops_library

import keras_condcomp as kc
from keras_condcomp import data, litert, sparse
from keras_condcomp.callbacks import TerminateOnNonFinite
from keras_condcomp.models import per_example_loss_fn

CONVERT = os.path.join(REPO, "tflite", "convert.py")
NAN, INF = float("nan"), float("inf")


@pytest.fixture(scope="module")
def cv():
    return load_convert()


def _net(units=8, seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((4,)),
        kc.GatedDense(units, num_blocks=2, activation="relu", name="g"),
        keras.layers.Dense(3, activation="softmax", name="out"),
    ])


def _model(units=8, seed=0, **kwargs):
    model = kc.CondCompModel(_net(units, seed), **{"estimator": "reinforce", **kwargs})
    model.build((None, 4))
    return model


def _xy(n=16):
    x = np.random.default_rng(0).normal(size=(n, 4)).astype("float32")
    return x, np.arange(n) % 3


# ------------------------------------------------------------------ layers


LAYER_ARGUMENTS = [
    (lambda: kc.GatedDense(8, num_blocks=2, tau=NAN), r"`tau`.*Received: tau=nan"),
    (lambda: kc.GatedDense(8, num_blocks=2, threshold=NAN),
     r"`threshold`.*Received: threshold=nan"),
    (lambda: kc.GatedDense(8, num_blocks=2, block_balance_weight=INF),
     r"`block_balance_weight` must be a finite.*Received: block_balance_weight=inf"),
    (lambda: kc.GatedConv2D(8, 3.0, num_blocks=2), r"Received: kernel_size=3.0"),
    (lambda: kc.GatedDense(8.0, num_blocks=2), r"`units` must be a positive integer.*units=8.0"),
    (lambda: kc.GatedDense(8, num_blocks=2, seed="abc"), r"`seed`.*Received: seed=abc"),
    (lambda: kc.GatedDense(8, num_blocks=2, gate_temperature=2.0),
     r"Unrecognized keyword arguments passed to GatedDense: \{'gate_temperature': 2.0\}"),
    (lambda: kc.BernoulliBlockPolicy(2, threshold=True), r"Received: threshold=True"),
]


def test_layer_nonfinite_or_wrongly_typed_arguments():
    for make, match in LAYER_ARGUMENTS:
        with pytest.raises(ValueError, match=match):
            make()


def test_layer_numpy_scalars_are_accepted_and_stored_as_python_numbers():
    layer = kc.GatedDense(np.int64(8), num_blocks=np.int32(2), tau=np.float32(0.25))
    config = layer.get_config()
    assert (type(config["units"]), type(config["num_blocks"])) == (int, int)
    assert config["tau"] == 0.25
    conv = kc.GatedConv2D(np.int64(4), np.int64(3), num_blocks=2, strides=(np.int64(1), 1))
    assert conv.get_config()["kernel_size"] == (3, 3) and type(conv.strides[0]) is int
    json.dumps(conv.get_config())  # serializable: no NumPy scalars left


def test_layer_wrong_feature_size_after_build():
    layer = kc.GatedDense(4, num_blocks=2, name="gd")
    layer.build((None, 3))
    with pytest.raises(ValueError, match=r"layer 'gd'.*expected axis -1 of input shape to have "
                                         r"value 3, but received input with shape \(2, 4\)"):
        layer(np.zeros((2, 4), "float32"))
    conv = kc.GatedConv2D(4, 3, num_blocks=2, name="gc")
    conv.build((None, 5, 5, 2))
    with pytest.raises(ValueError, match=r"layer 'gc'.*value 2, but received input with shape "
                                         r"\(1, 5, 5, 3\)"):
        conv(np.zeros((1, 5, 5, 3), "float32"))
    with pytest.raises(ValueError, match=r"must be defined.*Received: input_shape=\(None, None\)"):
        kc.GatedDense(4, num_blocks=2).build((None, None))


def test_conv_input_smaller_than_kernel():
    with pytest.raises(ValueError, match=r"resulted in an empty output.*\(1, 0, 0, 4\)"):
        kc.GatedConv2D(4, 3, num_blocks=2)(np.zeros((1, 2, 2, 2), "float32"))


def test_layer_input_dtypes():
    layer = kc.GatedDense(4, num_blocks=2)
    y = layer(np.ones((2, 3), "int32"), training=False)
    assert keras.backend.standardize_dtype(y.dtype) == "float32"
    y64 = layer(np.ones((2, 3), "float64"), training=False)
    np.testing.assert_array_equal(np.asarray(y64), np.asarray(y))
    with pytest.raises(ValueError, match=r"dtype='string' is not a valid dtype"):
        layer(np.array([["a", "b", "c"]]))


def test_policy_wrong_rank_and_nan_input():
    policy = kc.BernoulliBlockPolicy(2, name="p")
    policy.build((None, 3))
    with pytest.raises(ValueError, match=r"layer 'p'.*expected ndim=2, found ndim=3"):
        policy(np.zeros((1, 2, 3), "float32"))
    for training in (True, False):
        mask, sigma, log_prob = (np.asarray(t) for t in policy(
            np.array([[NAN, 0, 0], [1, 2, 3]], "float32"), training=training))
        assert np.isnan(sigma[0]).all() and np.isnan(log_prob[0])
        np.testing.assert_array_equal(mask[0], [0, 0])  # NaN sigma: block off
        assert np.isfinite(sigma[1]).all() and np.isfinite(log_prob[1])


def test_nan_and_inf_inputs_give_nan_outputs_not_a_crash():
    """Defined by our code (layers.nonfinite_rows_to_nan), not by the CPU backend:
    an example whose input holds NaN or +-Inf gets an all-NaN output row."""
    dense = kc.GatedDense(4, num_blocks=2, activation="relu")
    x = np.array([[NAN, 0, 0], [INF, -1, 0], [-INF, 0, 2], [1, 2, 3]], "float32")
    for training in (False, True):
        y = np.asarray(dense(x, training=training))
        assert np.isnan(y[:3]).all(), y
        assert np.isfinite(y[3]).all()
    conv = kc.GatedConv2D(4, 3, num_blocks=2)
    xc = np.ones((2, 5, 5, 2), "float32")
    xc[0, 0, 0, 0] = NAN
    y = np.asarray(conv(xc, training=False))
    assert np.isnan(y[0]).all()  # every position of the example with the NaN
    assert np.isfinite(y[1]).all()


def test_nan_weights():
    layer = kc.GatedDense(4, num_blocks=2)
    layer.build((None, 3))
    layer.kernel.assign(np.full((3, 4), NAN, "float32"))
    assert np.isnan(np.asarray(layer(np.ones((2, 3), "float32"), training=False))).all()
    layer = kc.GatedDense(4, num_blocks=2)
    layer.build((None, 3))
    layer.policy.kernel.assign(np.full((3, 2), NAN, "float32"))
    y = np.asarray(layer(np.ones((2, 3), "float32"), training=False))
    np.testing.assert_array_equal(y, 0.0)  # NaN sigma: every block off, exact zeros
    np.testing.assert_array_equal(np.asarray(layer.gate_outputs.mask), 0.0)


# ------------------------------------------------------------------- model


def test_model_network_that_is_not_a_layer():
    for bad in ("net", None, [kc.GatedDense(4, num_blocks=2)]):
        with pytest.raises(ValueError, match=r"`network` must be a Keras model or layer\. "
                                             + re.escape(f"Received: network={bad!r}")):
            kc.CondCompModel(bad, estimator="reinforce")


def test_model_fit_before_compile_and_without_loss():
    x, y = _xy()
    model = _model()
    with pytest.raises(ValueError, match=r"You must call `compile\(\)`"):
        model.fit(x, y, verbose=0)
    model.compile("adam")
    with pytest.raises(ValueError, match=r"needs a loss.*compile\(loss=\.\.\.\)"):
        model.fit(x, y, verbose=0)


def test_model_losses_it_cannot_turn_into_per_example_costs():
    with pytest.raises(ValueError, match=r"needs one loss.*Received: loss=\['mse', 'mae'\]"):
        per_example_loss_fn(["mse", "mae"])
    with pytest.raises(ValueError, match=r"needs one loss.*Received: loss=\{'a': 'mse'\}"):
        per_example_loss_fn({"a": "mse"})
    assert per_example_loss_fn(["mse"]) is keras.losses.get("mse")  # one loss in a list: fine


def test_model_cost_returning_a_scalar():
    x, y = _xy()

    def reduced(y_true, y_pred):
        return keras.ops.mean(keras.losses.sparse_categorical_crossentropy(y_true, y_pred))

    model = _model(cost=reduced)
    model.compile("adam", "sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match=r"one cost per example.*`cost\(y_true, y_pred\)` "
                                         r"returned a scalar.*Received: cost=<function"):
        model.fit(x, y, verbose=0)


def test_model_predict_wrong_shape_and_dtype():
    model = _model()
    with pytest.raises(ValueError, match=r"layer 'g'.*expected axis -1 of input shape to have "
                                         r"value 4, but received input with shape \(2, 5\)"):
        model.predict(np.zeros((2, 5), "float32"), verbose=0)
    with pytest.raises(ValueError, match=r"Expected shape \(None, 4\), but input has "
                                         r"incompatible shape \(4,\)"):
        model.predict(np.zeros((4,), "float32"), verbose=0)
    y = model.predict(np.ones((2, 4), "int32"), verbose=0)
    assert y.dtype == np.float32 and y.shape == (2, 3)


def test_model_predict_and_evaluate_nan_inputs():
    model = _model()
    model.compile("adam", "sparse_categorical_crossentropy")
    x = np.array([[NAN, 0, 0, 0], [1, 1, 1, 1]], "float32")
    y = model.predict(x, verbose=0)
    assert np.isnan(y[0]).all() and np.isfinite(y[1]).all()
    logs = model.evaluate(x, np.array([0, 1]), verbose=0, return_dict=True)
    assert np.isnan(logs["loss"]) and np.isnan(logs["g_active"])


def test_model_fit_nan_input_is_stopped_by_terminate_on_nonfinite():
    x, y = _xy()
    x[3, 1] = NAN  # in the first batch
    model = _model()
    model.compile("adam", "sparse_categorical_crossentropy")
    stop = TerminateOnNonFinite(verbose=0)
    history = model.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0,
                        callbacks=[stop])
    assert len(history.history["loss"]) == 1  # stopped in the first epoch
    assert set(stop.nonfinite) >= {"loss", "policy_loss", "sigma/g"}
    assert stop.message.startswith("Batch 0: non-finite value(s) in training: loss")
    assert "sigma of gated layer 'g'=nan" in stop.message
    model = _model()
    model.compile("adam", "sparse_categorical_crossentropy")
    with pytest.raises(RuntimeError, match=r"Batch 0: non-finite value\(s\).*Terminating"):
        model.fit(x, y, batch_size=8, shuffle=False, verbose=0,
                  callbacks=[TerminateOnNonFinite(raise_error=True)])
    with pytest.raises(ValueError, match=r"`raise_error` must be a boolean. "
                                         r"Received: raise_error='yes'"):
        TerminateOnNonFinite(raise_error="yes")


def test_model_fit_nan_policy_weights_are_reported_as_sigma():
    x, y = _xy()
    model = _model()
    model.compile("adam", "sparse_categorical_crossentropy")
    model.network.get_layer("g").policy.kernel.assign(np.full((4, 2), NAN, "float32"))
    stop = TerminateOnNonFinite(verbose=0)
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[stop])
    assert "sigma/g" in stop.nonfinite and model.stop_training


# ------------------------------------------------------ saved model files


def _rewrite_keras_file(src, dst, edit_config=None, edit_weights=None):
    with zipfile.ZipFile(src) as z:
        items = {n: z.read(n) for n in z.namelist()}
    if edit_config:
        config = json.loads(items["config.json"])
        layers = config["config"]["network"]["config"]["layers"]
        gated = next(layer for layer in layers if layer["class_name"] == "GatedDense")
        edit_config(gated["config"])
        items["config.json"] = json.dumps(config).encode()
    if edit_weights:
        buf = io.BytesIO(items["model.weights.h5"])
        with h5py.File(buf, "a") as f:
            edit_weights(f)
        items["model.weights.h5"] = buf.getvalue()
    with zipfile.ZipFile(dst, "w") as z:
        for name, blob in items.items():
            z.writestr(name, blob)
    return str(dst)


@pytest.fixture(scope="module")
def keras_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("saved") / "model.keras"
    _model().save(str(path))
    return path


OTHER_VERSION_CONFIGS = [
    (lambda c: c.update(gate_temperature=2.0),
     r"Unrecognized keyword arguments passed to GatedDense: \{'gate_temperature': 2.0\}"),
    (lambda c: c.update(tau=2.0),
     r"Argument `tau` must be a number in \(0, 1\]. Received: tau=2.0"),
    (lambda c: c.pop("num_blocks"), r"missing 1 required positional argument: 'num_blocks'"),
]


def test_keras_file_config_from_another_version(keras_file, tmp_path):
    for i, (edit, match) in enumerate(OTHER_VERSION_CONFIGS):
        path = _rewrite_keras_file(keras_file, tmp_path / f"other{i}.keras", edit_config=edit)
        with pytest.raises(ValueError) as info:
            keras.models.load_model(path)
        message = str(info.value)
        assert message.startswith("Cannot create GatedDense 'g' from its saved config with "
                                  f"keras_condcomp {kc.__version__}"), message
        assert len(message) < 400, "the cause, not pages of config"
        assert re.search(match, message), message


def test_keras_file_weights_of_another_shape(keras_file, tmp_path):
    def other_policy_kernel(f):
        key = next(k for k in _datasets(f) if "policy/vars/0" in k)
        del f[key]
        f[key] = np.zeros((4, 3), "float32")

    path = _rewrite_keras_file(keras_file, tmp_path / "other.keras",
                               edit_weights=other_policy_kernel)
    with pytest.raises(ValueError, match=r"BernoulliBlockPolicy name=policy.*\n\n.*variable"
                                         r".shape=\(4, 2\), Received: value.shape=\(4, 3\)"):
        keras.models.load_model(path)


def test_weights_file_with_other_shapes_names_the_shapes(tmp_path):
    path = str(tmp_path / "model.weights.h5")
    _model(units=8).save_weights(path)
    keras.backend.clear_session()
    wider = _model(units=16)
    with pytest.raises(ValueError, match=r"GatedDense name=g.*\n\n.*variable.shape=\(4, 16\), "
                                         r"Received: value.shape=\(4, 8\)") as info:
        wider.load_weights(path)
    assert "received 0 variables" not in str(info.value)


def test_keras_file_that_is_not_a_zip(tmp_path):
    path = tmp_path / "broken.keras"
    path.write_bytes(b"not a zip archive")
    with pytest.raises(ValueError, match=r"filepath=.*broken.keras.*accessible `.keras` zip file"):
        keras.models.load_model(str(path))


def _datasets(f):
    names = []
    f.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
    return names


# ----------------------------------------------------------------- sparse


def test_sparse_network_that_is_not_layers():
    for bad in ("abc", None, 3, [keras.layers.Dense(2), "relu"]):
        with pytest.raises(ValueError,
                           match=r"`network` must be a Keras model.*Received: network="):
            sparse.SparseInference(bad)


def test_sparse_unbuilt_layer():
    with pytest.raises(ValueError, match=r"Layer 'gu' is not built"):
        sparse.SparseInference([kc.GatedDense(4, num_blocks=2, name="gu")])
    with pytest.raises(ValueError, match=r"Layer 'gu2' is not built"):
        sparse.layer_inference(kc.GatedDense(4, num_blocks=2, name="gu2"), np.zeros((1, 3), "f4"))


def test_sparse_wrong_input_shape_and_dtype():
    fast = sparse.SparseInference(_net())
    for x in (np.zeros((2, 5), "f4"), np.zeros((2, 4, 1), "f4"), np.zeros((4,), "f4")):
        with pytest.raises(ValueError, match=r"Layer 'g' \(GatedDense\) expects inputs of shape "
                                             rf"\(batch, 4\)\. Received: inputs.shape="
                                             rf"{re.escape(str(x.shape))}"):
            fast(x)
    with pytest.raises(ValueError, match=r"`x` must hold real numbers.*Received: x.dtype=<U1"):
        fast(np.array([["a"] * 4]))
    conv = kc.GatedConv2D(4, 3, num_blocks=2, name="gc")
    conv.build((None, 5, 5, 2))
    with pytest.raises(ValueError, match=r"'gc' \(GatedConv2D\) expects inputs of shape \(batch, "
                                         r"height, width, 2\)\. Received: "
                                         r"inputs.shape=\(1, 5, 5, 3\)"):
        sparse.layer_inference(conv, np.zeros((1, 5, 5, 3), "f4"))


def test_sparse_nan_input_matches_keras():
    net = keras.Sequential([keras.Input((4,)), kc.GatedDense(8, num_blocks=2, activation="relu"),
                            kc.GatedDense(4, num_blocks=2)])
    conv = keras.Sequential([keras.Input((5, 5, 2)), kc.GatedConv2D(4, 3, num_blocks=2)])
    x = np.array([[NAN, 0, 0, 0]], "f4")  # batch 1: every block off
    xc = np.ones((1, 5, 5, 2), "f4")
    xc[0, 0, 0, 0] = NAN
    for mode in ("auto", "sparse"):
        y = np.asarray(sparse.SparseInference(net, mode=mode)(x))
        assert np.isnan(y).all(), (mode, y)  # not the zeros of skipped blocks
        np.testing.assert_array_equal(np.isnan(y), np.isnan(net(x, training=False)))
        y, _ = sparse.sequential_inference(conv.layers, xc, mode=mode)
        np.testing.assert_array_equal(np.isnan(y), np.isnan(conv(xc, training=False)))
        assert np.isnan(np.asarray(y)).any()


def test_sparse_nan_weights_are_rejected():
    net = _net()
    net.get_layer("g").kernel.assign(np.full((4, 8), NAN, "float32"))
    with pytest.raises(ValueError, match=r"Layer 'g' has NaN or Inf values in its weight "
                                         r"'.*g/kernel'"):
        sparse.SparseInference(net)
    net.get_layer("g").kernel.assign(np.zeros((4, 8), "float32"))
    fast = sparse.SparseInference(net)
    net.get_layer("out").bias.assign(np.full((3,), INF, "float32"))
    with pytest.raises(ValueError, match=r"Layer 'out' has NaN or Inf values in its weight "
                                         r"'.*out/bias'"):
        fast.refresh()


# ----------------------------------------------------------------- litert


@pytest.fixture(scope="module")
def tflite_models(cv):
    keras.utils.set_random_seed(0)
    net = keras.Sequential([keras.Input((8,)), kc.GatedDense(6, num_blocks=3, activation="relu"),
                            keras.layers.Dense(2)])
    return net, cv.convert(net), cv.convert(net, dense=True)


def test_litert_missing_or_unusable_library(tmp_path, monkeypatch):
    monkeypatch.setattr(litert, "_library", None)
    monkeypatch.setenv(litert.LIBRARY_ENV, str(tmp_path / "missing.so"))
    with pytest.raises(litert.OpsLibraryError, match=r"not built \(looked for .*missing.so\).*"
                                                     r"bash tflite/build_ops.sh"):
        litert.Interpreter(model_content=b"unused")
    not_a_library = tmp_path / "libcondcomp_tflite_ops.so"
    not_a_library.write_text("not an ELF file\n" * 100)
    monkeypatch.setenv(litert.LIBRARY_ENV, str(not_a_library))
    with pytest.raises(litert.OpsLibraryError,
                       match=r"libcondcomp_tflite_ops.so is not a usable CondComp TFLite "
                             r"custom-op library.*invalid ELF header"):
        litert.load_library()


def test_litert_model_arguments(tmp_path, tflite_models):
    _, _, dense = tflite_models
    missing = str(tmp_path / "none.tflite")
    with pytest.raises(ValueError, match=r"`model_path` must be an existing .tflite file\. "
                                         rf"Received: model_path={re.escape(repr(missing))}"):
        litert.Interpreter(missing, custom_ops=False)
    with pytest.raises(ValueError, match=r"`model_path` must be an existing .tflite file"):
        litert.Interpreter(str(tmp_path), custom_ops=False)  # a directory
    (tmp_path / "d.tflite").write_bytes(dense)
    with pytest.raises(ValueError, match=r"Pass only one of `model_path` and `model_content`"):
        litert.Interpreter(str(tmp_path / "d.tflite"), model_content=dense, custom_ops=False)
    with pytest.raises(ValueError, match=r"`model_path` or `model_content` must be specified"):
        litert.Interpreter(custom_ops=False)
    with pytest.raises(ValueError, match=r"`num_threads` must be a positive integer\. "
                                         r"Received: num_threads=0"):
        litert.Interpreter(model_content=dense, num_threads=0, custom_ops=False)


def test_litert_corrupt_tflite(tmp_path, tflite_models):
    _, custom, _ = tflite_models
    rng = np.random.default_rng(0)
    flipped = bytearray(custom)
    for i in rng.integers(0, len(flipped), 40):
        flipped[i] ^= 0xFF
    cases = {
        "empty": b"",
        "truncated": custom[: len(custom) // 2],
        "header": custom[:100],
        "garbage": bytes(rng.integers(0, 256, 4096, dtype=np.uint8)),
        "flipped": bytes(flipped),
    }
    for corrupt, content in cases.items():
        path = tmp_path / f"{corrupt}.tflite"
        path.write_bytes(content)
        for by_path in (True, False):
            source = rf"model_path={re.escape(repr(str(path)))}" if by_path else "model_content"
            expected = (
                rf"The model is empty \(0 bytes\)\. Received: {source}" if corrupt == "empty"
                else rf"Cannot load the model \(a truncated or corrupt .tflite file\?\): The "
                     rf"model is not a valid Flatbuffer buffer\. Received: {source}")
            with pytest.raises(ValueError, match=expected):
                if by_path:
                    litert.Interpreter(str(path), custom_ops=False)
                else:
                    litert.Interpreter(model_content=content, custom_ops=False)


def test_litert_custom_ops_not_registered(tmp_path, tflite_models):
    _, custom, dense = tflite_models
    with pytest.raises(ValueError, match=r"uses the CondComp custom ops \['CondCompGatedDense'\].*"
                                         r"Received: custom_ops=False for model_content"):
        litert.Interpreter(model_content=custom, custom_ops=False)
    path = tmp_path / "m.tflite"
    path.write_bytes(custom)
    with pytest.raises(ValueError, match=r"Received: custom_ops=False for model_path="):
        litert.Interpreter(str(path), custom_ops=False)
    litert.Interpreter(model_content=dense, custom_ops=False)  # builtin ops only: fine


def test_litert_predict_wrong_shape_and_dtype(tflite_models):
    _, _, dense = tflite_models
    interp = litert.Interpreter(model_content=dense, custom_ops=False)
    for x in (np.zeros((2, 9), "f4"), np.zeros((8,), "f4"), np.zeros((2, 8, 1), "f4"),
              np.float32(1)):
        with pytest.raises(ValueError, match=r"`x` must have shape \(batch, 8\) for this model\. "
                                             rf"Received: x.shape={re.escape(str(np.shape(x)))}"):
            interp.predict(x)
    for x in (np.array([["a"] * 8]), np.zeros((2, 8), "complex64")):
        with pytest.raises(ValueError, match=rf"`x` must hold real numbers.*x.dtype={x.dtype}"):
            interp.predict(x)
    y = interp.predict(np.ones((2, 8), "int64"))  # converted to float32
    np.testing.assert_allclose(y, interp.predict(np.ones((2, 8), "f4")))
    assert interp.predict(np.zeros((0, 8), "f4")).shape == (0, 2)


def test_litert_nan_and_inf_inputs_give_nan_rows(tflite_models):
    require_ops_library()
    net, custom, dense = tflite_models
    x = np.random.default_rng(1).normal(size=(4, 8)).astype("f4")
    x[0, 0], x[1, 3], x[2, 7] = NAN, INF, -INF
    for data_, custom_ops in ((custom, True), (dense, False)):
        y = litert.Interpreter(model_content=data_, custom_ops=custom_ops).predict(x)
        assert np.isnan(y[:3]).all(), y  # the custom op alone would give finite zeros
        assert np.isfinite(y[3]).all()
    keras_y = np.asarray(net(x, training=False))
    assert np.isnan(keras_y[0]).all()  # Keras: NaN in, NaN out, too
    np.testing.assert_allclose(
        litert.Interpreter(model_content=custom).predict(x[3:]), keras_y[3:], atol=1e-5)


# ---------------------------------------------------------------- convert


UNEXPORTABLE = [
    (lambda: keras.Sequential([kc.GatedDense(4, num_blocks=2)]), r"no defined inputs"),
    (lambda: _two_inputs(), r"Only single-input networks are supported, got 2"),
    (lambda: keras.Sequential([keras.Input((4,)), kc.GatedDense(4, num_blocks=2, dtype="float16",
                                                                name="h")]),
     r"Layer 'h': only float32 weights are supported, got float16"),
]


def test_convert_networks_it_cannot_export(cv):
    for network, match in UNEXPORTABLE:
        with pytest.raises(cv.ConversionError, match=match):
            cv.convert(network())


def _two_inputs():
    a, b = keras.Input((4,)), keras.Input((4,))
    return keras.Model([a, b], kc.GatedDense(4, num_blocks=2)(keras.layers.Add()([a, b])))


def test_convert_argument_that_is_not_a_model(cv):
    with pytest.raises(ValueError, match=r"Received: model='model.keras'"):
        cv.convert("model.keras")


def test_convert_nan_weights(cv):
    net = keras.Sequential([keras.Input((4,)), kc.GatedDense(4, num_blocks=2, name="n")])
    net.layers[0].kernel.assign(np.full((4, 4), NAN, "float32"))
    with pytest.raises(cv.ConversionError, match=r"Layer 'n'.*NaN"):
        cv.convert(net)


def _run(script, *args, env=None):
    return subprocess.run([sys.executable, script, *args], capture_output=True, text=True,
                          timeout=300, env=env)


def test_convert_cli_output_is_a_directory_and_file_from_another_version(keras_file, tmp_path):
    res = _run(CONVERT, str(keras_file), "-o", str(tmp_path))
    assert res.returncode == 2
    assert f"argument -o/--output: is a directory: {str(tmp_path)!r}" in res.stderr
    other = _rewrite_keras_file(keras_file, tmp_path / "other.keras",
                                edit_config=lambda c: c.update(gate_temperature=2.0))
    res = _run(CONVERT, other, "-o", str(tmp_path / "o.tflite"))
    assert res.returncode == 2, res.stderr
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith(f"convert.py: error: argument MODEL: could not load {other!r}: "
                           "Cannot create GatedDense 'g'"), last
    assert "{'gate_temperature': 2.0}" in last and len(last) < 600
    assert not os.path.exists(tmp_path / "o.tflite")


# -------------------------------------------------------------- benchmark


BENCHMARK_ARGUMENTS = [
    (["--taus", "0"], "argument --taus: --taus values must be in (0, 1], got '0'"),
    (["--taus", "x"], "argument --taus: --taus values must be numbers in (0, 1], got 'x'"),
    (["--batches", "0"], "argument --batches: must be a positive integer, got '0'"),
    (["--blocks", "3"], "argument --blocks: 3 does not divide --hidden 2048"),
    (["--out", "/no/such/dir/t.md"], "argument --out: directory does not exist: '/no/such/dir'"),
    (["--out", "."], "argument --out: is a directory: '.'"),
]


def test_benchmark_cli_bad_arguments(capsys):
    # In-process: a subprocess would spend its time importing TensorFlow.
    benchmark = load_script("benchmarks/benchmark.py")

    for args, message in BENCHMARK_ARGUMENTS:
        with pytest.raises(SystemExit) as info:
            benchmark.parse_args(args)
        assert info.value.code == 2, args
        assert capsys.readouterr().err.strip().splitlines()[-1].endswith(f": error: {message}")


def test_benchmark_cli_without_the_library(tmp_path, monkeypatch):
    # In-process (the subprocess would spend its time importing TensorFlow).
    benchmark = load_script("benchmarks/benchmark.py")

    monkeypatch.setattr(litert, "_library", None)
    monkeypatch.setenv(litert.LIBRARY_ENV, str(tmp_path / "missing.so"))
    with pytest.raises(SystemExit) as info:
        benchmark.main(["--out", ""])
    assert str(info.value.code).startswith(
        "benchmark.py: The CondComp TFLite custom-op library is not built (looked for "
        f"{tmp_path / 'missing.so'})")


# ------------------------------------------------------------------- data


@pytest.fixture
def isolated_data(tmp_path, monkeypatch):
    isolate_data_search(tmp_path, monkeypatch)
    monkeypatch.setattr(data, "network_available", lambda url, timeout=None: False)
    directory = tmp_path / "data"
    directory.mkdir()
    return directory


def test_data_dir_that_is_a_file_and_env_dir_that_does_not_exist(isolated_data, monkeypatch):
    a_file = isolated_data / "mnist.npz"
    a_file.write_bytes(b"")
    with pytest.raises(ValueError, match=r"`data_dir` must be an existing directory\. "
                                         rf"Received: data_dir={re.escape(repr(str(a_file)))}"):
        data.load_mnist(data_dir=a_file)
    monkeypatch.setenv(data.DATA_DIR_ENV, "/no/such/condcomp/dir")
    with pytest.raises(data.DatasetNotFoundError,
                       match=r"\$CONDCOMP_DATA_DIR \(/no/such/condcomp/dir; does not exist: "
                             r"/no/such/condcomp/dir\)"):
        data.load_svhn()


def test_data_bad_arguments():
    for kwargs, match in [
        ({"name": "digits", "max_train": 10, "seed": "a"}, r"`seed`.*Received: seed='a'"),
        ({"name": "digits", "seed": -1}, r"`seed`.*Received: seed=-1"),
        ({"name": "mnist", "max_test": 2.5}, r"`max_test`.*Received: max_test=2.5"),
    ]:
        with pytest.raises(ValueError, match=match):
            data.load_dataset(**kwargs)
    with pytest.raises(ValueError, match=r"`test_fraction`.*Received: test_fraction=1.5"):
        data.load_digits(test_fraction=1.5)


def _cifar_dir(directory):
    sub = directory / "cifar-10-batches-py"
    sub.mkdir()
    batch = pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]})
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (sub / name).write_bytes(batch[: len(batch) // 2])  # truncated download
    return "cifar10", "Error"


CORRUPT_FILES = [
    lambda d: ((d / "mnist.npz").write_bytes(b"garbage"), ("mnist", "ValueError"))[1],
    lambda d: ((d / "mnist.npz").write_bytes(b"PK\x03\x04" + b"\0" * 10),
               ("mnist", "BadZipFile"))[1],
    lambda d: ((d / "cifar-10-python.tar.gz").write_bytes(b"\x1f\x8b garbage"),
               ("cifar10", "ReadError"))[1],
    _cifar_dir,
    lambda d: ([(d / n).write_bytes(b"MATLAB 5.0") for n in ("train_32x32.mat", "test_32x32.mat")],
               ("svhn", "Error"))[1],
]


def test_data_corrupt_files_are_named(isolated_data):
    for i, write in enumerate(CORRUPT_FILES):
        directory = isolated_data / str(i)
        directory.mkdir()
        name, error = write(directory)
        with pytest.raises(ValueError, match=rf"(?s)Cannot read the {name} files in "
                                             rf"{re.escape(str(directory))} \(\w*{error}: .*"
                                             r"truncated or corrupt"):
            data.load_dataset(name, data_dir=directory)


BAD_VALUES = [
    ({"x_train": np.full((2, 28, 28), NAN)}, r"x_train holds 1568 NaN or Inf pixel values"),
    ({"y_train": np.array([0.0, 0.5])}, r"y_train must hold integer class labels.*such as 0.5"),
    ({"y_train": np.array([0, 12])}, r"y_train labels must be in 0..9; found 0..12"),
    ({"x_train": np.array(["a", "b"])}, r"x_train must hold numbers, not <U1"),
]


def test_data_bad_values_in_files(isolated_data):
    path = isolated_data / "mnist.npz"
    for arrays, match in BAD_VALUES:
        contents = {"x_train": np.zeros((2, 28, 28)), "y_train": np.array([0, 1]),
                    "x_test": np.zeros((1, 28, 28)), "y_test": np.array([1]), **arrays}
        np.savez(path, **contents)
        with pytest.raises(ValueError, match=rf"{re.escape(str(path))}: {match}"):
            data.load_mnist(data_dir=isolated_data)
