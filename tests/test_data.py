"""Tests of `keras_condcomp.data` on small files written in each real format."""

import gzip
import pickle
import struct
import tarfile
import time

import numpy as np
import pytest
from data_helpers import isolate_data_search

from keras_condcomp import data

# Kept before the autouse fixture replaces it with a guard.
REAL_NETWORK_AVAILABLE = data.network_available


@pytest.fixture(autouse=True)
def isolated_search(tmp_path, monkeypatch):
    """Only directories a test creates are searched: no real data, no network."""
    isolate_data_search(tmp_path, monkeypatch)

    def no_network(url, timeout=None):
        raise AssertionError("tests must not touch the network")

    monkeypatch.setattr(data, "network_available", no_network)


def write_idx(path, array):
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(payload)


def write_mnist(directory, n_train=5, n_test=3, suffix=".gz"):
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "y_train": np.arange(n_train, dtype=np.uint8) % 10,
        "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "y_test": (np.arange(n_test, dtype=np.uint8) + 3) % 10,
    }
    for key, name in data._MNIST_FILES.items():
        write_idx(directory / (name + suffix), arrays[key])
    return arrays


def cifar_batch(n, offset):
    images = np.zeros((n, 32, 32, 3), dtype=np.uint8)
    # Red channel of pixel (row 0, col 1) holds the example's index: catches a wrong transpose.
    images[:, 0, 1, 0] = np.arange(n) + offset
    images[:, 5, 7, 2] = 200  # a blue pixel
    flat = images.transpose(0, 3, 1, 2).reshape(n, 3072)
    labels = [(i + offset) % 10 for i in range(n)]
    return flat, labels


def write_cifar_pickles(directory, n=4):
    directory.mkdir(parents=True)
    for i, name in enumerate([f"data_batch_{j}" for j in range(1, 6)] + ["test_batch"]):
        flat, labels = cifar_batch(n, offset=10 * i)
        with open(directory / name, "wb") as f:
            pickle.dump({b"data": flat, b"labels": labels}, f)


def check_cifar(dataset, n=4):
    assert dataset.x_train.shape == (5 * n, 32, 32, 3)
    assert dataset.x_test.shape == (n, 32, 32, 3)
    assert dataset.x_train.dtype == np.float32
    np.testing.assert_allclose(dataset.x_train[:n, 0, 1, 0] * 255, np.arange(n), atol=1e-4)
    np.testing.assert_allclose(dataset.x_test[:, 0, 1, 0] * 255, np.arange(n) + 50, atol=1e-4)
    np.testing.assert_allclose(dataset.x_train[:, 5, 7, 2], 200 / 255, atol=1e-6)
    assert dataset.x_train[:, 5, 7, :2].max() == 0
    np.testing.assert_array_equal(dataset.y_test, [(i + 50) % 10 for i in range(n)])


def test_mnist_gzipped_idx_from_data_dir(tmp_path):
    arrays = write_mnist(tmp_path / "files")
    dataset = data.load_mnist(data_dir=tmp_path / "files")
    assert dataset.x_train.shape == (5, 28, 28, 1)
    assert dataset.x_test.shape == (3, 28, 28, 1)
    assert dataset.x_train.dtype == np.float32 and dataset.y_train.dtype == np.int64
    np.testing.assert_allclose(dataset.x_train[..., 0] * 255, arrays["x_train"], atol=1e-3)
    np.testing.assert_array_equal(dataset.y_test, arrays["y_test"])
    assert 0.0 <= dataset.x_train.min() and dataset.x_train.max() <= 1.0
    assert "files" in dataset.source


def test_mnist_plain_idx_in_torchvision_layout_from_env(tmp_path, monkeypatch):
    write_mnist(tmp_path / "root" / "MNIST" / "raw", suffix="")
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path / "root"))
    dataset = data.load_dataset("mnist")
    assert dataset.x_train.shape == (5, 28, 28, 1)
    assert dataset.source.endswith("raw")


def test_env_var_holds_several_directories(tmp_path, monkeypatch):
    write_mnist(tmp_path / "second")
    (tmp_path / "first").mkdir()
    monkeypatch.setenv(data.DATA_DIR_ENV, f"{tmp_path / 'first'}:{tmp_path / 'second'}")
    assert data.load_mnist().x_test.shape == (3, 28, 28, 1)


def test_data_dir_argument_wins_over_env(tmp_path, monkeypatch):
    write_mnist(tmp_path / "arg", n_train=7)
    write_mnist(tmp_path / "env", n_train=2)
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path / "env"))
    assert len(data.load_mnist(data_dir=tmp_path / "arg").x_train) == 7


