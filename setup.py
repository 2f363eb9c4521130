"""Setuptools build of keras_condcomp (metadata lives here; pyproject.toml names the backend).

The wheel carries the TFLite custom-op library: `build_ext` compiles
tflite/ops into `keras_condcomp/libcondcomp_tflite_ops.so` (a plain shared
library loaded with ctypes, not a Python extension module) from the sources
and with the flags of tflite/ops/build.txt, which every build of the library
reads; the kernels pick AVX2/AVX-512 at run time, so the wheel is not tied
to the build machine's CPU (`CONDCOMP_NATIVE=1` builds for it instead).
Setuptools rather than scikit-build-core because C files with no
dependencies need no CMake at install time (CMake stays for cross and NDK
builds: tflite/ops/CMakeLists.txt). A failed compile does not fail the
install: the Python package trains without the library, and
`keras_condcomp.litert` then says how to build it.
"""

import os
import re

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

OPS = os.path.join("tflite", "ops")
OPS_LIBRARY = "libcondcomp_tflite_ops.so"


def read_ops_build():
    """tflite/ops/build.txt (the op library's sources and flags) as {name: [words]}."""
    with open(os.path.join(OPS, "build.txt"), encoding="utf-8") as f:
        lines = (re.match(r"([a-z_]+) *= *(.*)", line) for line in f)
        return {m.group(1): m.group(2).split() for m in lines if m}


OPS_BUILD = read_ops_build()


class BuildOpsLibrary(build_ext):
    """Builds the op library as `keras_condcomp/libcondcomp_tflite_ops.so`."""

    def get_ext_filename(self, fullname):
        # Called with the dotted name or only its last part: no ABI suffix either way.
        if fullname.split(".")[-1] == OPS_LIBRARY[: -len(".so")]:
            return os.path.join(*fullname.split(".")) + ".so"
        return super().get_ext_filename(fullname)

    def get_export_symbols(self, ext):
        return []  # not a Python module: no PyInit_ symbol to export

    def build_extension(self, ext):
        if os.environ.get("CONDCOMP_NATIVE") == "1":
            ext.extra_compile_args = ext.extra_compile_args + ["-march=native"]
        super().build_extension(ext)


ops_library = Extension(
    "keras_condcomp.libcondcomp_tflite_ops",
    sources=[os.path.join(OPS, name)
             for name in OPS_BUILD["sources"] + OPS_BUILD["delegate_sources"]],
    depends=[os.path.join(OPS, name) for name in OPS_BUILD["headers"] + ["build.txt"]],
    extra_compile_args=OPS_BUILD["cflags"] + OPS_BUILD["library_cflags"],
    libraries=["pthread", "m"],
    extra_link_args=["-s"],  # no debug info in the wheel
    optional=True,
)

TRAIN = ["tensorflow>=2.16,<2.22", "keras>=3.5,<3.16"]

setup(
    name="keras_condcomp",
    version="0.1.0",
    description=(
        "Conditional computation for Keras 3: gated layers with learned block "
        "policies (REINFORCE), block-sparse inference and TFLite custom ops."
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["keras_condcomp", "keras_condcomp.*"]),
    ext_modules=[ops_library],
    cmdclass={"build_ext": BuildOpsLibrary},
    # Only numpy: a device that only runs converted models installs
    # `[runtime]`; training and converting need `[train]` (TensorFlow, Keras),
    # as tensorflow-model-optimization leaves TensorFlow to the user.
    install_requires=["numpy"],
    extras_require={
        "train": TRAIN,
        # LiteRT's interpreter; pulls flatbuffers, ml_dtypes, protobuf, tqdm (see README).
        "runtime": ["ai-edge-litert>=2.0,<2.4"],
        # pytest-xdist: scripts/test.sh runs the suite's files on every core (up to 4).
        "test": TRAIN + ["pytest", "pytest-xdist", "scikit-learn", "tensorboard", "hypothesis",
                         "matplotlib", "scipy", "ruff>=0.6,<1"],
        "litert": ["ai-edge-litert>=2.0,<2.4"],
        # Training on the Keras JAX or PyTorch backend (KERAS_BACKEND=jax / torch);
        # converting still runs on TensorFlow, which "train" installs.
        "jax": TRAIN + ["jax[cpu]"],
        "torch": TRAIN + ["torch"],
        "datasets": ["tensorflow-datasets", "scipy"],
        "plot": ["matplotlib"],
        # tfmot 0.8 needs tf-keras (Keras 2): only for the isolated pruning baseline script.
        "tfmot-baseline": ["tensorflow-model-optimization", "tf-keras"],
    },
    entry_points={"console_scripts": ["condcomp-convert = keras_condcomp.converter:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
