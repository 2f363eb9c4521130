"""The CondComp TFLite custom ops against the Keras layers, and their input validation.

Needs the native library (`bash tflite/build_ops.sh`); skipped with that reason
otherwise, or failed when $CONDCOMP_REQUIRE_TFLITE_OPS=1 (CI).
"""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from tflite_helpers import (
    REPO,
    REQUIRE_ENV,
    custom_ops,
    load_convert,
    model_t,
    pack,
    require_ops_library,
)

import keras_condcomp as kc
from keras_condcomp import litert

TOL = 1e-5


@pytest.fixture(autouse=True)
def _needs_library():
    require_ops_library()


@pytest.fixture(scope="module")
def cv():
    return load_convert()


def _set_policy(layer, rng, spread=3.0):
    """Random policy whose decisions differ between examples and blocks."""
    k = layer.policy.kernel
    layer.policy.kernel.assign(rng.normal(0, spread / np.sqrt(k.shape[0]), k.shape).astype("f4"))
    layer.policy.bias.assign(rng.normal(0, 0.5, layer.policy.bias.shape).astype("f4"))


def _keras_masks(network):
    return [np.asarray(layer.gate_outputs.mask) for layer in network._flatten_layers()
            if isinstance(layer, kc.GatedLayer)]


def _check_against_keras(cv, network, inputs, threads=1):
    data = cv.convert(network)
    interp = litert.Interpreter(model_content=data, num_threads=threads)
    mixed = []
    for x in inputs:
        y = interp.predict(x)
        ref = np.asarray(network(x, training=False))
        assert y.shape == ref.shape
        if len(x):
            err = float(np.max(np.abs(y - ref)))
            assert err <= TOL, f"batch {len(x)}: max abs error {err}"
            mixed += [0.0 < m.mean() < 1.0 for m in _keras_masks(network)]
    assert any(mixed), "test inputs should switch some blocks on and others off"
    return data


def _mlp(rng, activation="relu", use_bias=True, units=(24, 15), blocks=(4, 3), threshold=0.5):
    layers = [keras.Input((20,))]
    for u, k in zip(units, blocks):
        layers.append(kc.GatedDense(u, num_blocks=k, activation=activation, use_bias=use_bias,
                                    threshold=threshold,
                                    bias_initializer=keras.initializers.RandomNormal(0, 0.3)))
    layers.append(keras.layers.Dense(5))
    net = keras.Sequential(layers)
    for layer in net.layers:
        if isinstance(layer, kc.GatedDense):
            _set_policy(layer, rng)
    return net


def test_gated_dense_matches_keras_several_batch_sizes(cv):
    rng = np.random.default_rng(0)
    net = _mlp(rng)
    # block sizes 6 and 5: exercise the scalar tails as well as the vector loops
    inputs = [rng.normal(size=(b, 20)).astype("f4") for b in (1, 2, 7, 33, 0, 4)]
    data = _check_against_keras(cv, net, inputs)
    # the output Dense is folded into the last gated op (head_units)
    assert cv.op_counts(data) == {"CondCompGatedDense": 2}


def test_batch_one_reads_every_non_zero_input_and_only_those(cv):
    """At batch 1 with finite weights the ops multiply only the rows of
    non-zero inputs, listed 4 inputs at a time by their zero pattern: every
    pattern of zeros (+0 and -0) in 4 consecutive inputs, at every offset,
    and the tail of a row that is not a multiple of 4, against Keras."""
    rng = np.random.default_rng(11)
    features = 67  # 16 quads, one per zero pattern, and 3 more inputs
    net = keras.Sequential([keras.Input((features,)),
                            kc.GatedDense(24, num_blocks=4, threshold=0.5),
                            kc.GatedDense(16, num_blocks=4, threshold=0.5),
                            keras.layers.Dense(5)])
    for layer in net.layers:
        if isinstance(layer, kc.GatedDense):
            _set_policy(layer, rng)
    inputs = []
    for shift in range(4):
        patterns = rng.permutation(16)
        x = rng.normal(size=features).astype("f4")
        for q, pattern in enumerate(patterns):
            for lane in range(4):
                if not pattern >> lane & 1:
                    x[shift + 4 * q + lane] = 0.0
        x[rng.random(features) < 0.1] = -0.0
        inputs.append(x[None])
    _check_against_keras(cv, net, inputs)


@pytest.mark.parametrize("activation", ["linear", "sigmoid", "tanh", "gelu", "elu", "silu",
                                        "softplus", "leaky_relu", "hard_sigmoid", "relu6"])
def test_gated_dense_activations(cv, activation):
    rng = np.random.default_rng(1)
    net = _mlp(rng, activation=activation, units=(16,), blocks=(4,))
    _check_against_keras(cv, net, [rng.normal(size=(9, 20)).astype("f4") * 2])


def test_gated_dense_no_bias_threshold_and_wide_blocks(cv):
    rng = np.random.default_rng(2)
    # block size 72 = 64 + 8: both the 64-wide register tile and the 8-wide loop
    net = _mlp(rng, use_bias=False, units=(144, 256), blocks=(2, 2), threshold=0.3)
    _check_against_keras(cv, net, [rng.normal(size=(b, 20)).astype("f4") for b in (1, 5)])


@pytest.mark.parametrize("min_bytes", [None, "0"])
def test_two_threads_same_result(cv, monkeypatch, min_bytes):
    # These layers are below the op's default work threshold for splitting
    # (None: serial at 2 threads); "0" makes every invoke split.
    if min_bytes is None:
        monkeypatch.delenv("CONDCOMP_PARALLEL_MIN_BYTES", raising=False)
    else:
        monkeypatch.setenv("CONDCOMP_PARALLEL_MIN_BYTES", min_bytes)
    rng = np.random.default_rng(3)
    net = _mlp(rng, units=(256, 128), blocks=(8, 4))
    _check_against_keras(cv, net, [rng.normal(size=(b, 20)).astype("f4") for b in (1, 16)],
                         threads=2)


@pytest.mark.parametrize("value", ["abc", "-1", "12x", "99999999999999999999999"])
def test_bad_parallel_min_bytes_is_an_error(small_model, monkeypatch, value):
    monkeypatch.setenv("CONDCOMP_PARALLEL_MIN_BYTES", value)
    _expect_error(small_model, "CONDCOMP_PARALLEL_MIN_BYTES must be a byte count", value[:20])


