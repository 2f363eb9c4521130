#!/usr/bin/env bash
# Builds the CondComp TFLite custom-op library:
#   build/tflite_ops/libcondcomp_tflite_ops.so
# Uses CMake when available (tflite/ops/CMakeLists.txt), otherwise the C
# compiler directly; both take the sources and flags from tflite/ops/build.txt.
# Needs only a C11 compiler (gcc/clang); no TensorFlow headers. Environment:
# CC, BUILD_DIR, CONDCOMP_NATIVE=1 (-march=native), CMAKE_ARGS (extra CMake
# arguments, e.g. an NDK toolchain).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SRC="$ROOT/tflite/ops"
BUILD_DIR="${BUILD_DIR:-$ROOT/build/tflite_ops}"
LIB="$BUILD_DIR/libcondcomp_tflite_ops.so"
NATIVE="${CONDCOMP_NATIVE:-0}"
mkdir -p "$BUILD_DIR"

if command -v cmake >/dev/null 2>&1; then
  native_flag=OFF
  [ "$NATIVE" = "1" ] && native_flag=ON
  # shellcheck disable=SC2086
  cmake -S "$SRC" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DCONDCOMP_NATIVE="$native_flag" \
    ${CMAKE_ARGS:-} >/dev/null
  cmake --build "$BUILD_DIR" -j 2 >/dev/null
else
  CC="${CC:-cc}"
  build_txt() { sed -n "s/^$1 *= *//p" "$SRC/build.txt"; }
  read -ra sources <<< "$(build_txt sources) $(build_txt delegate_sources)"
  read -ra cflags <<< "$(build_txt cflags) $(build_txt library_cflags)"
  [ "$NATIVE" = "1" ] && cflags+=(-march=native)
  # "${sources[@]/#/$SRC/}": each source as $SRC/name.
  "$CC" "${cflags[@]}" -fPIC -shared "${sources[@]/#/$SRC/}" -o "$LIB" -lpthread -lm
fi

if [ ! -f "$LIB" ]; then
  echo "build_ops.sh: build finished but $LIB is missing" >&2
  exit 1
fi
echo "built $LIB"
