"""Gated layers: Dense and Conv2D whose blocks of units are switched per example."""

import numbers
import warnings
import weakref

import keras
from keras import ops

from keras_condcomp import flops, regularizers
from keras_condcomp.policy import BernoulliBlockPolicy
from keras_condcomp.reference import bias_activate_and_mask, block_scale
from keras_condcomp.validation import (
    SavedModelErrorsMixin,
    check_non_negative,
    check_positive_int,
    check_probability,
)

# Attribute under which a gated layer's output carries its block mask, so the
# next gated layer knows which of its input blocks are exact zeros.
BLOCK_MASK_ATTR = "_condcomp_block_mask"

REGULARIZER_WEIGHT_NAMES = (
    "block_balance_weight",
    "example_balance_weight",
    "variance_weight",
)


# Block masks of tensors that take no attributes (JAX arrays and tracers), by
# id, each dropped when its tensor is garbage collected (as Keras keeps
# `_keras_mask` on such tensors).
_BLOCK_MASKS = {}


def get_block_mask(x):
    """Returns the `(batch, blocks)` mask a gated layer attached to `x`, or None."""
    mask = getattr(x, BLOCK_MASK_ATTR, None)
    return _BLOCK_MASKS.get(id(x)) if mask is None else mask


def _attach_block_mask(y, mask):
    try:
        setattr(y, BLOCK_MASK_ATTR, mask)
    except AttributeError:
        try:
            weakref.finalize(y, _BLOCK_MASKS.pop, id(y), None)
        except TypeError:  # neither attributes nor weak references: the mask is optional
            return y
        _BLOCK_MASKS[id(y)] = mask
    return y


def nonfinite_rows_to_nan(inputs, outputs):
    """Sets to NaN every output row whose input row holds a NaN or an Inf.

    The semantics of every inference path for non-finite inputs, written
    here once rather than left to the backend: whether NaN survives
    `relu`, `max` or a skipped block differs between CPU kernels (oneDNN on
    or off), and a masked-off block would otherwise turn it into 0.
    """
    axes = tuple(range(1, len(inputs.shape)))
    finite = ops.all(ops.isfinite(inputs), axis=axes)
    for _ in range(len(outputs.shape) - 1):
        finite = ops.expand_dims(finite, -1)
    return ops.where(finite, outputs, ops.cast(float("nan"), outputs.dtype))


def is_graph_model(layer):
    """Whether `layer` is a Sequential or functional model (a graph of layers).

    Exactly the models `keras.models.clone_model(..., recursive=True)` clones
    layer by layer (keras/src/models/cloning.py). The functional model class
    has no public name, so it is recognised through `keras.src` (tested with
    Keras 3.5-3.15).
    """
    from keras.src.models.functional import Functional

    return isinstance(layer, (keras.Sequential, Functional))


def gated_layers(model):
    """The gated layers inside a Keras model or layer, in call order.

    Walks `model.layers` (topological order for Sequential and functional
    models) depth first; `keras.Layer._flatten_layers` does not keep that
    order, and calibrating or exporting layer by layer needs it.
    """
    found, seen = [], set()

    def visit(layer):
        if id(layer) in seen:
            return
        seen.add(id(layer))
        if isinstance(layer, GatedLayer):
            found.append(layer)
            return
        children = getattr(layer, "layers", None)
        if children is None:
            children = layer._flatten_layers(include_self=False, recursive=False)
        for child in children:
            visit(child)

    visit(model)
    return found


def _check_divisible(name, value, num_blocks):
    """Returns `(value, num_blocks)` as ints; `num_blocks` must divide `value`."""
    value = check_positive_int(name, value)
    num_blocks = check_positive_int("num_blocks", num_blocks)
    if value % num_blocks:
        raise ValueError(
            f"Argument `{name}` must be divisible by `num_blocks`. "
            f"Received: {name}={value}, num_blocks={num_blocks}"
        )
    return value, num_blocks


