"""Fuzzing the CondComp custom ops: random shapes, attributes and inputs
(NaN, +-Inf, empty batches, malformed FlexBuffers options, wrong tensors).

Every case either runs and matches the float64 reference of
docs/architecture.md, or fails with an error status; it never crashes. The
reference and the comparison with it are written once, in the test driver
(tflite/ops/driver/reference.cc): both harnesses use them.

Two harnesses, both in subprocesses so that a segfault fails the test (with
the case that crashed and the command to replay it) instead of killing pytest:

* native: the test driver (tflite/ops/driver/, the driver_sources of
  tflite/ops/build.txt) built for the host, driving the
  portable kernels and the TFLite glue (Init/Prepare/Invoke/Free through a
  mock TfLiteContext whose tensor buffers are exact-size heap blocks); a
  second build runs the AVX512-VNNI int8 kernel with SIMDe's vpdpbusd.
* interpreter: this file run as a worker (`python tests/test_native_fuzz.py
  --worker ...`): each case is a one-op .tflite flatbuffer written here with
  TFLite's schema (so attributes, shapes and options can be anything, not just
  what the converter emits), run by `keras_condcomp.litert.Interpreter`
  (tf.lite with the ops registered from build/tflite_ops). The outputs of
  all valid cases go to one CCLAYER2 file (tflite/ops/driver/layer_file.h)
  that the host driver's `check FILE` compares with the reference. Like the
  driver's own op fuzzer, the cases use the top_k rule, scale_by_gate and
  int8 kernels (per-unit kernel scales; run-time or static activation
  scales) as well as the float threshold rule.

Default run: a few hundred cases each. `pytest -m slow` runs >= 10,000 cases
each; `tflite/sanitize.sh` runs the native harness under ASan/UBSan.
"""

import argparse
import json
import os
import re
import shutil
import struct
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OPS = os.path.join(ROOT, "tflite", "ops")

ACTIVATIONS = (
    "linear", "relu", "relu6", "sigmoid", "tanh", "elu", "selu", "softplus", "softsign",
    "silu", "gelu", "leaky_relu", "hard_sigmoid", "hard_silu", "mish", "exponential",
)
# The Keras aliases the op accepts (the driver's reference knows them too).
ALIAS_NAMES = ("swish", "hard_swish")

# ------------------------------------------------------- reference check


def _i32(*values):
    return struct.pack(f"<{len(values)}i", *values)


def _text(value):
    data = value.encode()
    return _i32(len(data)) + data


def layer_record(c, y, name):
    """Case c and the output y the interpreter gave, as one layer of a
    CCLAYER2 file (tflite/ops/driver/layer_file.h)."""
    import numpy as np

    conv = c["op"] == "conv"
    x = c["x"]
    B, D = x.shape[0], c["D"]
    H, W = (x.shape[1], x.shape[2]) if conv else (1, 1)
    geometry = [c[k] for k in ("KH", "KW", "sh", "sw", "dh", "dw")] if conv else [1] * 6
    rec = _i32(1 if conv else 0) + _text(name) + _text(c["act"]) + struct.pack("<f", c["thr"])
    rec += _i32(c["bias"] is not None, B, D, H, W, c["K"], c["bs"], *geometry,
                bool(c.get("same")), c["ibs"])
    int8 = c.get("kernel_q") is not None
    input_scale = c.get("input_scale")
    n_input_scale = 0 if input_scale is None else len(input_scale)
    rec += _i32(c.get("top_k", 0), bool(c.get("scale_by_gate")), int8, n_input_scale)
    rec += np.ascontiguousarray(x, dtype="<f4").tobytes()
    if int8:  # int8 kernel_q [K][rows][bs], then kernel_scale [K*bs]
        rec += np.ascontiguousarray(c["kernel_q"], dtype=np.int8).tobytes()
        rec += np.ascontiguousarray(c["kernel_scale"], dtype="<f4").tobytes()
    else:
        rec += np.ascontiguousarray(c["kernel"], dtype="<f4").tobytes()
    for arr in (c["bias"], c["wp"], c["bp"], input_scale):
        if arr is not None:
            rec += np.ascontiguousarray(arr, dtype="<f4").tobytes()
    y = np.asarray(y)
    return rec + _i32(y.ndim, *y.shape) + np.ascontiguousarray(y, dtype="<f4").tobytes()


