"""Convolutional condnet (GatedConv2D) vs plain convnet on CIFAR-10 (paper section 6).

Run `python examples/cifar10_conv.py --help` for the options; `--smoke` runs on tiny
synthetic data to check the script works. Results, gate activations and
figures go to `--out` (default `runs/cifar10_conv`). See RESULTS.md.
"""

import sys

from condnet_experiment import ExperimentSpec, main

SPEC = ExperimentSpec(
    name="cifar10_conv",
    dataset="cifar10",
    kind="conv",
    filters=(64, 64, 128, 128, 256, 256),
    hidden=(512,),
    num_blocks=4,
    taus=(0.5, 0.2),
    epochs=30,
    batch_size=128,
    standardize=True,
    tau_anneal_epochs=10,
    description="Convolutional condnet (GatedConv2D) vs plain convnet on CIFAR-10 "
                "(paper section 6).",
)

if __name__ == "__main__":
    sys.exit(main(SPEC))
