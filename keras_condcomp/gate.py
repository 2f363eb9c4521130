"""Gate an existing Keras model: its Dense / Conv2D layers become gated layers.

`gate(model, ...)` follows tfmot's `prune_low_magnitude` pattern: it takes a
trained model and returns a new one of the same graph in which the chosen
layers are `GatedDense` / `GatedConv2D` carrying the original kernel, bias
and activation. With every block on, the result computes exactly what the
original did; train it with `keras_condcomp.CondCompModel` (see
`freeze_network` for a policy warm-up with the network held fixed).
"""

import weakref

import keras

from keras_condcomp.layers import GatedConv2D, GatedDense, GatedLayer, is_graph_model
from keras_condcomp.validation import check_positive_int

# Variables frozen by `freeze_network`, per model. Kept outside the model: a
# list of variables set as a model attribute would be tracked (and saved) as
# the model's own variables.
_FROZEN = weakref.WeakKeyDictionary()

# Arguments of `gate` passed on to every gated layer (see `GatedLayer`).
GATING_ARGUMENTS = (
    "tau",
    "block_balance_weight",
    "example_balance_weight",
    "variance_weight",
    "threshold",
    "stop_policy_gradient",
    "policy_kernel_initializer",
    "policy_bias_initializer",
    "top_k",
    "scale_by_gate",
)


class GatingReport:
    """What `gate` did: the names of the gated layers and why others were left alone.

    Attributes:
        gated: Names of the layers replaced by gated layers, in model order;
            a layer of a nested sub-model is named "submodel/layer".
        skipped: `{layer name: reason}` for Dense/Conv2D layers left as they were.
    """

    def __init__(self):
        self.gated = []
        self.skipped = {}

    def __repr__(self):
        return f"GatingReport(gated={self.gated}, skipped={self.skipped})"


def _output_layer_names(model):
    names = set()
    for tensor in model.outputs:
        history = getattr(tensor, "_keras_history", None)
        if history is not None:
            names.add(history.operation.name)
    return names


def _why_not_gateable(layer, num_blocks):
    """None if `layer` can become a gated layer, else the reason it cannot."""
    if type(layer) is keras.layers.Dense:
        if len(layer.input.shape) != 2:
            return f"input of rank {len(layer.input.shape)} (GatedDense needs rank 2)"
        if layer.units % num_blocks:
            return f"units={layer.units} not divisible by num_blocks={num_blocks}"
    elif type(layer) is keras.layers.Conv2D:
        if layer.data_format != "channels_last":
            return f"data_format={layer.data_format!r} (GatedConv2D needs channels_last)"
        if layer.groups != 1:
            return f"groups={layer.groups} (GatedConv2D needs groups=1)"
        if str(layer.padding).lower() not in ("valid", "same"):
            return f"padding={layer.padding!r}"
        if max(layer.strides) > 1 and max(layer.dilation_rate) > 1:
            return "strides > 1 together with dilation_rate > 1"
        if layer.filters % num_blocks:
            return f"filters={layer.filters} not divisible by num_blocks={num_blocks}"
    else:
        return f"{type(layer).__name__} is not Dense or Conv2D"
    if getattr(layer, "lora_enabled", False):
        return "LoRA-enabled layer"
    if getattr(layer, "quantization_mode", None):
        return f"quantized layer (quantization_mode={layer.quantization_mode!r})"
    return None


def _gated_counterpart(layer, num_blocks, gating, seed):
    config = layer.get_config()
    common = {
        key: config[key]
        for key in (
            "activation", "use_bias", "kernel_initializer", "bias_initializer",
            "kernel_regularizer", "bias_regularizer", "activity_regularizer",
            "kernel_constraint", "bias_constraint",
        )
        if key in config
    }
    common.update(gating)
    common.update(name=layer.name, dtype=layer.dtype_policy, seed=seed)
    if isinstance(layer, keras.layers.Dense):
        return GatedDense(layer.units, num_blocks, **common)
    return GatedConv2D(
        layer.filters,
        layer.kernel_size,
        num_blocks,
        strides=layer.strides,
        padding=layer.padding,
        dilation_rate=layer.dilation_rate,
        **common,
    )


