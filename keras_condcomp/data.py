"""Data sets of the paper's experiments: MNIST, CIFAR-10, SVHN, and digits.

Every loader returns a `Dataset` of float32 images scaled to [0, 1] with shape
`(examples, height, width, channels)` and int64 labels in 0..9.

Where the data come from, first match wins:

1. local files in the search directories: the `data_dir` argument, then the
   `CONDCOMP_DATA_DIR` environment variable (several directories separated by
   `os.pathsep`), then Keras' cache `~/.keras/datasets`. Accepted formats, per data set:

   * MNIST and Fashion-MNIST: the idx files `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
     `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte` (optionally `.gz`);
   * CIFAR-10: the python pickle batches `cifar-10-batches-py/`, the binary
     batches `cifar-10-batches-bin/`, or the archive `cifar-10-python.tar.gz`;
   * SVHN (cropped digits): `train_32x32.mat` and `test_32x32.mat` (label 10
     means digit 0);
   * any of them: `<name>.npz` holding `x_train`, `y_train`, `x_test`,
     `y_test` (Keras' own `mnist.npz` has this layout).

   Each directory is also searched in a sub-directory named after the data set
   (`mnist/`, `MNIST/raw/`, `cifar10/`, `svhn/`, ...).
2. a data set already prepared by tensorflow-datasets (`mnist`, `cifar10`,
   `svhn_cropped`) under a search directory, `TFDS_DATA_DIR` or
   `~/tensorflow_datasets`; read with `download=False`, so no network is used.
3. a tensorflow-datasets download, only when asked for (`download=True` or
   `CONDCOMP_DOWNLOAD=1`) and only after a short connection check succeeds,
   so an offline machine fails in seconds instead of hanging.

`digits` is scikit-learn's `load_digits` (1,797 real 8x8 handwritten digits
shipped inside scikit-learn) and is always available.

A data set found nowhere raises `DatasetNotFoundError`, which says where it
looked and how to provide the files.
"""

import dataclasses
import gzip
import os
import pickle
import socket
import struct
import tarfile
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

DATA_DIR_ENV = "CONDCOMP_DATA_DIR"
DOWNLOAD_ENV = "CONDCOMP_DOWNLOAD"

DATASET_NAMES = ("mnist", "fashion_mnist", "cifar10", "svhn", "digits")
IMAGE_SHAPES = {
    "mnist": (28, 28, 1),
    "fashion_mnist": (28, 28, 1),
    "cifar10": (32, 32, 3),
    "svhn": (32, 32, 3),
    "digits": (8, 8, 1),
}
NUM_CLASSES = 10
TFDS_NAMES = {"mnist": "mnist", "fashion_mnist": "fashion_mnist", "cifar10": "cifar10",
              "svhn": "svhn_cropped"}
# Where the original files are published; named in the not-found message and
# used to check that the network is reachable before a tfds download.
SOURCE_URLS = {
    "mnist": "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "fashion_mnist": "https://github.com/zalandoresearch/fashion-mnist",
    "cifar10": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    "svhn": "http://ufldl.stanford.edu/housenumbers/",
}
DIGITS_TEST_FRACTION = 0.2
NETWORK_CHECK_TIMEOUT_S = 5.0
DOWNLOAD_SOCKET_TIMEOUT_S = 60.0