def _convnet(rng, padding, strides, dilation):
    net = keras.Sequential([
        keras.Input((9, 10, 3)),
        kc.GatedConv2D(8, 3, num_blocks=4, padding=padding, strides=strides,
                       dilation_rate=dilation, activation="relu",
                       bias_initializer=keras.initializers.RandomNormal(0, 0.3)),
        kc.GatedConv2D(12, (2, 3), num_blocks=3, padding="same", activation="tanh"),
        keras.layers.Flatten(),
        kc.GatedDense(6, num_blocks=2),
    ])
    for layer in net.layers:
        if isinstance(layer, kc.GatedLayer):
            _set_policy(layer, rng, spread=6.0)
    return net


@pytest.mark.parametrize("padding,strides,dilation", [
    ("same", 1, 1), ("valid", 2, 1), ("same", 2, 1), ("valid", 1, 2), ("same", (1, 2), 1),
])
def test_gated_conv2d_matches_keras(cv, padding, strides, dilation):
    rng = np.random.default_rng(4)
    net = _convnet(rng, padding, strides, dilation)
    inputs = [rng.normal(size=(b, 9, 10, 3)).astype("f4") for b in (1, 5)]
    data = _check_against_keras(cv, net, inputs)
    assert cv.op_counts(data)["CondCompGatedConv2D"] == 2


