"""What the converter reads off a Keras model, shared by its other modules.

The user's network inside a `CondCompModel` (`unwrap`), its gated layers in
call order (`gated_layers_of`), the input blocks a CondComp op looks at
(`input_block_size`), the output layer folded into a gated dense op
(`folded_head`), and `ConversionError` for a model that cannot be
converted. Export, quantization and verification all use these; with them
here, those modules import one another in one direction only
(quantize <- export <- verify <- cli).
"""

import keras


class ConversionError(ValueError):
    """The model cannot be converted (unsupported layer configuration)."""


def require_tensorflow_backend():
    """The converter traces Keras layers into TensorFlow graphs: only on that backend.

    A model trained on JAX or PyTorch and saved as .keras converts in a
    process on the TensorFlow backend (`python tflite/convert.py` is one).
    """
    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise RuntimeError(
            "The TFLite converter needs the Keras TensorFlow backend; this process uses "
            f"KERAS_BACKEND={backend!r} (fixed when Keras was imported). Save the model "
            "(`model.save('m.keras')`) and convert it with `python tflite/convert.py m.keras "
            "-o m.tflite`, or in a process started with KERAS_BACKEND=tensorflow."
        )


def _producer(layer):
    """The layer producing `layer`'s (first) input in a functional graph, or None."""
    try:
        node = layer._inbound_nodes[0]
        tensor = node.input_tensors[0]
        return tensor._keras_history.operation
    except (AttributeError, IndexError, TypeError):
        return None


def input_block_size(layer, num_inputs):
    """Granularity at which the kernel looks for all-zero input blocks.

    When the input comes straight from another gated layer, its blocks are the
    ones that can be exactly zero; otherwise 0 (= the whole input, skipped only
    if it is all zero). Any divisor is correct: the kernel checks the data, this
    only sets how finely it looks.
    """
    from keras_condcomp.layers import GatedLayer

    prev = _producer(layer)
    if isinstance(prev, GatedLayer) and num_inputs % prev.block_size == 0:
        if type(prev).__name__ == type(layer).__name__:
            return int(prev.block_size)
    return 0


def _only_reader(network, layer):
    """The one layer that reads `layer`'s output in `network`'s graph, or None.

    None also when `layer` is not called exactly once there, has several
    outputs, or its output is a model output. A Sequential's layers each
    feed the next; a functional model's graph is read from its nodes by
    depth (`_nodes_by_depth`, private in Keras 3; tested with the versions
    docs/install.md pins: there is no public list of a model's nodes).
    """
    import keras

    if isinstance(network, keras.Sequential):
        layers = network.layers
        at = layers.index(layer) if layer in layers else len(layers)
        return layers[at + 1] if at + 1 < len(layers) else None
    by_depth = getattr(network, "_nodes_by_depth", None)
    if not by_depth:
        return None
    nodes = [node for depth in by_depth.values() for node in depth]
    own = [node for node in nodes if node.operation is layer]
    if len(own) != 1 or len(own[0].output_tensors) != 1:
        return None
    tensor = own[0].output_tensors[0]
    if any(t is tensor for t in network.outputs):
        return None
    readers = [node for node in nodes if any(t is tensor for t in node.input_tensors)]
    if len(readers) != 1 or len(readers[0].input_tensors) != 1:
        return None
    reader = readers[0].operation
    return reader if sum(node.operation is reader for node in nodes) == 1 else None


def folded_head(network, layer):
    """The `keras.layers.Dense` folded into `layer`'s CondCompGatedDense op, or None.

    A GatedDense of `network` (not of a model nested in it) whose output
    feeds one plain `Dense` and nothing else (not another layer, not a
    model output) hands that Dense's product to its op: the op reads only
    the Dense's weight rows of the blocks that are on (a quarter of them
    with a top-4-of-16 budget), and the model saves the separate
    FULLY_CONNECTED op and its hand-over. The Dense's activation stays
    outside, as a builtin op.
    """
    import keras

    from keras_condcomp.layers import GatedDense

    if not isinstance(layer, GatedDense):
        return None
    head = _only_reader(network, layer)
    if type(head) is not keras.layers.Dense:
        return None
    if len(layer.output.shape) != 2:
        return None
    if head.quantization_mode is not None or getattr(head, "lora_enabled", False):
        return None
    if keras.backend.standardize_dtype(head.compute_dtype) != "float32":
        return None
    return head


def gated_layers_of(network):
    from keras_condcomp.layers import gated_layers

    return gated_layers(network)


def unwrap(model):
    """The user's network: `CondCompModel.network`, or the model itself."""
    return getattr(model, "network", model)