_SUBDIRS = {
    "mnist": ("", "mnist", "MNIST", "MNIST/raw", "mnist/raw"),
    "fashion_mnist": ("", "fashion_mnist", "fashion-mnist", "FashionMNIST/raw"),
    "cifar10": ("", "cifar10", "cifar-10", "CIFAR10", "cifar10/raw"),
    "svhn": ("", "svhn", "SVHN", "svhn_cropped", "svhn/raw"),
}
_NPZ_NAMES = {
    "mnist": ("mnist.npz",),
    "fashion_mnist": ("fashion_mnist.npz", "fashion-mnist.npz"),
    "cifar10": ("cifar10.npz", "cifar-10.npz"),
    "svhn": ("svhn.npz", "svhn_cropped.npz"),
}
_MNIST_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
_EXPECTED_FILES = {
    "mnist": "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
    "t10k-labels-idx1-ubyte (each optionally .gz) or mnist.npz",
    "fashion_mnist": "train-images-idx3-ubyte, train-labels-idx1-ubyte, "
    "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte (each optionally .gz; Debian: "
    "apt-get install dataset-fashion-mnist puts them in /usr/share/datasets/fashion-mnist) "
    "or fashion_mnist.npz",
    "cifar10": "cifar-10-batches-py/ (data_batch_1..5, test_batch), cifar-10-batches-bin/ "
    "(data_batch_1..5.bin, test_batch.bin), cifar-10-python.tar.gz or cifar10.npz",
    "svhn": "train_32x32.mat and test_32x32.mat, or svhn.npz",
}


class DatasetNotFoundError(FileNotFoundError):
    """A data set is in none of the places the loader looked."""


