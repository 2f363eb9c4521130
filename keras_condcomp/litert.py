"""Runs converted CondComp `.tflite` models with the custom ops registered.

The custom ops (`CondCompGatedDense`, `CondCompGatedConv2D`) live in a native
library built by `bash tflite/build_ops.sh`
(`build/tflite_ops/libcondcomp_tflite_ops.so`) or shipped inside the wheel.
It is loaded lazily, the first time an interpreter needs it, so importing and
training with `keras_condcomp` never requires it.

    from keras_condcomp.litert import Interpreter
    interp = Interpreter("model.tflite", num_threads=2)
    y = interp.predict(x)              # resizes the batch dimension as needed

Runtimes: LiteRT's interpreter (`ai_edge_litert`, what Linux boards and
Android deploy with) when it is installed, TensorFlow's `tf.lite.Interpreter`
otherwise; `runtime=` or `$CONDCOMP_RUNTIME` ("litert" / "tensorflow") picks
one. XNNPACK runs the builtin ops in both. The library is attached as an
external delegate (`load_delegate(path)`: tflite/ops/condcomp_delegate.c)
that claims every CondComp node; nothing depends on a C++ symbol of either
runtime. On Android the same kernels are registered with the TFLite C API
(`TfLiteInterpreterOptionsAddCustomOp` + `CondCompGatedDenseRegistration()`).

Library lookup order: `$CONDCOMP_TFLITE_OPS` (a path to the .so), then
`build/tflite_ops/` of the source checkout, then next to this module (the
wheel's copy).
"""

import contextlib
import ctypes
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import warnings

from keras_condcomp.validation import check_positive_int

LIBRARY_ENV = "CONDCOMP_TFLITE_OPS"
LIBRARY_NAME = "libcondcomp_tflite_ops.so"
BUILD_COMMAND = "bash tflite/build_ops.sh"
CUSTOM_OPS = ("CondCompGatedDense", "CondCompGatedConv2D")
RUNTIME_ENV = "CONDCOMP_RUNTIME"
RUNTIMES = ("auto", "litert", "tensorflow")
# Runtime versions whose TFLite C structs (tflite/ops/tflite_c_abi.h) were
# checked against the library: [lowest, first untested).
TESTED_VERSIONS = {"tensorflow": ((2, 16), (2, 22)), "litert": ((2, 0), (2, 4))}
UNTESTED_ENV = "CONDCOMP_ALLOW_UNTESTED_RUNTIME"

_lock = threading.Lock()
_library = None

# What the runtimes print natively (to descriptor 2) for every interpreter
# that gets the default XNNPACK delegate; no option or variable turns it off.
_XNNPACK_NOTICE = "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."


@contextlib.contextmanager
def _without_xnnpack_notice():
    """Runs the body with native stderr captured; re-emits all but the XNNPACK notice."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable descriptor 2: nothing to filter
        yield
        return
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            lines = captured.read().decode(errors="replace").splitlines(keepends=True)
            kept = "".join(line for line in lines if line.strip() != _XNNPACK_NOTICE)
            if kept:
                sys.stderr.write(kept)
                sys.stderr.flush()


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
        OpsLibraryError: not built, or not a CondComp op library.
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
        try:
            lib = ctypes.CDLL(path)
            lib.tflite_plugin_create_delegate  # noqa: B018 (the delegate entry point)
            lib.CondCompKernelIsa.restype = ctypes.c_char_p
            u64p = ctypes.POINTER(ctypes.c_uint64)
            lib.CondCompGetStats.argtypes = [u64p, u64p, u64p, u64p]
            lib.CondCompGetStats.restype = None
            lib.CondCompResetStats.restype = None
            if hasattr(lib, "CondCompProfileGet"):
                lib.CondCompProfileEnable.argtypes = [ctypes.c_int]
                lib.CondCompProfileEnable.restype = None
                lib.CondCompProfileCount.restype = ctypes.c_int
                lib.CondCompProfileGet.argtypes = [ctypes.c_int, ctypes.POINTER(ProfileEntry)]
                lib.CondCompProfileGet.restype = ctypes.c_int
        except (OSError, AttributeError) as error:  # not a shared library / not ours
            raise OpsLibraryError(
                f"{path} is not a usable CondComp TFLite custom-op library ({error}). "
                f"Rebuild it with `{BUILD_COMMAND}`, or point ${LIBRARY_ENV} at "
                f"{LIBRARY_NAME}."
            ) from error
        _library = lib
        return lib


def cpu_name():
    """The CPU model (Linux `/proc/cpuinfo`), recorded with every benchmark (speeds differ)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "unknown CPU"


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