class GateOutputs:
    """What a gated layer's last call decided, read by `CondCompModel`.

    Attributes:
        mask: `(batch, num_blocks)` 0./1. floats, the blocks computed.
        sigma: `(batch, num_blocks)` block probabilities.
        log_prob: `(batch,)` log pi(mask | x).
        input_active: `(batch,)` fraction of this layer's input units that
            may be non-zero (1 unless the previous gated layer's mask is known).
        macs: `(main, policy)` dense multiply-adds per example of the layer's
            product and of its policy (see `keras_condcomp.flops`).
        regularization: Scalar, the layer's weighted L_b + L_e + L_v on this
            batch (added as a layer loss in training only).
    """

    __slots__ = ("mask", "sigma", "log_prob", "input_active", "macs", "regularization")

    def __init__(self, mask, sigma, log_prob, input_active, macs, regularization):
        self.mask = mask
        self.sigma = sigma
        self.log_prob = log_prob
        self.input_active = input_active
        self.macs = macs
        self.regularization = regularization


class GatedLayer(SavedModelErrorsMixin, keras.layers.Layer):
    """Base of the gated layers: owns the policy and its regularizers.

    Subclasses split their `num_outputs` units into `num_blocks` blocks, call
    `self._gate(policy_input, ...)` to get the block mask and multiply their
    output by it.

    Args:
        num_blocks: Positive integer, number of blocks the units are split into.
        tau: Float in (0, 1], target fraction of active blocks.
        block_balance_weight: Weight of L_b (each block on a fraction tau of
            the time).
        example_balance_weight: Weight of L_e (each example uses a fraction
            tau of the blocks).
        variance_weight: Weight of L_v (rewards sigma varying across examples).
        threshold: Inference rule `sigma > threshold` (see
            `keras_condcomp.calibrate_thresholds` to set it from data).
        top_k: Optional positive integer: at inference each example computes
            exactly its `top_k` blocks of largest sigma (a fixed cost per
            example) instead of `sigma > threshold`. Trained with
            `CondCompModel(estimator="straight_through")` or `"gumbel"`,
            the layer trains with that budget too (tau's share of the blocks
            while a schedule anneals tau from 1, never fewer than `top_k`).
        inference_mode: `"threshold"` (default) or `"sample"`.
        stop_policy_gradient: If `True` (default) the policy does not
            backpropagate into the layers before it.
        policy_kernel_initializer: Initializer of the policy kernel.
        policy_bias_initializer: Initializer of the policy bias.
        seed: Optional integer seed for the policy's sampling.
        scale_by_gate: Boolean. If `True`, each computed block's outputs
            (after the activation) are multiplied by the block's gate value
            sigma, in training and at inference (every path, the TFLite ops
            included), so the policy also learns by backprop through them;
            `CondCompModel(estimator="routing")` needs it. Default `False`:
            computed blocks pass unscaled, as in the paper.

    `tau` and the three weights live in non-trainable variables, saved with the
    model, so callbacks (see `keras_condcomp.callbacks`) can anneal them.
    """

    def __init__(
        self,
        num_blocks,
        tau=0.5,
        block_balance_weight=0.2,
        example_balance_weight=0.5,
        variance_weight=0.5,
        threshold=0.5,
        inference_mode="threshold",
        stop_policy_gradient=True,
        policy_kernel_initializer="glorot_uniform",
        policy_bias_initializer="zeros",
        seed=None,
        top_k=None,
        scale_by_gate=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        num_blocks = check_positive_int("num_blocks", num_blocks)
        check_probability("tau", tau)
        if not isinstance(scale_by_gate, bool):
            raise ValueError(
                "Argument `scale_by_gate` must be a boolean. "
                f"Received: scale_by_gate={scale_by_gate!r}"
            )
        self.scale_by_gate = scale_by_gate
        check_non_negative("block_balance_weight", block_balance_weight)
        check_non_negative("example_balance_weight", example_balance_weight)
        check_non_negative("variance_weight", variance_weight)
        self.num_blocks = num_blocks
        self.initial_tau = float(tau)
        self.initial_regularizer_weights = {
            "block_balance_weight": float(block_balance_weight),
            "example_balance_weight": float(example_balance_weight),
            "variance_weight": float(variance_weight),
        }
        self.seed = seed
        self.policy = BernoulliBlockPolicy(
            num_blocks,
            threshold=threshold,
            inference_mode=inference_mode,
            stop_input_gradient=stop_policy_gradient,
            kernel_initializer=policy_kernel_initializer,
            bias_initializer=policy_bias_initializer,
            seed=seed,
            top_k=top_k,
            name="policy",
        )
        self.gate_outputs = None
        # Set by CondCompModel for the layers it trains (see `_gate`).
        self._trained_by_condcomp = False
        self._warned_plain_training = False

    @property
    def threshold(self):
        return self.policy.threshold

    def _build_gating(self, policy_input_shape):
        self.policy.build(policy_input_shape)
        self.tau = self.add_weight(
            name="tau",
            shape=(),
            initializer=keras.initializers.Constant(self.initial_tau),
            trainable=False,
        )
        self.regularizer_weights = {
            name: self.add_weight(
                name=name,
                shape=(),
                initializer=keras.initializers.Constant(value),
                trainable=False,
            )
            for name, value in self.initial_regularizer_weights.items()
        }

    def _input_active_fraction(self, inputs, num_inputs):
        """Per-example fraction of input units that can be non-zero."""
        batch = ops.shape(inputs)[0]
        input_mask = get_block_mask(inputs)
        if input_mask is None or num_inputs % input_mask.shape[-1] != 0:
            return ops.ones((batch,), dtype=self.compute_dtype), None
        return ops.mean(input_mask, axis=-1), input_mask

    def _gate(self, policy_input, inputs, num_inputs, training):
        if training and not self._trained_by_condcomp and not self._warned_plain_training:
            self._warned_plain_training = True
            warnings.warn(
                f"Gated layer {self.name!r} is called with training=True outside "
                "keras_condcomp.CondCompModel: its policy then learns only from the "
                "L_b/L_e/L_v regularizers, not from the task (no estimator runs). Wrap "
                "the network, `CondCompModel(network)`, and train that.",
                stacklevel=3,
            )
        mask, sigma, log_prob = self.policy(
            policy_input, training=training,
            training_blocks=self._training_blocks() if training else None)
        regularization = self._regularization(sigma)
        if training:
            # A training loss only: evaluation losses (`val_loss`) are the
            # task's, as the model will be deployed.
            self.add_loss(regularization)
        input_active, _ = self._input_active_fraction(inputs, num_inputs)
        macs = flops.layer_multiply_adds(self, inputs)
        self.gate_outputs = GateOutputs(mask, sigma, log_prob, input_active, macs, regularization)
        return mask

    def _training_blocks(self):
        """Blocks per example of a straight-through training step with a `top_k` budget.

        tau's share of the blocks, never fewer than `top_k`: with tau at its
        target k / num_blocks this is the inference budget, and a schedule
        annealing tau from 1 (`GatingScheduler`) starts with every block on.
        """
        if self.policy.top_k is None:
            return None
        blocks = ops.cast(ops.round(ops.cast(self.tau, "float32") * self.num_blocks), "int32")
        return ops.maximum(blocks, self.policy.top_k)

    def _bias_activate_and_mask(self, outputs, mask, inputs):
        """Adds the bias, applies the activation, zeroes the inactive blocks.

        With `scale_by_gate` the active blocks are scaled by their gate values
        (`keras_condcomp.reference.block_scale`). Masking after the activation
        keeps inactive blocks at exactly 0 for any activation, which is what
        lets the next layer skip them. Rows of non-finite inputs come out all
        NaN (`nonfinite_rows_to_nan`).
        """
        scale = block_scale(mask, self.gate_outputs.sigma, self.scale_by_gate)
        outputs = bias_activate_and_mask(outputs, self.bias, self.activation, scale,
                                         self.block_size)
        outputs = nonfinite_rows_to_nan(inputs, outputs)
        return _attach_block_mask(outputs, mask)

    def _regularization(self, sigma):
        sigma = ops.cast(sigma, "float32")
        tau = ops.cast(self.tau, "float32")
        weights = {k: ops.cast(v, "float32") for k, v in self.regularizer_weights.items()}
        return (
            weights["block_balance_weight"] * regularizers.block_balance_loss(sigma, tau)
            + weights["example_balance_weight"] * regularizers.example_balance_loss(sigma, tau)
            + weights["variance_weight"] * regularizers.variance_loss(sigma)
        )

    def set_gating(self, tau=None, **weights):
        """Sets tau and/or regularizer weights (e.g. from a schedule callback)."""
        unknown = set(weights) - set(REGULARIZER_WEIGHT_NAMES)
        if unknown:
            raise ValueError(
                f"Unknown regularizer weight names {sorted(unknown)}; expected "
                f"some of {REGULARIZER_WEIGHT_NAMES}. Received: {weights}"
            )
        if tau is not None:
            check_probability("tau", tau)
            self.tau.assign(tau)
        for name, value in weights.items():
            check_non_negative(name, value)
            self.regularizer_weights[name].assign(value)

    def gating_state(self):
        """Current tau and regularizer weights as Python floats."""
        state = {"tau": float(ops.convert_to_numpy(self.tau))}
        for name, var in self.regularizer_weights.items():
            state[name] = float(ops.convert_to_numpy(var))
        return state

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_blocks": self.num_blocks,
                "tau": self.initial_tau,
                **self.initial_regularizer_weights,
                "threshold": self.policy.threshold,
                "inference_mode": self.policy.inference_mode,
                "stop_policy_gradient": self.policy.stop_input_gradient,
                "policy_kernel_initializer": keras.initializers.serialize(
                    self.policy.kernel_initializer
                ),
                "policy_bias_initializer": keras.initializers.serialize(
                    self.policy.bias_initializer
                ),
                "seed": self.seed,
                "top_k": self.policy.top_k,
                "scale_by_gate": self.scale_by_gate,
            }
        )
        return config