def check_outputs(driver, outputs, workdir, keep=None):
    """outputs: [(case index, case, y)]. Runs `driver check FILE` once over
    all of them; returns [(case index or None, reason)] for the mismatches.
    keep: where to write the CCLAYER2 file so that it stays (default: in workdir)."""
    path = keep or os.path.join(workdir, "outputs.cclayer")
    with open(path, "wb") as f:
        f.write(b"CCLAYER2" + _i32(len(outputs)))
        for i, c, y in outputs:
            f.write(layer_record(c, y, f"case {i}"))
    proc = subprocess.run([str(driver), "check", path], capture_output=True, text=True)
    failures = []
    for line in proc.stdout.splitlines():
        m = re.match(r"FAIL layer (\d+) \(.*?\): (.*)", line)
        if m:
            failures.append((outputs[int(m.group(1))][0], m.group(2)))
    if proc.returncode not in (0, 1) or (proc.returncode == 1) != bool(failures):
        failures.append((None, f"`{driver} check {path}` exited with {proc.returncode}: "
                               f"{proc.stderr.strip()[-1000:]}"))
    return failures


# ------------------------------------------------------------ model writer


def flexbuffer_map(attrs):
    from flatbuffers import flexbuffers

    return bytes(flexbuffers.Dumps(attrs))


def build_model(c):
    """One custom op as a .tflite flatbuffer: x -> op(x, kernel, bias, wp, bp
    [, kernel_scale [, input_scale]]) -> y. Tensors: 0 x, 1-4 kernel, bias, wp,
    bp, 5 y, then 6 kernel_scale and 7 input_scale (int8 kernels only)."""
    import flatbuffers
    import numpy as np
    from tensorflow.lite.python import schema_py_generated as s

    def buffer(arr=None):
        b = s.BufferT()
        if arr is not None:
            b.data = np.frombuffer(np.ascontiguousarray(arr).tobytes(), dtype=np.uint8)
        return b

    def tensor(shape, buf, name, ttype=s.TensorType.FLOAT32, signature=None):
        t = s.TensorT()
        t.shape = np.array(shape, dtype=np.int32)
        if signature is not None:
            t.shapeSignature = np.array(signature, dtype=np.int32)
        t.type = ttype
        t.buffer = buf
        t.name = name
        return t

    buffers = [buffer()]  # buffer 0: the empty sentinel
    tensors = []
    x_shape = list(c["x"].shape)
    buffers.append(buffer())
    tensors.append(tensor(x_shape, len(buffers) - 1, "x", signature=[-1] + x_shape[1:]))
    const_names = ("kernel", "bias", "wp", "bp")
    for name in const_names:
        arr = c["tensors"][name]
        if arr is None:
            tensors.append(tensor([0], 0, name))  # unused placeholder
            continue
        buffers.append(buffer(arr))
        ttype = {np.dtype("float32"): s.TensorType.FLOAT32, np.dtype("int8"): s.TensorType.INT8,
                 np.dtype("int32"): s.TensorType.INT32}[arr.dtype]
        tensors.append(tensor(list(arr.shape), len(buffers) - 1, name, ttype))
    buffers.append(buffer())
    tensors.append(tensor([], len(buffers) - 1, "y"))
    for name in ("kernel_scale", "input_scale"):
        arr = c["tensors"].get(name)
        if arr is not None:
            buffers.append(buffer(arr))
            tensors.append(tensor(list(arr.shape), len(buffers) - 1, name))
    op = s.OperatorT()
    op.opcodeIndex = 0
    op.inputs = np.array(c["inputs"], dtype=np.int32)
    op.outputs = np.array([5], dtype=np.int32)
    op.customOptions = np.frombuffer(c["options"], dtype=np.uint8) if c["options"] else None
    op.customOptionsFormat = s.CustomOptionsFormat.FLEXBUFFERS
    code = s.OperatorCodeT()
    code.builtinCode = s.BuiltinOperator.CUSTOM
    code.deprecatedBuiltinCode = s.BuiltinOperator.CUSTOM
    code.customCode = c["op_name"]
    code.version = 1
    sg = s.SubGraphT()
    sg.tensors = tensors
    sg.inputs = np.array([0], dtype=np.int32)
    sg.outputs = np.array([5], dtype=np.int32)
    sg.operators = [op]
    sg.name = "main"
    model = s.ModelT()
    model.version = 3
    model.operatorCodes = [code]
    model.subgraphs = [sg]
    model.buffers = buffers
    model.description = "condcomp fuzz"
    b = flatbuffers.Builder(1024)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


