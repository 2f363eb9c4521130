"""Fully-connected condnet vs dense net on CIFAR-10 (paper section 6).

Run `python examples/cifar10_fc.py --help` for the options; `--smoke` runs on tiny
synthetic data to check the script works. Results, gate activations and
figures go to `--out` (default `runs/cifar10_fc`). See RESULTS.md.
"""

import sys

from condnet_experiment import ExperimentSpec, main

SPEC = ExperimentSpec(
    name="cifar10_fc",
    dataset="cifar10",
    kind="fc",
    hidden=(1024, 1024),
    num_blocks=16,
    taus=(0.25,),
    epochs=30,
    batch_size=64,
    standardize=True,
    tau_anneal_epochs=10,
    description="Fully-connected condnet vs dense net on CIFAR-10 (paper section 6).",
)

if __name__ == "__main__":
    sys.exit(main(SPEC))