def _dense_args_config(layer):
    return {
        "activation": keras.activations.serialize(layer.activation),
        "use_bias": layer.use_bias,
        "kernel_initializer": keras.initializers.serialize(layer.kernel_initializer),
        "bias_initializer": keras.initializers.serialize(layer.bias_initializer),
        "kernel_regularizer": keras.regularizers.serialize(layer.kernel_regularizer),
        "bias_regularizer": keras.regularizers.serialize(layer.bias_regularizer),
        "kernel_constraint": keras.constraints.serialize(layer.kernel_constraint),
        "bias_constraint": keras.constraints.serialize(layer.bias_constraint),
    }


def _set_dense_args(layer, activation, use_bias, kernel_initializer, bias_initializer,
                    kernel_regularizer, bias_regularizer, kernel_constraint, bias_constraint):
    layer.activation = keras.activations.get(activation)
    layer.use_bias = bool(use_bias)
    layer.kernel_initializer = keras.initializers.get(kernel_initializer)
    layer.bias_initializer = keras.initializers.get(bias_initializer)
    layer.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
    layer.bias_regularizer = keras.regularizers.get(bias_regularizer)
    layer.kernel_constraint = keras.constraints.get(kernel_constraint)
    layer.bias_constraint = keras.constraints.get(bias_constraint)


