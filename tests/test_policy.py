import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_condcomp import BernoulliBlockPolicy, reinforce_surrogate
from keras_condcomp.policy import bernoulli_log_prob


def test_log_prob_matches_definition():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(5, 4)).astype("float32")
    mask = (rng.uniform(size=(5, 4)) < 0.5).astype("float32")
    sigma = 1 / (1 + np.exp(-logits))
    expected = np.sum(mask * np.log(sigma) + (1 - mask) * np.log(1 - sigma), axis=1)
    np.testing.assert_allclose(bernoulli_log_prob(logits, mask), expected, rtol=1e-5)
    # Saturated logits stay finite.
    log_prob = bernoulli_log_prob(np.array([[80.0, -80.0]]), np.array([[0.0, 1.0]]))
    assert np.all(np.isfinite(log_prob))


def test_training_samples_and_inference_thresholds():
    bias = keras.initializers.Constant([4.0, -4.0, 0.1])
    policy = BernoulliBlockPolicy(3, bias_initializer=bias, seed=3)
    x = np.zeros((4000, 2), "float32")
    mask, sigma, _ = policy(x, training=True)
    np.testing.assert_allclose(np.mean(mask, axis=0), np.asarray(sigma[0]), atol=0.03)
    mask, _, _ = policy(x, training=False)
    np.testing.assert_array_equal(np.asarray(mask[0]), [1.0, 0.0, 1.0])
    strict = BernoulliBlockPolicy(3, threshold=0.6, bias_initializer=bias)
    mask, _, _ = strict(x[:2], training=False)
    np.testing.assert_array_equal(np.asarray(mask[0]), [1.0, 0.0, 0.0])


def test_seeded_sampling_is_reproducible():
    x = np.ones((64, 5), "float32")
    masks = []
    for _ in range(2):
        keras.utils.set_random_seed(7)
        policy = BernoulliBlockPolicy(4, seed=11)
        masks.append(np.asarray(policy(x, training=True)[0]))
    np.testing.assert_array_equal(masks[0], masks[1])


def test_stop_input_gradient():
    x = tf.Variable(np.ones((2, 3), "float32"))
    for stop, expect_none in [(True, True), (False, False)]:
        policy = BernoulliBlockPolicy(2, stop_input_gradient=stop)
        with tf.GradientTape() as tape:
            _, sigma, _ = policy(x, training=True)
            total = tf.reduce_sum(sigma)
        assert (tape.gradient(total, x) is None) == expect_none


@pytest.mark.parametrize("num_blocks", [2, 3])
def test_reinforce_gradient_matches_enumeration(num_blocks):
    """The REINFORCE estimate equals the exact gradient of E_u[cost(u)] within sampling error."""
    rng = np.random.default_rng(num_blocks)
    features = 3
    x_one = rng.normal(size=(1, features)).astype("float32")
    cost_table = rng.uniform(0.0, 3.0, size=2**num_blocks).astype("float32")
    powers = 2 ** np.arange(num_blocks)

    keras.utils.set_random_seed(123)
    policy = BernoulliBlockPolicy(num_blocks, seed=5, kernel_initializer="random_normal",
                                  bias_initializer="random_normal")
    policy.build((None, features))
    variables = [policy.kernel, policy.bias]

    # Exact gradient of sum_u pi(u|x) cost(u), enumerating the 2^k masks.
    all_masks = np.array(list(itertools.product([0.0, 1.0], repeat=num_blocks))[::-1], "float32")
    all_masks = all_masks[np.argsort(all_masks @ powers)]
    with tf.GradientTape() as tape:
        logits = policy.logits(np.repeat(x_one, len(all_masks), axis=0))
        probs = tf.exp(bernoulli_log_prob(logits, all_masks))
        expected_cost = tf.reduce_sum(probs * cost_table)
    exact = [g.numpy() for g in tape.gradient(expected_cost, variables)]

    # REINFORCE over many samples, with a baseline (unbiased for any constant b).
    samples = 20000
    x = np.repeat(x_one, samples, axis=0)
    with tf.GradientTape() as tape:
        mask, sigma, log_prob = policy(x, training=True)
        index = tf.cast(tf.linalg.matvec(mask, powers.astype("float32")), "int32")
        cost = tf.gather(cost_table, index)
        surrogate = reinforce_surrogate(cost, 1.0, log_prob)
    estimate = [g.numpy() for g in tape.gradient(surrogate, variables)]
    # Per-sample bias gradients (cost - b) * (u - sigma) bound the standard error.
    per_sample = (cost.numpy() - 1.0)[:, None] * (mask.numpy() - sigma.numpy())
    np.testing.assert_allclose(per_sample.mean(axis=0), estimate[1], rtol=1e-4, atol=1e-6)
    stderr = per_sample.std(axis=0) / np.sqrt(samples)
    np.testing.assert_array_less(np.abs(estimate[1] - exact[1]), 5 * stderr + 1e-4)
    # Kernel gradient is the bias gradient times x (same x for every sample).
    np.testing.assert_allclose(estimate[0], np.outer(x_one[0], estimate[1]), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(exact[0], np.outer(x_one[0], exact[1]), rtol=1e-4, atol=1e-6)
    # The estimate is not trivially zero: the exact gradient is clearly resolved.
    assert np.max(np.abs(exact[1])) > 5 * np.max(stderr)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_blocks": 0}, "num_blocks=0"),
        ({"num_blocks": 2.5}, "num_blocks=2.5"),
        ({"num_blocks": 2, "threshold": 1.5}, "threshold=1.5"),
        ({"num_blocks": 2, "inference_mode": "soft"}, "inference_mode='soft'"),
    ],
)
def test_policy_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BernoulliBlockPolicy(**kwargs)