@dataclasses.dataclass
class Dataset:
    """A train/test split of images and integer labels.

    Attributes:
        name: One of `DATASET_NAMES` (or another name for custom data).
        x_train, x_test: float32 arrays `(examples, height, width, channels)`
            in [0, 1], or `(examples, features)` after `flattened()`.
        y_train, y_test: int64 label arrays `(examples,)`.
        source: Where the arrays came from (a path, `tfds:...`, `sklearn`,
            or `synthetic`).
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str = ""

    @property
    def num_classes(self):
        return NUM_CLASSES

    @property
    def input_shape(self):
        """Shape of one example, e.g. `(28, 28, 1)` or `(784,)`."""
        return tuple(self.x_train.shape[1:])

    def flattened(self):
        """A copy with each example flattened to a vector (for dense nets)."""
        return dataclasses.replace(
            self,
            x_train=self.x_train.reshape(len(self.x_train), -1),
            x_test=self.x_test.reshape(len(self.x_test), -1),
        )

    def for_arch(self, arch):
        """The inputs examples/gate_pretrained.py trains `arch` on: "fc" flattened,
        "conv" standardized per channel."""
        if arch not in ("fc", "conv"):
            raise ValueError(f"Argument `arch` must be 'fc' or 'conv'. Received: arch={arch!r}")
        return self.flattened() if arch == "fc" else self.standardized()

    def standardized(self):
        """A copy standardized per channel with the training set's mean and std.

        Statistics come from the training split only, so no test information
        leaks into training.
        """
        axes = tuple(range(self.x_train.ndim - 1))
        mean = self.x_train.mean(axis=axes, keepdims=True)
        std = self.x_train.std(axis=axes, keepdims=True) + 1e-7
        return dataclasses.replace(
            self,
            x_train=((self.x_train - mean) / std).astype("float32"),
            x_test=((self.x_test - mean) / std).astype("float32"),
        )

    def subset(self, max_train=None, max_test=None, seed=0):
        """A copy with at most `max_train` / `max_test` examples, drawn at random.

        Args:
            max_train: Positive integer or None (keep all).
            max_test: Positive integer or None (keep all).
            seed: Seed of the random draw, so subsets are reproducible.
        """
        _check_optional_positive_int("max_train", max_train)
        _check_optional_positive_int("max_test", max_test)
        _check_seed(seed)
        rng = np.random.default_rng(seed)
        x_train, y_train = _random_subset(self.x_train, self.y_train, max_train, rng)
        x_test, y_test = _random_subset(self.x_test, self.y_test, max_test, rng)
        return dataclasses.replace(
            self, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test
        )

    def summary(self):
        """One line saying what the data set holds and where it came from."""
        return (
            f"{self.name}: {len(self.x_train)} train / {len(self.x_test)} test examples "
            f"of shape {self.input_shape}, from {self.source}"
        )


def _check_optional_positive_int(name, value):
    if value is None:
        return
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(
            f"Argument `{name}` must be a positive integer or None. Received: {name}={value!r}"
        )


def _check_seed(seed):
    if seed is not None and (
        not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0
    ):
        raise ValueError(
            f"Argument `seed` must be a non-negative integer or None. Received: seed={seed!r}"
        )


def _random_subset(x, y, limit, rng):
    if limit is None or limit >= len(x):
        return x, y
    index = np.sort(rng.choice(len(x), size=limit, replace=False))
    return x[index], y[index]


def _check_name(name):
    if name not in DATASET_NAMES:
        raise ValueError(
            f"Argument `name` must be one of {DATASET_NAMES}. Received: name={name!r}"
        )


# --------------------------------------------------------------------------- search


def search_directories(data_dir=None):
    """Directories searched for local files, in order, existing ones only.

    Args:
        data_dir: Optional directory (str or Path) searched first. It must
            exist: a typo should not silently fall through to other places.
    """
    candidates = []
    if data_dir is not None:
        if not isinstance(data_dir, (str, os.PathLike)):
            raise ValueError(
                f"Argument `data_dir` must be a path or None. Received: data_dir={data_dir!r}"
            )
        path = Path(data_dir).expanduser()
        if not path.is_dir():
            raise ValueError(
                "Argument `data_dir` must be an existing directory. "
                f"Received: data_dir={str(data_dir)!r}"
            )
        candidates.append(path)
    for entry in os.environ.get(DATA_DIR_ENV, "").split(os.pathsep):
        if entry:
            candidates.append(Path(entry).expanduser())
    candidates.append(Path("~/.keras/datasets").expanduser())
    seen, result = set(), []
    for path in candidates:
        resolved = path.resolve()
        if resolved not in seen and path.is_dir():
            seen.add(resolved)
            result.append(path)
    return result


def _tfds_directories(search_dirs):
    dirs = list(search_dirs)
    dirs.append(Path(os.environ.get("TFDS_DATA_DIR", "~/tensorflow_datasets")).expanduser())
    seen, result = set(), []
    for path in dirs:
        if path.resolve() not in seen:
            seen.add(path.resolve())
            result.append(path)
    return result


def _find_file(directory, filename):
    """`directory/filename` or `directory/filename.gz`, whichever exists."""
    for candidate in (directory / filename, directory / (filename + ".gz")):
        if candidate.is_file():
            return candidate
    # Some mirrors spell `train-images.idx3-ubyte`.
    dotted = directory / filename.replace("-idx", ".idx")
    return dotted if dotted.is_file() else None


def _open_maybe_gzip(path):
    return gzip.open(path, "rb") if str(path).endswith(".gz") else open(path, "rb")


# --------------------------------------------------------------------------- readers


def read_idx(path):
    """Reads an idx file (the MNIST format), plain or gzipped, as a uint8 array."""
    with _open_maybe_gzip(path) as f:
        data = f.read()
    if len(data) < 4:
        raise ValueError(f"Not an idx file (too short): {path}")
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08:
        raise ValueError(
            f"Not an unsigned-byte idx file (magic {data[:4].hex()}): {path}"
        )
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    array = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if array.size != int(np.prod(shape)):
        raise ValueError(
            f"idx file {path} declares shape {shape} but holds {array.size} values"
        )
    return array.reshape(shape)


def _load_mnist_idx(directory):
    paths = {key: _find_file(directory, name) for key, name in _MNIST_FILES.items()}
    if any(p is None for p in paths.values()):
        return None
    arrays = {key: read_idx(path) for key, path in paths.items()}
    return arrays, str(directory)


def _unpickle_cifar(fileobj):
    batch = pickle.load(fileobj, encoding="bytes")
    data = np.asarray(batch[b"data"], dtype=np.uint8)
    labels = np.asarray(batch[b"labels"], dtype=np.int64)
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def _load_cifar_pickle_dir(directory):
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    if not all((directory / n).is_file() for n in names):
        return None
    parts = []
    for n in names:
        with open(directory / n, "rb") as f:
            parts.append(_unpickle_cifar(f))
    return _cifar_parts_to_arrays(parts), str(directory)


def _load_cifar_binary_dir(directory):
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
    if not all((directory / n).is_file() for n in names):
        return None
    parts = []
    for n in names:
        records = np.fromfile(directory / n, dtype=np.uint8)
        if records.size % 3073:
            raise ValueError(f"CIFAR-10 binary batch has a partial record: {directory / n}")
        records = records.reshape(-1, 3073)
        images = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        parts.append((images, records[:, 0].astype(np.int64)))
    return _cifar_parts_to_arrays(parts), str(directory)


def _load_cifar_archive(path):
    parts = {}
    with tarfile.open(path, "r:*") as archive:
        for member in archive.getmembers():
            base = os.path.basename(member.name)
            if member.isfile() and (base.startswith("data_batch_") or base == "test_batch"):
                parts[base] = _unpickle_cifar(archive.extractfile(member))
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    if not all(n in parts for n in names):
        raise ValueError(f"CIFAR-10 archive lacks some batches {names}: {path}")
    return _cifar_parts_to_arrays([parts[n] for n in names]), str(path)


def _cifar_parts_to_arrays(parts):
    train, test = parts[:-1], parts[-1]
    return {
        "x_train": np.concatenate([p[0] for p in train]),
        "y_train": np.concatenate([p[1] for p in train]),
        "x_test": test[0],
        "y_test": test[1],
    }


def _load_cifar_dir(directory):
    for sub in ("cifar-10-batches-py", "cifar-10-batches-bin", ""):
        found = _load_cifar_pickle_dir(directory / sub) or _load_cifar_binary_dir(directory / sub)
        if found:
            return found
    for archive in ("cifar-10-python.tar.gz", "cifar-10-python.tar"):
        if (directory / archive).is_file():
            return _load_cifar_archive(directory / archive)
    return None


def read_svhn_mat(path):
    """Reads an SVHN `*_32x32.mat` file; returns `(images, labels)`.

    The file stores images as `(32, 32, 3, examples)` and the digit 0 as label
    10; this returns `(examples, 32, 32, 3)` uint8 and labels in 0..9.
    """
    from scipy import io as scipy_io

    contents = scipy_io.loadmat(str(path))
    images = np.transpose(contents["X"], (3, 0, 1, 2))
    labels = contents["y"].reshape(-1).astype(np.int64)
    labels[labels == 10] = 0
    return images, labels


def _load_svhn_dir(directory):
    train, test = directory / "train_32x32.mat", directory / "test_32x32.mat"
    if not (train.is_file() and test.is_file()):
        return None
    x_train, y_train = read_svhn_mat(train)
    x_test, y_test = read_svhn_mat(test)
    arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    return arrays, str(directory)


def read_npz(path):
    """Reads `x_train`, `y_train`, `x_test`, `y_test` from an `.npz` file."""
    with np.load(path, allow_pickle=False) as contents:
        missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in contents]
        if missing:
            raise ValueError(
                f"{path} lacks the arrays {missing}; an .npz data set needs x_train, "
                f"y_train, x_test and y_test. It holds: {sorted(contents.files)}"
            )
        return {k: contents[k] for k in ("x_train", "y_train", "x_test", "y_test")}


def _load_npz_dir(name, directory):
    for filename in _NPZ_NAMES[name]:
        if (directory / filename).is_file():
            return read_npz(directory / filename), str(directory / filename)
    return None


_LOCAL_READERS = {
    "mnist": _load_mnist_idx,
    "fashion_mnist": _load_mnist_idx,
    "cifar10": _load_cifar_dir,
    "svhn": _load_svhn_dir,
}


def _normalize(name, arrays, source):
    """Scales images to float32 [0, 1] with the data set's shape; labels to int64."""
    shape = IMAGE_SHAPES[name]
    result = {}
    for split in ("train", "test"):
        x = np.asarray(arrays[f"x_{split}"])
        y = np.asarray(arrays[f"y_{split}"]).reshape(-1)
        if y.dtype.kind == "f":
            integral = np.isfinite(y) & (y == np.round(y))
            if not integral.all():
                raise ValueError(
                    f"{source}: y_{split} must hold integer class labels; it holds "
                    f"non-integer values such as {float(y[~integral][0])}"
                )
        if y.dtype.kind not in "biuf":
            raise ValueError(f"{source}: y_{split} must hold integer class labels, not {y.dtype}")
        y = y.astype(np.int64)
        if x.dtype.kind not in "biuf":
            raise ValueError(f"{source}: x_{split} must hold numbers, not {x.dtype}")
        if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
            raise ValueError(
                f"{source}: x_{split} holds {int(np.sum(~np.isfinite(x)))} NaN or Inf "
                "pixel values; the file is corrupt"
            )
        if x.size != len(x) * int(np.prod(shape)):
            raise ValueError(
                f"{source}: x_{split} has shape {x.shape}, which does not hold "
                f"{name} images of shape {shape}"
            )
        if len(x) != len(y):
            raise ValueError(
                f"{source}: x_{split} has {len(x)} examples but y_{split} has {len(y)}"
            )
        if y.size and (y.min() < 0 or y.max() >= NUM_CLASSES):
            raise ValueError(
                f"{source}: y_{split} labels must be in 0..{NUM_CLASSES - 1}; "
                f"found {y.min()}..{y.max()}"
            )
        x = x.reshape((len(x),) + shape)
        if np.issubdtype(x.dtype, np.integer) or x.max(initial=0) > 1.5:
            x = x.astype(np.float32) / 255.0
        result[f"x_{split}"] = x.astype(np.float32, copy=False)
        result[f"y_{split}"] = y
    return Dataset(name=name, source=source, **result)


