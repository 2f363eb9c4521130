"""aarch64 build of the CondComp custom ops, run under qemu-user.

Cross-compiles tflite/ops (kernels + TFLite glue) and the test driver
tflite/ops/driver/ with Debian's aarch64 toolchain and runs the
driver's checks under qemu-aarch64: random cases against a double-precision
reference, the glue through a mock TfLiteContext, the gated layers of a Keras
model, NEON code in the block kernels, and (dynamic instruction counts) that a
gated layer with a quarter of its blocks on executes far fewer instructions.

Needs `apt-get install g++-aarch64-linux-gnu qemu-user`; skipped otherwise
(CI installs both). On an aarch64 host the driver runs natively.
"""

import os
import platform
import re
import shutil
import subprocess
import sys

import pytest
from script_helpers import load_script

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARM = os.path.join(ROOT, "tflite", "arm")
NATIVE = platform.machine() == "aarch64"
CROSS = "" if NATIVE else "aarch64-linux-gnu-"
QEMU = os.environ.get("QEMU", "qemu-aarch64")

_missing = [t for t in (CROSS + "g++", CROSS + "gcc", CROSS + "objdump") if not shutil.which(t)]
if not NATIVE and not shutil.which(QEMU):
    _missing.append(QEMU)
if _missing and os.environ.get("CONDCOMP_REQUIRE_ARM") == "1":  # CI installs them: never skip
    raise RuntimeError(f"$CONDCOMP_REQUIRE_ARM=1 but {', '.join(_missing)} not installed")
pytestmark = pytest.mark.skipif(
    bool(_missing),
    reason=f"aarch64 toolchain / qemu not installed ({', '.join(_missing)}): "
    "apt-get install g++-aarch64-linux-gnu qemu-user",
)


def _run(cmd, timeout=300, **kw):
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    return proc


@pytest.fixture(scope="module")
def arm_build(tmp_path_factory):
    out = tmp_path_factory.mktemp("arm")
    env = dict(os.environ, BUILD_DIR=str(out))
    proc = _run(["bash", os.path.join(ARM, "build.sh")], env=env, timeout=600)
    assert proc.returncode == 0, f"tflite/arm/build.sh failed:\n{proc.stdout}\n{proc.stderr}"
    return out


def _driver(arm_build, *args, timeout=300, env=None):
    cmd = ([] if NATIVE else [QEMU]) + [str(arm_build / "condcomp_driver"), *map(str, args)]
    return _run(cmd, timeout=timeout, env=env)


def _summary(stdout):
    m = re.search(r"^(\d+) passed, (\d+) failed$", stdout, re.M)
    assert m, stdout
    return int(m.group(1)), int(m.group(2))


def test_build_outputs_are_aarch64(arm_build):
    for name in ("condcomp_driver", "libcondcomp_tflite_ops.so",
                 "libcondcomp_tflite_ops.stripped.so"):
        path = arm_build / name
        with open(path, "rb") as f:
            header = f.read(20)
        assert header[:4] == b"\x7fELF", name
        e_machine = int.from_bytes(header[18:20], "little")
        assert e_machine == 183, f"{name}: e_machine {e_machine}, expected 183 (EM_AARCH64)"
    # The library exports the registrations an Android app needs.
    nm = shutil.which(CROSS + "nm") or shutil.which("nm")
    if nm:
        library = str(arm_build / "libcondcomp_tflite_ops.so")
        syms = _run([nm, "-D", "--defined-only", library]).stdout
        for sym in ("CondCompGatedDenseRegistration", "CondCompGatedConv2DRegistration"):
            assert sym in syms


def test_block_kernels_are_neon(arm_build):
    """The inner loops compile to NEON vector FMAs (fmla vN.4s)."""
    report = (arm_build / "neon-report.txt").read_text()
    fmla = {}
    for line in report.splitlines():
        m = re.match(r"(\S+): (\d+) fmla v\.4s", line)
        if m:
            fmla[m.group(1)] = int(m.group(2))
    dense = sum(n for f, n in fmla.items() if "dense" in f and "block" in f)
    conv = sum(n for f, n in fmla.items() if "conv" in f and "block" in f)
    assert dense > 0 and conv > 0, report