def _walk(model, is_output_model, prefix=""):
    """`(path, layer, is_output_layer)` for every layer of `model`, nested models included.

    `path` is the layer name, prefixed by the names of the nested models it
    sits in ("backbone/hidden_1"). A layer is an output layer if it produces
    an output of the model given to `gate` (directly, or as the last layer of
    a nested model that does).
    """
    outputs = _output_layer_names(model) if is_output_model else set()
    for layer in model.layers:
        path = prefix + layer.name
        if is_graph_model(layer):
            yield from _walk(layer, layer.name in outputs, path + "/")
        else:
            yield path, layer, layer.name in outputs


def _select(layers, model, num_blocks, gate_output_layer):
    """`(to_gate, report)`: the Dense/Conv2D layers to gate (by id) and the report."""
    report = GatingReport()
    candidates = [
        (path, layer, is_output) for path, layer, is_output in _walk(model, True)
        if isinstance(layer, (keras.layers.Dense, keras.layers.Conv2D))
        and not isinstance(layer, GatedLayer)
    ]
    names = {path for path, _, _ in candidates} | {layer.name for _, layer, _ in candidates}
    if layers is None:
        chosen = lambda path, layer: True  # noqa: E731
    elif callable(layers):
        chosen = lambda path, layer: layers(layer)  # noqa: E731
    elif isinstance(layers, (list, tuple, set)) and all(isinstance(n, str) for n in layers):
        unknown = sorted(set(layers) - names)
        if unknown:
            raise ValueError(
                "Argument `layers` names layers that are not Dense/Conv2D layers of "
                f"{model.name!r}: {unknown}. Candidates: {sorted(names)}. "
                f"Received: layers={layers!r}"
            )
        wanted = set(layers)
        chosen = lambda path, layer: path in wanted or layer.name in wanted  # noqa: E731
    else:
        raise ValueError(
            "Argument `layers` must be None, a list of layer names or a callable "
            f"`fn(layer) -> bool`. Received: layers={layers!r}"
        )
    to_gate = {}
    for path, layer, is_output in candidates:
        if not chosen(path, layer):
            continue
        if is_output and not gate_output_layer:
            report.skipped[path] = "output layer (pass gate_output_layer=True to gate it)"
            continue
        reason = _why_not_gateable(layer, num_blocks)
        if reason is None:
            to_gate[id(layer)] = len(report.gated)
            report.gated.append(path)
        else:
            report.skipped[path] = reason
    return to_gate, report


def _copy_weights(old_model, new_model, to_gate):
    """Copies every weight of `old_model` into its clone, nested models included."""
    for old in old_model.layers:
        if isinstance(old, keras.layers.InputLayer):
            continue
        new = new_model.get_layer(old.name)
        if id(old) in to_gate:
            # Copies of the values: on JAX an assigned array is shared, and
            # fitting the gated model (which donates its state's buffers)
            # would delete the original's weights, a teacher's say.
            new.kernel.assign(keras.ops.convert_to_numpy(old.kernel))
            if old.bias is not None:
                new.bias.assign(keras.ops.convert_to_numpy(old.bias))
        elif is_graph_model(old):
            _copy_weights(old, new, to_gate)
        else:
            new.set_weights(old.get_weights())