def _find_local(name, directories):
    for base in directories:
        for sub in _SUBDIRS[name]:
            directory = base / sub if sub else base
            if not directory.is_dir():
                continue
            try:
                found = _load_npz_dir(name, directory) or _LOCAL_READERS[name](directory)
            except Exception as error:  # noqa: BLE001 - any reader error: name the files
                raise ValueError(
                    f"Cannot read the {name} files in {directory} ({type(error).__name__}: "
                    f"{error}). A file is truncated or corrupt: replace it (original files: "
                    f"{SOURCE_URLS[name]}) or remove it."
                ) from error
            if found:
                return found
    return None


# --------------------------------------------------------------------------- tfds


def _tfds_prepared_dir(name, tfds_dirs):
    """First directory holding a tfds-prepared copy of `name` (has dataset_info.json)."""
    tfds_name = TFDS_NAMES[name]
    for directory in tfds_dirs:
        # Checked on disk first: calling tfds on an empty directory creates folders in it.
        if any((directory / tfds_name).glob("*/dataset_info.json")):
            return directory
    return None


def _load_tfds(name, data_dir, download):
    import tensorflow_datasets as tfds

    train, test = tfds.as_numpy(
        tfds.load(
            TFDS_NAMES[name],
            split=["train", "test"],
            data_dir=None if data_dir is None else str(data_dir),
            download=download,
            batch_size=-1,
            as_supervised=True,
        )
    )
    return {"x_train": train[0], "y_train": train[1], "x_test": test[0], "y_test": test[1]}


