"""Test isolation for keras_condcomp.data: only directories a test creates are searched."""

from keras_condcomp import data


def isolate_data_search(tmp_path, monkeypatch):
    """Points every place the loaders look ($CONDCOMP_DATA_DIR, $HOME, TFDS) at a
    new empty directory, which it returns, and turns off
    download permission; the network check itself is left to the caller."""
    empty = tmp_path / "_empty"
    empty.mkdir()
    monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)
    monkeypatch.delenv(data.DOWNLOAD_ENV, raising=False)
    monkeypatch.setenv("HOME", str(empty))
    monkeypatch.setenv("TFDS_DATA_DIR", str(empty / "tfds"))
    return empty