class ProfileEntry(ctypes.Structure):
    """`CondCompProfileEntry` of tflite/ops/condcomp_tflite_ops.h (one CondComp node)."""

    _fields_ = (
        [(name, ctypes.c_int32) for name in (
            "op", "quantized", "in_dim", "num_blocks", "block_size", "in_block_size", "top_k",
            "taps", "tiles_exact", "head_units")]
        + [(name, ctypes.c_uint64) for name in (
            "tile_bytes", "invokes", "examples", "gate_ns", "block_ns", "macs", "tile_reads",
            "policy_bytes")]
        + [("tiles_seen", ctypes.c_uint64 * 64)]
        + [(name, ctypes.c_uint64) for name in ("head_ns", "head_macs")]
    )


def _profile_library():
    lib = load_library()
    if not hasattr(lib, "CondCompProfileGet"):
        raise OpsLibraryError(
            f"{library_path()} predates the profile entry points; rebuild it with "
            f"`{BUILD_COMMAND}`."
        )
    return lib


def start_profile():
    """Clears the CondComp nodes' profile and starts recording (`profile()` reads it).

    A measurement mode: one interpreter invoking at a time.
    """
    _profile_library().CondCompProfileEnable(1)


def stop_profile():
    """Stops recording and returns what was recorded since `start_profile` (see `profile`)."""
    entries = profile()
    _profile_library().CondCompProfileEnable(0)
    return entries


def profile():
    """What the CondComp nodes recorded since `start_profile`, in the order they first ran.

    Returns:
        A list of dicts, one per node: its geometry (`op` "dense" or "conv",
        `quantized`, `in_dim`, `num_blocks`, `block_size`, `in_block_size`,
        `top_k`, `taps`, `tile_bytes`), `invokes`, `examples`, `gate_ns`
        (phase 1: input checks, policy product, int8 quantization, masks),
        `block_ns` (phase 2: weight-tile loops and activation), `macs`,
        `tile_reads` (distinct weight tiles read, summed over invokes),
        `policy_bytes`, `tiles_seen` (distinct tiles read since the start:
        the weight working set is `tiles_seen * tile_bytes`; None when the
        layer has more than 64 output or input blocks), and for a dense op
        with a folded output layer its width `head_units` (else 0), time
        `head_ns` and `head_macs`.
    """
    lib = _profile_library()
    entries = []
    for slot in range(lib.CondCompProfileCount()):
        e = ProfileEntry()
        if not lib.CondCompProfileGet(slot, ctypes.byref(e)):
            break
        row = {name: getattr(e, name) for name, _ in ProfileEntry._fields_
               if name not in ("tiles_seen", "tiles_exact")}
        row["op"] = ("dense", "conv")[e.op]
        row["quantized"] = bool(e.quantized)
        row["tiles_seen"] = (sum(bin(word).count("1") for word in e.tiles_seen)
                             if e.tiles_exact else None)
        entries.append(row)
    return entries