def network_available(url, timeout=NETWORK_CHECK_TIMEOUT_S):
    """Whether a TCP connection to `url`'s host opens within `timeout` seconds."""
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def _download_allowed(download):
    if download is None:
        return os.environ.get(DOWNLOAD_ENV, "").strip().lower() in ("1", "true", "yes")
    if not isinstance(download, bool):
        raise ValueError(
            f"Argument `download` must be True, False or None. Received: download={download!r}"
        )
    return download


def _download_tfds(name):
    previous = socket.getdefaulttimeout()
    # A stalled connection then raises instead of hanging the caller forever.
    socket.setdefaulttimeout(DOWNLOAD_SOCKET_TIMEOUT_S)
    try:
        return _load_tfds(name, None, download=True)
    finally:
        socket.setdefaulttimeout(previous)


# --------------------------------------------------------------------------- loaders


def load_dataset(name, data_dir=None, download=None, max_train=None, max_test=None, seed=0):
    """Loads a data set of the paper's experiments (see the module docstring).

    Args:
        name: One of `"mnist"`, `"fashion_mnist"`, `"cifar10"`, `"svhn"`,
            `"digits"`.
        data_dir: Optional directory searched first for the files.
        download: `True` lets tensorflow-datasets download the data if it is
            found nowhere (needs network); `False` never downloads; `None`
            (default) downloads only if `CONDCOMP_DOWNLOAD=1`.
        max_train: Optional positive integer, keep a random subset of the
            training examples (for quick runs).
        max_test: Optional positive integer, the same for the test set.
        seed: Seed of those random subsets.

    Returns:
        A `Dataset`.

    Raises:
        DatasetNotFoundError: The data set is in none of the places searched
            and was not downloaded; the message lists the places and how to
            provide the files.
    """
    _check_name(name)
    allow_download = _download_allowed(download)
    _check_optional_positive_int("max_train", max_train)
    _check_optional_positive_int("max_test", max_test)
    _check_seed(seed)
    if name == "digits":
        dataset = load_digits()
    else:
        dataset = _load_external(name, data_dir, allow_download)
    if max_train is not None or max_test is not None:
        dataset = dataset.subset(max_train, max_test, seed)
    return dataset


