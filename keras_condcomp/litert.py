"""Runs converted CondComp `.tflite` models with the custom ops registered.

The custom ops (`CondCompGatedDense`, `CondCompGatedConv2D`) live in a native
library built by `bash tflite/build_ops.sh`
(`build/tflite_ops/libcondcomp_tflite_ops.so`). It is loaded lazily, the first
time an interpreter needs it, so importing and training with
`keras_condcomp` never requires it.

    from keras_condcomp.litert import Interpreter
    interp = Interpreter("model.tflite", num_threads=2)
    y = interp.predict(x)              # resizes the batch dimension as needed

The interpreter is TensorFlow's `tf.lite.Interpreter` (its
`InterpreterWithCustomOps` subclass; XNNPACK runs the builtin ops); the ops
are added through its `custom_op_registerers` hook, which hands the library a
`tflite::MutableOpResolver*` (see tflite/ops/condcomp_register_tf.c).
`ai_edge_litert`'s interpreter is a separately built copy of the runtime whose
resolver cannot be reached from outside, so it is not used here. On Android the
same kernels are registered with the TFLite C API
(`TfLiteInterpreterOptionsAddCustomOp` + `CondCompGatedDenseRegistration()`).

Library lookup order: `$CONDCOMP_TFLITE_OPS` (a path to the .so), then
`build/tflite_ops/` of the source checkout, then next to this module.
"""

import ctypes
import os
import threading
import warnings

LIBRARY_ENV = "CONDCOMP_TFLITE_OPS"
LIBRARY_NAME = "libcondcomp_tflite_ops.so"
BUILD_COMMAND = "bash tflite/build_ops.sh"
CUSTOM_OPS = ("CondCompGatedDense", "CondCompGatedConv2D")

_lock = threading.Lock()
_library = None


class OpsLibraryError(RuntimeError):
    """The custom-op library is missing or cannot be used."""


def _candidates():
    env = os.environ.get(LIBRARY_ENV)
    if env:
        return [env]
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.dirname(here)
    return [
        os.path.join(repo, "build", "tflite_ops", LIBRARY_NAME),
        os.path.join(here, LIBRARY_NAME),
    ]


def library_path():
    """Path of the custom-op library that would be loaded, or None if not built."""
    for path in _candidates():
        if os.path.isfile(path):
            return path
    return None


def library_available():
    return library_path() is not None


def load_library():
    """Loads (once) and returns the custom-op library as a `ctypes.CDLL`.

    Raises:
        OpsLibraryError: not built, or the running TensorFlow does not export
            what the registerer needs.
    """
    global _library
    with _lock:
        if _library is not None:
            return _library
        path = library_path()
        if path is None:
            where = os.environ.get(LIBRARY_ENV) or " or ".join(_candidates())
            raise OpsLibraryError(
                f"The CondComp TFLite custom-op library is not built (looked for {where}). "
                f"Build it with `{BUILD_COMMAND}` from the repository root, or set "
                f"${LIBRARY_ENV} to its path."
            )
        import tensorflow  # noqa: F401  (loads libtensorflow_cc, which exports AddCustom)

        try:
            lib = ctypes.CDLL(path)
            lib.CondCompRegisterOps.argtypes = [ctypes.c_void_p]
            lib.CondCompRegisterOps.restype = None
            lib.CondCompCanRegister.restype = ctypes.c_int
            lib.CondCompKernelIsa.restype = ctypes.c_char_p
            u64p = ctypes.POINTER(ctypes.c_uint64)
            lib.CondCompGetStats.argtypes = [u64p, u64p, u64p, u64p]
            lib.CondCompGetStats.restype = None
            lib.CondCompResetStats.restype = None
        except (OSError, AttributeError) as error:  # not a shared library / not ours
            raise OpsLibraryError(
                f"{path} is not a usable CondComp TFLite custom-op library ({error}). "
                f"Rebuild it with `{BUILD_COMMAND}`, or point ${LIBRARY_ENV} at "
                f"{LIBRARY_NAME}."
            ) from error
        if not lib.CondCompCanRegister():
            raise OpsLibraryError(
                "tflite::MutableOpResolver::AddCustom is not exported by the loaded TensorFlow "
                "(expected in libtensorflow_cc.so.2 of the pip wheel); cannot register the "
                "CondComp custom ops with tf.lite.Interpreter."
            )
        _library = lib
        return lib


def kernel_isa():
    """Which kernel code path the library uses on this CPU (e.g. 'x86-64 avx2+fma clone')."""
    return load_library().CondCompKernelIsa().decode()


def stats():
    """Process-wide counters of the custom ops: macs, invokes, active/total blocks."""
    lib = load_library()
    vals = [ctypes.c_uint64() for _ in range(4)]
    lib.CondCompGetStats(*[ctypes.byref(v) for v in vals])
    return dict(zip(("macs", "invokes", "active_blocks", "total_blocks"), (v.value for v in vals)))


def reset_stats():
    load_library().CondCompResetStats()


def _registerer(lib):
    # tf.lite.Interpreter calls each registerer with the resolver address (int).
    def register(resolver_address):
        lib.CondCompRegisterOps(ctypes.c_void_p(resolver_address))

    return register


def _tf_interpreter_class():
    import tensorflow as tf  # noqa: F401
    # tf.lite.Interpreter plus the `custom_op_registerers` argument (not exported
    # under tf.lite, but part of the same module since TF 2.4).
    from tensorflow.lite.python.interpreter import InterpreterWithCustomOps

    return InterpreterWithCustomOps