def test_condcompmodel_keras_file_through_cli(tmp_path):
    rng = np.random.default_rng(5)
    net = _mlp(rng, units=(32, 32), blocks=(4, 4))
    model = kc.CondCompModel(net, estimator="reinforce")
    model.compile("adam", "sparse_categorical_crossentropy")
    x = rng.normal(size=(64, 20)).astype("f4")
    model.fit(x, rng.integers(0, 5, 64), epochs=1, batch_size=32, verbose=0)
    path = str(tmp_path / "m.keras")
    model.save(path)
    out = str(tmp_path / "m.tflite")
    res = subprocess.run([sys.executable, os.path.join(REPO, "tflite", "convert.py"), path,
                          "-o", out], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "CondCompGatedDense: 2" in res.stdout and "bytes" in res.stdout
    ref = model.predict(x, verbose=0)
    y = litert.Interpreter(out).predict(x)
    assert np.max(np.abs(y - ref)) <= TOL


def test_dense_baseline_runs_every_block(cv):
    rng = np.random.default_rng(6)
    net = _mlp(rng)
    data = cv.convert(net, dense=True)
    assert "CondCompGatedDense" not in cv.op_counts(data)
    x = rng.normal(size=(3, 20)).astype("f4")
    h = x
    for layer in net.layers:
        h = h @ layer.kernel.numpy() + layer.bias.numpy()
        if isinstance(layer, kc.GatedDense):
            h = np.maximum(h, 0)
    y = litert.Interpreter(model_content=data, custom_ops=False).predict(x)
    np.testing.assert_allclose(y, h, atol=1e-4)


# ------------------------------------------------------------ validation

@pytest.fixture(scope="module")
def small_model(cv):
    keras.utils.set_random_seed(7)
    net = keras.Sequential([keras.Input((8,)), kc.GatedDense(6, num_blocks=3)])
    return cv.convert(net)


def _expect_error(data, *fragments):
    with pytest.raises((RuntimeError, ValueError)) as info:
        interp = litert.Interpreter(model_content=data)
        interp.allocate_tensors()
        interp.invoke()
    text = str(info.value)
    for fragment in fragments:
        assert fragment in text, text


def _set_options(data, options):
    from flatbuffers import flexbuffers

    m = model_t(data)
    (_, op), = custom_ops(m, "CondCompGatedDense")
    op.customOptions = list(flexbuffers.Dumps(options)) if isinstance(options, dict) \
        else list(options)
    return pack(m)


GOOD = {"activation": "linear", "threshold": 0.5, "input_block_size": 0}


@pytest.mark.parametrize("options,fragments", [
    ({**GOOD, "activation": "swishy"}, ["activation", "swishy", "not supported"]),
    ({**GOOD, "threshold": 1.5}, ["threshold", "[0, 1]"]),
    ({**GOOD, "threshold": "high"}, ["threshold", "wrong type"]),
    ({"activation": "relu", "threshold": 0.5}, ["input_block_size", "missing"]),
    ({**GOOD, "input_block_size": 3}, ["input_block_size", "divide"]),
    ({**GOOD, "input_block_size": -1}, ["input_block_size", "out of range"]),
    ({**GOOD, "colour": 1}, ["unknown option", "colour"]),
])
def test_prepare_rejects_bad_options(small_model, options, fragments):
    _expect_error(_set_options(small_model, options), "CondCompGatedDense", *fragments)


def test_prepare_rejects_malformed_option_bytes(small_model):
    from flatbuffers import flexbuffers

    good = bytes(flexbuffers.Dumps(GOOD))
    rng = np.random.default_rng(8)
    cases = [b"", b"\x00", good[:-3], good[:5], bytes(rng.integers(0, 256, 64, dtype=np.uint8))]
    for i in range(40):  # corrupt single bytes of a valid map
        bad = bytearray(good)
        bad[rng.integers(len(bad))] = rng.integers(256)
        cases.append(bytes(bad))
    for case in cases:
        data = _set_options(small_model, case)
        try:
            interp = litert.Interpreter(model_content=data)
            interp.allocate_tensors()
        except (RuntimeError, ValueError) as e:
            assert "CondCompGatedDense" in str(e)


def _edit_tensor(data, input_index, shape=None, dtype=None):
    m = model_t(data)
    (sub, op), = custom_ops(m, "CondCompGatedDense")
    t = sub.tensors[op.inputs[input_index]]
    if shape is not None:
        t.shape = np.asarray(shape, np.int32)
        if t.buffer and m.buffers[t.buffer].data is not None:
            n = int(np.prod(shape))
            m.buffers[t.buffer].data = np.zeros(n * 4, np.uint8)
    if dtype is not None:
        t.type = dtype
    return pack(m)


@pytest.mark.parametrize("input_index,shape,fragments", [
    (1, (3, 7, 2), ["kernel", "input_dim 8"]),        # kernel D != x D
    (1, (3, 8), ["kernel", "rank 3"]),
    (2, (5,), ["bias", "expected num_blocks*block_size = 6"]),
    (3, (8, 4), ["policy_kernel", "expected [8, 3]"]),
    (4, (2,), ["policy_bias", "expected num_blocks = 3"]),
    (1, (0, 8, 2), ["num_blocks >= 1"]),
])
def test_prepare_rejects_bad_shapes(small_model, input_index, shape, fragments):
    _expect_error(_edit_tensor(small_model, input_index, shape=shape), *fragments)


def test_prepare_rejects_wrong_dtype_and_arity(small_model):
    from tensorflow.lite.python import schema_py_generated as schema

    _expect_error(_edit_tensor(small_model, 3, dtype=schema.TensorType.INT32),
                  "policy_kernel", "float32")
    m = model_t(small_model)
    (_, op), = custom_ops(m, "CondCompGatedDense")
    op.inputs = op.inputs[:4]
    _expect_error(pack(m), "expected 5 inputs")


def test_input_resize_wrong_features_is_an_error_not_a_crash(small_model):
    interp = litert.Interpreter(model_content=small_model)
    with pytest.raises((RuntimeError, ValueError)):
        interp.predict(np.zeros((2, 9), np.float32))


def test_empty_batch(small_model):
    y = litert.Interpreter(model_content=small_model).predict(np.zeros((0, 8), np.float32))
    assert y.shape == (0, 6)


def test_library_reports_isa_and_stats(small_model):
    litert.reset_stats()
    litert.Interpreter(model_content=small_model).predict(np.ones((4, 8), np.float32))
    s = litert.stats()
    assert s["invokes"] == 1 and s["total_blocks"] == 12
    assert isinstance(litert.kernel_isa(), str)


def test_profile_counts_the_work_and_tiles_of_each_node(cv):
    """litert.start_profile / stop_profile (benchmarks/profile_invoke.py) vs the Keras masks."""
    rng = np.random.default_rng(11)
    net = _mlp(rng)
    data = cv.convert(net)
    interp = litert.Interpreter(model_content=data)
    batches = [rng.normal(size=(b, 20)).astype("f4") for b in (1, 3)]
    litert.start_profile()
    for x in batches:
        interp.predict(x)
    nodes = litert.stop_profile()
    assert litert.profile() == []  # stopped and cleared
    gated = [layer for layer in net.layers if isinstance(layer, kc.GatedDense)]
    assert len(nodes) == len(gated) == 2
    expected = [{"macs": 0, "tile_reads": 0, "seen": set(), "head_macs": 0} for _ in gated]
    for x in batches:
        h = x
        for layer in net.layers:
            if isinstance(layer, kc.GatedDense):
                e = expected[gated.index(layer)]
                out = np.asarray(layer(h, training=False))
                mask = np.asarray(layer.gate_outputs.mask) > 0
                ibs = 20 if layer is gated[0] else gated[0].units // gated[0].num_blocks
                bs = layer.units // layer.num_blocks
                nonzero = np.abs(h.reshape(len(h), -1, ibs)).max(axis=2) > 0
                tiles = {(j, i) for b in range(len(h)) for j in np.flatnonzero(mask[b])
                         for i in np.flatnonzero(nonzero[b])}
                e["macs"] += int(sum(mask[b].sum() * nonzero[b].sum() for b in range(len(h)))
                                 * ibs * bs)
                e["tile_reads"] += len(tiles)
                e["seen"] |= tiles
                if layer is gated[1]:  # the output Dense(5), folded: rows of blocks on
                    e["head_macs"] += int(mask.sum()) * bs * 5
                h = out
            else:
                h = np.asarray(layer(h))
    for node, layer, e in zip(nodes, gated, expected):
        # The masks mix on and off blocks, so the counts are not the dense ones.
        all_tiles = layer.num_blocks * node["in_dim"] // node["in_block_size"]
        assert 0 < len(e["seen"]) <= all_tiles and 0 < e["tile_reads"] < 2 * all_tiles
        assert node["op"] == "dense" and not node["quantized"]
        assert node["invokes"] == 2 and node["examples"] == 4
        assert node["num_blocks"] == layer.num_blocks
        assert node["macs"] == e["macs"] and node["tile_reads"] == e["tile_reads"]
        assert node["tiles_seen"] == len(e["seen"])
        assert node["tile_bytes"] == node["in_block_size"] * node["block_size"] * 4
        assert node["gate_ns"] > 0 and node["block_ns"] > 0
        assert node["head_units"] == (5 if layer is gated[1] else 0)
        assert node["head_macs"] == e["head_macs"]
        assert (node["head_ns"] > 0) == (layer is gated[1])
    # Not recording: nothing is added.
    interp.predict(batches[0])
    assert litert.profile() == []


@pytest.mark.parametrize("kind", ["dense", "dense_head", "conv"])
def test_nonfinite_input_rows_are_nan_in_the_op_itself(cv, kind):
    """Raw invoke() (not litert.predict's whole-model rule): the op writes NaN rows."""
    rng = np.random.default_rng(7)
    if kind.startswith("dense"):
        layer = kc.GatedDense(16, num_blocks=4, activation="relu")
        head = [keras.layers.Dense(3)] if kind == "dense_head" else []
        net = keras.Sequential([keras.Input((12,)), layer, *head])
        x = rng.normal(size=(5, 12)).astype("f4")
        x[1, 3], x[3, 0] = np.nan, -np.inf
    else:
        layer = kc.GatedConv2D(8, 3, num_blocks=4, padding="same", activation="relu")
        net = keras.Sequential([keras.Input((6, 6, 4)), layer])
        x = rng.normal(size=(5, 6, 6, 4)).astype("f4")
        x[1, 2, 2, 1], x[3, 0, 5, 3] = np.inf, np.nan
    _set_policy(layer, rng)
    interp = litert.Interpreter(model_content=cv.convert(net))._interpreter
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    interp.resize_tensor_input(inp["index"], list(x.shape))
    interp.allocate_tensors()
    interp.set_tensor(inp["index"], x)
    interp.invoke()
    y = interp.get_tensor(out["index"])
    expected = np.asarray(net(x, training=False))
    bad = np.array([False, True, False, True, False])
    assert np.isnan(y[bad]).all() and np.isnan(expected[bad]).all()
    np.testing.assert_allclose(y[~bad], expected[~bad], atol=TOL)


# ------------------------------------------------- the folded output layer


def _functional(build):
    """A functional model from `build(x) -> outputs` on a 20-feature input."""
    x = keras.Input((20,))
    return keras.Model(x, build(x))


def _gated(rng, units=24, blocks=4, **kwargs):
    layer = kc.GatedDense(units, num_blocks=blocks, activation="relu", **kwargs)
    layer.build((None, 20))
    _set_policy(layer, rng)
    return layer


@pytest.mark.parametrize("case", ["sequential", "softmax", "no_bias", "second_output",
                                  "two_readers", "dropout_between"])
def test_output_dense_is_folded_only_when_it_alone_reads_the_gated_layer(cv, case):
    rng = np.random.default_rng(21)
    g = _gated(rng)
    if case == "sequential":
        net = keras.Sequential([keras.Input((20,)), g, keras.layers.Dense(7)])
    elif case == "softmax":
        net = _functional(lambda x: keras.layers.Dense(7, activation="softmax")(g(x)))
    elif case == "no_bias":
        net = _functional(lambda x: keras.layers.Dense(7, use_bias=False)(g(x)))
    elif case == "second_output":
        net = _functional(lambda x: [keras.layers.Dense(7)(h := g(x)), h])
    elif case == "two_readers":
        net = _functional(lambda x: keras.layers.Add()(
            [keras.layers.Dense(7)(h := g(x)), keras.layers.Dense(7)(h)]))
    else:
        net = _functional(lambda x: keras.layers.Dense(7)(keras.layers.Dropout(0.2)(g(x))))
    folded = case in ("sequential", "softmax", "no_bias")
    data = cv.convert(net)
    counts = cv.op_counts(data)
    assert counts["CondCompGatedDense"] == 1
    assert counts.get("FULLY_CONNECTED", 0) == (0 if folded else 1 + (case == "two_readers"))
    assert counts.get("SOFTMAX", 0) == (case == "softmax")
    interp = litert.Interpreter(model_content=data)
    for batch in (1, 6):
        x = rng.normal(size=(batch, 20)).astype("f4")
        got = interp.predict(x) if case != "second_output" else None
        if got is None:  # two outputs: compare the classifier's
            interp._interpreter.resize_tensor_input(interp._interpreter.get_input_details()[0][
                "index"], [batch, 20])
            interp._interpreter.allocate_tensors()
            interp._interpreter.set_tensor(interp._interpreter.get_input_details()[0]["index"], x)
            interp._interpreter.invoke()
            got = [interp._interpreter.get_tensor(o["index"])
                   for o in interp._interpreter.get_output_details()]
            ref = [np.asarray(t) for t in net(x, training=False)]
            assert sorted(a.shape for a in got) == sorted(r.shape for r in ref)
            for r in ref:
                assert min(np.max(np.abs(a - r)) for a in got if a.shape == r.shape) <= TOL
            continue
        np.testing.assert_allclose(got, np.asarray(net(x, training=False)), atol=TOL)
    mask = np.asarray(g.gate_outputs.mask)
    assert 0 < mask.mean() < 1, "some blocks on and others off"


@pytest.mark.parametrize("weight", [np.inf, np.nan])
def test_folded_output_layer_multiplies_zero_outputs_by_a_non_finite_weight(cv, weight):
    """Off blocks are skipped only for finite weights: with an Inf or NaN weight the
    op gives what the dense product gives (0 * Inf = NaN), for every example."""
    rng = np.random.default_rng(22)
    g = _gated(rng, units=16, blocks=4)
    net = keras.Sequential([keras.Input((20,)), g, keras.layers.Dense(3)])
    head_kernel = net.layers[1].kernel.numpy().copy()
    head_kernel[5, 1] = weight  # a unit of block 1, read by output 1
    m = model_t(cv.convert(net))
    (sub, op), = custom_ops(m, "CondCompGatedDense")
    buffer = m.buffers[sub.tensors[op.inputs[5]].buffer]
    buffer.data = np.frombuffer(head_kernel.astype("<f4").tobytes(), np.uint8)
    interp = litert.Interpreter(model_content=pack(m))
    x = rng.normal(size=(16, 20)).astype("f4")
    hidden = np.asarray(g(x, training=False)).astype(np.float64)
    assert (hidden[:, 5] == 0).any() and (hidden[:, 5] != 0).any()
    with np.errstate(invalid="ignore"):
        expected = hidden @ head_kernel.astype(np.float64) + net.layers[1].bias.numpy()
    got = interp.predict(x)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(expected))
    finite = np.isfinite(expected)
    np.testing.assert_allclose(got[finite], expected[finite], atol=TOL)


