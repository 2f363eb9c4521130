#!/usr/bin/env bash
# Prepares an aarch64 Python with LiteRT for qemu-user (tests/test_arm_litert.py):
#
#   build/arm-litert/root/   Debian bookworm's aarch64 python3.11 and the
#                            libraries it and LiteRT load (packages unpacked,
#                            not installed: qemu-aarch64 -L uses it as the root)
#   build/arm-litert/site/   the aarch64 wheels of ai-edge-litert (and what it
#                            imports: numpy, ml_dtypes, protobuf, ...), unpacked
#
# Run a script there with
#   qemu-aarch64 -L build/arm-litert/root build/arm-litert/root/usr/bin/python3.11 script.py
# and PYTHONPATH=build/arm-litert/site:<repository root>.
#
# Needs root and apt (adds the arm64 architecture to dpkg and downloads the
# .deb files; nothing is installed for arm64), pip (downloads the wheels for
# manylinux aarch64 / CPython 3.11, the version of bookworm's python3) and
# qemu-user. Safe to run again: does nothing once build/arm-litert/.done exists.
# Environment: OUT (default build/arm-litert), PIP (default .venv/bin/pip),
# LITERT_VERSION (default 2.3.0, the version the x86 tests use).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
OUT="${OUT:-$ROOT/build/arm-litert}"
PIP="${PIP:-$ROOT/.venv/bin/pip}"
LITERT_VERSION="${LITERT_VERSION:-2.3.0}"
[ -f "$OUT/.done" ] && { echo "$OUT ready"; exit 0; }
rm -rf "$OUT"
mkdir -p "$OUT/debs" "$OUT/root" "$OUT/wheels" "$OUT/site"

if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  dpkg --add-architecture arm64
fi
apt-get update -qq
# python3.11 and the shared libraries its standard library and LiteRT load.
PACKAGES=(libc6 libgcc-s1 libstdc++6 libpython3.11-minimal libpython3.11-stdlib python3.11-minimal
          zlib1g libexpat1 libffi8 libssl3 libbz2-1.0 liblzma5 libcrypt1 libuuid1 libtinfo6
          libncursesw6 libreadline8 libsqlite3-0 libdb5.3 libnsl2 libtirpc3)
(cd "$OUT/debs" && apt-get download -qq "${PACKAGES[@]/%/:arm64}" 2>/dev/null)
for deb in "$OUT"/debs/*.deb; do dpkg-deb -x "$deb" "$OUT/root"; done
# qemu-user 7.2 passes /proc/cpuinfo and /sys through from the x86 host, and
# LiteRT's CPU detection (cpuinfo, for XNNPACK/ruy) dereferences NULL on an
# x86 cpuinfo. qemu -L opens a path from the root first when it exists there,
# so the root gets an aarch64 description: two Cortex-A76 cores (NEON with
# dot product, a typical phone big core).
mkdir -p "$OUT/root/proc" "$OUT/root/sys/devices/system/cpu"
for cpu in 0 1; do
  printf 'processor\t: %s\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x4\nCPU part\t: 0xd0b\nCPU revision\t: 1\n\n' "$cpu"
done > "$OUT/root/proc/cpuinfo"
echo 0-1 > "$OUT/root/sys/devices/system/cpu/possible"
echo 0-1 > "$OUT/root/sys/devices/system/cpu/present"
echo 1 > "$OUT/root/sys/devices/system/cpu/kernel_max"

"$PIP" download -q --only-binary=:all: --python-version 3.11 --implementation cp \
  --platform manylinux_2_17_aarch64 --platform manylinux2014_aarch64 \
  --platform manylinux_2_27_aarch64 --platform manylinux_2_28_aarch64 \
  -d "$OUT/wheels" "ai-edge-litert==$LITERT_VERSION" 2>&1 | grep -v "^WARNING: Location" || true
for wheel in "$OUT"/wheels/*.whl; do
  python3 -m zipfile -e "$wheel" "$OUT/site"
done
[ -x "$OUT/root/usr/bin/python3.11" ] && [ -d "$OUT/site/ai_edge_litert" ] || {
  echo "litert_sysroot.sh: python3.11 or ai_edge_litert missing in $OUT" >&2; exit 1; }
touch "$OUT/.done"
echo "$OUT ready"
