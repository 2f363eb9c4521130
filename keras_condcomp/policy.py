"""Bernoulli block policy: which blocks of a gated layer to compute."""

import keras
from keras import ops

from keras_condcomp.reference import inference_mask, top_k_mask
from keras_condcomp.replicas import uniform_noise
from keras_condcomp.validation import (
    SavedModelErrorsMixin,
    check_positive_int,
    check_probability,
)

INFERENCE_MODES = ("threshold", "sample")

# How the policy learns, set by `CondCompModel(estimator=...)` (see there).
ESTIMATORS = ("reinforce", "straight_through", "gumbel", "routing")


@keras.saving.register_keras_serializable(package="keras_condcomp")
class BernoulliBlockPolicy(SavedModelErrorsMixin, keras.layers.Layer):
    """Per-example Bernoulli policy over `num_blocks` blocks of units.

    Computes `sigma = sigmoid(x @ kernel + bias)`, one probability per block,
    and turns block `i` on with probability `sigma_i`. The policy has its own
    parameters `w = (kernel, bias)`, trained by REINFORCE from
    `log_prob = log pi(u | x) = sum_i u_i log sigma_i + (1 - u_i) log(1 - sigma_i)`
    (see `keras_condcomp.models.CondCompModel`).

    Args:
        num_blocks: Positive integer, number of blocks (policy outputs).
        threshold: Float in [0, 1]. At inference with
            `inference_mode="threshold"`, block `i` is on when
            `sigma_i > threshold`.
        inference_mode: `"threshold"` (deterministic, default) or `"sample"`
            (draw `u ~ Bernoulli(sigma)` at inference too).
        top_k: Optional positive integer <= `num_blocks`. With
            `inference_mode="threshold"`, each example computes exactly its
            `top_k` blocks of largest sigma (ranked by logit, lowest index
            first among equals: `keras_condcomp.reference.top_k_mask`)
            instead of those above `threshold` (a fixed per-example cost,
            for a latency bound).
        stop_input_gradient: Boolean. If `True` (default), no gradient flows
            from the policy into the layers that produced its input, so the
            policy has its own parameters as in the paper.
        kernel_initializer: Initializer for the policy kernel.
        bias_initializer: Initializer for the policy bias. A constant `c`
            starts every block with probability `sigmoid(c)`.
        kernel_regularizer: Optional regularizer for the policy kernel.
        seed: Optional integer seed for sampling.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: Tensor of shape `(batch_size, features)`.
        training: Python boolean. Sample masks when `True`, apply the
            inference rule otherwise.

    Returns:
        Tuple `(mask, sigma, log_prob)`: `mask` and `sigma` of shape
        `(batch_size, num_blocks)` (mask is 0./1. floats), `log_prob` of shape
        `(batch_size,)`.

    Input shape:
        2D tensor with shape `(batch_size, features)`.

    Example:

    >>> policy = BernoulliBlockPolicy(num_blocks=4, seed=1)
    >>> mask, sigma, log_prob = policy(np.ones((2, 8)), training=True)
    >>> mask.shape
    TensorShape([2, 4])
    """

    def __init__(
        self,
        num_blocks,
        threshold=0.5,
        inference_mode="threshold",
        stop_input_gradient=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        seed=None,
        top_k=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        num_blocks = check_positive_int("num_blocks", num_blocks)
        self.top_k = check_top_k(top_k, num_blocks)
        check_probability("threshold", threshold, low_inclusive=True)
        if inference_mode not in INFERENCE_MODES:
            raise ValueError(
                f"Argument `inference_mode` must be one of {INFERENCE_MODES}. "
                f"Received: inference_mode={inference_mode!r}"
            )
        self.num_blocks = num_blocks
        self.threshold = float(threshold)
        self.inference_mode = inference_mode
        self.stop_input_gradient = bool(stop_input_gradient)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.input_spec = keras.layers.InputSpec(min_ndim=2, max_ndim=2)
        # A training method, not part of the layer: `CondCompModel` sets both.
        self.estimator = "reinforce"
        self.gumbel_temperature = 1.0

    def build(self, input_shape):
        features = input_shape[-1]
        if features is None:
            raise ValueError(
                "The last dimension of the policy input must be defined. "
                f"Received: input_shape={input_shape}"
            )
        self.kernel = self.add_weight(
            name="kernel",
            shape=(features, self.num_blocks),
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
        )
        self.bias = self.add_weight(
            name="bias", shape=(self.num_blocks,), initializer=self.bias_initializer
        )
        self.input_spec = keras.layers.InputSpec(ndim=2, axes={-1: features})

    def logits(self, inputs):
        if self.stop_input_gradient:
            inputs = ops.stop_gradient(inputs)
        return ops.add(ops.matmul(inputs, self.kernel), self.bias)

    def call(self, inputs, training=None, training_blocks=None):
        logits = self.logits(inputs)
        sigma = ops.sigmoid(logits)
        if training and self.estimator in ("straight_through", "gumbel"):
            mask = self._straight_through_mask(logits, sigma, training_blocks)
        elif training and self.estimator == "routing":
            # The inference rule with the training budget; no gradient of its
            # own (the policy learns through the gate values scaling the outputs).
            blocks = self.top_k if training_blocks is None else training_blocks
            mask = ops.stop_gradient(inference_mask(logits, self.threshold, blocks))
        elif training or self.inference_mode == "sample":
            mask = self._bernoulli_mask(sigma)
        else:
            mask = inference_mask(logits, self.threshold, self.top_k)
        return mask, sigma, bernoulli_log_prob(logits, ops.stop_gradient(mask))

    def _bernoulli_mask(self, sigma):
        noise = uniform_noise(ops.shape(sigma), sigma.dtype, self.seed_generator)
        return ops.cast(ops.less(noise, sigma), sigma.dtype)

    def _straight_through_mask(self, logits, sigma, training_blocks=None):
        """The hard mask of a straight-through training step, with its gradient.

        `"straight_through"`: hard mask, gradient of sigma. `"gumbel"`
        (binary concrete, Maddison et al. and Jang et al., 2017): the logits
        plus logistic noise `log u - log(1 - u)` are the scores, the hard mask
        is taken from them and the gradient is that of
        `sigmoid(scores / gumbel_temperature)`, so the gates explore
        alternatives to the deterministic ranking.

        With a `top_k` budget the hard mask is the inference rule applied to
        the scores: each example's `training_blocks` (default `top_k`; a
        scalar tensor, so a schedule can lower it during training) blocks of
        largest score. The blocks left out still learn, since the
        straight-through gradient of a block's gate is the loss's sensitivity
        to the block's (computed, then masked) output. Without a budget the
        mask is a Bernoulli(sigma) draw (for `"gumbel"`: `scores > 0`, which
        is one).
        """
        if self.estimator == "gumbel":
            scores = logits + logistic_noise(ops.shape(logits), logits.dtype, self.seed_generator)
            soft = ops.sigmoid(scores / self.gumbel_temperature)
        else:
            scores, soft = logits, sigma
        if self.top_k is not None:
            blocks = self.top_k if training_blocks is None else training_blocks
            hard = top_k_mask(ops.stop_gradient(scores), blocks)
        elif self.estimator == "gumbel":
            hard = ops.cast(ops.greater(ops.stop_gradient(scores), 0.0), soft.dtype)
        else:
            hard = self._bernoulli_mask(sigma)
        return straight_through(hard, soft)

    def compute_output_shape(self, input_shape):
        shape = (input_shape[0], self.num_blocks)
        return shape, shape, (input_shape[0],)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_blocks": self.num_blocks,
                "threshold": self.threshold,
                "inference_mode": self.inference_mode,
                "stop_input_gradient": self.stop_input_gradient,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
                "seed": self.seed,
                "top_k": self.top_k,
            }
        )
        return config