@pytest.fixture(scope="module")
def small_head_model(cv):
    keras.utils.set_random_seed(7)
    net = keras.Sequential([keras.Input((8,)), kc.GatedDense(6, num_blocks=3),
                            keras.layers.Dense(4)])
    return cv.convert(net)


@pytest.mark.parametrize("input_index,shape,fragments", [
    (5, (6, 5), ["head_kernel", "shape [6, 5]", "expected [num_blocks*block_size, head_units]"
                 " = [6, 4]"]),
    (5, (5, 4), ["head_kernel", "[6, 4]"]),
    (5, (24,), ["head_kernel", "shape [24]"]),
    (6, (3,), ["head_bias", "[head_units] = [4]"]),
])
def test_prepare_rejects_bad_head_shapes(small_head_model, input_index, shape, fragments):
    _expect_error(_edit_tensor(small_head_model, input_index, shape=shape), "CondCompGatedDense",
                  *fragments)


def test_prepare_rejects_head_units_without_head_inputs(small_model, small_head_model):
    from flatbuffers import flexbuffers

    _expect_error(_set_options(small_model, {**GOOD, "head_units": 4}),
                  "then head_kernel and head_bias (option head_units), got 5")
    m = model_t(small_head_model)
    (_, op), = custom_ops(m, "CondCompGatedDense")
    options = flexbuffers.Loads(bytes(bytearray(op.customOptions)))
    assert options["head_units"] == 4
    _expect_error(_set_options(small_head_model, {**options, "head_units": 0}),
                  "head_units", "out of range")
    # without the option, 7 inputs read as a static-int8 op with a float kernel
    _expect_error(_set_options(small_head_model, {k: v for k, v in options.items()
                                                  if k != "head_units"}), "kernel", "int8")


RUNTIMES = ["tensorflow"] + (["litert"] if litert.resolve_runtime()[0] == "litert" else [])


def test_both_runtimes_run_the_same_models_with_the_same_tolerance(cv):
    """LiteRT (ai_edge_litert) and tf.lite load the ops as the same delegate."""
    if len(RUNTIMES) < 2 and os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail("ai_edge_litert is not installed; CI installs the [litert] extra")
    rng = np.random.default_rng(11)
    dense_net = _mlp(rng)
    conv_layer = kc.GatedConv2D(8, 3, num_blocks=4, padding="same", activation="relu")
    conv_net = keras.Sequential([keras.Input((6, 6, 3)), conv_layer, keras.layers.Flatten(),
                                 keras.layers.Dense(4)])
    _set_policy(conv_layer, rng)
    for net, shape in ((dense_net, (20,)), (conv_net, (6, 6, 3))):
        data = cv.convert(net)
        for batch in (1, 9):
            x = rng.normal(size=(batch,) + shape).astype("f4")
            ref = np.asarray(net(x, training=False))
            outputs = {}
            for runtime in RUNTIMES:
                interp = litert.Interpreter(model_content=data, runtime=runtime, num_threads=2)
                assert interp.runtime == runtime
                ops = {d["op_name"] for d in interp._get_ops_details()}
                assert "DELEGATE" in ops  # our delegate took the CondComp nodes
                outputs[runtime] = interp.predict(x)
                np.testing.assert_allclose(outputs[runtime], ref, atol=TOL)
            if len(RUNTIMES) == 2:
                np.testing.assert_allclose(outputs["litert"], outputs["tensorflow"], atol=TOL)