def test_npz_in_keras_cache_layout(tmp_path):
    rng = np.random.default_rng(1)
    np.savez(
        tmp_path / "mnist.npz",
        x_train=rng.integers(0, 256, (6, 28, 28), dtype=np.uint8),
        y_train=np.arange(6) % 10,
        x_test=rng.integers(0, 256, (2, 28, 28), dtype=np.uint8),
        y_test=np.array([1, 2]),
    )
    dataset = data.load_mnist(data_dir=tmp_path)
    assert dataset.x_train.shape == (6, 28, 28, 1)
    assert dataset.source.endswith("mnist.npz")


def test_npz_with_flat_float_images_is_reshaped(tmp_path):
    (tmp_path / "svhn").mkdir()
    np.savez(
        tmp_path / "svhn" / "svhn.npz",
        x_train=np.full((3, 32 * 32 * 3), 0.5, dtype=np.float32),
        y_train=[0, 1, 2],
        x_test=np.full((1, 32 * 32 * 3), 0.25, dtype=np.float32),
        y_test=[9],
    )
    dataset = data.load_svhn(data_dir=tmp_path)
    assert dataset.x_train.shape == (3, 32, 32, 3)
    np.testing.assert_allclose(dataset.x_test, 0.25)  # already in [0, 1]: not rescaled


def test_npz_missing_arrays_is_a_clear_error(tmp_path):
    np.savez(tmp_path / "cifar10.npz", x_train=np.zeros((1, 32, 32, 3)))
    with pytest.raises(ValueError, match="lacks the arrays"):
        data.load_cifar10(data_dir=tmp_path)


def test_npz_wrong_image_shape_is_a_clear_error(tmp_path):
    np.savez(
        tmp_path / "mnist.npz",
        x_train=np.zeros((2, 32, 32)), y_train=[0, 1], x_test=np.zeros((1, 32, 32)), y_test=[0],
    )
    with pytest.raises(ValueError, match="does not hold mnist images"):
        data.load_mnist(data_dir=tmp_path)


def test_cifar10_python_batches(tmp_path):
    write_cifar_pickles(tmp_path / "cifar-10-batches-py")
    check_cifar(data.load_cifar10(data_dir=tmp_path))


def test_cifar10_binary_batches(tmp_path):
    directory = tmp_path / "cifar10" / "cifar-10-batches-bin"
    directory.mkdir(parents=True)
    for i, name in enumerate([f"data_batch_{j}.bin" for j in range(1, 6)] + ["test_batch.bin"]):
        flat, labels = cifar_batch(4, offset=10 * i)
        records = np.concatenate([np.array(labels, np.uint8)[:, None], flat], axis=1)
        records.tofile(directory / name)
    check_cifar(data.load_cifar10(data_dir=tmp_path))