def test_int8_kernels_are_sdot_and_sadalp(arm_build):
    """The int8 dot products: sdot (dot-product extension) and plain-NEON sadalp."""
    report = (arm_build / "neon-report.txt").read_text()
    counts = {m.group(1): (int(m.group(2)), int(m.group(3))) for m in
              re.finditer(r"^(\S+): .* (\d+) sdot, (\d+) sadalp", report, re.M)}
    assert counts["cc_dot_q8_sdot"][0] >= 4, report
    assert counts["cc_dot_q8_neon"][1] >= 4, report


def test_driver_runs_neon_path(arm_build):
    proc = _driver(arm_build, "info")
    assert proc.returncode == 0, proc.stderr
    assert "aarch64 neon" in proc.stdout
    assert "int8 isa: neon sdot" in proc.stdout  # qemu's default CPU has dotprod
    proc = _driver(arm_build, "info", env=dict(os.environ, CONDCOMP_KERNEL_ISA="baseline"))
    assert "int8 isa: neon smull/sadalp" in proc.stdout, proc.stdout


@pytest.mark.parametrize("isa", ["default", "baseline"])
def test_kernels_match_reference_under_qemu(arm_build, isa):
    """Random float and int8 cases; baseline: the int8 kernel without sdot."""
    env = dict(os.environ, CONDCOMP_KERNEL_ISA=isa)
    proc = _driver(arm_build, "kernels", 400, "--seed", 11 if isa == "default" else 12, env=env)
    passed, failed = _summary(proc.stdout)
    assert proc.returncode == 0 and failed == 0, proc.stdout + proc.stderr
    assert passed == 400
    assert re.search(r"[1-9]\d* int8 cases", proc.stdout), proc.stdout


def test_neon_quantize_matches_the_double_rule_under_qemu(arm_build):
    """The NEON activation quantization gives the portable double rule's bytes
    on values placed at and next to rounding ties, clamps and huge scales."""
    proc = _driver(arm_build, "quantize", 4000, "--seed", 11)
    passed, failed = _summary(proc.stdout)
    assert proc.returncode == 0 and failed == 0, proc.stdout + proc.stderr
    assert passed == 4000
    assert "over 3 variants" in proc.stdout, proc.stdout  # portable, neon, selected


def test_tflite_glue_under_qemu(arm_build):
    """Valid nodes match the reference; invalid shapes/options fail with an error."""
    proc = _driver(arm_build, "ops", 600, "--seed", 12)
    passed, failed = _summary(proc.stdout)
    assert proc.returncode == 0 and failed == 0, proc.stdout + proc.stderr
    m = re.search(r"(\d+) expected errors", proc.stdout)
    assert m and int(m.group(1)) > 50, proc.stdout


def test_model_layers_match_keras_under_qemu(arm_build, tmp_path):
    layers = tmp_path / "layers.bin"
    proc = _run(
        [sys.executable, os.path.join(ARM, "export_layers.py"), "--demo", "-o", str(layers)],
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = _driver(arm_build, "model", layers, "--reps", 1)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    passed, failed = _summary(proc.stdout)
    assert failed == 0 and passed == 4
    # Gating skipped work: fewer multiply-adds than the dense layers.
    for m in re.finditer(r"macs (\d+) of (\d+) dense", proc.stdout):
        assert int(m.group(1)) < int(m.group(2)), proc.stdout


@pytest.mark.skipif(NATIVE, reason="counts instructions through qemu's exec log")
def test_gated_layer_executes_fewer_instructions(arm_build):
    """Emulated aarch64 instruction counts: 2 of 8 blocks on vs all 8 on."""
    insn_count = load_script("tflite/arm/insn_count.py")
    driver = str(arm_build / "condcomp_driver")
    match = r"dense_block|cc_gated_dense|cc_apply_activation"
    counts = {}
    for active in (8, 2):
        argv = [driver, "bench", "dense", 256, 512, 8, active, 1, 2]
        total, _ = insn_count.count([str(a) for a in argv], qemu=QEMU, match=match)
        counts[active] = total
    assert counts[8] > 0
    ratio = counts[2] / counts[8]
    # Work is 1/4 of the dense layer's; allow for the gate and per-block overhead.
    assert ratio < 0.4, counts
