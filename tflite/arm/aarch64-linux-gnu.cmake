# CMake toolchain file for Debian's aarch64 cross compilers
# (apt-get install g++-aarch64-linux-gnu):
#
#   cmake -S tflite/ops -B build/ops-arm64 -DCMAKE_TOOLCHAIN_FILE=tflite/arm/aarch64-linux-gnu.cmake
#   CMAKE_ARGS=-DCMAKE_TOOLCHAIN_FILE=$PWD/tflite/arm/aarch64-linux-gnu.cmake \
#     BUILD_DIR=build/ops-arm64 bash tflite/build_ops.sh
#
# Run the results with qemu-aarch64 (binaries linked -static, or with
# -L /usr/aarch64-linux-gnu for dynamic ones). For Android use the NDK's
# toolchain file instead ($ANDROID_NDK/build/cmake/android.toolchain.cmake,
# -DANDROID_ABI=arm64-v8a).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CROSS_PREFIX "aarch64-linux-gnu-" CACHE STRING "cross tool prefix")
set(CMAKE_C_COMPILER ${CROSS_PREFIX}gcc)
set(CMAKE_CXX_COMPILER ${CROSS_PREFIX}g++)
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64 -L /usr/aarch64-linux-gnu)
