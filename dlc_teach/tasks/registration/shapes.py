"""Procedural point clouds: the fallback when CGAL's mesh archive is absent (chapter 6).

Introduced in chapter 6. Two families, so that an "unseen" split exists:

* ``"organic"`` (seen): unions of 3–5 random ellipsoids (blobby, asymmetric);
* ``"cad"`` (unseen): unions of 2–4 random axis-aligned boxes, each randomly rotated.

Points are drawn on each primitive's surface in proportion to its (approximate) area, then every
cloud is centred and scaled into the unit sphere (:func:`~.data.normalize_clouds`).
"""
from __future__ import annotations

import numpy as np

from .data import normalize_clouds

__all__ = ["procedural_clouds"]


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def _ellipsoid(rng, n: int, radii: np.ndarray) -> np.ndarray:
    u = rng.normal(size=(n, 3))
    return u / np.linalg.norm(u, axis=1, keepdims=True) * radii  # on the surface (not exactly area-uniform)


def _box(rng, n: int, half: np.ndarray) -> np.ndarray:
    areas = np.array([half[1] * half[2], half[0] * half[2], half[0] * half[1]]).repeat(2)
    face = rng.choice(6, size=n, p=areas / areas.sum())
    p = rng.uniform(-1, 1, size=(n, 3))
    axis, sign = face // 2, np.where(face % 2 == 0, -1.0, 1.0)
    p[np.arange(n), axis] = sign
    return p * half


def procedural_clouds(family: str, n_shapes: int, points_per_shape: int, seed: int = 0) -> np.ndarray:
    """``[n_shapes, points_per_shape, 3]`` float32 clouds of ``family`` ``"organic"`` or ``"cad"``."""
    if family not in ("organic", "cad"):
        raise ValueError(f"unknown shape family {family!r}; expected 'organic' or 'cad'")
    rng = np.random.default_rng([seed, 0 if family == "organic" else 1])
    clouds = []
    for _ in range(n_shapes):
        k = int(rng.integers(3, 6) if family == "organic" else rng.integers(2, 5))
        sizes = rng.uniform(0.15, 0.6, size=(k, 3))
        centres = rng.uniform(-0.5, 0.5, size=(k, 3))
        rots = [_random_rotation(rng) for _ in range(k)]
        area = np.prod(sizes, axis=1) ** (2 / 3)
        counts = rng.multinomial(points_per_shape, area / area.sum())
        parts = []
        for j in range(k):
            local = (_ellipsoid if family == "organic" else _box)(rng, int(counts[j]), sizes[j])
            parts.append(local @ rots[j].T + centres[j])
        clouds.append(np.concatenate(parts)[rng.permutation(points_per_shape)])
    return normalize_clouds(np.stack(clouds))