def test_runtime_argument_and_untested_versions(small_model, monkeypatch):
    with pytest.raises(ValueError, match="Argument `runtime` must be one of"):
        litert.Interpreter(model_content=small_model, runtime="tflite")
    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)  # as if not installed
    with pytest.raises(ValueError, match=r"keras_condcomp\[runtime\]"):
        litert.Interpreter(model_content=small_model, runtime="litert")
    assert litert.Interpreter(model_content=small_model).runtime == "tensorflow"
    monkeypatch.setitem(litert.TESTED_VERSIONS, "tensorflow", ((1, 0), (1, 1)))
    with pytest.raises(litert.OpsLibraryError, match="CONDCOMP_ALLOW_UNTESTED_RUNTIME"):
        litert.Interpreter(model_content=small_model, runtime="tensorflow")
    monkeypatch.setenv("CONDCOMP_ALLOW_UNTESTED_RUNTIME", "1")
    interpreter = litert.Interpreter(model_content=small_model, runtime="tensorflow")
    assert interpreter.runtime == "tensorflow"


def _int8_against_float(cv, network, int8_model, x, input_scales=None):
    """(fraction of examples whose every decision is the float model's, max |int8 - float|
    over those examples, max |float output|)."""
    x = np.asarray(x, "f4")
    float_y = np.asarray(network(x, training=False))
    float_masks = [np.asarray(layer.gate_outputs.mask)
                   for layer in kc.layers.gated_layers(network)]
    _, int8_masks = cv.quantized_reference(network, x, input_scales)
    same_rows = np.all([np.all(a == b, axis=1) for a, b in zip(float_masks, int8_masks)], axis=0)
    got = litert.Interpreter(model_content=int8_model).predict(x)
    return same_rows.mean(), float(np.max(np.abs(got - float_y)[same_rows])), \
        float(np.max(np.abs(float_y)))


@pytest.mark.parametrize("activation, use_bias, units, blocks", [
    ("relu", True, (24, 15), (4, 3)),
    ("tanh", False, (32, 16), (8, 2)),
    ("gelu", True, (64, 64), (4, 4)),
])
def test_dynamic_range_int8_dense_matches_the_dequantized_reference(cv, activation, use_bias,
                                                                    units, blocks):
    rng = np.random.default_rng(21)
    layers = [keras.Input((20,))]
    for u, k in zip(units, blocks):
        layers.append(kc.GatedDense(u, num_blocks=k, activation=activation, use_bias=use_bias,
                                    bias_initializer=keras.initializers.RandomNormal(0, 0.3)))
    net = keras.Sequential(layers)
    for layer in kc.layers.gated_layers(net):
        _set_policy(layer, rng)
    data = cv.convert(net, quantize="dynamic")
    assert cv.op_counts(data) == {"CondCompGatedDense": 2}
    (sub, op), _ = custom_ops(model_t(data), "CondCompGatedDense")
    assert len(op.inputs) == 6  # x, int8 kernel, bias, policy kernel, policy bias, scales
    assert len(data) < len(cv.convert(net))  # int8 weights
    inputs = [rng.normal(size=(batch, 20)).astype("f4") for batch in (1, 7, 33)]
    assert _check_int8_layer_by_layer(cv, net, inputs, threads=(1,)) == 2
    _check_int8_chain(cv, net, data, rng.normal(size=(33, 20)).astype("f4"))
    # Rounding weights and activations to 1/254 of their range moves the outputs only
    # a little, except where a block decision near the threshold flips.
    same_rows, worst, _ = _int8_against_float(cv, net, data, rng.normal(size=(256, 20)))
    assert same_rows > 0.9
    assert worst < 0.05, worst


def _relu_then_linear_mostly_on(rng, features, hidden, output):
    """Input(features) -> GatedDense relu -> GatedDense linear, `hidden` and
    `output` as (units, blocks), random policies whose blocks are mostly on
    (policy bias 2), so that the kernels run."""
    net = keras.Sequential([keras.Input((features,)),
                            kc.GatedDense(hidden[0], num_blocks=hidden[1], activation="relu",
                                          bias_initializer=keras.initializers.RandomNormal(0, 0.3)),
                            kc.GatedDense(output[0], num_blocks=output[1], activation="linear")])
    for layer in kc.layers.gated_layers(net):
        _set_policy(layer, rng)
        layer.policy.bias.assign(np.full(layer.num_blocks, 2.0, "f4"))
    return net


def test_int8_ops_strips_threads_and_extreme_inputs(cv):
    """Block sizes 70 (strips of 32, 32, 6) and 48, input blocks of 70 (not a
    multiple of 4), 1 and 2 threads; inputs with a 1e30 block, subnormal
    blocks, an exact rounding tie, an all-zero row and a NaN row."""
    rng = np.random.default_rng(23)
    net = _relu_then_linear_mostly_on(rng, 36, (140, 2), (96, 2))
    data = cv.convert(net, quantize="dynamic")
    x = rng.normal(size=(9, 36)).astype("f4")
    x[1] *= 1e30
    x[2, :] = rng.normal(size=36) * 1e-40
    x[3, :] = 0.0
    x[4, 5] = np.nan
    x[5, :2] = [0.8, np.float32(0.8) * np.float32(2.5 / 127)]
    expected, _ = cv.quantized_reference(net, x)
    for runtime in RUNTIMES:
        for threads in (1, 2):
            got = litert.Interpreter(model_content=data, runtime=runtime,
                                     num_threads=threads).predict(x)
            assert np.all(np.isnan(got[4])) and not np.any(np.isnan(np.delete(got, 4, 0)))
            finite = np.isfinite(expected)
            np.testing.assert_array_equal(np.isfinite(got), finite)
            rows = [0, 2, 3, 5, 6, 7, 8]
            np.testing.assert_allclose(got[rows], expected[rows], atol=TOL, rtol=1e-5)
            np.testing.assert_allclose(got[1][finite[1]], expected[1][finite[1]], rtol=1e-4)


