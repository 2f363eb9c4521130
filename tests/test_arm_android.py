"""Android recipe (tflite/android): what can be checked without the SDK/NDK.

Runs tflite/android/check.sh: javac compiles the app's JNI wrapper and emits
its JNI header; the app's CMakeLists.txt builds libcondcomp_jni.so for aarch64
(Linux cross toolchain, same AArch64 ABI as arm64-v8a) with that header
force-included, against a stand-in libtensorflowlite_jni.so; the library's
TFLite C API imports, NEEDED entries and JNI exports are checked.

Skipped without javac/jni.h (apt-get install default-jdk-headless) or the
aarch64 cross compiler (apt-get install g++-aarch64-linux-gnu).
"""

import glob
import os
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _missing():
    missing = []
    javac = shutil.which("javac")
    if not javac:
        missing.append("javac")
    else:
        home = os.environ.get("JAVA_HOME") or os.path.dirname(
            os.path.dirname(os.path.realpath(javac)))
        if not os.path.isfile(os.path.join(home, "include", "jni.h")):
            missing.append("jni.h")
    if not shutil.which("aarch64-linux-gnu-gcc"):
        missing.append("aarch64-linux-gnu-gcc")
    return missing


if _missing() and os.environ.get("CONDCOMP_REQUIRE_ARM") == "1":  # CI installs them: never skip
    raise RuntimeError(f"$CONDCOMP_REQUIRE_ARM=1 but {', '.join(_missing())} not installed")


@pytest.mark.skipif(bool(_missing()), reason=f"needs {', '.join(_missing())} "
                    "(apt-get install default-jdk-headless g++-aarch64-linux-gnu)")
def test_android_jni_library_builds_and_links(tmp_path):
    env = dict(os.environ, BUILD_DIR=str(tmp_path / "android-check"))
    proc = subprocess.run(["bash", os.path.join(ROOT, "tflite", "android", "check.sh")],
                          capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "TfLiteInterpreterOptionsAddCustomOp" in proc.stdout
    assert "Android recipe checks passed" in proc.stdout
    libs = glob.glob(str(tmp_path / "android-check" / "build" / "libcondcomp_jni.so"))
    assert libs