def gate(model, num_blocks, layers=None, gate_output_layer=False, seed=None,
         return_report=False, **gating):
    """Returns a copy of `model` whose Dense/Conv2D layers are gated.

    The chosen `keras.layers.Dense` (rank-2 input) and `keras.layers.Conv2D`
    layers become `GatedDense` / `GatedConv2D` with the original kernel,
    bias, activation, regularizers and constraints; every other layer is
    cloned with its weights; nested Sequential and functional sub-models are
    walked too (their layers are reported as "submodel/layer"). The original
    model is not changed. Layers that
    cannot be gated (units or filters not divisible by `num_blocks`, rank > 2
    inputs, grouped or channels-first convolutions, LoRA or quantized layers)
    and the output layer (unless `gate_output_layer=True`) are left as they
    are and listed in the report.

    Args:
        model: A built `keras.Sequential` or functional `keras.Model`.
        num_blocks: Positive integer, blocks per gated layer.
        layers: Which layers to gate: `None` (every Dense/Conv2D that can
            be), a list of layer names (or "submodel/layer" paths), or
            `fn(layer) -> bool`.
        gate_output_layer: Boolean, also gate the layer(s) producing the
            model outputs (off by default: a gated classifier layer would
            zero whole groups of logits).
        seed: Optional integer; gated layer `i` samples with seed `seed + i`.
        return_report: If `True`, return `(model, GatingReport)`.
        **gating: Gating arguments of every gated layer (`tau`,
            `block_balance_weight`, `example_balance_weight`,
            `variance_weight`, `threshold`, `stop_policy_gradient`,
            `policy_kernel_initializer`, `policy_bias_initializer`, `top_k`,
            `scale_by_gate`).

    Returns:
        The gated model (a `keras.Sequential` or functional model like the
        input), or `(model, report)` with `return_report=True`.

    Example:

    >>> dense = keras.Sequential([keras.Input((784,)),
    ...     keras.layers.Dense(1024, activation="relu"),
    ...     keras.layers.Dense(1024, activation="relu"),
    ...     keras.layers.Dense(10, activation="softmax")])
    >>> dense.fit(x, y)
    >>> network = keras_condcomp.gate(dense, num_blocks=16, tau=0.25)
    >>> model = keras_condcomp.CondCompModel(network)
    """
    if not isinstance(model, keras.Model):
        raise ValueError(
            f"Argument `model` must be a keras.Model (Sequential or functional). "
            f"Received: model={model!r}"
        )
    if not model.built or not model.inputs:
        raise ValueError(
            "Argument `model` must be built (call it on data or give it a "
            f"keras.Input) so its layers' input shapes are known. Received: model={model.name!r}"
        )
    num_blocks = check_positive_int("num_blocks", num_blocks)
    unknown = sorted(set(gating) - set(GATING_ARGUMENTS))
    if unknown:
        raise ValueError(
            f"Unknown gating arguments {unknown}; expected some of {GATING_ARGUMENTS}."
        )
    if seed is not None:
        seed = check_positive_int("seed", seed + 1) - 1
    to_gate, report = _select(layers, model, num_blocks, gate_output_layer)

    def clone(layer):
        if id(layer) in to_gate:
            layer_seed = None if seed is None else seed + to_gate[id(layer)]
            return _gated_counterpart(layer, num_blocks, gating, layer_seed)
        return layer.__class__.from_config(layer.get_config())

    try:
        gated = keras.models.clone_model(model, clone_function=clone, recursive=True)
    except Exception as error:  # noqa: BLE001 - re-raised with the model named.
        raise ValueError(
            f"Could not clone {model.name!r} layer by layer ({type(error).__name__}: "
            f"{error}). `gate` supports Sequential and functional models of "
            "standard or serializable layers."
        ) from error
    _copy_weights(model, gated, to_gate)
    return (gated, report) if return_report else gated


def freeze_network(model, frozen=True):
    """Freezes (or unfreezes) every trainable weight of `model` except the gate policies.

    For a policy warm-up on a trained network: with `frozen=True` only the
    `BernoulliBlockPolicy` weights of the gated layers stay trainable, so
    `CondCompModel.fit` learns which blocks to compute without moving the
    network. `frozen=False` makes trainable again exactly the weights this
    froze. Compile again after calling it (Keras fixes the trainable
    variables when it builds the train function).

    Args:
        model: A Keras model or layer containing gated layers.
        frozen: Boolean.
    """
    if frozen:
        policy_vars = set()
        for layer in model._flatten_layers(include_self=True, recursive=True):
            if isinstance(layer, GatedLayer):
                policy_vars.update(id(v) for v in layer.policy.trainable_variables)
        to_freeze = [v for v in model.trainable_variables if id(v) not in policy_vars]
        for variable in to_freeze:
            variable.trainable = False
        _FROZEN.setdefault(model, []).extend(to_freeze)
    else:
        for variable in _FROZEN.pop(model, []):
            variable.trainable = True