def _add_kernel_and_bias(layer, kernel_shape, num_outputs):
    layer.kernel = layer.add_weight(
        name="kernel",
        shape=kernel_shape,
        initializer=layer.kernel_initializer,
        regularizer=layer.kernel_regularizer,
        constraint=layer.kernel_constraint,
    )
    layer.bias = None
    if layer.use_bias:
        layer.bias = layer.add_weight(
            name="bias",
            shape=(num_outputs,),
            initializer=layer.bias_initializer,
            regularizer=layer.bias_regularizer,
            constraint=layer.bias_constraint,
        )


@keras.saving.register_keras_serializable(package="keras_condcomp")
class GatedDense(GatedLayer):
    """Densely-connected layer whose output units are gated in blocks.

    The `units` outputs are split into `num_blocks` contiguous blocks. A
    `BernoulliBlockPolicy` reading the layer input decides per example which
    blocks are computed; the others output exactly zero. During training blocks
    are sampled (train the model with `keras_condcomp.CondCompModel` so the
    policy learns by REINFORCE); at inference `sigma > threshold` decides.

    The layer adds the regularizers L_b, L_e and L_v (see
    `keras_condcomp.regularizers`) as layer losses, and attaches its block mask
    to its output (`keras_condcomp.layers.get_block_mask`) so the next gated
    layer and the sparse kernels can skip the zero input blocks.

    Args:
        units: Positive integer, dimensionality of the output space.
        num_blocks: Positive integer dividing `units`.
        activation: Activation function (default: none).
        use_bias: Boolean, whether the layer uses a bias vector.
        kernel_initializer, bias_initializer, kernel_regularizer,
        bias_regularizer, activity_regularizer, kernel_constraint,
        bias_constraint: As in `keras.layers.Dense`.
        tau, block_balance_weight, example_balance_weight, variance_weight,
        threshold, inference_mode, stop_policy_gradient,
        policy_kernel_initializer, policy_bias_initializer, seed, top_k,
        scale_by_gate: Gating
            arguments, see `GatedLayer`.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: Tensor of shape `(batch_size, input_dim)`.
        training: Python boolean: sample the gates (`True`) or apply the
            inference rule.

    Input shape:
        2D tensor with shape `(batch_size, input_dim)`.

    Output shape:
        2D tensor with shape `(batch_size, units)`.

    Example:

    >>> model = keras_condcomp.CondCompModel(keras.Sequential([
    ...     keras.Input((64,)),
    ...     GatedDense(128, num_blocks=8, activation="relu", tau=0.25),
    ...     keras.layers.Dense(10, activation="softmax"),
    ... ]))
    >>> model.compile("adam", "sparse_categorical_crossentropy")
    """

    def __init__(
        self,
        units,
        num_blocks,
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        **kwargs,
    ):
        units, num_blocks = _check_divisible("units", units, num_blocks)
        super().__init__(num_blocks, activity_regularizer=activity_regularizer, **kwargs)
        self.units = units
        self.block_size = units // num_blocks
        _set_dense_args(self, activation, use_bias, kernel_initializer, bias_initializer,
                        kernel_regularizer, bias_regularizer, kernel_constraint, bias_constraint)
        self.input_spec = keras.layers.InputSpec(ndim=2)

    def build(self, input_shape):
        if len(input_shape) != 2:
            raise ValueError(
                f"GatedDense expects inputs of rank 2 (batch_size, input_dim). "
                f"Received: input_shape={tuple(input_shape)}"
            )
        input_dim = input_shape[-1]
        if input_dim is None:
            raise ValueError(
                "The last dimension of the GatedDense input must be defined. "
                f"Received: input_shape={tuple(input_shape)}"
            )
        self.input_dim = int(input_dim)
        _add_kernel_and_bias(self, (self.input_dim, self.units), self.units)
        self._build_gating((input_shape[0], self.input_dim))
        self.input_spec = keras.layers.InputSpec(ndim=2, axes={-1: self.input_dim})

    def call(self, inputs, training=None):
        mask = self._gate(inputs, inputs, self.input_dim, training)
        return self._bias_activate_and_mask(ops.matmul(inputs, self.kernel), mask, inputs)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.units)

    def get_config(self):
        config = super().get_config()
        config.update({"units": self.units, **_dense_args_config(self)})
        return config


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _normalize_pair(name, value):
    if _is_int(value):
        value = (value, value)
    value = tuple(value) if isinstance(value, (list, tuple)) else value
    if (
        not isinstance(value, tuple)
        or len(value) != 2
        or not all(_is_int(v) and v >= 1 for v in value)
    ):
        raise ValueError(
            f"Argument `{name}` must be a positive integer or a tuple of 2 positive "
            f"integers. Received: {name}={value!r}"
        )
    return tuple(int(v) for v in value)


