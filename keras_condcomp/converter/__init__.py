"""Converts a Keras 3 model with gated layers to a TFLite model.

    python tflite/convert.py MODEL.keras -o model.tflite           # custom ops
    python tflite/convert.py MODEL.keras -o dense.tflite --dense   # builtin-op baseline
    python -m keras_condcomp.converter MODEL.keras -o model.tflite # the same command line

From Python: `keras_condcomp.converter.convert(model, dense=False)` returns
the flatbuffer bytes; `verify(model, tflite_bytes, n)` compares it with Keras.

Each `GatedDense` / `GatedConv2D` becomes ONE custom op
(`CondCompGatedDense` / `CondCompGatedConv2D`) with block-major weights;
`--dense` exports the same network with builtin ops, every block on. The
modules, one step each:

    network.py   the user's network, its gated layers, `ConversionError`
    export.py    Keras -> SavedModel -> TFLiteConverter (`convert`): how a
                 layer becomes one custom op (composite functions), the
                 block-major weights, `--dense`
    quantize.py  int8 weights, calibrated activation scales, and
                 `quantized_reference` (what the int8 ops compute, in Keras)
    verify.py    the .tflite against Keras (`--verify`)
    cli.py       the command line (`main`)

Running the result needs the custom-op library: `bash tflite/build_ops.sh`,
then `keras_condcomp.litert.Interpreter("model.tflite")`.
"""

from keras_condcomp.converter.cli import main
from keras_condcomp.converter.export import (
    CONV_OP,
    DENSE_OP,
    FORMAT_VERSION,
    SUPPORTED_ACTIVATIONS,
    activation_name,
    block_major_kernel,
    configure_quantization,
    convert,
    export_saved_model,
    load_keras_model,
    op_counts,
)
from keras_condcomp.converter.network import (
    ConversionError,
    gated_layers_of,
    input_block_size,
    unwrap,
)
from keras_condcomp.converter.quantize import (
    QUANTIZE_MODES,
    calibrate_input_scales,
    quantize_kernel,
    quantized_reference,
)
from keras_condcomp.converter.verify import VERIFY_TOLERANCE, verify, verify_quantized_ops

__all__ = [
    "CONV_OP",
    "DENSE_OP",
    "FORMAT_VERSION",
    "QUANTIZE_MODES",
    "SUPPORTED_ACTIVATIONS",
    "VERIFY_TOLERANCE",
    "ConversionError",
    "activation_name",
    "block_major_kernel",
    "calibrate_input_scales",
    "configure_quantization",
    "convert",
    "export_saved_model",
    "gated_layers_of",
    "input_block_size",
    "load_keras_model",
    "main",
    "op_counts",
    "quantize_kernel",
    "quantized_reference",
    "unwrap",
    "verify",
    "verify_quantized_ops",
]
