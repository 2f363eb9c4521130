#!/usr/bin/env bash
# Builds the CondComp custom ops (the sources of tflite/ops/build.txt:
# kernels, FlexBuffers reader, TFLite glue, thread pool) with the test driver
# tflite/ops/driver/ (build.txt's driver_sources) for the host under
# sanitizers, and runs the driver's random cases through them:
#
#   1. AddressSanitizer + UndefinedBehaviorSanitizer (+ float-cast-overflow),
#      kernels selected at run time (x86-64: the AVX2+FMA clone if the CPU has it)
#   2. the same with the multiversioning off (baseline SSE2 / generic vectors)
#   2b. (x86-64 with AVX2) the AVX512-VNNI int8 kernel with SIMDe's vpdpbusd
#   3. (--tsan) ThreadSanitizer on the glue with 2-4 threads (the op's thread pool)
#   4. (--check-python PY) the driver's `check FILE` under build 1: PY (a
#      Python with keras_condcomp, LiteRT and the op library) runs the
#      interpreter fuzz worker of tests/test_native_fuzz.py, whose CCLAYER2
#      file the sanitized driver checks, then damaged copies of that file
#      (truncated, bytes flipped, integer fields overwritten), each of which
#      must end with status 0, 1 or 2: never a crash or a sanitizer report
#
# Every tensor buffer and the options buffer the driver hands the op is its
# own exact-size heap block, so a read or write past any of them is reported.
# Any sanitizer report aborts the run (-fno-sanitize-recover, halt_on_error).
#
#   bash tflite/sanitize.sh [--cases N] [--seed S] [--tsan] [--check-python PY]
#
# OPS_DIR=/path/to/patched/ops checks a modified copy of tflite/ops instead.
#
# Needs gcc/g++ with libasan/libubsan/libtsan (Debian: gcc, g++ — the runtime
# libraries come with them). Default N = 3000 (each of kernels and ops per
# build); about 1-2 minutes on 2 cores.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OPS="${OPS_DIR:-$ROOT/tflite/ops}"  # OPS_DIR: check a patched copy
DRIVER="$ROOT/tflite/ops"  # the test driver: driver_sources of build.txt
OUT="${BUILD_DIR:-$ROOT/build/sanitize}"
CASES=3000
SEED=1
TSAN=0
CHECK_PYTHON=
while [ $# -gt 0 ]; do
  case "$1" in
    --cases) CASES="$2"; shift 2 ;;
    --seed) SEED="$2"; shift 2 ;;
    --tsan) TSAN=1; shift ;;
    --check-python) CHECK_PYTHON="$2"; shift 2 ;;
    *) echo "usage: $0 [--cases N] [--seed S] [--tsan] [--check-python PY]" >&2; exit 2 ;;
  esac
done
CC="${CC:-gcc}"
CXX="${CXX:-g++}"
mkdir -p "$OUT"
# The ops' sources and the flags of every build of them (tflite/ops/build.txt).
build_txt() { sed -n "s/^$1 *= *//p" "$OPS/build.txt"; }
read -ra sources <<< "$(build_txt sources)"
read -ra cflags <<< "$(build_txt cflags)"
# The test driver's C++ sources (this repository's, also with OPS_DIR).
read -ra driver_sources <<< "$(sed -n "s/^driver_sources *= *//p" "$DRIVER/build.txt")"

build() {  # build NAME "SANITIZER FLAGS" [extra C flags...]
  local name="$1" san="$2"
  shift 2
  local dir="$OUT/$name"
  mkdir -p "$dir"
  local objs=()
  for src in "${sources[@]}"; do
    # shellcheck disable=SC2086
    "$CC" "${cflags[@]}" -O1 -g -fno-omit-frame-pointer $san "$@" \
      -c "$OPS/$src" -o "$dir/${src%.c}.o"
    objs+=("$dir/${src%.c}.o")
  done
  # shellcheck disable=SC2086
  "$CXX" -std=c++17 -O1 -g -fno-omit-frame-pointer -Wno-psabi $san -I"$OPS" \
    "${driver_sources[@]/#/$DRIVER/}" "${objs[@]}" -o "$dir/condcomp_driver" -lpthread -lm
}

run() {  # run NAME MODE
  local name="$1" mode="$2"
  echo "== $name: $mode $CASES (seed $SEED)"
  "$OUT/$name/condcomp_driver" "$mode" "$CASES" --seed "$SEED"
}