def logistic_noise(shape, dtype, seed_generator):
    """`log u - log(1 - u)`, u ~ U(0, 1) (`uniform_noise`), kept finite.

    The difference of two Gumbel(0, 1) draws: `z + noise > 0` with
    probability `sigmoid(z)`.
    """
    eps = 1e-6
    u = ops.clip(uniform_noise(shape, dtype, seed_generator), eps, 1.0 - eps)
    return ops.log(u) - ops.log1p(-u)


def check_top_k(top_k, num_blocks):
    """`top_k` as an int in [1, num_blocks], or None."""
    if top_k is None:
        return None
    top_k = check_positive_int("top_k", top_k)
    if top_k > num_blocks:
        raise ValueError(
            "Argument `top_k` must be at most `num_blocks`. "
            f"Received: top_k={top_k}, num_blocks={num_blocks}"
        )
    return top_k


def straight_through(hard_mask, sigma):
    """`hard_mask` in value, with the gradient of `sigma` (Bengio et al., 2013).

    `sigma - stop_gradient(sigma)` is exactly 0 for finite sigma, so the
    forward pass uses the hard 0/1 mask unchanged; the backward pass treats
    the mask as if it were sigma, so the loss's sensitivity to each block's
    output (on or off: the masked layers compute every block in training)
    reaches the policy by backprop instead of by REINFORCE.
    """
    return hard_mask + (sigma - ops.stop_gradient(sigma))


def bernoulli_log_prob(logits, mask):
    """Per-example `log pi(u|x)` summed over blocks, stable in the logits.

    Uses `log sigmoid(z) = -softplus(-z)` and `log(1 - sigmoid(z)) =
    -softplus(z)` so saturated probabilities give finite values.
    """
    log_on = -ops.softplus(-logits)
    log_off = -ops.softplus(logits)
    return ops.sum(mask * log_on + (1.0 - mask) * log_off, axis=-1)
