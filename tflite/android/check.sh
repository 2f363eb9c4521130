#!/usr/bin/env bash
# What of the Android recipe can be checked without the Android SDK/NDK:
#
#   1. javac compiles the app's JNI wrapper (CondCompInterpreter.java) and
#      generates its JNI header (javac -h).
#   2. The app's CMakeLists.txt configures and builds libcondcomp_jni.so with
#      the Linux aarch64 cross toolchain (same AArch64 ABI as arm64-v8a), with
#      the javac header force-included into condcomp_jni.c so that any mismatch
#      between the Java native methods and the C functions fails to compile.
#      It links against a stand-in libtensorflowlite_jni.so generated from the
#      C API declarations in condcomp_c_api.h (the real one comes from the AAR).
#   3. The library's undefined TfLite* symbols are all ones the AAR's
#      libtensorflowlite_jni.so exports (its version script exports TfLite*),
#      it NEEDs libtensorflowlite_jni.so, and it exports exactly the JNI
#      functions javac expects (plus nothing else but JNI_* / CondComp*).
#
# Not checked here: the NDK build (bionic, Android's linker), Gradle, the
# Activity (android.jar is not available), running on a device.
#
#   bash tflite/android/check.sh        (needs: javac + jni.h, g++-aarch64-linux-gnu; cmake optional)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
APP="$ROOT/tflite/android/example/app/src/main"
OUT="${BUILD_DIR:-$ROOT/build/android-check}"
CROSS="${CROSS-aarch64-linux-gnu-}"
CC="${CROSS}gcc"
rm -rf "$OUT"
mkdir -p "$OUT/classes" "$OUT/jni" "$OUT/aar/jni/arm64-v8a"

JAVAC="${JAVAC:-$(command -v javac || true)}"
if [ -z "$JAVAC" ]; then
  echo "tflite/android/check.sh: javac not found (apt-get install default-jdk-headless)" >&2
  exit 3
fi
JAVA_HOME="${JAVA_HOME:-$(dirname "$(dirname "$(readlink -f "$JAVAC")")")}"
JNI_INCLUDE="$JAVA_HOME/include"
if [ ! -f "$JNI_INCLUDE/jni.h" ]; then
  echo "tflite/android/check.sh: jni.h not found under $JNI_INCLUDE" >&2
  exit 3
fi
if ! command -v "$CC" >/dev/null 2>&1; then
  echo "tflite/android/check.sh: $CC not found (apt-get install g++-aarch64-linux-gnu)" >&2
  exit 3
fi

echo "== 1. javac + JNI header"
"$JAVAC" -Xlint:all -Werror -d "$OUT/classes" -h "$OUT/jni" \
  "$APP/java/org/condcomp/demo/CondCompInterpreter.java"
HEADER="$OUT/jni/org_condcomp_demo_CondCompInterpreter.h"
test -f "$HEADER"

echo "== 2. stand-in libtensorflowlite_jni.so (aarch64) from condcomp_c_api.h"
# One empty definition per declared TfLite* function (enough to link against).
python3 - "$APP/cpp/condcomp_c_api.h" > "$OUT/stub_tflite.c" <<'PY'
import re, sys
src = open(sys.argv[1]).read()
print('#include "condcomp_c_api.h"')
for m in re.finditer(r"^([A-Za-z_][\w\s\*]*?\b)(TfLite\w+)\((.*?)\);", src, re.M | re.S):
    ret, name, args = m.group(1).strip(), m.group(2), " ".join(m.group(3).split())
    body = "" if ret == "void" else "return 0;"
    print(f"{ret} {name}({args}) {{ {body} }}")
PY
"$CC" -shared -fPIC -Wall -Wno-unused-parameter -I"$APP/cpp" -I"$ROOT/tflite/ops" \
  -Wl,-soname,libtensorflowlite_jni.so -o "$OUT/aar/jni/arm64-v8a/libtensorflowlite_jni.so" \
  "$OUT/stub_tflite.c"