def _load_external(name, data_dir, allow_download):
    directories = search_directories(data_dir)
    found = _find_local(name, directories)
    if found:
        arrays, source = found
        return _normalize(name, arrays, source)
    tfds_dirs = _tfds_directories(directories)
    prepared = _tfds_prepared_dir(name, tfds_dirs)
    if prepared is not None:
        arrays = _load_tfds(name, prepared, download=False)
        return _normalize(name, arrays, f"tfds:{TFDS_NAMES[name]} in {prepared}")
    download_note = (
        f"not attempted (pass download=True or set {DOWNLOAD_ENV}=1 to let "
        "tensorflow-datasets download it; needs network access)"
    )
    if allow_download:
        if network_available(SOURCE_URLS[name]):
            arrays = _download_tfds(name)
            return _normalize(name, arrays, f"tfds:{TFDS_NAMES[name]} (downloaded)")
        host = urlparse(SOURCE_URLS[name]).hostname
        download_note = (
            f"requested, but {host} could not be reached within "
            f"{NETWORK_CHECK_TIMEOUT_S:g} s (no network?)"
        )
    raise DatasetNotFoundError(
        _not_found_message(name, directories, data_dir, tfds_dirs, download_note)
    )


def _not_found_message(name, directories, data_dir, tfds_dirs, download_note):
    looked = ", ".join(str(d) for d in directories) or "(none of them exist)"
    subdirs = ", ".join(s + "/" for s in _SUBDIRS[name] if s)
    return (
        f"Data set {name!r} not found.\n"
        f"  Local files: looked in {looked} (and their sub-directories {subdirs}) for "
        f"{_EXPECTED_FILES[name]}.\n"
        f"  Search order: data_dir argument ({data_dir if data_dir is not None else 'not given'}), "
        f"${DATA_DIR_ENV} ({_describe_env_dirs()}), "
        f"~/.keras/datasets.\n"
        f"  tensorflow-datasets: no prepared {TFDS_NAMES[name]!r} in "
        f"{', '.join(str(d) for d in tfds_dirs)}.\n"
        f"  Download: {download_note}.\n"
        f"To provide it, get the original files ({SOURCE_URLS[name]}) into a directory and "
        f"pass data_dir=DIR (examples: --data-dir DIR) or set {DATA_DIR_ENV}=DIR."
    )


