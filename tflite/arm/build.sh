#!/usr/bin/env bash
# Cross-compiles the CondComp custom ops for 64-bit ARM (aarch64, the ABI of
# Android's arm64-v8a and of Linux ARM boards) with Debian's cross toolchain:
#
#   build/arm/condcomp_driver           static aarch64 test/benchmark driver
#                                       (kernels + TFLite glue + reference)
#   build/arm/libcondcomp_tflite_ops.so the op library for aarch64 Linux
#                                       (stripped copy: *.stripped.so)
#   build/arm/vec-report.txt            GCC's vectorizer report for the sources
#   build/arm/neon-report.txt           NEON fmla counts per function of the
#                                       sources (the block kernels among them)
#
# Needs: apt-get install g++-aarch64-linux-gnu (binutils come with it).
# Run the result with tflite/arm/run_tests.sh (qemu-user) or on the device.
#
# Environment: CROSS (tool prefix, default aarch64-linux-gnu-; empty on an
# aarch64 host), BUILD_DIR (default build/arm), ARM_CFLAGS (extra flags, e.g.
# -mcpu=cortex-a76 to tune for a given phone core; the default is plain
# armv8-a, NEON included, which every arm64-v8a device has).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
OPS="${OPS_DIR:-$ROOT/tflite/ops}"  # OPS_DIR: build a patched copy instead
DRIVER="$ROOT/tflite/ops"  # the test driver: driver_sources of build.txt
OUT="${BUILD_DIR:-$ROOT/build/arm}"
if [ -z "${CROSS+x}" ]; then
  if [ "$(uname -m)" = "aarch64" ]; then CROSS=""; else CROSS="aarch64-linux-gnu-"; fi
fi
CC="${CROSS}gcc"
CXX="${CROSS}g++"
OBJDUMP="${CROSS}objdump"
STRIP="${CROSS}strip"
for tool in "$CC" "$CXX" "$OBJDUMP" "$STRIP"; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "tflite/arm/build.sh: $tool not found (apt-get install g++-aarch64-linux-gnu)" >&2
    exit 3
  fi
done
mkdir -p "$OUT/obj"

# The sources and flags of every build of the ops (tflite/ops/build.txt),
# for armv8-a.
build_txt() { sed -n "s/^$1 *= *//p" "$OPS/build.txt"; }
read -ra SOURCES <<< "$(build_txt sources)"
# The external delegate (what LiteRT / tf.lite load with load_delegate) goes
# into the shared library only: the static driver registers the ops itself.
read -ra DELEGATE_SOURCES <<< "$(build_txt delegate_sources)"
# shellcheck disable=SC2206
EXTRA=(${ARM_CFLAGS:-})
read -ra CFLAGS <<< "$(build_txt cflags) $(build_txt library_cflags)"
# The test driver's C++ sources (this repository's, also with OPS_DIR).
read -ra DRIVER_SOURCES <<< "$(sed -n "s/^driver_sources *= *//p" "$DRIVER/build.txt")"
CFLAGS+=(-fPIC -march=armv8-a "${EXTRA[@]}")

: > "$OUT/vec-report.txt"
for src in "${SOURCES[@]}" "${DELEGATE_SOURCES[@]}"; do
  vec="$OUT/obj/${src%.c}.vec.txt"
  "$CC" "${CFLAGS[@]}" "-fopt-info-vec-optimized=$vec" -c "$OPS/$src" -o "$OUT/obj/${src%.c}.o"
  if [ -f "$vec" ]; then
    cat "$vec" >> "$OUT/vec-report.txt"
    rm "$vec"
  fi
done
OBJS=()
for src in "${SOURCES[@]}"; do OBJS+=("$OUT/obj/${src%.c}.o"); done
DELEGATE_OBJS=()
for src in "${DELEGATE_SOURCES[@]}"; do DELEGATE_OBJS+=("$OUT/obj/${src%.c}.o"); done

# Shared op library (what an app or tf.lite on an ARM board loads).
"$CC" -shared -Wl,-z,max-page-size=16384 -o "$OUT/libcondcomp_tflite_ops.so" "${OBJS[@]}" \
  "${DELEGATE_OBJS[@]}" -lpthread -lm
"$STRIP" --strip-unneeded -o "$OUT/libcondcomp_tflite_ops.stripped.so" \
  "$OUT/libcondcomp_tflite_ops.so"

# Static test/benchmark driver: runs under qemu-aarch64 without a sysroot.
DRIVER_OBJS=()
mkdir -p "$OUT/obj/driver"
for src in "${DRIVER_SOURCES[@]}"; do
  obj="$OUT/obj/driver/$(basename "${src%.cc}").o"
  "$CXX" -std=c++17 -O2 -Wall -Wextra -Wno-psabi -I"$OPS" -march=armv8-a "${EXTRA[@]}" \
    -c "$DRIVER/$src" -o "$obj"
  DRIVER_OBJS+=("$obj")
done
"$CXX" -static -o "$OUT/condcomp_driver" "${DRIVER_OBJS[@]}" "${OBJS[@]}" \
  -lpthread -lm

# Did the block kernels become NEON code? Count vector FMAs (fmla vN.4s) in
# the dense / conv block functions (the micro-kernels are inlined into them),
# and the int8 dot products (sdot, sadalp) in the int8 kernels, over the
# objects of every source (the kernels are one file per family).
"$OBJDUMP" -d --no-show-raw-insn "${OBJS[@]}" > "$OUT/sources.dis"
python3 - "$OUT/sources.dis" > "$OUT/neon-report.txt" <<'PY'
import re, sys
func, counts = None, {}
for line in open(sys.argv[1]):
    m = re.match(r"^[0-9a-f]+ <([^>]+)>:", line)
    if m:
        func = m.group(1)  # a static function in several objects: their sum
        counts.setdefault(func, {"fmla.4s": 0, "fmul.4s": 0, "scalar fmadd": 0, "sdot": 0,
                                 "sadalp": 0, "insns": 0})
        continue
    if func is None or not re.match(r"^\s+[0-9a-f]+:", line):
        continue
    c = counts[func]
    c["insns"] += 1
    if re.search(r"\bfmla\s+v\d+\.4s", line):
        c["fmla.4s"] += 1
    elif re.search(r"\bfmul\s+v\d+\.4s", line):
        c["fmul.4s"] += 1
    elif re.search(r"\bfmadd\s+s\d+", line):
        c["scalar fmadd"] += 1
    elif re.search(r"\bsdot\s+v\d+\.4s", line):
        c["sdot"] += 1
    elif re.search(r"\bsadalp\s+v\d+\.4s", line):
        c["sadalp"] += 1
for f, c in sorted(counts.items()):
    if c["insns"]:
        print(f"{f}: {c['fmla.4s']} fmla v.4s, {c['fmul.4s']} fmul v.4s, "
              f"{c['scalar fmadd']} scalar fmadd, {c['sdot']} sdot, {c['sadalp']} sadalp, "
              f"{c['insns']} instructions")
PY

for f in condcomp_driver libcondcomp_tflite_ops.so libcondcomp_tflite_ops.stripped.so; do
  printf '%s: %s bytes\n' "$f" "$(stat -c %s "$OUT/$f")"
done
echo "built $OUT (aarch64, $("$CC" -dumpversion))"
