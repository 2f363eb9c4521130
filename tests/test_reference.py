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
    np.testing.assert_array_equal(np.asarray(reference.inference_mask(sigma, 0.5)),
                                  [[1, 0, 1, 1], [0, 0, 0, 0]])
    # top-k: exactly k per row, ties to the lower index.
    np.testing.assert_array_equal(np.asarray(reference.inference_mask(sigma, 0.5, top_k=2)),
                                  [[1, 0, 1, 0], [1, 0, 0, 1]])


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