def _describe_env_dirs():
    value = os.environ.get(DATA_DIR_ENV)
    if not value:
        return "not set"
    missing = [e for e in value.split(os.pathsep) if e and not Path(e).expanduser().is_dir()]
    return value + (f"; does not exist: {', '.join(missing)}" if missing else "")


def load_mnist(data_dir=None, download=None, **kwargs):
    """MNIST, 60,000 train / 10,000 test 28x28x1 images. See `load_dataset`."""
    return load_dataset("mnist", data_dir=data_dir, download=download, **kwargs)


def load_cifar10(data_dir=None, download=None, **kwargs):
    """CIFAR-10, 50,000 train / 10,000 test 32x32x3 images. See `load_dataset`."""
    return load_dataset("cifar10", data_dir=data_dir, download=download, **kwargs)


def load_svhn(data_dir=None, download=None, **kwargs):
    """SVHN cropped digits, 73,257 train / 26,032 test 32x32x3 images. See `load_dataset`."""
    return load_dataset("svhn", data_dir=data_dir, download=download, **kwargs)


def load_digits(test_fraction=DIGITS_TEST_FRACTION, seed=0):
    """scikit-learn's 1,797 real 8x8 handwritten digits, split train/test.

    The split is stratified by class and fixed by `seed`, so results are
    comparable across runs. Pixel values 0..16 are scaled to [0, 1].

    Args:
        test_fraction: Float in (0, 1), fraction of examples held out for test.
        seed: Seed of the split.
    """
    if not isinstance(test_fraction, float) or not 0.0 < test_fraction < 1.0:
        raise ValueError(
            "Argument `test_fraction` must be a float in (0, 1). "
            f"Received: test_fraction={test_fraction!r}"
        )
    from sklearn import datasets as sk_datasets
    from sklearn.model_selection import train_test_split

    digits = sk_datasets.load_digits()
    images = (digits.images / 16.0).astype(np.float32)[..., None]
    labels = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, test_size=test_fraction, stratify=labels, random_state=seed
    )
    return Dataset("digits", x_train, y_train, x_test, y_test,
                   source="sklearn.datasets.load_digits")


def synthetic_dataset(name, num_train=128, num_test=64, seed=0):
    """Tiny random data set with `name`'s image shape, for smoke tests.

    Each class has its own mean image plus noise, so a model can learn
    something in a few steps; nothing about the real data set is implied.

    Args:
        name: One of `DATASET_NAMES` (sets the image shape).
        num_train: Positive integer, training examples.
        num_test: Positive integer, test examples.
        seed: Seed of the generator.
    """
    _check_name(name)
    _check_optional_positive_int("num_train", num_train)
    _check_optional_positive_int("num_test", num_test)
    _check_seed(seed)
    rng = np.random.default_rng(seed)
    shape = IMAGE_SHAPES[name]
    class_means = rng.uniform(0.0, 1.0, size=(NUM_CLASSES,) + shape)

    def draw(count):
        labels = np.arange(count) % NUM_CLASSES
        rng.shuffle(labels)
        noise = rng.normal(0.0, 0.2, size=(count,) + shape)
        images = np.clip(class_means[labels] + noise, 0.0, 1.0).astype(np.float32)
        return images, labels.astype(np.int64)

    x_train, y_train = draw(num_train)
    x_test, y_test = draw(num_test)
    return Dataset(name, x_train, y_train, x_test, y_test, source="synthetic")