def test_int8_non_negative_strips_and_one_negative_value(cv):
    """Inputs that are all >= 0 (pixels, relu outputs) take the int8 kernels'
    products without the sign transfer, per strip of up to 64 quads; one
    negative value anywhere (first quad, middle, last full quad, the tail
    past 64 quads) sends its strip back to the signed products. 260 inputs:
    a strip of 64 quads and one of 1; the second layer reads relu outputs
    in input blocks of 64 (strips of 16 quads). Batch 1 (the tiles kernel)
    and batch 6 (one example at a time), against quantized_reference."""
    rng = np.random.default_rng(29)
    net = _relu_then_linear_mostly_on(rng, 260, (256, 4), (64, 2))
    rows = []
    for negative_at in (None, 0, 3, 130, 255, 256, 259):
        x = np.abs(rng.normal(size=260)).astype("f4")
        x[rng.random(260) < 0.3] = 0.0
        if negative_at is not None:
            x[negative_at] = -0.7
        rows.append(x)
    inputs = [row[None] for row in rows] + [np.stack(rows[:6])]
    assert _check_int8_layer_by_layer(cv, net, inputs, threads=(1,)) == 2


def test_top_k_in_the_ops_ranks_infinite_logits_and_signed_zeros_like_the_reference(cv):
    """The ops' top_k rule on the logits it must rank like the reference: -0.0
    and +0.0 tie (the lower block index wins), +Inf ranks above and -Inf below
    every number. The infinities come from a finite input whose policy
    product overflows (3e38 * +-1e10), one term each, so every summation
    order gives them. (Two overflowing terms of opposite signs give NaN or
    +-Inf by the order of the sum, in the ops as in any float matrix product:
    fused multiply-adds add the exact product -3e48 to +Inf and keep +Inf.)"""
    net = keras.Sequential([keras.Input((8,)), kc.GatedDense(8, num_blocks=4, top_k=1)])
    layer = net.layers[0]
    layer.kernel.assign(np.zeros((8, 8), "f4"))
    layer.bias.assign(np.ones(8, "f4"))  # a block's outputs are 1 where it is on
    policy_kernel = np.zeros((8, 4), "f4")
    policy_kernel[0, 0], policy_kernel[0, 3] = -1e10, 1e10
    layer.policy.kernel.assign(policy_kernel)
    layer.policy.bias.assign(np.array([-0.0, 0.0, -1.0, -2.0], "f4"))
    x = np.zeros((3, 8), "f4")
    x[1, 0] = 3e38  # logits -Inf, 0, -1, +Inf
    x[2, 0] = -3e38  # logits +Inf, 0, -1, -Inf
    expected = np.repeat(np.array([[1, 0, 0, 0], [0, 0, 0, 1], [1, 0, 0, 0]], "f4"), 2, axis=1)
    np.testing.assert_array_equal(np.asarray(net(x)), expected)
    data = cv.convert(net)
    for runtime in RUNTIMES:
        for rows in ([0], [1], [2], [0, 1, 2]):
            got = litert.Interpreter(model_content=data, runtime=runtime).predict(x[rows])
            np.testing.assert_array_equal(got, expected[rows])


def _assert_close_per_example(got, expected, err_msg=""):
    """Equal to TOL relative to each example's largest output (at least 1): float
    sums are exact to a few ulps of their largest terms, so a 1e30-scaled example
    is held to the same digits as the others (NaN where expected is NaN)."""
    scale = np.nan_to_num(np.abs(expected), nan=0.0).reshape(len(expected), -1).max(axis=1)
    scale = np.maximum(scale, 1.0).reshape((-1,) + (1,) * (expected.ndim - 1))
    np.testing.assert_allclose(got / scale, expected / scale, atol=TOL, rtol=0, err_msg=err_msg)


def _check_int8_layer_by_layer(cv, network, inputs, threads=(1, 2), input_scales=None):
    """Each gated layer of the chain `network` converted alone (with the
    chain's input blocks) and fed the input the int8 chain gives it, for each
    batch in `inputs`, against `quantized_reference` of that layer (NaN where
    it is NaN); with `input_scales` (the chain's static scales) as
    quantize="int8". Layer by layer, so that both sides read bit-identical
    inputs: chained, a 1-ulp float difference in one layer's output can move
    a value across a rounding boundary of the next layer's int8 activations
    (one level, ~1% of its block's range), which is rounding, not a bug."""
    hs = [np.asarray(x, "f4") for x in inputs]
    checked = 0
    for layer in network.layers:
        if not isinstance(layer, kc.GatedLayer):
            hs = [np.asarray(layer(h, training=False)) for h in hs]
            continue
        single = keras.Sequential([keras.Input(hs[0].shape[1:]), layer])
        scales = None if input_scales is None else {layer.name: input_scales[layer.name]}
        data = (cv.convert(single, quantize="dynamic") if scales is None
                else cv.convert(single, quantize="int8", input_scales=scales))
        [(_, op)] = custom_ops(model_t(data), cv.CONV_OP if isinstance(layer, kc.GatedConv2D)
                               else cv.DENSE_OP)
        # x, int8 kernel, bias, policy kernel, policy bias, kernel scales (, input scales)
        assert len(op.inputs) == (6 if scales is None else 7)
        expected = [cv.quantized_reference(single, h, scales)[0] for h in hs]
        for runtime in RUNTIMES:
            for t in threads:
                interp = litert.Interpreter(model_content=data, runtime=runtime, num_threads=t)
                for h, e in zip(hs, expected):
                    _assert_close_per_example(interp.predict(h), e,
                                              f"{layer.name}, {runtime}, {t} threads")
        hs = expected
        checked += 1
    return checked


def _check_int8_chain(cv, network, data, x, input_scales=None):
    """The whole int8 chain against `quantized_reference`: equal to rounding,
    up to the rare example where a one-level flip of an intermediate int8
    activation (see _check_int8_layer_by_layer) moves the outputs a little."""
    got = litert.Interpreter(model_content=data).predict(x)
    expected = cv.quantized_reference(network, x, input_scales)[0]
    close = np.isclose(got, expected, atol=TOL, rtol=1e-5).reshape(len(x), -1).all(axis=1)
    assert close.mean() >= 0.8, close
    assert np.max(np.abs(got - expected)) < 0.05 * np.max(np.abs(expected))


@pytest.mark.parametrize("padding,strides,dilation", [
    ("same", 1, 1), ("valid", 2, 1), ("valid", 1, 2), ("same", (1, 2), 1),
])
def test_dynamic_range_int8_conv2d_matches_the_dequantized_reference(cv, padding, strides,
                                                                     dilation):
    """Two int8 convs (the second reads the first's blocks of 2 channels: input
    blocks not a multiple of 4) and an int8 dense head, 1 and 2 threads,
    batches 1 and 6."""
    rng = np.random.default_rng(24)
    net = _convnet(rng, padding, strides, dilation)
    inputs = [rng.normal(size=(batch, 9, 10, 3)).astype("f4") for batch in (1, 6)]
    assert _check_int8_layer_by_layer(cv, net, inputs) == 3
    data = cv.convert(net, quantize="dynamic")
    assert cv.op_counts(data)["CondCompGatedConv2D"] == 2
    _check_int8_chain(cv, net, data, rng.normal(size=(16, 9, 10, 3)).astype("f4"))


