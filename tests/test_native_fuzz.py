"""Fuzzing the CondComp custom ops: random shapes, attributes and inputs
(NaN, +-Inf, empty batches, malformed FlexBuffers options, wrong tensors).

Every case either runs and matches a float64 reference of
docs/architecture.md, or fails with an error status; it never crashes.

Two harnesses, both in subprocesses so that a segfault fails the test (with
the case that crashed and the command to replay it) instead of killing pytest:

* native: tflite/arm/condcomp_driver.cc built for the host, driving the
  portable kernels and the TFLite glue (Init/Prepare/Invoke/Free through a
  mock TfLiteContext whose tensor buffers are exact-size heap blocks); a
  second build runs the AVX512-VNNI int8 kernel with SIMDe's vpdpbusd.
* interpreter: this file run as a worker (`python tests/test_native_fuzz.py
  --worker ...`): each case is a one-op .tflite flatbuffer written here with
  TFLite's schema (so attributes, shapes and options can be anything, not just
  what the converter emits), run by `keras_condcomp.litert.Interpreter`
  (tf.lite with the ops registered from build/tflite_ops).

Default run: a few hundred cases each. `pytest -m slow` runs >= 10,000 cases
each; `tflite/sanitize.sh` runs the native harness under ASan/UBSan.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARM = os.path.join(ROOT, "tflite", "arm")
OPS = os.path.join(ROOT, "tflite", "ops")

ACTIVATIONS = (
    "linear", "relu", "relu6", "sigmoid", "tanh", "elu", "selu", "softplus", "softsign",
    "silu", "gelu", "leaky_relu", "hard_sigmoid", "hard_silu", "mish", "exponential",
)
ALIASES = {"swish": "silu", "hard_swish": "hard_silu", "None": "linear"}
# Activations whose kernel turns a NaN pre-activation into a number (Keras: NaN).
NAN_CLAMPING = ("relu", "relu6", "hard_sigmoid")

# ---------------------------------------------------------------- reference


def act_ref(name, z):
    """Keras 3 activation in float64, NaN in -> NaN out."""
    import numpy as np

    name = ALIASES.get(name, name)
    with np.errstate(all="ignore"):
        sp = np.where(z > 0, z + np.log1p(np.exp(-np.abs(z))), np.log1p(np.exp(np.minimum(z, 0))))
        f = {
            "linear": lambda: z,
            "relu": lambda: np.where(z > 0, z, 0.0),
            "relu6": lambda: np.clip(z, 0.0, 6.0),
            "sigmoid": lambda: 1.0 / (1.0 + np.exp(-z)),
            "tanh": lambda: np.tanh(z),
            "elu": lambda: np.where(z > 0, z, np.expm1(np.minimum(z, 0))),
            "selu": lambda: 1.0507009873554805
            * np.where(z > 0, z, 1.6732632423543772 * np.expm1(np.minimum(z, 0))),
            "softplus": lambda: sp,
            "softsign": lambda: z / (1.0 + np.abs(z)),
            "silu": lambda: z / (1.0 + np.exp(-z)),
            "gelu": lambda: 0.5 * z * (1.0 + _erf(z / np.sqrt(2.0))),
            "leaky_relu": lambda: np.where(z > 0, z, 0.2 * z),
            "hard_sigmoid": lambda: np.clip(z + 3.0, 0.0, 6.0) / 6.0,
            "hard_silu": lambda: z * np.clip(z + 3.0, 0.0, 6.0) / 6.0,
            "mish": lambda: z * np.tanh(sp),
            "exponential": lambda: np.exp(z),
        }[name]()
        return np.where(np.isnan(z), np.nan, f)


def _erf(x):
    import numpy as np

    try:
        from scipy.special import erf

        return erf(x)
    except ImportError:  # pragma: no cover - scipy is a test dependency
        import math

        return np.vectorize(math.erf, otypes=[float])(x)


def conv_geometry(size, k, s, d, same):
    eff = (k - 1) * d + 1
    if same:
        out = -(-size // s)
        pad = max((out - 1) * s + eff - size, 0) // 2
    else:
        out = (size - eff) // s + 1 if size >= eff else 0
        pad = 0
    return out, pad


def gate_ref(z, err, thr):
    """0 off, 1 on, 2 within rounding of the threshold (sigmoid in double, then float)."""
    import numpy as np

    with np.errstate(all="ignore"):
        def on(v):
            return (1.0 / (1.0 + np.exp(-v))).astype(np.float32) > np.float32(thr)

        lo, hi = on(z - err), on(z + err)
        g = np.where(lo == hi, lo.astype(np.int8), 2)
        g = np.where(np.isinf(z), on(z).astype(np.int8), g)
        return np.where(np.isnan(z), 0, g)


def dot_err(n, abs_sum):
    return (n + 4.0) * 1.2e-7 * abs_sum + 1e-30


def reference(c):
    """(pre-activation z, its error bound, gates [B, K]) as float64 arrays."""
    import numpy as np

    x = c["x"].astype(np.float64)
    K, bs = c["K"], c["bs"]
    wp, bp = c["wp"].astype(np.float64), c["bp"].astype(np.float64)
    bias = c["bias"].astype(np.float64) if c["bias"] is not None else np.zeros(K * bs)
    with np.errstate(all="ignore"):
        if c["op"] == "dense":
            kern = c["kernel"].astype(np.float64).transpose(1, 0, 2).reshape(x.shape[1], K * bs)
            gz = x @ wp + bp
            ga = np.abs(x) @ np.abs(wp) + np.abs(bp)
            gates = gate_ref(gz, dot_err(x.shape[1], ga), c["thr"])
            z = x @ kern + bias
            err = dot_err(x.shape[1], np.abs(x) @ np.abs(kern) + np.abs(bias))
            return z, err, gates
        B, H, W, C = x.shape
        hw = H * W
        mean = x.sum(axis=(1, 2)) / hw if hw else np.zeros((B, C))
        amean = np.abs(x).sum(axis=(1, 2)) / hw if hw else np.zeros((B, C))
        gz = mean @ wp + bp
        gates = gate_ref(gz, dot_err(hw + C, amean @ np.abs(wp) + np.abs(bp)), c["thr"])
        KH, KW = c["KH"], c["KW"]
        # kernel_bm [K, KH, KW, C, bs] -> [KH, KW, C, K*bs]
        kern = c["kernel"].astype(np.float64).transpose(1, 2, 3, 0, 4).reshape(KH, KW, C, K * bs)
        OH, pt = conv_geometry(H, KH, c["sh"], c["dh"], c["same"])
        OW, pl = conv_geometry(W, KW, c["sw"], c["dw"], c["same"])
        z = np.broadcast_to(bias, (B, OH, OW, K * bs)).copy()
        a = np.broadcast_to(np.abs(bias), (B, OH, OW, K * bs)).copy()
        n = np.zeros((OH, OW, 1))
        for kh in range(KH):
            for kw in range(KW):
                for oh in range(OH):
                    ih = oh * c["sh"] - pt + kh * c["dh"]
                    if not 0 <= ih < H:
                        continue
                    for ow in range(OW):
                        iw = ow * c["sw"] - pl + kw * c["dw"]
                        if not 0 <= iw < W:
                            continue
                        xv = x[:, ih, iw, :]
                        z[:, oh, ow, :] += xv @ kern[kh, kw]
                        a[:, oh, ow, :] += np.abs(xv) @ np.abs(kern[kh, kw])
                        n[oh, ow] += C
        return z, dot_err(n, a), gates


def check_output(c, y):
    """Returns None if `y` matches the reference, else a description."""
    import numpy as np

    z, err, gates = reference(c)
    K, bs = c["K"], c["bs"]
    if y.shape != z.shape:
        return f"output shape {y.shape}, expected {z.shape}"
    if y.size == 0:
        return None
    act = c["act"]
    B = y.shape[0]
    # An example whose input holds NaN or +-Inf: its whole output row is NaN
    # (keras_condcomp.layers.nonfinite_rows_to_nan), the other rows as usual.
    x = np.asarray(c["x"]).reshape(B, -1)
    nonfinite = ~np.isfinite(x).all(axis=1)
    if not np.isnan(y.reshape(B, -1)[nonfinite]).all():
        return "an example with a non-finite input does not get an all-NaN output row"
    if nonfinite.all():
        return None
    keep = ~nonfinite
    y, z, gates = y[keep], z[keep], gates[keep]
    err = np.broadcast_to(err, (B,) + z.shape[1:])[keep] if np.ndim(err) else err
    B = y.shape[0]
    yb = y.reshape(B, -1, K, bs)
    zb = z.reshape(B, -1, K, bs)
    eb = np.broadcast_to(err, z.shape).reshape(B, -1, K, bs)
    g = gates[:, None, :, None]
    off = np.broadcast_to(g == 0, yb.shape)
    if np.any(yb[off] != 0):
        return "an inactive block is not exactly zero"
    with np.errstate(all="ignore"):
        ref = act_ref(act, zb)
        lo = np.minimum(np.minimum(act_ref(act, zb - eb), act_ref(act, zb + eb)), ref)
        hi = np.maximum(np.maximum(act_ref(act, zb - eb), act_ref(act, zb + eb)), ref)
        lo = np.where(np.isnan(lo), ref, lo)
        hi = np.where(np.isnan(hi), ref, hi)
        tol = 4e-6 * np.maximum(np.abs(lo), np.abs(hi))
        if ALIASES.get(act, act) == "gelu":
            tol = tol + 5e-7 * (1.0 + np.minimum(np.abs(zb), 1e3))
        lo, hi = lo - tol, hi + tol
        yd = yb.astype(np.float64)
        fmax = float(np.finfo(np.float32).max)
        ok = (yd >= lo) & (yd <= hi)
        ok |= np.isinf(yd) & (((yd > 0) & (hi >= fmax)) | ((yd < 0) & (lo <= -fmax)))
        ok |= np.isnan(yd) & ((hi >= fmax) | (lo <= -fmax))
        # Infinite pre-activation: exactly act(+-inf) (to float rounding).
        inf_z = np.isinf(zb)
        ok = np.where(inf_z, (yd == ref) | (np.abs(yd - ref) <= 4e-6 * np.abs(ref)), ok)
        nan_ref = np.isnan(ref)
        nan_ok = np.isnan(yd)
        if ALIASES.get(act, act) in NAN_CLAMPING:
            nan_ok |= np.isnan(zb)  # known deviation, see tflite/arm/README / docs/deploy_phone.md
        ok = np.where(nan_ref, nan_ok, ok)
    on = np.broadcast_to(g == 1, yb.shape)
    amb = np.broadcast_to(g == 2, yb.shape)
    bad = on & ~ok
    # An ambiguous block is fine all-zero or all-matching.
    amb_blocks_zero = np.all((yb == 0) | ~amb, axis=(1, 3), keepdims=True)
    bad |= amb & ~ok & ~np.broadcast_to(amb_blocks_zero, yb.shape)
    if np.any(bad):
        i = tuple(int(v) for v in np.argwhere(bad)[0])
        return f"y{i}={yb[i]!r}, reference z={zb[i]!r} -> {ref[i]!r} ({act})"
    return None


# ------------------------------------------------------------ model writer


def flexbuffer_map(attrs):
    from flatbuffers import flexbuffers

    return bytes(flexbuffers.Dumps(attrs))


def build_model(c):
    """One custom op as a .tflite flatbuffer: x -> op(x, kernel, bias, wp, bp) -> y."""
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
    "empty_options",
)


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
    act = str(rng.choice(ACTIVATIONS + ("swish", "hard_swish")))
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
    tensors = {"kernel": c["kernel"], "bias": c["bias"], "wp": c["wp"], "bp": c["bp"]}
    inputs = [0, 1, 2 if has_bias else -1, 3, 4]
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
            key = str(rng.choice([k for k in attrs if k != "input_block_size"]))
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
        elif defect == "bias_len" and has_bias:
            tensors["bias"] = rng.normal(0, 0.1, K * bs + 1).astype(np.float32)
        elif defect == "policy_shape":
            tensors["wp"] = rng.normal(0, 0.1, (D + 1, K)).astype(np.float32)
        elif defect == "input_count":
            inputs = inputs[:4] if rng.random() < 0.5 else inputs + [0]
        elif defect == "dtype":
            tensors["kernel"] = (tensors["kernel"] * 100).astype(np.int8)
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
    keys = ("op", "B", "D", "K", "bs", "act", "thr", "ibs", "defect", "KH", "KW", "sh", "sw", "dh",
            "dw", "same")
    return ", ".join(f"{k}={c[k]}" for k in keys if k in c) + f", x{tuple(c['x'].shape)}"


# ------------------------------------------------------------------ worker


def run_worker(seed, cases, progress, threads_max=2, only=None):
    import numpy as np

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from keras_condcomp.litert import Interpreter

    stats = {"cases": 0, "ok": 0, "expected_errors": 0, "mutated_ok": 0, "mutated_err": 0,
             "failures": []}
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
        why = check_output(c, y)
        if why:
            stats["failures"].append(f"case {i}: {why} ({describe(c)})")
        else:
            stats["ok"] += 1
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
        cc = shutil.which("gcc") or shutil.which("cc")
        cxx = shutil.which("g++") or shutil.which("c++")
        if not cc or not cxx:
            pytest.skip("no C/C++ compiler (apt-get install gcc g++)")
        build = _ops_build()
        objs = []
        for src in build["sources"]:
            obj = out / (os.path.splitext(src)[0] + ".o")
            subprocess.run([cc, *build["cflags"], "-O2", "-g", *cflags,
                            "-c", os.path.join(OPS, src), "-o", str(obj)], check=True)
            objs.append(str(obj))
        exe = out / "condcomp_driver"
        subprocess.run([cxx, "-std=c++17", "-O2", "-g", "-Wno-psabi", "-I", OPS, "-I", ARM,
                        os.path.join(ARM, "condcomp_driver.cc"), *objs, "-o", str(exe),
                        "-lpthread", "-lm"], check=True)
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

    def _litert_ready():
        try:
            from keras_condcomp import litert
        except ImportError as e:  # pragma: no cover
            return f"keras_condcomp.litert not importable: {e}"
        if not litert.library_available():
            return f"custom-op library not built ({litert.BUILD_COMMAND})"
        return None

    def _interpreter(cases, seed, tmp_path):
        reason = _litert_ready()
        if reason:
            pytest.skip(reason)
        progress = str(tmp_path / "interp.progress")
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--seed", str(seed),
               "--cases", str(cases), "--progress", progress]
        proc = _run_isolated(cmd, progress, "interpreter fuzz worker", timeout=3600)
        assert proc.returncode == 0, proc.stderr[-4000:]
        stats = json.loads(proc.stdout.strip().splitlines()[-1])
        assert not stats["failures"], "\n".join(stats["failures"][:20])
        assert stats["cases"] == cases
        assert stats["ok"] > cases // 4 and stats["expected_errors"] > cases // 10, stats
        return stats

    def test_interpreter_fuzz(tmp_path):
        _interpreter(300, 5, tmp_path)

    @pytest.mark.slow
    def test_interpreter_fuzz_10k(tmp_path):
        _interpreter(10000, 99, tmp_path)


def main(argv=None):
    parser = argparse.ArgumentParser(description="interpreter fuzz worker")
    parser.add_argument("--worker", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cases", type=int, default=100)
    parser.add_argument("--progress", default=None)
    parser.add_argument("--only", type=int, default=None, help="replay one case")
    args = parser.parse_args(argv)
    if args.only is not None:
        import numpy as np

        c = random_case(np.random.default_rng([args.seed, args.only]))
        print(describe(c), file=sys.stderr)
    stats = run_worker(args.seed, args.cases, args.progress, only=args.only)
    print(json.dumps(stats))


if __name__ == "__main__":
    main()
