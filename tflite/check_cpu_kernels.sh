#!/usr/bin/env bash
# Checks the op library's kernels on the CPU it runs on, with nothing but
# gcc/g++ (no Python, no TensorFlow): meant for a machine this project does
# not test on every day, e.g. an Intel Xeon or a CPU with AVX512-VNNI /
# AVX-VNNI, where the int8 kernel the library picks (vpdpbusd) has only been
# run emulated (tests/test_native_fuzz.py, SIMDe).
#
#   bash tflite/check_cpu_kernels.sh [--cases N] [--rounds R]
#
#   1. prints the CPU model, its SIMD flags and the kernels the library picks;
#   2. fuzzes the kernels and the TFLite glue against the float64 reference
#      (tflite/ops/driver/, N cases each) with the kernels the CPU
#      picks and with CONDCOMP_KERNEL_ISA=avx2 and baseline;
#   3. times the paper-sized 784-2048-2048-2048 gated stack
#      (tflite/ops/bench_kernels.c, tau 0.25, float32 and int8, batch 1 and
#      32), alternating the picked kernels and the AVX2 ones R times, and
#      prints every run's median, so the two can be compared side by side.
#
# Exits non-zero if a fuzz case fails or the library does not pick the VNNI
# kernel on a CPU whose flags say it has VNNI. BUILD_DIR (default
# build/cpu_check) holds the binaries and log.txt, a copy of what is printed.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OPS="$ROOT/tflite/ops"
OUT="${BUILD_DIR:-$ROOT/build/cpu_check}"
CASES=3000
ROUNDS=5
while [ $# -gt 0 ]; do
  case "$1" in
    --cases) CASES="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    *) echo "usage: $0 [--cases N] [--rounds R]" >&2; exit 2 ;;
  esac
done
CC="${CC:-gcc}"
CXX="${CXX:-g++}"
mkdir -p "$OUT"
exec > >(tee "$OUT/log.txt") 2>&1

echo "== CPU"
grep -m1 "model name" /proc/cpuinfo || uname -m
echo "cores: $(nproc)"
flags=$(grep -m1 -w flags /proc/cpuinfo | tr ' ' '\n' |
  grep -E '^(avx2|fma|avx512f|avx512vl|avx512_vnni|avx_vnni)$' | tr '\n' ' ' || true)
echo "flags: $flags"

# The ops' sources and the flags of every build of them (tflite/ops/build.txt).
build_txt() { sed -n "s/^$1 *= *//p" "$OPS/build.txt"; }
read -ra sources <<< "$(build_txt sources)"
read -ra cflags <<< "$(build_txt cflags)"
read -ra driver_sources <<< "$(build_txt driver_sources)"
objs=()
for src in "${sources[@]}"; do
  "$CC" "${cflags[@]}" -O2 -g -c "$OPS/$src" -o "$OUT/${src%.c}.o"
  objs+=("$OUT/${src%.c}.o")
done
"$CXX" -std=c++17 -O2 -g -Wno-psabi -I"$OPS" "${driver_sources[@]/#/$OPS/}" "${objs[@]}" \
  -o "$OUT/condcomp_driver" -lpthread -lm
"$CC" "${cflags[@]}" -O3 "$OPS/bench_kernels.c" "${sources[@]/#/$OPS/}" -lpthread -lm \
  -o "$OUT/bench_kernels"

echo "== fuzz ($CASES cases per mode and kernel choice)"
picked=""
for isa in picked avx512vnni-ymm avx2 baseline; do
  for mode in kernels ops; do
    if [ "$isa" = picked ]; then
      line=$("$OUT/condcomp_driver" "$mode" "$CASES" --seed 11 | tail -2)
    else
      line=$(CONDCOMP_KERNEL_ISA=$isa "$OUT/condcomp_driver" "$mode" "$CASES" --seed 11 | tail -2)
    fi
    echo "[$isa] $line"
    echo "$line" | grep -q "$CASES passed, 0 failed" || { echo "FAIL: $isa $mode" >&2; exit 1; }
    if [ "$isa" = picked ]; then
      picked=$(echo "$line" | sed -n 's/.*with static scales (\([^)]*\)).*/\1/p')
    fi
  done
done
# every int8 activation quantization variant this CPU runs, against the
# double rule at and next to half-integers of x * k
line=$("$OUT/condcomp_driver" quantize "$((CASES * 20))" --seed 11 | tail -1)
echo "[quantize] $line"
echo "$line" | grep -q "$((CASES * 20)) passed, 0 failed" || { echo "FAIL: quantize" >&2; exit 1; }
echo "int8 kernel picked: $picked"
case " $flags " in
  *" avx512_vnni "*)
    case " $flags " in *" avx512vl "*)
      # ymm, or zmm where the CPU has AVX512BW too
      case "$picked" in
        "avx512-vnni vpdpbusd" | "avx512-vnni vpdpbusd zmm") ;;
        *) echo "FAIL: VNNI CPU, kernel $picked" >&2; exit 1 ;;
      esac ;;
    esac ;;
  *" avx_vnni "*)
    [ "$picked" = "avx-vnni vpdpbusd" ] || { echo "FAIL: AVX-VNNI CPU, kernel $picked" >&2; exit 1; } ;;
esac

echo "== timing: 784-2048-2048-2048, tau 0.25, caches flushed between runs; picked vs avx2, alternated"
for round in $(seq "$ROUNDS"); do
  for int8 in 0 1; do
    for batch in 1 32; do
      echo "round $round [picked] $("$OUT/bench_kernels" "$batch" 0.25 1 200 "$int8" | head -1)"
      echo "round $round [avx2]   $(CONDCOMP_KERNEL_ISA=avx2 "$OUT/bench_kernels" "$batch" 0.25 1 200 "$int8" | head -1)"
    done
  done
done
echo "tflite/check_cpu_kernels.sh: fuzz passed; timings above (log: $OUT/log.txt)"