class Interpreter:
    """`tf.lite.Interpreter` with the CondComp custom ops registered.

    Args:
        model_path: Path of a `.tflite` file (or use `model_content`).
        model_content: The flatbuffer bytes.
        num_threads: Threads for XNNPACK and for the custom ops (the ops read
            the interpreter's recommended thread count). Default 1.
        custom_ops: Register the CondComp ops (needs the native library).
            `False` runs builtin-only models (e.g. `convert.py --dense`) without it.
        **kwargs: Passed to `tf.lite.Interpreter`.

    All `tf.lite.Interpreter` methods are available (attribute delegation);
    `predict(x)` is a convenience for single-input single-output models.
    """

    def __init__(self, model_path=None, model_content=None, num_threads=1, custom_ops=True,
                 **kwargs):
        if model_path is not None:
            if model_content is not None:
                raise ValueError(
                    "Pass only one of `model_path` and `model_content`. Received: "
                    f"model_path={model_path!r} and model_content of {len(model_content)} bytes"
                )
            if not os.path.isfile(model_path):
                raise ValueError(
                    "Argument `model_path` must be an existing .tflite file. "
                    f"Received: model_path={model_path!r}"
                )
            # Read, not mmap-ed by path: only the model_content route runs the
            # flatbuffer verifier, so a truncated or corrupt file is an error
            # instead of an out-of-bounds read.
            with open(model_path, "rb") as f:
                model_content = f.read()
            source = f"model_path={model_path!r}"
        else:
            source = "model_content"
        if model_content is not None and len(model_content) == 0:
            raise ValueError(f"The model is empty (0 bytes). Received: {source}")
        if num_threads is not None and (
            not isinstance(num_threads, int) or isinstance(num_threads, bool) or num_threads < 1
        ):
            raise ValueError(
                f"Argument `num_threads` must be a positive integer. Received: "
                f"num_threads={num_threads!r}"
            )
        registerers = list(kwargs.pop("custom_op_registerers", []) or [])
        if custom_ops:
            registerers.append(_registerer(load_library()))
        cls = _tf_interpreter_class()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
            try:
                self._interpreter = cls(
                    model_content=model_content,
                    num_threads=num_threads,
                    custom_op_registerers=registerers,
                    **kwargs,
                )
            except ValueError as error:
                if model_content is None:
                    raise
                raise ValueError(
                    f"Cannot load the model (a truncated or corrupt .tflite file?): "
                    f"{str(error).strip()}. Received: {source}"
                ) from error
        if not registerers:
            self._check_no_condcomp_ops(source)
        self._batch = None

    def _check_no_condcomp_ops(self, source):
        """Fails now, not at the first invoke, on CondComp ops that nobody registered."""
        try:
            ops = {d["op_name"] for d in self._interpreter._get_ops_details()}
        except (AttributeError, KeyError, RuntimeError):  # private API; the invoke still fails
            return
        used = sorted(ops & set(CUSTOM_OPS))
        if used:
            raise ValueError(
                f"The model uses the CondComp custom ops {used}, which are registered "
                "only with custom_ops=True (needs the native library, "
                f"`{BUILD_COMMAND}`). Received: custom_ops=False for {source}"
            )

    def __getattr__(self, name):
        return getattr(self._interpreter, name)

    def predict(self, x):
        """Runs the model on `x` (batch first) and returns the first output.

        `x` is converted to float32; it must have the model's input shape
        apart from the batch size. An example whose input holds NaN or +-Inf
        gets an all-NaN output row, as in Keras. The CondComp ops already
        write such rows as NaN; the whole-model rule is kept here because
        builtin kernels around them (XNNPACK's relu/max) may turn NaN into
        numbers.
        """
        import numpy as np

        x = np.asarray(x)
        if x.dtype.kind not in "biuf":
            raise ValueError(
                "Argument `x` must hold real numbers (bool, int or float). "
                f"Received: x.dtype={x.dtype}"
            )
        inp = self._interpreter.get_input_details()[0]
        expected = tuple(int(d) for d in inp.get("shape_signature", inp["shape"]))
        if x.ndim != len(expected) or any(
            e >= 0 and e != d for e, d in zip(expected[1:], x.shape[1:])
        ):
            wanted = ", ".join(["batch"] + [str(d) if d >= 0 else "any" for d in expected[1:]])
            raise ValueError(
                f"Argument `x` must have shape ({wanted}) for this model. "
                f"Received: x.shape={x.shape}"
            )
        x = np.ascontiguousarray(x, dtype=np.float32)
        if self._batch != x.shape[0] or tuple(inp["shape"]) != x.shape:
            self._interpreter.resize_tensor_input(inp["index"], list(x.shape), strict=False)
            self._interpreter.allocate_tensors()
            self._batch = x.shape[0]
        self._interpreter.set_tensor(inp["index"], x)
        self._interpreter.invoke()
        out = self._interpreter.get_output_details()[0]
        y = self._interpreter.get_tensor(out["index"])
        if y.ndim and y.dtype.kind == "f" and len(y) == len(x):
            nonfinite = ~np.isfinite(x).all(axis=tuple(range(1, x.ndim)))
            if nonfinite.any():
                y[nonfinite] = np.nan
        return y