echo "== 3. libcondcomp_jni.so (aarch64) from the app's CMakeLists.txt"
LIB="$OUT/build/libcondcomp_jni.so"
if command -v cmake >/dev/null 2>&1; then
  cmake -S "$APP/cpp" -B "$OUT/build" \
    -DCMAKE_TOOLCHAIN_FILE="$ROOT/tflite/arm/aarch64-linux-gnu.cmake" \
    -DCMAKE_BUILD_TYPE=Release -DANDROID_ABI=arm64-v8a -DTFLITE_AAR_DIR="$OUT/aar" \
    -DCONDCOMP_JNI_INCLUDE="$JNI_INCLUDE" \
    -DCONDCOMP_JNI_HEADER="$HEADER" >/dev/null
  cmake --build "$OUT/build" -j 2 >/dev/null
else
  echo "(cmake not installed: building with the compiler directly)"
  mkdir -p "$OUT/build"
  # What the CMakeLists.txt builds: condcomp_jni.c and the ops' sources, with
  # the flags of tflite/ops/build.txt.
  OPS="$ROOT/tflite/ops"
  build_txt() { sed -n "s/^$1 *= *//p" "$OPS/build.txt"; }
  read -ra sources <<< "$(build_txt sources)"
  read -ra cflags <<< "$(build_txt cflags) $(build_txt library_cflags)"
  "$CC" "${cflags[@]}" -fPIC -shared \
    -include "$HEADER" -Werror=implicit-function-declaration \
    -I"$APP/cpp" -I"$OPS" -I"$JNI_INCLUDE" -I"$JNI_INCLUDE/linux" \
    "$APP/cpp/condcomp_jni.c" "${sources[@]/#/$OPS/}" -Wl,-z,max-page-size=16384 \
    -L"$OUT/aar/jni/arm64-v8a" -ltensorflowlite_jni -lpthread -lm -o "$LIB"
fi
test -f "$LIB"

echo "== 4. symbols"
python3 - "$LIB" "$HEADER" "${CROSS}nm" "${CROSS}readelf" <<'PY'
import re, subprocess, sys
lib, header, nm, readelf = sys.argv[1:5]
undef = subprocess.run([nm, "-D", "--undefined-only", lib], capture_output=True, text=True, check=True).stdout
defined = subprocess.run([nm, "-D", "--defined-only", lib], capture_output=True, text=True, check=True).stdout
dyn = subprocess.run([readelf, "-d", lib], capture_output=True, text=True, check=True).stdout
tflite = sorted(set(re.findall(r"\bU (TfLite\w+)", undef)))
others = sorted(s for s in re.findall(r"\bU (\S+)", undef) if not s.startswith("TfLite"))
exported = sorted(set(re.findall(r" T (\w+)", defined)))
expected_jni = sorted(set(re.findall(r"JNIEXPORT \w+ JNICALL (Java_\w+)", open(header).read())))
errors = []
if "libtensorflowlite_jni.so" not in dyn:
    errors.append("does not NEED libtensorflowlite_jni.so")
jni = [s for s in exported if s.startswith("Java_")]
if jni != expected_jni:
    errors.append(f"JNI exports {jni} != javac's {expected_jni}")
extra = [s for s in exported if not (s.startswith(("Java_", "JNI_", "CondComp")))]
if extra:
    errors.append(f"unexpected exported symbols: {extra}")
libc_like = re.compile(r"^(__\w+|[a-z_][a-z0-9_]*)(@.*)?$")
odd = [s for s in others if not libc_like.match(s)]
print(f"TFLite C API used ({len(tflite)}): {', '.join(tflite)}")
print(f"JNI functions ({len(jni)}): {', '.join(jni)}")
print(f"other undefined (libc/libm/pthread): {len(others)}")
if odd:
    errors.append(f"unexpected undefined symbols: {odd}")
if errors:
    sys.exit("symbol check failed: " + "; ".join(errors))
PY
ls -l "$LIB" | awk '{print "libcondcomp_jni.so (aarch64, not stripped): " $5 " bytes"}'
"${CROSS}strip" --strip-unneeded -o "$OUT/libcondcomp_jni.stripped.so" "$LIB"
ls -l "$OUT/libcondcomp_jni.stripped.so" | awk '{print "libcondcomp_jni.so (aarch64, stripped): " $5 " bytes"}'
echo "tflite/android/check.sh: Android recipe checks passed"