def test_cifar10_tar_archive(tmp_path):
    write_cifar_pickles(tmp_path / "build" / "cifar-10-batches-py")
    with tarfile.open(tmp_path / "cifar-10-python.tar.gz", "w:gz") as archive:
        archive.add(tmp_path / "build" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    check_cifar(data.load_cifar10(data_dir=tmp_path))


def test_svhn_mat_files_map_label_10_to_0(tmp_path):
    from scipy import io as scipy_io

    directory = tmp_path / "svhn"
    directory.mkdir()
    for split, n in (("train", 4), ("test", 2)):
        images = np.zeros((32, 32, 3, n), dtype=np.uint8)
        images[2, 3, 1, :] = np.arange(n) + 1  # green pixel (row 2, col 3) = index + 1
        labels = np.array([[10], [1], [5], [10]][:n], dtype=np.uint8)
        scipy_io.savemat(directory / f"{split}_32x32.mat", {"X": images, "y": labels})
    dataset = data.load_svhn(data_dir=tmp_path)
    assert dataset.x_train.shape == (4, 32, 32, 3)
    np.testing.assert_array_equal(dataset.y_train, [0, 1, 5, 0])
    np.testing.assert_array_equal(dataset.y_test, [0, 1])
    np.testing.assert_allclose(dataset.x_train[:, 2, 3, 1] * 255, [1, 2, 3, 4], atol=1e-4)


def test_idx_reader_rejects_other_files(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04\x05")
    with pytest.raises(ValueError, match="Not an unsigned-byte idx file"):
        data.read_idx(tmp_path / "bad")
    write_idx(tmp_path / "short", np.zeros((2, 3), np.uint8))
    (tmp_path / "truncated").write_bytes((tmp_path / "short").read_bytes()[:-1])
    with pytest.raises(ValueError, match="declares shape"):
        data.read_idx(tmp_path / "truncated")


def test_missing_dataset_fails_fast_with_clear_message(tmp_path):
    start = time.monotonic()
    with pytest.raises(data.DatasetNotFoundError) as info:
        data.load_dataset("cifar10", data_dir=tmp_path)
    elapsed = time.monotonic() - start
    message = str(info.value)
    assert elapsed < 5.0
    assert str(tmp_path) in message
    assert data.DATA_DIR_ENV in message
    assert "cifar-10-batches-py" in message
    assert "download=True" in message
    assert "svhn_cropped" not in message
    assert isinstance(info.value, FileNotFoundError)


def test_missing_dataset_with_download_and_no_network_fails_fast(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "network_available", lambda url, timeout=None: False)
    monkeypatch.setenv(data.DOWNLOAD_ENV, "1")
    with pytest.raises(data.DatasetNotFoundError, match="could not be reached"):
        data.load_svhn(data_dir=tmp_path)


def test_download_goes_through_tfds_when_network_answers(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(data, "network_available", lambda url, timeout=None: True)

    def fake_download(name):
        calls.append(name)
        return {
            "x_train": np.zeros((2, 28, 28, 1), np.uint8), "y_train": np.array([0, 1]),
            "x_test": np.zeros((1, 28, 28, 1), np.uint8), "y_test": np.array([2]),
        }

    monkeypatch.setattr(data, "_download_tfds", fake_download)
    dataset = data.load_mnist(data_dir=tmp_path, download=True)
    assert calls == ["mnist"] and dataset.source == "tfds:mnist (downloaded)"
    with pytest.raises(data.DatasetNotFoundError):
        data.load_mnist(data_dir=tmp_path, download=False)
    assert calls == ["mnist"]


def test_prepared_tfds_directory_is_read_without_download(tmp_path, monkeypatch):
    (tmp_path / "svhn_cropped" / "3.1.0").mkdir(parents=True)
    (tmp_path / "svhn_cropped" / "3.1.0" / "dataset_info.json").write_text("{}")
    seen = []

    def fake_load(name, data_dir, download):
        seen.append((name, data_dir, download))
        return {
            "x_train": np.zeros((2, 32, 32, 3), np.uint8), "y_train": np.array([0, 1]),
            "x_test": np.zeros((1, 32, 32, 3), np.uint8), "y_test": np.array([2]),
        }

    monkeypatch.setattr(data, "_load_tfds", fake_load)
    dataset = data.load_svhn(data_dir=tmp_path)
    assert seen == [("svhn", tmp_path, False)]
    assert dataset.source.startswith("tfds:svhn_cropped")


def test_network_check_gives_false_for_a_closed_local_port():
    # Only the loopback interface is touched: port 9 (discard) is closed here.
    assert REAL_NETWORK_AVAILABLE("http://127.0.0.1:9/", timeout=1.0) is False


def test_digits_is_always_available_and_split_by_class():
    dataset = data.load_dataset("digits")
    assert dataset.x_train.shape == (1437, 8, 8, 1)
    assert dataset.x_test.shape == (360, 8, 8, 1)
    assert dataset.x_train.max() == pytest.approx(1.0) and dataset.x_train.min() == 0.0
    assert np.bincount(dataset.y_test).min() >= 35  # stratified: every class ~36 times
    assert dataset.source.startswith("sklearn")


def test_subset_flatten_and_standardize():
    dataset = data.load_dataset("digits", max_train=100, max_test=50, seed=3)
    assert len(dataset.x_train) == 100 and len(dataset.y_test) == 50
    again = data.load_dataset("digits", max_train=100, max_test=50, seed=3)
    np.testing.assert_array_equal(dataset.y_train, again.y_train)
    flat = dataset.flattened()
    assert flat.input_shape == (64,)
    standard = flat.standardized()
    np.testing.assert_allclose(standard.x_train.mean(axis=0), 0.0, atol=1e-5)
    assert "100 train / 50 test" in dataset.summary()
    assert dataset.for_arch("fc").input_shape == (64,)
    np.testing.assert_array_equal(dataset.for_arch("conv").x_test,
                                  dataset.standardized().x_test)
    with pytest.raises(ValueError, match="Received: arch='mlp'"):
        dataset.for_arch("mlp")


@pytest.mark.parametrize("name", ["mnist", "cifar10", "svhn", "digits"])
def test_synthetic_dataset_has_the_real_shapes(name):
    dataset = data.synthetic_dataset(name, num_train=20, num_test=10)
    assert dataset.x_train.shape == (20,) + data.IMAGE_SHAPES[name]
    assert dataset.x_test.shape == (10,) + data.IMAGE_SHAPES[name]
    assert set(np.unique(dataset.y_train)) == set(range(10))
    assert dataset.x_train.dtype == np.float32


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"name": "imagenet"}, "Received: name='imagenet'"),
        ({"name": "mnist", "download": "yes"}, "Received: download='yes'"),
        ({"name": "digits", "max_train": 0}, "Received: max_train=0"),
        ({"name": "mnist", "data_dir": "/no/such/dir"}, "Received: data_dir='/no/such/dir'"),
    ],
)
def test_argument_errors_name_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        data.load_dataset(**kwargs)