def test_int8_conv2d_strips_and_extreme_inputs(cv):
    """A conv with blocks of 70 filters (strips of 32, 32, 6) over 5 channels
    in one input block (5: not a multiple of 4), no bias, then a 1x1 conv
    reading its blocks of 70; inputs with a 1e30 example, a subnormal one, an
    all-zero one and a NaN one; and the decisions and outputs of the int8
    model against the float one."""
    rng = np.random.default_rng(25)
    net = keras.Sequential([keras.Input((7, 6, 5)),
                            kc.GatedConv2D(140, 3, num_blocks=2, padding="same", use_bias=False,
                                           activation="relu"),
                            kc.GatedConv2D(16, 1, num_blocks=4, activation="linear",
                                           bias_initializer=keras.initializers.RandomNormal(
                                               0, 0.3))])
    for layer in kc.layers.gated_layers(net):
        _set_policy(layer, rng, spread=6.0)
    net.layers[0].policy.bias.assign(np.full(2, 2.0, "f4"))  # mostly on: the kernels run
    x = rng.normal(size=(6, 7, 6, 5)).astype("f4")
    x[1] *= 1e30
    x[2] = rng.normal(size=(7, 6, 5)) * 1e-40
    x[3] = 0.0
    x[4, 3, 2, 1] = np.nan
    assert _check_int8_layer_by_layer(cv, net, [x]) == 2
    data = cv.convert(net, quantize="dynamic")
    got = litert.Interpreter(model_content=data).predict(x)
    assert np.all(np.isnan(got[4])) and not np.any(np.isnan(np.delete(got, 4, 0)))
    # Rounding to 1/254 of each block's range moves the decisions and the
    # outputs only a little.
    same_rows, worst, scale = _int8_against_float(cv, net, data,
                                                  rng.normal(size=(64, 7, 6, 5)))
    assert same_rows > 0.9
    assert worst < 0.02 * scale, (worst, scale)


def test_int8_input_block_longer_than_the_int32_accumulators(cv, tmp_path):
    """140,000 inputs in one block of 127 * 127 products each: one int32 sum
    would overflow (UB in C); the op sums chunks of 131,068 rows in float."""
    net = keras.Sequential([keras.Input((140_000,)), kc.GatedDense(2, num_blocks=1,
                                                                   use_bias=False)])
    net.layers[0].kernel.assign(np.full((140_000, 2), 0.5, "f4"))
    net.layers[0].policy.bias.assign(np.full(1, 5.0, "f4"))
    data = cv.convert(net, quantize="dynamic")
    x = np.ones((1, 140_000), "f4")
    path = tmp_path / "long_block.tflite"
    path.write_bytes(data)
    code = ("import sys, numpy as np; from keras_condcomp import litert; "
            "d = open(sys.argv[1], 'rb').read(); "
            "print(repr(float(litert.Interpreter(model_content=d).predict("
            "np.ones((1, 140000), 'f4'))[0, 0])))")
    # This process's int8 kernel, and in a subprocess the other one (the
    # portable C kernel, or the CPU's when this process runs the baseline).
    got = litert.Interpreter(model_content=data).predict(x)[0, 0]
    np.testing.assert_allclose(got, 70_000.0, rtol=1e-6)
    other = "" if os.environ.get("CONDCOMP_KERNEL_ISA") == "baseline" else "baseline"
    out = subprocess.run([sys.executable, "-c", code, str(path)],
                         env=dict(os.environ, CONDCOMP_KERNEL_ISA=other),
                         capture_output=True, text=True, check=True).stdout
    np.testing.assert_allclose(float(out.split()[-1]), 70_000.0, rtol=1e-6)
    np.testing.assert_allclose(cv.quantized_reference(net, x)[0][0, 0], 70_000.0, rtol=1e-6)


def test_dynamic_range_quantization_arguments(cv):
    conv = keras.Sequential([keras.Input((6, 6, 3)),
                             kc.GatedConv2D(8, 3, num_blocks=2, padding="same")])
    with pytest.raises(ValueError, match="Argument `quantize` must be one of"):
        cv.convert(conv, quantize="int4")
    dense = keras.Sequential([keras.Input((4,)), kc.GatedDense(8, num_blocks=2)])
    with pytest.raises(ValueError, match="needs `representative` inputs"):
        cv.convert(conv, quantize="int8")
    with pytest.raises(ValueError, match="needs `representative` inputs"):
        cv.convert(dense, dense=True, quantize="int8")
    with pytest.raises(ValueError, match="used by quantize='int8' only"):
        cv.convert(dense, quantize="dynamic", representative=np.zeros((4, 4), "f4"))
    nested = keras.Sequential([keras.Input((4,)),
                               keras.Sequential([kc.GatedDense(8, num_blocks=2)], name="inner")])
    with pytest.raises(cv.ConversionError, match="'inner' holds gated layers inside it"):
        cv.quantized_reference(nested, np.zeros((2, 4), "f4"))
    full_int8 = cv.convert(dense, dense=True, quantize="int8",
                           representative=np.random.default_rng(0).normal(size=(16, 4)))
    assert cv.op_counts(full_int8).get("FULLY_CONNECTED") == 1
    q, scale = cv.quantize_kernel(np.array([[0.5, 0.0], [-1.0, 0.0]], "f4"))
    np.testing.assert_array_equal(q, [[64, 0], [-127, 0]])
    np.testing.assert_allclose(scale, [1.0 / 127, 1.0])


def _static_int8_nets(rng):
    dense = keras.Sequential([keras.Input((20,))] + [
        kc.GatedDense(u, num_blocks=k, activation="relu",
                      bias_initializer=keras.initializers.RandomNormal(0, 0.3))
        for u, k in ((48, 4), (70, 2), (12, 3))])
    for layer in kc.layers.gated_layers(dense):
        _set_policy(layer, rng)
    return {"dense": (dense, (20,)), "conv": (_convnet(rng, "same", 1, 1), (9, 10, 3))}


