"""What the converter reads off a Keras model, shared by its other modules.

The user's network inside a `CondCompModel` (`unwrap`), its gated layers in
call order (`gated_layers_of`), the input blocks a CondComp op looks at
(`input_block_size`), and `ConversionError` for a model that cannot be
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


def gated_layers_of(network):
    from keras_condcomp.layers import gated_layers

    return gated_layers(network)


def unwrap(model):
    """The user's network: `CondCompModel.network`, or the model itself."""
    return getattr(model, "network", model)