def _conv_output_length(size, kernel, stride, dilation, padding):
    if size is None:
        return None
    if padding == "valid":
        size = size - (kernel - 1) * dilation
    return max(0, -(-size // stride))


@keras.saving.register_keras_serializable(package="keras_condcomp")
class GatedConv2D(GatedLayer):
    """2D convolution whose output channels are gated in blocks.

    The `filters` output channels are split into `num_blocks` contiguous
    blocks. The policy reads the input averaged over its spatial dimensions
    (a `(batch, channels)` summary) and decides per example which channel
    blocks are computed; the others are exactly zero at every position.
    Channels-last only.

    Args:
        filters: Positive integer, number of output channels.
        kernel_size: Integer or tuple of 2 integers, the convolution window.
        num_blocks: Positive integer dividing `filters`.
        strides: Integer or tuple of 2 integers (default 1).
        padding: `"valid"` or `"same"` (case-insensitive).
        dilation_rate: Integer or tuple of 2 integers (default 1).
        activation, use_bias, kernel_initializer, bias_initializer,
        kernel_regularizer, bias_regularizer, activity_regularizer,
        kernel_constraint, bias_constraint: As in `keras.layers.Conv2D`.
        tau, block_balance_weight, example_balance_weight, variance_weight,
        threshold, inference_mode, stop_policy_gradient,
        policy_kernel_initializer, policy_bias_initializer, seed, top_k,
        scale_by_gate: Gating
            arguments, see `GatedLayer`.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: Tensor of shape `(batch_size, height, width, channels)`.
        training: Python boolean: sample the gates (`True`) or apply the
            inference rule.

    Input shape:
        4D tensor with shape `(batch_size, height, width, channels)`.

    Output shape:
        4D tensor with shape `(batch_size, new_height, new_width, filters)`.

    Example:

    >>> layer = GatedConv2D(32, 3, num_blocks=4, padding="same", activation="relu")
    >>> layer(np.zeros((2, 8, 8, 3), "float32")).shape
    TensorShape([2, 8, 8, 32])
    """

    def __init__(
        self,
        filters,
        kernel_size,
        num_blocks,
        strides=(1, 1),
        padding="valid",
        dilation_rate=(1, 1),
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        data_format="channels_last",
        **kwargs,
    ):
        filters, num_blocks = _check_divisible("filters", filters, num_blocks)
        if data_format != "channels_last":
            raise ValueError(
                "GatedConv2D supports only data_format='channels_last'. "
                f"Received: data_format={data_format!r}"
            )
        padding_lower = padding.lower() if isinstance(padding, str) else padding
        if padding_lower not in ("valid", "same"):
            raise ValueError(
                "Argument `padding` must be 'valid' or 'same'. "
                f"Received: padding={padding!r}"
            )
        super().__init__(num_blocks, activity_regularizer=activity_regularizer, **kwargs)
        self.filters = filters
        self.block_size = filters // num_blocks
        self.kernel_size = _normalize_pair("kernel_size", kernel_size)
        self.strides = _normalize_pair("strides", strides)
        self.dilation_rate = _normalize_pair("dilation_rate", dilation_rate)
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(
                "`strides > 1` is not supported together with `dilation_rate > 1`. "
                f"Received: strides={self.strides}, dilation_rate={self.dilation_rate}"
            )
        self.padding = padding_lower
        self.data_format = data_format
        _set_dense_args(self, activation, use_bias, kernel_initializer, bias_initializer,
                        kernel_regularizer, bias_regularizer, kernel_constraint, bias_constraint)
        self.input_spec = keras.layers.InputSpec(ndim=4)

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                "GatedConv2D expects inputs of rank 4 (batch_size, height, width, "
                f"channels). Received: input_shape={tuple(input_shape)}"
            )
        channels = input_shape[-1]
        if channels is None:
            raise ValueError(
                "The channel dimension of the GatedConv2D input must be defined. "
                f"Received: input_shape={tuple(input_shape)}"
            )
        self.input_channels = int(channels)
        _add_kernel_and_bias(
            self, self.kernel_size + (self.input_channels, self.filters), self.filters
        )
        self._build_gating((input_shape[0], self.input_channels))
        self.input_spec = keras.layers.InputSpec(ndim=4, axes={-1: self.input_channels})

    def _check_output_not_empty(self, input_shape):
        output_shape = self.compute_output_shape(tuple(input_shape))
        if any(size == 0 for size in output_shape[1:3]):
            raise ValueError(
                f"Layer {self.name!r}: an input of shape {tuple(input_shape)} resulted in an "
                f"empty output of shape {tuple(output_shape)} (kernel_size={self.kernel_size}, "
                f"strides={self.strides}, dilation_rate={self.dilation_rate}, "
                f"padding={self.padding!r}); the input must be at least as large as the "
                "dilated kernel, or use padding='same'."
            )

    def call(self, inputs, training=None):
        self._check_output_not_empty(inputs.shape)
        summary = ops.mean(inputs, axis=(1, 2))
        mask = self._gate(summary, inputs, self.input_channels, training)
        outputs = ops.conv(
            inputs,
            self.kernel,
            strides=self.strides,
            padding=self.padding,
            data_format=self.data_format,
            dilation_rate=self.dilation_rate,
        )
        return self._bias_activate_and_mask(outputs, mask, inputs)

    def compute_output_shape(self, input_shape):
        spatial = [
            _conv_output_length(size, k, s, d, self.padding)
            for size, k, s, d in zip(
                input_shape[1:3], self.kernel_size, self.strides, self.dilation_rate
            )
        ]
        return (input_shape[0], *spatial, self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "kernel_size": self.kernel_size,
                "strides": self.strides,
                "padding": self.padding,
                "dilation_rate": self.dilation_rate,
                "data_format": self.data_format,
                **_dense_args_config(self),
            }
        )
        return config