ASAN_FLAGS="-fsanitize=address,undefined,float-cast-overflow -fno-sanitize-recover=all"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1:abort_on_error=1:halt_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export TSAN_OPTIONS="${TSAN_OPTIONS:-allocator_may_return_null=1:halt_on_error=1:second_deadlock_stack=1}"

build asan-ubsan "$ASAN_FLAGS"
run asan-ubsan kernels
run asan-ubsan ops

build asan-ubsan-baseline "$ASAN_FLAGS" -DCONDCOMP_NO_MULTIVERSION
CONDCOMP_KERNEL_ISA=baseline run asan-ubsan-baseline kernels
CONDCOMP_KERNEL_ISA=baseline run asan-ubsan-baseline ops

# The AVX512-VNNI int8 kernel, its vpdpbusd emulated by SIMDe (Debian:
# libsimde-dev) on AVX2: the kernel's logic on any x86-64 CPU, VNNI or not.
if [ "$(uname -m)" = x86_64 ] && grep -qw avx2 /proc/cpuinfo; then
  if [ -f /usr/include/simde/x86/avx512/dpbusd.h ]; then
    build asan-ubsan-vnni-emulated "$ASAN_FLAGS" -DCC_Q8_VNNI_EMULATED
    run asan-ubsan-vnni-emulated kernels
    run asan-ubsan-vnni-emulated ops
  elif [ "${CONDCOMP_REQUIRE_SIMDE:-0}" = 1 ]; then
    echo "tflite/sanitize.sh: CONDCOMP_REQUIRE_SIMDE=1 but SIMDe's headers are missing" >&2
    exit 1
  else
    echo "== skipped the emulated VNNI build: no SIMDe headers (apt-get install libsimde-dev)"
  fi
fi

if [ -n "$CHECK_PYTHON" ]; then
  echo "== asan-ubsan: check of the interpreter fuzz worker's outputs (seed $SEED)"
  layers="$OUT/interpreter_outputs.cclayer"
  rm -f "$layers"
  "$CHECK_PYTHON" "$ROOT/tests/test_native_fuzz.py" --worker --cases 120 --seed "$SEED" \
    --driver "$OUT/asan-ubsan/condcomp_driver" --keep "$layers" > "$OUT/worker.json" \
    2> "$OUT/worker.log" || { tail -20 "$OUT/worker.log" >&2; exit 1; }
  "$CHECK_PYTHON" - "$OUT/worker.json" "$layers" <<'PY'
import json, sys
stats = json.load(open(sys.argv[1]))
if stats["failures"] or stats["ok"] < 20:
    sys.exit(f"interpreter fuzz worker: {stats['ok']} checked, failures {stats['failures'][:3]}")
print(f"{stats['ok']} outputs checked by the sanitized driver ({sys.argv[2]})")
PY
  echo "== asan-ubsan: check of damaged copies of that file"
  "$CHECK_PYTHON" - "$OUT/asan-ubsan/condcomp_driver" "$layers" "$SEED" <<'PY'
import os, random, struct, subprocess, sys
driver, path, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
data = open(path, "rb").read()
rng = random.Random(seed)
damaged = path + ".damaged"
statuses = {}
for k in range(200):
    d = bytearray(data)
    how = k % 3
    if how == 0:  # truncated
        d = d[:rng.randrange(len(d))]
    elif how == 1:  # bytes flipped
        for _ in range(rng.randint(1, 8)):
            d[rng.randrange(len(d))] ^= 1 << rng.randrange(8)
    else:  # an aligned 4-byte field overwritten with a hostile integer
        at = rng.randrange(8, len(d) - 4) & ~3
        d[at:at + 4] = struct.pack("<i", rng.choice(
            [0, -1, 1, 2**31 - 1, -2**31, 1 << 20, rng.randint(-1000, 1000)]))
    open(damaged, "wb").write(d)
    rc = subprocess.run([driver, "check", damaged], capture_output=True).returncode
    if rc not in (0, 1, 2):
        sys.exit(f"damaged file {k} (kept at {damaged}): `{driver} check` ended with {rc}")
    statuses[rc] = statuses.get(rc, 0) + 1
os.remove(damaged)
print(f"200 damaged files: exit statuses {dict(sorted(statuses.items()))}")
PY
fi

if [ "$TSAN" = 1 ]; then
  build tsan "-fsanitize=thread"
  # Only the glue runs the thread pool (recommended_num_threads up to 4).
  run tsan ops
fi
echo "tflite/sanitize.sh: no sanitizer reports"