@pytest.mark.parametrize("arch", ["dense", "conv"])
def test_static_int8_ops_match_the_reference(cv, arch):
    """quantize="int8" on a condnet: each op with its calibrated static scales
    against quantized_reference, on inputs from the calibration distribution
    and on inputs twice as large (values beyond the calibrated range clip),
    1 and 2 threads, batches 1 and 6; then the chain, and its decisions and
    outputs against the float model."""
    rng = np.random.default_rng(31)
    net, shape = _static_int8_nets(rng)[arch]
    rep = rng.normal(size=(64, *shape)).astype("f4")
    scales = cv.calibrate_input_scales(net, rep)
    gated = kc.layers.gated_layers(net)
    assert sorted(scales) == sorted(layer.name for layer in gated)
    inputs = [rng.normal(size=(batch, *shape)).astype("f4") * f for batch, f in ((1, 1), (6, 2))]
    assert _check_int8_layer_by_layer(cv, net, inputs, input_scales=scales) == len(gated)
    data = cv.convert(net, quantize="int8", representative=rep)
    assert cv.op_counts(data).get(cv.DENSE_OP, 0) + cv.op_counts(data).get(cv.CONV_OP, 0) \
        == len(gated)
    x = rng.normal(size=(16, *shape)).astype("f4")
    _check_int8_chain(cv, net, data, x, scales)
    # Not the per-example ("dynamic") scales: a different model.
    dynamic = cv.quantized_reference(net, x)[0]
    assert np.max(np.abs(cv.quantized_reference(net, x, scales)[0] - dynamic)) > 1e-4
    # The same scales given directly make the same model.
    same = cv.convert(net, quantize="int8", input_scales=scales)
    np.testing.assert_array_equal(litert.Interpreter(model_content=same).predict(x),
                                  litert.Interpreter(model_content=data).predict(x))
    # Rounding to the calibrated ranges moves decisions and outputs a little:
    # typically as much as per-example scales do, at most a few times more.
    x = rng.normal(size=(128, *shape)).astype("f4")
    float_y = np.asarray(net(x, training=False))
    errors = {}
    for name, s in (("dynamic", None), ("int8", scales)):
        y, _ = cv.quantized_reference(net, x, s)
        errors[name] = np.median(np.abs(y - float_y).reshape(len(x), -1).max(axis=1))
    assert 0 < errors["int8"] < 3 * errors["dynamic"], errors
    same_rows, _, scale = _int8_against_float(cv, net, data, x, scales)
    assert same_rows > 0.8
    assert errors["int8"] < 0.02 * scale, (errors, scale)


def test_static_int8_extreme_inputs(cv):
    """Static scales with a 1e30 example (every value clips to +-127 levels),
    a subnormal one (rounds to 0: the block still counts as on), an all-zero
    one and a NaN one; the op's output is the reference's, for both threads."""
    rng = np.random.default_rng(32)
    net, shape = _static_int8_nets(rng)["dense"]
    scales = cv.calibrate_input_scales(net, rng.normal(size=(32, *shape)))
    data = cv.convert(net, quantize="int8", input_scales=scales)
    x = rng.normal(size=(6, *shape)).astype("f4")
    x[1] *= 1e30
    x[2] = rng.normal(size=shape) * 1e-40
    x[3] = 0.0
    x[4, 5] = np.nan
    expected = cv.quantized_reference(net, x, scales)[0]
    assert np.all(np.isfinite(np.delete(expected, 4, 0)))
    for runtime in RUNTIMES:
        for threads in (1, 2):
            got = litert.Interpreter(model_content=data, runtime=runtime,
                                     num_threads=threads).predict(x)
            assert np.all(np.isnan(got[4])) and not np.any(np.isnan(np.delete(got, 4, 0)))
            _assert_close_per_example(np.delete(got, 4, 0), np.delete(expected, 4, 0))


def test_static_int8_arguments(cv):
    rng = np.random.default_rng(33)
    net = keras.Sequential([keras.Input((8,)), kc.GatedDense(8, num_blocks=2, name="g1"),
                            kc.GatedDense(4, num_blocks=2, name="g2")])
    good = {"g1": np.full(1, 0.1, "f4"), "g2": np.full(2, 0.1, "f4")}  # g2 reads g1's 2 blocks
    assert cv.op_counts(cv.convert(net, quantize="int8", input_scales=good)) == {cv.DENSE_OP: 2}
    for bad, message in [({"g1": good["g1"]}, "must map each gated layer's name"),
                         ([0.1, 0.1], "must map each gated layer's name"),
                         ({**good, "g2": np.full(3, 0.1)}, r"input_scales\['g2'\]` must hold 2"),
                         ({**good, "g1": np.zeros(1)}, "finite scales > 0"),
                         ({**good, "g2": [0.1, np.nan]}, "finite scales > 0")]:
        with pytest.raises(ValueError, match=message):
            cv.convert(net, quantize="int8", input_scales=bad)
    with pytest.raises(ValueError, match="used by quantize='int8' without dense=True only"):
        cv.convert(net, quantize="dynamic", input_scales=good)
    with pytest.raises(ValueError, match="not with `input_scales`"):
        cv.convert(net, quantize="int8", input_scales=good, representative=np.ones((2, 8)))
    with pytest.raises(ValueError, match="NaN/Inf values"):
        cv.calibrate_input_scales(net, np.full((2, 8), np.inf))
    with pytest.raises(ValueError, match="non-empty batch"):
        cv.calibrate_input_scales(net, np.zeros((0, 8)))
    # A block that is zero on every calibration example gets the layer's largest scale.
    rep = rng.normal(size=(16, 8)).astype("f4")
    net.layers[0].policy.bias.assign([9.0, -9.0])  # g1's second block always off
    scales = cv.calibrate_input_scales(net, rep)
    assert scales["g2"][1] == scales["g2"][0] > 0
    np.testing.assert_allclose(scales["g1"], np.abs(rep).max() / 127, rtol=1e-6)


def test_interpreter_drops_the_xnnpack_notice_unless_verbose(tmp_path):
    import subprocess
    import sys

    import keras

    cv = load_convert()
    path = tmp_path / "plain.tflite"
    path.write_bytes(cv.convert(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])))
    code = ("import sys, numpy as np\n"
            "from keras_condcomp.litert import Interpreter\n"
            "i = Interpreter(sys.argv[1], custom_ops=False, verbose=sys.argv[2] == '1')\n"
            "i.predict(np.zeros((3, 4)))\n"
            "i.allocate_tensors()\n"
            "print('done', file=sys.stderr)\n")
    for verbose, count in (("0", 0), ("1", 1)):
        res = subprocess.run([sys.executable, "-c", code, str(path), verbose],
                             capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr
        assert res.stderr.count("Created TensorFlow Lite XNNPACK delegate") == count
        assert "done" in res.stderr  # other stderr output still shows
