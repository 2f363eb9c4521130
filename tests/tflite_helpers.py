"""Shared helpers for the TFLite tests: the converter, the op library, editing flatbuffers."""

import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REQUIRE_ENV = "CONDCOMP_REQUIRE_TFLITE_OPS"


def load_convert():
    """The converter package, `keras_condcomp.converter` (its CLI is tflite/convert.py)."""
    from keras_condcomp import converter

    return converter


def require_ops_library():
    """Skips (or, with $CONDCOMP_REQUIRE_TFLITE_OPS=1 as in CI, fails) without the library."""
    from keras_condcomp import litert

    if litert.library_available():
        return
    msg = (
        "CondComp TFLite op library not built (looked for "
        f"{' or '.join(litert._candidates())}); run `bash tflite/build_ops.sh`"
    )
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(msg + f" (${REQUIRE_ENV}=1 requires it)")
    pytest.skip(msg)


def model_t(data):
    from tensorflow.lite.python import schema_py_generated as schema

    return schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(data, 0))


def pack(model):
    import flatbuffers

    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def custom_ops(model, name):
    """(subgraph, operator) pairs of custom op `name` in a ModelT."""
    out = []
    for sub in model.subgraphs:
        for op in sub.operators:
            code = model.operatorCodes[op.opcodeIndex]
            if code.customCode is not None and code.customCode.decode() == name:
                out.append((sub, op))
    return out


def tensor_value(model, sub, index):
    import numpy as np

    t = sub.tensors[index]
    buf = model.buffers[t.buffer].data
    return np.frombuffer(bytes(bytearray(buf)), dtype=np.float32).reshape(t.shape)
