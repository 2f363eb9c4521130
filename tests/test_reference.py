"""keras_condcomp.reference: the one masked computation and block layout every path uses."""

import keras
import numpy as np

from keras_condcomp import GatedConv2D, GatedDense, reference


def test_block_major_layout_and_inverse():
    rng = np.random.default_rng(0)
    dense = rng.normal(size=(6, 12)).astype("f4")
    bm = np.asarray(reference.block_major(dense, 3))
    assert bm.shape == (3, 6, 4)
    for j in range(3):  # block j holds output units j*4 .. j*4+3, contiguous
        np.testing.assert_array_equal(bm[j], dense[:, 4 * j:4 * j + 4])
    np.testing.assert_array_equal(np.asarray(reference.from_block_major(bm)), dense)
    conv = rng.normal(size=(3, 2, 5, 8)).astype("f4")
    bm = np.asarray(reference.block_major(conv, 4))
    assert bm.shape == (4, 3, 2, 5, 2)
    np.testing.assert_array_equal(bm[1], conv[..., 2:4])
    np.testing.assert_array_equal(np.asarray(reference.from_block_major(bm)), conv)


def test_inference_mask_rules():
    sigma = np.array([[0.9, 0.2, 0.6, 0.6], [0.1, 0.1, 0.1, 0.3]], "f4")
    logits = np.log(sigma / (1 - sigma))
    np.testing.assert_array_equal(np.asarray(reference.inference_mask(logits, 0.5)),
                                  [[1, 0, 1, 1], [0, 0, 0, 0]])
    # top-k: exactly k per row, ties to the lower index.
    np.testing.assert_array_equal(np.asarray(reference.inference_mask(logits, 0.5, top_k=2)),
                                  [[1, 0, 1, 0], [1, 0, 0, 1]])
    # Saturated logits (sigmoid 1.0 in float32 for all of them) keep their order.
    saturated = np.array([[17.0, 25.0, 16.8, 40.0]], "f4")
    np.testing.assert_array_equal(np.asarray(reference.inference_mask(saturated, 0.5, top_k=2)),
                                  [[0, 1, 0, 1]])


def test_layers_compute_the_reference():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(5, 8)).astype("f4")
    layer = GatedDense(12, num_blocks=3, activation="tanh",
                       bias_initializer=keras.initializers.RandomNormal(0, 1))
    y = np.asarray(layer(x, training=False))
    mask = np.asarray(layer.gate_outputs.mask)
    expected = np.tanh(x @ layer.kernel.numpy() + layer.bias.numpy()) * np.repeat(mask, 4, axis=1)
    np.testing.assert_allclose(y, expected, atol=1e-6)
    images = rng.normal(size=(2, 6, 6, 3)).astype("f4")
    conv = GatedConv2D(4, 3, num_blocks=2, padding="same", activation="relu")
    y = np.asarray(conv(images, training=False))
    ref = reference.masked_conv2d(images, conv.kernel, conv.bias, keras.activations.relu,
                                  conv.gate_outputs.mask, 2, (1, 1), "same", (1, 1))
    np.testing.assert_allclose(y, np.asarray(ref), atol=1e-6)


def test_quantize_activations_per_block():
    m = np.float32(0.8)
    half = np.float32(m * 2.5 / 127)  # exactly between the levels 2 and 3: rounds to 2 (even)
    x = np.array([[0.0, -0.0, 0.0, 0.0, m, -m, half, 0.1],
                  [1e30, -3e29, 5e29, 1.0, 1e-40, -2e-40, 0.0, 1e-45]], "f4")
    got = np.asarray(reference.quantize_activations(x, 4))
    np.testing.assert_array_equal(got[0, :4], 0.0)  # an all-zero block stays exactly 0
    step = np.float32(m) / np.float32(127)
    assert got[0, 4] == np.float32(127) * step and got[0, 5] == -got[0, 4]  # +-max exactly
    assert got[0, 6] == np.float32(2) * step
    np.testing.assert_allclose(got[0, 7], 0.1, atol=step / 2)
    # Each value is an integer multiple of its block's max/127, within half a step.
    for row, block in ((1, slice(0, 4)), (1, slice(4, 8))):
        xb = x[row, block].astype("f8")
        s = np.float32(np.max(np.abs(x[row, block]))) / np.float32(127)
        q = got[row, block] / s
        np.testing.assert_allclose(q, np.round(q), atol=1e-3)
        assert np.all(np.abs(q) <= 127)
        if block.start == 0:  # (the subnormal block's scale is itself rounded to few bits)
            np.testing.assert_allclose(got[row, block], xb, rtol=0, atol=float(s) * 0.5001)
        assert np.all(np.isfinite(got[row, block]))
    # in_block_size = D: one scale per example (the first layer).
    whole = np.asarray(reference.quantize_activations(x[:1], 8))
    assert whole[0, 4] == got[0, 4]


def test_quantize_activations_with_static_scales_clips_to_the_calibrated_range():
    s = np.array([0.5, 0.01], "f4")  # block 0: range +-63.5, block 1: +-1.27
    x = np.array([[1.25, -1.25, 0.75, 100.0, 0.005, 0.015, -5.0, 0.0],
                  [0.0, 0.0, 0.0, 0.0, 1e-40, -0.0, 0.0, 0.0]], "f4")
    got = np.asarray(reference.quantize_activations(x, 4, input_scale=s))
    # 1.25 / 0.5 = 2.5 -> 2 (half to even), 0.75 / 0.5 = 1.5 -> 2, 100 -> clipped to 127
    np.testing.assert_array_equal(got[0, :4], np.float32([2, -2, 2, 127]) * s[0])
    # 0.005 / 0.01 is 0.5 only in real numbers: x * (1 / s) in float64 decides
    k = 1.0 / np.float64(s[1])
    expected = np.clip(np.round(x[0, 4:].astype("f8") * k), -127, 127).astype("f4") * s[1]
    np.testing.assert_array_equal(got[0, 4:], expected)
    assert got[0, 6] == np.float32(-127) * s[1]  # -5 is outside +-1.27: clipped
    np.testing.assert_array_equal(got[1], 0.0)  # a subnormal rounds to 0 at this scale
    # The same scales over all positions of a conv input (channels last).
    images = np.stack([x, x], axis=1)  # (2, 2, 8)
    conv = np.asarray(reference.quantize_activations(images, 4, input_scale=s))
    np.testing.assert_array_equal(conv[:, 0], got)
    np.testing.assert_array_equal(conv[:, 1], got)