# -------------------------------------------------------------- generation

DEFECTS = (
    "activation", "threshold", "ibs", "missing_key", "unknown_key", "value_type", "padding",
    "stride", "kernel_dim", "bias_len", "policy_shape", "input_count", "dtype", "mutated",
    "empty_options", "top_k", "scale_by_gate", "kernel_scale", "input_scale",
)


def quantize_kernel(kernel):
    """The int8 kernel and its per-unit scales by the converter's rule
    (keras_condcomp.converter.quantize_kernel: symmetric per output unit over
    the kernel's rows), kept block-major [K][rows][bs] like the float one."""
    import numpy as np

    from keras_condcomp.converter.quantize import quantize_kernel as per_unit

    K, bs = kernel.shape[0], kernel.shape[-1]
    units_last = np.moveaxis(kernel.reshape(K, -1, bs), 0, 1).reshape(-1, K * bs)
    q, scale = per_unit(units_last)
    return np.moveaxis(q.reshape(-1, K, bs), 1, 0).reshape(kernel.shape), scale


def static_input_scales(rng, x, ibs):
    """Static activation scales, one per input block (the driver's
    static_scales): the block's max finite |x| over the batch and positions
    / 127 times a factor that sometimes clips (< 1) or coarsens (> 1); a
    positive scale for all-zero blocks, sometimes a subnormal or huge one."""
    import numpy as np

    D = x.shape[-1]
    a = np.abs(x.reshape(-1, D // ibs, ibs).astype(np.float64))
    a[~np.isfinite(a)] = 0.0
    m = a.max(axis=(0, 2)) if a.shape[0] else np.zeros(D // ibs)
    scales = []
    for v in m:
        sc = v / 127 * rng.choice([1.0, 1.0, 0.25, 0.7, 3.0]) if v > 0 else 0.05 + rng.random()
        if rng.random() < 0.03:
            sc = 1e-41 if rng.random() < 0.5 else 1e30
        scales.append(max(np.float32(sc), np.float32(1e-45)))
    return np.array(scales, np.float32)


def random_case(rng):
    """A random case: dict with the layer, the tensors and the expected outcome."""
    import numpy as np

    conv = rng.random() < 0.5
    B = 0 if rng.random() < 0.06 else int(rng.integers(1, 6))
    K = int(rng.integers(1, 7))
    bs = int(rng.choice([1, 2, 3, 4, 5, 8, 9, 16, 17, 32, 33]))
    c = {"op": "conv" if conv else "dense", "B": B, "K": K, "bs": bs}
    if conv:
        C = int(rng.integers(1, 9))
        H, W = int(rng.integers(1, 8)), int(rng.integers(1, 8))
        c.update(KH=int(rng.integers(1, 4)), KW=int(rng.integers(1, 4)),
                 sh=int(rng.integers(1, 3)), sw=int(rng.integers(1, 3)),
                 dh=int(rng.integers(1, 3)) if rng.random() < 0.3 else 1,
                 dw=int(rng.integers(1, 3)) if rng.random() < 0.3 else 1,
                 same=bool(rng.random() < 0.5))
        bs = min(bs, 17)
        c["bs"] = bs
        D = C
        x = rng.normal(rng.normal(0, 1, (B, 1, 1, C)), 1.0, (B, H, W, C))
        kernel = rng.normal(0, 1 / np.sqrt(c["KH"] * c["KW"] * C), (K, c["KH"], c["KW"], C, bs))
    else:
        D = int(rng.integers(1, 80))
        x = rng.normal(0, 1, (B, D))
        kernel = rng.normal(0, 1 / np.sqrt(D), (K, D, bs))
    divisors = [d for d in range(1, D + 1) if D % d == 0]
    ibs = 0 if rng.random() < 0.3 else int(rng.choice(divisors))
    blk = ibs or D
    # Zero input blocks, as a previous gated layer leaves them.
    for e in range(B):
        for i in range(D // blk):
            if rng.random() < 0.3:
                x[e, ..., i * blk:(i + 1) * blk] = 0.0
    if B and rng.random() < 0.15:  # non-finite / huge inputs
        flat = x.reshape(-1)
        for _ in range(int(rng.integers(1, 4))):
            flat[rng.integers(flat.size)] = rng.choice([np.nan, np.inf, -np.inf, 1e30, -1e30])
    act = str(rng.choice(ACTIVATIONS + ALIAS_NAMES))
    thr = float(np.float32(rng.choice([0.5, 0.0, 1.0, 0.25, 0.9, rng.random()])))
    has_bias = rng.random() < 0.8
    c.update(D=D, act=act, thr=thr, ibs=ibs, x=x.astype(np.float32),
             kernel=kernel.astype(np.float32),
             bias=rng.normal(0, 0.3, K * bs).astype(np.float32) if has_bias else None,
             wp=rng.normal(0, 1.5 / np.sqrt(D), (D, K)).astype(np.float32),
             bp=rng.normal(0, 1.5, K).astype(np.float32))
    attrs = {"activation": act, "threshold": thr, "input_block_size": ibs}
    if conv:
        attrs.update(padding="same" if c["same"] else "valid", stride_h=c["sh"], stride_w=c["sw"],
                     dilation_h=c["dh"], dilation_w=c["dw"])
    # What real models have too (the driver's random_layer / op_fuzz draw them
    # alike): the top_k rule, scale_by_gate, and about a third of the cases
    # with an int8 kernel (per-unit kernel scales, input 5), half of those
    # with static activation scales (input 6) instead of run-time ones.
    top_k = int(rng.integers(1, K + 1)) if rng.random() < 0.3 else 0
    scale_by_gate = bool(rng.random() < 0.3)
    if top_k or rng.random() < 0.1:  # sometimes an explicit 0: the threshold rule
        attrs["top_k"] = top_k
    if scale_by_gate or rng.random() < 0.1:
        attrs["scale_by_gate"] = int(scale_by_gate)
    c.update(top_k=top_k, scale_by_gate=scale_by_gate, kernel_q=None, kernel_scale=None,
             input_scale=None)
    if rng.random() < 0.35:
        c["kernel_q"], c["kernel_scale"] = quantize_kernel(c["kernel"])
        if rng.random() < 0.5:
            c["input_scale"] = static_input_scales(rng, c["x"], blk)
    int8 = c["kernel_q"] is not None
    tensors = {"kernel": c["kernel_q"] if int8 else c["kernel"], "bias": c["bias"],
               "wp": c["wp"], "bp": c["bp"], "kernel_scale": c["kernel_scale"],
               "input_scale": c["input_scale"]}
    # tensors 6 and 7 of build_model
    inputs = [0, 1, 2 if has_bias else -1, 3, 4] + [6] * int8 + [7] * (c["input_scale"] is not None)
    c["expect"] = "ok"
    c["defect"] = None
    if rng.random() < 0.4:
        defect = str(rng.choice(DEFECTS))
        c["defect"] = defect
        c["expect"] = "error"
        if defect == "activation":
            attrs["activation"] = str(
                rng.choice(["Relu", "softmax", "", "relu ", "leaky_relu(0.1)"]))
        elif defect == "threshold":
            attrs["threshold"] = float(rng.choice([-0.5, 1.5, 1e30, -1e-3]))
        elif defect == "ibs":
            bad = [v for v in range(2, D + 4) if D % v]
            if bad:
                attrs["input_block_size"] = int(rng.choice(bad))
            else:
                attrs["input_block_size"] = -1
        elif defect == "missing_key":
            key = str(rng.choice([k for k in attrs
                                  if k not in ("input_block_size", "top_k", "scale_by_gate")]))
            del attrs[key]
        elif defect == "unknown_key":
            attrs["groups"] = 2
        elif defect == "value_type":
            key = str(rng.choice(list(attrs)))
            attrs[key] = 3 if isinstance(attrs[key], str) else "3"
        elif defect == "padding" and conv:
            attrs["padding"] = str(rng.choice(["SAME", "full", ""]))
        elif defect == "stride" and conv:
            attrs[str(rng.choice(["stride_h", "stride_w", "dilation_h", "dilation_w"]))] = int(
                rng.choice([0, -2, 1 << 20]))
        elif defect == "kernel_dim":
            shape = list(tensors["kernel"].shape)
            shape[1 if not conv else 3] += 1
            tensors["kernel"] = rng.normal(0, 0.1, shape).astype(np.float32)
            if int8:
                tensors["kernel"] = (tensors["kernel"] * 100).astype(np.int8)
        elif defect == "bias_len" and has_bias:
            tensors["bias"] = rng.normal(0, 0.1, K * bs + 1).astype(np.float32)
        elif defect == "policy_shape":
            tensors["wp"] = rng.normal(0, 0.1, (D + 1, K)).astype(np.float32)
        elif defect == "input_count":
            inputs = inputs[:4] if rng.random() < 0.5 else inputs + [0]
        elif defect == "dtype":  # an int8 kernel without its scales, or a float one with
            tensors["kernel"] = c["kernel"] if int8 else (c["kernel"] * 100).astype(np.int8)
        elif defect == "top_k":
            attrs["top_k"] = int(rng.choice([K + 1, -1, 1 << 40]))
        elif defect == "scale_by_gate":
            attrs["scale_by_gate"] = int(rng.choice([2, -1]))
        elif defect == "kernel_scale" and int8:
            tensors["kernel_scale"] = np.ones(K * bs + int(rng.choice([-1, 1])), np.float32)
        elif defect == "input_scale" and c["input_scale"] is not None:
            bad = c["input_scale"].copy()
            if rng.random() < 0.3:
                bad = np.append(bad, np.float32(1))
            else:
                bad[int(rng.integers(bad.size))] = rng.choice([0.0, -1.0, np.nan, np.inf])
            tensors["input_scale"] = bad
        elif defect in ("mutated", "empty_options"):
            pass
        else:  # defect not applicable to this layer: a valid case after all
            c["defect"] = None
            c["expect"] = "ok"
    options = flexbuffer_map(attrs)
    if c["defect"] == "mutated":
        buf = bytearray(options)
        kind = int(rng.integers(4))
        if kind == 0:
            length = int(rng.integers(0, 48))
            buf = bytearray(rng.integers(0, 256, length).astype(np.uint8).tobytes())
        elif kind == 1 and buf:
            buf = buf[: int(rng.integers(len(buf)))]
        elif kind == 2:
            for _ in range(int(rng.integers(1, 5))):
                buf[int(rng.integers(len(buf)))] ^= int(rng.integers(1, 256))
        else:
            for k in range(1, 4):
                if rng.random() < 0.6:
                    buf[-k] = int(rng.integers(256))
        options = bytes(buf)
        c["expect"] = "any"
    elif c["defect"] == "empty_options":
        options = b""
    c["options"] = options
    c["tensors"] = tensors
    c["inputs"] = inputs
    c["op_name"] = "CondCompGatedConv2D" if conv else "CondCompGatedDense"
    return c


def describe(c):
    keys = ("op", "B", "D", "K", "bs", "act", "thr", "ibs", "top_k", "scale_by_gate", "defect",
            "KH", "KW", "sh", "sw", "dh", "dw", "same")
    quant = ("float" if c.get("kernel_q") is None else
             "int8 static" if c.get("input_scale") is not None else "int8 dynamic")
    return (", ".join(f"{k}={c[k]}" for k in keys if k in c) + f", {quant}"
            + f", x{tuple(c['x'].shape)}")


# ------------------------------------------------------------------ worker


def run_worker(seed, cases, progress, driver, threads_max=2, only=None, keep=None):
    import tempfile

    import numpy as np

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from keras_condcomp.litert import Interpreter

    stats = {"cases": 0, "ok": 0, "expected_errors": 0, "mutated_ok": 0, "mutated_err": 0,
             "failures": []}
    outputs = []  # (case index, case, y) of the valid cases, for the reference check
    for i in range(cases) if only is None else [only]:
        if progress:
            with open(progress, "w") as f:
                f.write(f"{i}\n")
        rng = np.random.default_rng([seed, i])
        c = random_case(rng)
        stats["cases"] += 1
        err = None
        y = None
        # Every other case splits even tiny work between the threads (the
        # parallel path); the others keep the op's default work threshold.
        os.environ["CONDCOMP_PARALLEL_MIN_BYTES"] = "0" if i % 2 == 0 else ""
        try:
            model = build_model(c)
            threads = int(rng.integers(1, threads_max + 1))
            interp = Interpreter(model_content=model, num_threads=threads)
            inp = interp.get_input_details()[0]
            interp.resize_tensor_input(inp["index"], list(c["x"].shape), strict=False)
            interp.allocate_tensors()
            interp.set_tensor(inp["index"], c["x"])
            interp.invoke()
            y = np.array(interp.get_tensor(interp.get_output_details()[0]["index"]))
        except (ValueError, RuntimeError) as e:  # an error status: fine unless valid
            err = str(e).strip().splitlines()[-1][:300] if str(e).strip() else type(e).__name__
        if c["expect"] == "any":
            stats["mutated_ok" if err is None else "mutated_err"] += 1
            continue
        if c["expect"] == "error":
            if err is None:
                stats["failures"].append(f"case {i}: invalid input accepted ({describe(c)})")
            else:
                stats["expected_errors"] += 1
            continue
        if err is not None:
            stats["failures"].append(f"case {i}: valid case failed: {err} ({describe(c)})")
            continue
        outputs.append((i, c, y))
    if progress:
        with open(progress, "w") as f:
            f.write("check\n")
    with tempfile.TemporaryDirectory() as workdir:
        failures = check_outputs(driver, outputs, workdir, keep) if outputs else []
    by_case = {i: c for i, c, _ in outputs}
    for i, why in failures:
        where = f"case {i}" if i is not None else "reference check"
        detail = f" ({describe(by_case[i])})" if i is not None else ""
        stats["failures"].append(f"{where}: {why}{detail}")
    stats["ok"] += len(outputs) - sum(i is not None for i, _ in failures)
    # What the valid (checked) cases covered.
    stats["valid"] = {
        "top_k": sum(c["top_k"] > 0 for _, c, _ in outputs),
        "scale_by_gate": sum(c["scale_by_gate"] for _, c, _ in outputs),
        "int8_dynamic": sum(c["kernel_q"] is not None and c["input_scale"] is None
                            for _, c, _ in outputs),
        "int8_static": sum(c["input_scale"] is not None for _, c, _ in outputs),
        "conv_int8": sum(c["op"] == "conv" and c["kernel_q"] is not None for _, c, _ in outputs),
        "non_finite_x": sum(not np.isfinite(c["x"]).all() for _, c, _ in outputs),
        "empty_batch": sum(c["B"] == 0 for _, c, _ in outputs),
    }
    return stats


# ------------------------------------------------------------------ pytest

try:
    import pytest
except ImportError:  # running as a worker without pytest
    pytest = None


def _run_isolated(cmd, progress, what, timeout):
    """Runs cmd; a crash (signal) becomes a failure naming the last case."""
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode < 0 or proc.returncode > 128:
        case = None
        if os.path.exists(progress):
            with open(progress) as f:
                case = f.read().split()[:1]
        pytest.fail(
            f"{what} crashed (status {proc.returncode}) in case {case}: replay with "
            f"{' '.join(cmd)} (and --only CASE for the driver)\n{proc.stderr[-3000:]}"
        )
    return proc


if pytest is not None:

    def _ops_build():
        """tflite/ops/build.txt (the ops' sources and flags) as {name: [words]}."""
        with open(os.path.join(OPS, "build.txt"), encoding="utf-8") as f:
            lines = (re.match(r"([a-z_]+) *= *(.*)", line) for line in f)
            return {m.group(1): m.group(2).split() for m in lines if m}

    def _build_driver(out, *cflags):
        """The ops' sources and the driver's (build.txt's sources and
        driver_sources) compiled two at a time, linked into out/condcomp_driver."""
        from concurrent.futures import ThreadPoolExecutor

        cc = shutil.which("gcc") or shutil.which("cc")
        cxx = shutil.which("g++") or shutil.which("c++")
        if not cc or not cxx:
            pytest.skip("no C/C++ compiler (apt-get install gcc g++)")
        build = _ops_build()
        jobs = []
        for src in build["sources"]:
            obj = out / (os.path.splitext(src)[0] + ".o")
            jobs.append([cc, *build["cflags"], "-O2", "-g", *cflags,
                         "-c", os.path.join(OPS, src), "-o", str(obj)])
        for src in build["driver_sources"]:
            obj = out / ("driver_" + os.path.splitext(os.path.basename(src))[0] + ".o")
            jobs.append([cxx, "-std=c++17", "-O2", "-g", "-Wno-psabi", "-I", OPS,
                         "-c", os.path.join(OPS, src), "-o", str(obj)])
        # the largest (slowest to compile) first
        jobs.sort(key=lambda cmd: -os.path.getsize(cmd[-3]))
        with ThreadPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
            list(pool.map(lambda cmd: subprocess.run(cmd, check=True), jobs))
        exe = out / "condcomp_driver"
        subprocess.run([cxx, *(cmd[-1] for cmd in jobs), "-o", str(exe), "-lpthread", "-lm"],
                       check=True)
        return exe

    @pytest.fixture(scope="module")
    def host_driver(tmp_path_factory):
        return _build_driver(tmp_path_factory.mktemp("fuzz"))

    @pytest.fixture(scope="module")
    def vnni_emulated_driver(tmp_path_factory):
        """The driver with the int8 kernel built as the AVX512-VNNI code
        path, its vpdpbusd emulated by SIMDe on AVX2 (no CPU here has VNNI);
        CI installs Debian's libsimde-dev and sets CONDCOMP_REQUIRE_SIMDE=1."""
        import platform

        if platform.machine() not in ("x86_64", "AMD64"):
            pytest.skip("the VNNI kernel is x86-64 only")
        if not os.path.exists("/usr/include/simde/x86/avx512/dpbusd.h"):
            if os.environ.get("CONDCOMP_REQUIRE_SIMDE") == "1":
                pytest.fail("CONDCOMP_REQUIRE_SIMDE=1 but SIMDe's headers are missing")
            pytest.skip("SIMDe headers missing (apt-get install libsimde-dev)")
        with open("/proc/cpuinfo") as f:
            if " avx2 " not in f.read():
                pytest.skip("the emulated VNNI build runs on AVX2")
        return _build_driver(tmp_path_factory.mktemp("fuzz_vnni"), "-DCC_Q8_VNNI_EMULATED")

    def _native(driver, mode, cases, seed, tmp_path, int8_isa=None):
        progress = str(tmp_path / f"{mode}.progress")
        cmd = [str(driver), mode, str(cases), "--seed", str(seed), "--progress", progress]
        proc = _run_isolated(cmd, progress, f"native {mode} fuzz", timeout=1800)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
        assert f"{cases} passed, 0 failed" in proc.stdout, proc.stdout
        # the int8 kernels are fuzzed too, dense and conv
        int8 = re.search(r"(\d+) int8 cases, (\d+) of them conv, \d+ with static scales \((.*)\)",
                         proc.stdout)
        assert int8 and int(int8.group(2)) > cases // 40, proc.stdout
        assert int(int8.group(1)) - int(int8.group(2)) > cases // 40, proc.stdout
        if int8_isa is not None:
            assert int8.group(3) == int8_isa, proc.stdout
        if mode == "ops":  # dense layers also run with a folded output layer
            heads = re.search(r"(\d+) with a folded output layer", proc.stdout)
            assert heads and int(heads.group(1)) > cases // 20, proc.stdout

    @pytest.mark.parametrize("mode", ["kernels", "ops"])
    def test_native_fuzz(host_driver, mode, tmp_path):
        _native(host_driver, mode, 500, 2024, tmp_path)

    VNNI_EMULATED = "avx512-vnni vpdpbusd (SIMDe-emulated test build)"

    @pytest.mark.parametrize("mode", ["kernels", "ops"])
    def test_native_fuzz_vnni_kernel_emulated(vnni_emulated_driver, mode, tmp_path):
        _native(vnni_emulated_driver, mode, 500, 2025, tmp_path, int8_isa=VNNI_EMULATED)

    @pytest.mark.slow
    @pytest.mark.parametrize("mode", ["kernels", "ops"])
    def test_native_fuzz_10k(host_driver, mode, tmp_path):
        _native(host_driver, mode, 20000, 77, tmp_path)

    @pytest.mark.slow
    @pytest.mark.parametrize("mode", ["kernels", "ops"])
    def test_native_fuzz_10k_vnni_kernel_emulated(vnni_emulated_driver, mode, tmp_path):
        _native(vnni_emulated_driver, mode, 10000, 78, tmp_path, int8_isa=VNNI_EMULATED)

    def test_quantize_matches_the_double_rule(host_driver):
        """Every int8 activation quantization variant this CPU runs (the
        AVX-512 one computes in float32 where that is provably exact) gives
        the double rule's bytes on values at and next to half-integers of
        x * k, with k from subnormal to past the float range."""
        proc = subprocess.run([str(host_driver), "quantize", "20000", "--seed", "11"],
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
        assert "20000 passed, 0 failed" in proc.stdout, proc.stdout[-3000:]

    def _litert_ready():
        try:
            from keras_condcomp import litert
        except ImportError as e:  # pragma: no cover
            return f"keras_condcomp.litert not importable: {e}"
        if not litert.library_available():
            return f"custom-op library not built ({litert.BUILD_COMMAND})"
        return None

    def _interpreter(driver, cases, seed, tmp_path):
        reason = _litert_ready()
        if reason:
            pytest.skip(reason)
        progress = str(tmp_path / "interp.progress")
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--seed", str(seed),
               "--cases", str(cases), "--progress", progress, "--driver", str(driver)]
        proc = _run_isolated(cmd, progress, "interpreter fuzz worker", timeout=3600)
        assert proc.returncode == 0, proc.stderr[-4000:]
        stats = json.loads(proc.stdout.strip().splitlines()[-1])
        assert not stats["failures"], "\n".join(stats["failures"][:20])
        assert stats["cases"] == cases
        assert stats["ok"] > cases // 4 and stats["expected_errors"] > cases // 10, stats
        # the options and weights real models use, among the checked cases
        valid = stats["valid"]
        for kind in ("top_k", "scale_by_gate", "int8_dynamic", "int8_static", "conv_int8"):
            assert valid[kind] > cases // 40, stats
        return stats

    def test_reference_knows_the_activation_names(host_driver, tmp_path):
        """Every activation name the harness builds models with is one the
        driver's reference computes (an empty batch per name: no values);
        an unknown name makes the file malformed (exit status 2)."""
        import numpy as np

        def case(act):
            return {"op": "dense", "x": np.zeros((0, 2), np.float32), "D": 2, "K": 1, "bs": 1,
                    "act": act, "thr": 0.5, "ibs": 0, "bias": None,
                    "kernel": np.zeros((1, 2, 1), np.float32), "wp": np.zeros((2, 1), np.float32),
                    "bp": np.zeros(1, np.float32)}

        names = ACTIVATIONS + ALIAS_NAMES
        outputs = [(i, case(n), np.zeros((0, 1), np.float32)) for i, n in enumerate(names)]
        assert check_outputs(host_driver, outputs, str(tmp_path)) == []
        bad = check_outputs(host_driver, [(0, case("softmax"), np.zeros((0, 1)))], str(tmp_path))
        assert bad and "exited with 2" in bad[0][1] and "unknown activation 'softmax'" in bad[0][1]

    def test_interpreter_fuzz(host_driver, tmp_path):
        _interpreter(host_driver, 300, 5, tmp_path)

    @pytest.mark.slow
    def test_interpreter_fuzz_10k(host_driver, tmp_path):
        _interpreter(host_driver, 10000, 99, tmp_path)


def main(argv=None):
    parser = argparse.ArgumentParser(description="interpreter fuzz worker")
    parser.add_argument("--worker", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cases", type=int, default=100)
    parser.add_argument("--progress", default=None)
    parser.add_argument("--only", type=int, default=None, help="replay one case")
    parser.add_argument("--driver", required=True,
                        help="the host test driver (its `check FILE` compares with the reference)")
    parser.add_argument("--keep", default=None,
                        help="write the checked CCLAYER2 file here, kept (tflite/sanitize.sh)")
    args = parser.parse_args(argv)
    if args.only is not None:
        import numpy as np

        c = random_case(np.random.default_rng([args.seed, args.only]))
        print(describe(c), file=sys.stderr)
    stats = run_worker(args.seed, args.cases, args.progress, args.driver, only=args.only,
                       keep=args.keep)
    print(json.dumps(stats))


if __name__ == "__main__":
    main()