def _version(text):
    parts = []
    for piece in text.split(".")[:2]:
        digits = "".join(c for c in piece if c.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def _check_tested(runtime, version):
    """Refuses (clearly, before any native call) a runtime version outside the tested range."""
    low, high = TESTED_VERSIONS[runtime]
    if not low <= _version(version) < high and os.environ.get(UNTESTED_ENV) != "1":
        raise OpsLibraryError(
            f"The CondComp op library was checked against {runtime} "
            f"{'.'.join(map(str, low))} up to (not including) {'.'.join(map(str, high))}, "
            f"whose TFLite C structs it relies on; this is {runtime} {version}. Use a "
            f"tested version, or set ${UNTESTED_ENV}=1 to try anyway (a struct that "
            "changed layout would make the ops read wrong memory)."
        )


def resolve_runtime(runtime=None):
    """`(name, interpreter module, version)` of the runtime: name "litert" or "tensorflow".

    `runtime` (or `$CONDCOMP_RUNTIME`): "auto" (default: LiteRT if
    `ai_edge_litert` is installed, else TensorFlow), "litert" or "tensorflow".
    """
    runtime = runtime or os.environ.get(RUNTIME_ENV) or "auto"
    if runtime not in RUNTIMES:
        raise ValueError(
            f"Argument `runtime` must be one of {RUNTIMES}. Received: runtime={runtime!r}")
    if runtime in ("auto", "litert"):
        try:
            import ai_edge_litert
            from ai_edge_litert import interpreter as module
        except ImportError as error:
            if runtime == "litert":
                raise ValueError(
                    "runtime='litert' needs the `ai_edge_litert` package "
                    "(pip install 'keras_condcomp[runtime]'). Received: runtime='litert'"
                ) from error
        else:
            return "litert", module, getattr(ai_edge_litert, "__version__", "0")
    import tensorflow as tf
    from tensorflow.lite.python import interpreter as module

    return "tensorflow", module, tf.__version__


class Interpreter:
    """A TFLite interpreter (LiteRT or `tf.lite`) with the CondComp ops attached.

    Args:
        model_path: Path of a `.tflite` file (or use `model_content`).
        model_content: The flatbuffer bytes.
        num_threads: Threads for XNNPACK and for the custom ops (the ops read
            the interpreter's recommended thread count). Default 1.
        custom_ops: Attach the CondComp ops (needs the native library).
            `False` runs builtin-only models (e.g. `convert.py --dense`) without it.
        runtime: "auto" (default; `$CONDCOMP_RUNTIME` if set), "litert"
            (`ai_edge_litert`) or "tensorflow" (`tf.lite`).
        verbose: Let the runtime print its notices (the XNNPACK delegate's
            "INFO: Created ..." line is dropped by default; anything else it
            prints still shows).
        **kwargs: Passed to the runtime's interpreter (`experimental_delegates`
            are kept, ours is added after them).

    All methods of the runtime's interpreter are available (attribute
    delegation); `predict(x)` is a convenience for single-input
    single-output models; `runtime` says which runtime runs the model.
    """

    def __init__(self, model_path=None, model_content=None, num_threads=1, custom_ops=True,
                 runtime=None, verbose=False, **kwargs):
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
        if num_threads is not None:
            num_threads = check_positive_int("num_threads", num_threads)
        self.runtime, module, version = resolve_runtime(runtime)
        delegates = list(kwargs.pop("experimental_delegates", []) or [])
        if custom_ops:
            _check_tested(self.runtime, version)
            delegates.append(module.load_delegate(load_library()._name))
        if kwargs.get("custom_op_registerers"):
            cls = module.InterpreterWithCustomOps
        else:
            cls = module.Interpreter
        self._verbose = bool(verbose)
        with warnings.catch_warnings(), self._quiet():
            warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
            try:
                self._interpreter = cls(
                    model_content=model_content,
                    num_threads=num_threads,
                    experimental_delegates=delegates,
                    **kwargs,
                )
            except ValueError as error:
                if model_content is None:
                    raise
                raise ValueError(
                    f"Cannot load the model (a truncated or corrupt .tflite file?): "
                    f"{str(error).strip()}. Received: {source}"
                ) from error
        if not custom_ops:
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

    def _quiet(self):
        return contextlib.nullcontext() if self._verbose else _without_xnnpack_notice()

    def allocate_tensors(self):
        """The runtime's `allocate_tensors` (which applies XNNPACK, and prints its notice)."""
        with self._quiet():
            return self._interpreter.allocate_tensors()

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
            self.allocate_tensors()
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


# ------------------------------------------------------------------ timing


def interpreter_for_batch(model_content, batch, num_threads=1, custom_ops=True):
    """An `Interpreter` whose input is resized to `batch` and allocated, ready to invoke."""
    interpreter = Interpreter(model_content=model_content, num_threads=num_threads,
                              custom_ops=custom_ops)
    detail = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(detail["index"], [batch] + list(detail["shape"][1:]),
                                    strict=False)
    interpreter.allocate_tensors()
    return interpreter


def invoke_times(interpreter, inputs, runs, offset=0):
    """Seconds of each of `runs` `invoke()` calls, input `inputs[(offset + i) % len]` each."""
    index = interpreter.get_input_details()[0]["index"]
    # Bound once, outside the timed calls: through `Interpreter`'s
    # __getattr__ each lookup costs about 1 us (a failed lookup first), as
    # much as a small model's invoke.
    set_tensor, invoke = interpreter.set_tensor, interpreter.invoke
    times = []
    for i in range(runs):
        set_tensor(index, inputs[(offset + i) % len(inputs)])
        start = time.perf_counter()
        invoke()
        times.append(time.perf_counter() - start)
    return times


def time_interleaved(jobs, rounds, runs, warmup=2, seed=0):
    """Median seconds per `invoke()` of each job, all measured in one interleaved run.

    `jobs` is `{key: (interpreter, inputs)}`, `inputs` a list of input
    batches each job cycles through. Each of `warmup + rounds` rounds visits
    every job once, in a new random order, for `runs` invokes that settle it
    and then `runs` recorded ones; the first `warmup` rounds are not
    recorded. Interleaving puts every model under the same machine state
    (frequency, caches, neighbours), so the ratios of the medians are what a
    benchmark compares. The settling invokes bring the job's weights back
    into the caches the other jobs used: each model is timed in the steady
    state of running alone, as deployed. Without them a model of megabytes
    run just before (a full-width float32 net: 7 MB) left a condnet, whose
    examples each read a different quarter of its weights, 10-50% slower on
    a 2-core VM, and a small dense net (in L2) not at all.
    """
    times = {key: [] for key in jobs}
    order = list(jobs)
    rng = random.Random(seed)
    for r in range(warmup + rounds):
        rng.shuffle(order)
        for key in order:
            interpreter, inputs = jobs[key]
            invoke_times(interpreter, inputs, runs, offset=r * runs)
            values = invoke_times(interpreter, inputs, runs, offset=r * runs)
            if r >= warmup:
                times[key].extend(values)
    return {key: statistics.median(values) for key, values in times.items()}
