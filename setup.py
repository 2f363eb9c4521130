"""Setuptools build of keras_condcomp (metadata lives here; pyproject.toml names the backend)."""

from setuptools import find_packages, setup

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
    install_requires=[
        "tensorflow>=2.16,<2.22",
        "keras>=3.5",
        "numpy",
    ],
    extras_require={
        "test": ["pytest", "scikit-learn", "tensorboard", "hypothesis", "matplotlib", "scipy"],
        "litert": ["ai-edge-litert"],
        "datasets": ["tensorflow-datasets", "scipy"],
        "plot": ["matplotlib"],
        # tfmot 0.8 needs tf-keras (Keras 2): only for the isolated pruning baseline script.
        "tfmot-baseline": ["tensorflow-model-optimization", "tf-keras"],
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
