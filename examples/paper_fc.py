"""Fully-connected condnet vs dense net (paper section 6), one data set per run.

    python examples/paper_fc.py --dataset digits        # real data, runs anywhere
    python examples/paper_fc.py --dataset mnist --help  # mnist's defaults

`--dataset` picks a row of `PRESETS` below: the defaults of the network
shape, blocks, taus, epochs, batch size and tau anneal (each also an option).
`--smoke` runs on tiny synthetic data to check the script works. Results,
gate activations and figures go to `--out` (default `runs/<dataset>_fc`).
The run itself is examples/condnet_experiment.py's. See RESULTS.md.
"""

import argparse
import sys

from condnet_experiment import ExperimentSpec
from condnet_experiment import main as run_experiment

# The defaults of each data set's run; inputs of cifar10 and svhn are
# standardized per channel with the training set's statistics.
#            hidden units  blocks  taus         epochs  batch  tau anneal  standardize
_TABLE = {
    "digits":  ((128, 128),     8,  (0.25, 0.5),   40,    32,        10,   False),
    "mnist":   ((512, 512),    16,  (0.25,),       20,    64,         5,   False),
    "cifar10": ((1024, 1024),  16,  (0.25,),       30,    64,        10,   True),
    "svhn":    ((1024, 1024),  16,  (0.25,),       20,    64,         5,   True),
}
_DATA = {
    "digits": "scikit-learn's 8x8 digits (real data, runs anywhere)",
    "mnist": "MNIST",
    "cifar10": "CIFAR-10",
    "svhn": "SVHN cropped digits",
}
PRESETS = {
    dataset: ExperimentSpec(
        name=f"{dataset}_fc", dataset=dataset, kind="fc", hidden=hidden, num_blocks=blocks,
        taus=taus, epochs=epochs, batch_size=batch_size, tau_anneal_epochs=anneal,
        standardize=standardize,
        description=f"Fully-connected condnet vs dense net on {_DATA[dataset]}.",
    )
    for dataset, (hidden, blocks, taus, epochs, batch_size, anneal, standardize)
    in _TABLE.items()
}
DEFAULT_DATASET = "digits"


def _dataset_parser():
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--dataset", choices=tuple(PRESETS), default=DEFAULT_DATASET,
                        help="the data set; it sets the defaults of the options below "
                        "(`--dataset NAME --help` shows that data set's)")
    return parser


def main(argv=None):
    """Runs the experiment of `--dataset` with `argv` (default: the command line)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    chosen, _ = _dataset_parser().parse_known_args(argv)
    return run_experiment(PRESETS[chosen.dataset], argv, script="paper_fc.py",
                          parents=[_dataset_parser()])


if __name__ == "__main__":
    sys.exit(main())
