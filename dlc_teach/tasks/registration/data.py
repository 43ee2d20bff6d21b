"""Point clouds for registration: ModelNet40 (real, h5), CGAL's meshes (offline, real) and DCP-style pairs.

Introduced in chapter 6.

* :func:`load_modelnet40` reads the real ``modelnet40_ply_hdf5_2048`` files (keys ``data``, ``label``)
  that DCP trains on; the data set is registered in ``dlc_teach/data/registry.json`` (URL of the archive and the
  MD5 of each h5 file); offline, a clear error names the URL and the expected path.
* :func:`load_cgal_clouds` samples surface points (area-weighted, :mod:`trimesh`) from the meshes of
  CGAL's data archive, which Debian ships in ``libcgal-demo`` (fetched at set-up by
  ``scripts/fetch_offline_data.sh``; SHA-256 checked here), split into a *seen* group (scans, animals,
  humans, organic shapes) and an *unseen* group (CAD parts), and caches them as an ``.npz``.
* :class:`RegistrationPairs` turns clouds into pairs as DCP does: Euler angles each U[0°, 45°]
  (R = Rx·Ry·Rz, :func:`dlc_teach.geometry.euler_to_matrix`), t ~ U[−0.5, 0.5]³, both clouds
  permuted independently, optional Gaussian jitter drawn fresh per item (not accumulated in place).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from ...checkpoint import _write_atomic
from ...datasets import REGISTRY_PATH, ChecksumError, DataNotFoundError, cache_dir
from ...geometry import euler_to_matrix

__all__ = ["load_modelnet40", "CGAL_SHA256", "CGAL_SEEN", "CGAL_UNSEEN", "cgal_archive", "load_cgal_clouds",
           "normalize_clouds", "RegistrationPairs", "MODELNET_URL"]

MODELNET_URL = "https://shapenet.cs.stanford.edu/media/modelnet40_ply_hdf5_2048.zip"
#: SHA-256 of CGAL's data.tar.gz in Debian's libcgal-demo 5.5.1-2
CGAL_SHA256 = "027b0920ebb9d396e8b99704f84ce7a417e37c364bea87a2b24bdeab02df76ab"
#: meshes trained on: scans, animals, humans, organic shapes (asymmetric, so registration is well posed)
CGAL_SEEN = ("armadillo", "bunny00", "ChineseDragon-10kv", "bear", "bull", "camel", "cow", "elephant", "elk",
             "lion", "man", "pig", "triceratops", "dino", "diplodocus", "hand", "head", "homer",
             "mannequin-devil", "nefertiti", "femur", "bones", "cactus", "mushroom", "helmet", "lion-head",
             "knot1", "knot2", "blobby", "eight")
#: meshes never trained on: CAD parts (the "unseen" group, as DCP's unseen categories)
CGAL_UNSEEN = ("fandisk", "turbine", "anchor", "couplingdown", "spool", "joint", "dragknob", "part",
               "ALSTOM_TEST4", "mech-holes-shark", "handle", "b9_mesh", "boeing", "mask_cone")


# --- ModelNet40 ----------------------------------------------------------------------------------
def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _modelnet_md5s() -> dict[str, str]:
    entry = json.loads(REGISTRY_PATH.read_text(encoding="utf-8")).get("modelnet40", {})
    return {rec["filename"]: rec["md5"] for rec in entry.get("files", {}).values()}


def load_modelnet40(data_dir, partition: str, unseen: bool = False, num_points: int = 1024,
                    verify: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """ModelNet40 as DCP reads it: ``(points float32 [N, num_points, 3], labels int64 [N])``.

    Args:
        data_dir: the directory holding ``ply_data_{train,test}*.h5`` (or its parent holding
            ``modelnet40_ply_hdf5_2048/``).
        partition: ``"train"`` or ``"test"``.
        unseen: DCP's unseen-category split: train keeps labels < 20, test labels >= 20.
        num_points: keep the first ``num_points`` (<= 2048) points of each cloud, as DCP does.
        verify: check each file's MD5 against ``dlc_teach/data/registry.json`` when it lists the file.
    """
    if partition not in ("train", "test"):
        raise ValueError(f"unknown partition {partition!r}; expected 'train' or 'test'")
    if isinstance(num_points, bool) or not isinstance(num_points, int) or num_points < 1:
        raise ValueError(f"num_points must be a positive integer, got {num_points!r}")
    root = Path(data_dir if data_dir is not None else cache_dir() / "modelnet40").expanduser()
    if (root / "modelnet40_ply_hdf5_2048").is_dir():
        root = root / "modelnet40_ply_hdf5_2048"
    files = sorted(root.glob(f"ply_data_{partition}*.h5"))
    if not files:
        raise DataNotFoundError(f"no ModelNet40 files ply_data_{partition}*.h5 in {root}. Download {MODELNET_URL} "
                                f"and unzip it there (it holds modelnet40_ply_hdf5_2048/ply_data_*.h5), or run `dlc-teach fetch "
                                f"modelnet40`, which downloads, extracts and MD5-checks them")
    import h5py

    md5s = _modelnet_md5s() if verify else {}
    points, labels = [], []
    for path in files:
        if path.name in md5s and _md5(path) != md5s[path.name]:
            raise ChecksumError(f"{path}: MD5 differs from the registry's {md5s[path.name]} (corrupt or a "
                                f"different release; re-download {MODELNET_URL})")
        try:
            with h5py.File(path, "r") as f:
                data, label = np.asarray(f["data"], dtype=np.float32), np.asarray(f["label"])
        except (OSError, KeyError) as err:
            raise ValueError(f"{path} is not a readable ModelNet40 h5 file with keys 'data' and 'label' "
                             f"({err})") from None
        if data.ndim != 3 or data.shape[-1] != 3 or len(label) != len(data):
            raise ValueError(f"{path}: expected data [N, P, 3] and N labels, got {data.shape} and {label.shape}")
        if data.shape[1] < num_points:
            raise ValueError(f"{path} holds {data.shape[1]} points per cloud, fewer than num_points={num_points}")
        points.append(data[:, :num_points])
        labels.append(label.reshape(-1).astype(np.int64))
    x, y = np.concatenate(points), np.concatenate(labels)
    if unseen:
        keep = y < 20 if partition == "train" else y >= 20
        x, y = x[keep], y[keep]
    return np.ascontiguousarray(x), y


# --- CGAL meshes ---------------------------------------------------------------------------------
def cgal_archive(data_dir=None) -> Path | None:
    """The verified CGAL archive ``<data_dir or cache>/cgal/data.tar.gz``, or None when it is absent.

    Raises:
        ChecksumError: the file exists but its SHA-256 is not :data:`CGAL_SHA256`.
    """
    path = Path(data_dir).expanduser() if data_dir is not None else cache_dir()
    path = path / "cgal" / "data.tar.gz"
    if not path.is_file():
        return None
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    if h.hexdigest() != CGAL_SHA256:
        raise ChecksumError(f"{path}: SHA-256 {h.hexdigest()}, expected {CGAL_SHA256} (Debian libcgal-demo "
                            f"5.5.1-2); delete it and run scripts/fetch_offline_data.sh")
    return path


def normalize_clouds(x: np.ndarray) -> np.ndarray:
    """Centre each cloud ``[M, P, 3]`` at its centroid and scale it into the unit sphere."""
    x = x - x.mean(axis=1, keepdims=True)
    return (x / np.linalg.norm(x, axis=-1).max(axis=1)[:, None, None]).astype(np.float32)


def load_cgal_clouds(data_dir=None, points_per_mesh: int = 4096, seed: int = 0) -> dict[str, np.ndarray] | None:
    """``{"seen": [30, P, 3], "unseen": [14, P, 3]}`` float32 surface samples of CGAL's meshes, or None.

    Points are sampled uniformly by area (``trimesh.sample.sample_surface``), centred and scaled into
    the unit sphere; the result is cached as ``cgal/points-<P>-<seed>.npz`` beside the archive (written
    atomically) so later calls do not read the meshes again. None when the archive is absent.
    """
    archive = cgal_archive(data_dir)
    if archive is None:
        return None
    cache = archive.parent / f"points-{points_per_mesh}-{seed}.npz"
    if cache.is_file():
        with np.load(cache) as z:
            return {"seen": z["seen"], "unseen": z["unseen"]}
    import trimesh

    out = {}
    with tarfile.open(archive) as tf:
        for group, names in (("seen", CGAL_SEEN), ("unseen", CGAL_UNSEEN)):
            clouds = []
            for i, name in enumerate(names):
                raw = tf.extractfile(f"data/meshes/{name}.off").read()
                mesh = trimesh.load(io.BytesIO(raw), file_type="off", process=False)
                pts, _ = trimesh.sample.sample_surface(mesh, points_per_mesh, seed=seed * 1000 + i)
                clouds.append(np.asarray(pts, dtype=np.float64))
            out[group] = normalize_clouds(np.stack(clouds))
    _write_atomic(cache, "wb", lambda f: np.savez(f, **out))
    return out


# --- pairs ---------------------------------------------------------------------------------------
class RegistrationPairs(Dataset):
    """DCP-style pairs from clouds ``[M, P, 3]``; item i -> ``(src [N, 3], tgt [N, 3], omega_star [6])``.

    ``tgt = R src + t`` (row convention ``src @ R.T + t``), ω* = (α_x, α_y, α_z in degrees, t) with R =
    euler_to_matrix(α). Item i uses cloud ``i % M``. When P == N the cloud's points are used as stored
    (DCP); else a random subset of N points. ``independent_target`` samples the target from *other*
    points of the same surface (needs P >= 2N), so the two clouds do not share points (a fair test for
    ICP, which otherwise can finish exactly). ``jitter`` σ adds N(0, σ²) noise clipped to ±5σ to both
    clouds, drawn fresh for every item.

    ``fixed=True`` (test/validation sets) draws item i from a generator seeded by ``(seed, i)``: the same
    pairs every time. ``fixed=False`` (training) draws from torch's global generator, which
    :func:`dlc_teach.training.train` seeds: fresh transforms every epoch, reproducible per seed.
    """

    def __init__(self, clouds, num_points: int, n_items: int, *, max_angle: float = 45.0,
                 max_translation: float = 0.5, independent_target: bool = False, jitter: float = 0.0,
                 fixed: bool = False, seed: int = 0):
        x = torch.as_tensor(np.asarray(clouds), dtype=torch.float32)
        if x.dim() != 3 or x.shape[-1] != 3 or x.shape[0] < 1:
            raise ValueError(f"clouds must have shape [M, P, 3] with M >= 1, got {tuple(x.shape)}")
        need = 2 * num_points if independent_target else num_points
        if x.shape[1] < need:
            raise ValueError(f"clouds hold {x.shape[1]} points each; num_points={num_points} needs at least {need}"
                             + (" (independent_target uses disjoint points)" if independent_target else ""))
        for name, v in (("num_points", num_points), ("n_items", n_items)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if not (max_angle >= 0 and max_translation >= 0 and jitter >= 0):
            raise ValueError("max_angle, max_translation and jitter must be >= 0")
        self.clouds, self.num_points, self.n_items = x, num_points, n_items
        self.max_angle, self.max_translation = float(max_angle), float(max_translation)
        self.independent_target, self.jitter, self.fixed, self.seed = independent_target, float(jitter), fixed, seed

    def __len__(self) -> int:
        return self.n_items

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor, Tensor]:
        if not 0 <= i < self.n_items:
            raise IndexError(f"item {i} out of range for {self.n_items} pairs")
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + i) if self.fixed else None
        cloud = self.clouds[i % len(self.clouds)]
        N, P = self.num_points, cloud.shape[0]
        if P == N and not self.independent_target:
            src, tgt = cloud, cloud
        else:
            idx = torch.randperm(P, generator=g)
            src = cloud[idx[:N]]
            tgt = cloud[idx[N:2 * N]] if self.independent_target else src
        angles = torch.rand(3, generator=g) * self.max_angle
        t = (torch.rand(3, generator=g) - 0.5) * (2 * self.max_translation)
        R = euler_to_matrix(angles.double()).float()
        src = src[torch.randperm(N, generator=g)]
        tgt = tgt[torch.randperm(N, generator=g)] @ R.T + t
        if self.jitter > 0:
            s = self.jitter
            src = src + (s * torch.randn(N, 3, generator=g)).clamp(-5 * s, 5 * s)
            tgt = tgt + (s * torch.randn(N, 3, generator=g)).clamp(-5 * s, 5 * s)
        return src, tgt, torch.cat([angles, t])
