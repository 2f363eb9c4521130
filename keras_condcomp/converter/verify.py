"""Checks a converted model against the Keras model it came from (`--verify`).

`verify` runs the .tflite and Keras (every block on for `--dense`; the int8
reference for quantized ops) on random inputs; `verify_quantized_ops` checks
each int8 CondComp op alone, on the input it received.
"""

import contextlib

from keras_condcomp.converter.export import CONV_OP, DENSE_OP
from keras_condcomp.converter.network import (
    ConversionError,
    folded_head,
    gated_layers_of,
    unwrap,
)
from keras_condcomp.converter.quantize import _quantized_gated_layer, quantized_reference

VERIFY_TOLERANCE = 1e-5


def verify(model, tflite_bytes, num_examples, dense=False, seed=0, quantized=False,
           input_scales=None):
    """Max abs difference between the .tflite and Keras deterministic inference.

    Inputs are standard-normal; batch 1 and batch `num_examples` are both run
    (the TFLite input is resized). For `dense=True` the reference is the
    network with every block forced on (what the builtin-op export computes);
    for `quantized=True` it is `quantized_reference` (the int8 CondComp ops;
    pass the `input_scales` the model was converted with for "int8").
    """
    import numpy as np

    from keras_condcomp import litert

    network = unwrap(model)
    shape = tuple(network.inputs[0].shape[1:])
    x = np.random.default_rng(seed).standard_normal((num_examples, *shape)).astype("float32")
    interpreter = litert.Interpreter(model_content=tflite_bytes, custom_ops=not dense)
    if quantized:
        expected = quantized_reference(network, x, input_scales)[0]
    else:
        with _all_blocks_on(network) if dense else contextlib.nullcontext():
            expected = np.asarray(network(x, training=False))
    worst = 0.0
    for batch in (x[:1], x):
        got = interpreter.predict(batch)
        worst = max(worst, float(np.max(np.abs(got - expected[: len(batch)]))))
    return worst


def verify_quantized_ops(model, tflite_bytes, num_examples, seed=0, input_scales=None):
    """Max abs difference of each int8 CondComp op from its reference, on the op's own input.

    The converter quantizes the builtin ops around the CondComp ops (e.g. an
    output `Dense` becomes a dynamic-range FULLY_CONNECTED), which no Keras
    reference reproduces bit for bit; so each CondComp op is checked alone:
    the tensor it received in the .tflite run goes through
    `_quantized_gated_layer` of its layer (what the op computes) and the
    result (times the output layer folded into the op, if any) is compared
    with the tensor the op wrote. Inputs are standard
    normal, batch `num_examples`. Returns the worst difference over the ops.
    """
    import numpy as np

    from keras_condcomp import litert

    network = unwrap(model)
    layers = gated_layers_of(network)
    shape = tuple(network.inputs[0].shape[1:])
    x = np.random.default_rng(seed).standard_normal((num_examples, *shape)).astype("float32")
    interpreter = litert.Interpreter(model_content=tflite_bytes,
                                     experimental_preserve_all_tensors=True)
    interpreter.predict(x)
    ops = [op for op in interpreter._get_ops_details() if op["op_name"] in (DENSE_OP, CONV_OP)]
    if len(ops) != len(layers):
        raise ConversionError(f"The model has {len(ops)} CondComp ops for {len(layers)} gated "
                              "layers; it was not converted from this Keras model.")
    worst = 0.0
    for layer, op in zip(layers, ops):
        got = interpreter.get_tensor(int(op["outputs"][0]))
        op_input = interpreter.get_tensor(int(op["inputs"][0]))
        scale = None if input_scales is None else input_scales[layer.name]
        expected = np.asarray(_quantized_gated_layer(layer, op_input, scale)[0])
        head = folded_head(network, layer)
        if head is not None:  # the op's output is the folded layer's product (float32)
            expected = expected @ np.asarray(head.kernel)
            if head.use_bias:
                expected = expected + np.asarray(head.bias)
        worst = max(worst, float(np.max(np.abs(got - expected))))
    return worst


@contextlib.contextmanager
def _all_blocks_on(network):
    """Gated layers of `network` with threshold 0 and no top-k: every block on, as in `--dense`."""
    layers = gated_layers_of(network)
    saved = [(layer, layer.policy.threshold, layer.policy.top_k) for layer in layers]
    try:
        for layer in layers:
            layer.policy.threshold = 0.0
            layer.policy.top_k = None
        yield
    finally:
        for layer, threshold, top_k in saved:
            layer.policy.threshold = threshold
            layer.policy.top_k = top_k
