"""The classical baseline: keypoints (ORB or SIFT, scikit-image) matched, then a RANSAC homography.

Introduced in chapter 7 (Table 5's "SIFT+RANSAC" row). Images are converted to grey; matches are
mutual nearest neighbours with Lowe's ratio test; :func:`skimage.measure.ransac` fits a
:class:`skimage.transform.ProjectiveTransform` from template to input coordinates (the convention of
:mod:`dlc_teach.tasks.homography.warp`). When too few matches or no model is found, the prediction is
the unperturbed position (ω = 0) and ``ok`` is False — a failure, counted at its PE, never dropped.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["feature_ransac", "baseline_homographies"]


def _grey(img: Tensor) -> np.ndarray:
    if img.dim() != 3 or img.shape[0] not in (1, 3):
        raise ValueError(f"expected one image [C, h, w] with C = 1 or 3, got {tuple(img.shape)}")
    a = img.detach().cpu().double().numpy()
    return a[0] if a.shape[0] == 1 else 0.2125 * a[0] + 0.7154 * a[1] + 0.0721 * a[2]


def _keypoints(grey: np.ndarray, method: str, n_keypoints: int):
    import skimage.feature as skf

    if method == "orb":
        det = skf.ORB(n_keypoints=n_keypoints, fast_threshold=0.02, downscale=1.2, n_scales=4)
    elif method == "sift":
        det = skf.SIFT(n_octaves=3, upsampling=2)
    else:
        raise ValueError(f"method must be 'orb' or 'sift', got {method!r}")
    try:
        det.detect_and_extract(grey)
    except RuntimeError:  # skimage raises when it finds no keypoint at all
        return np.zeros((0, 2)), None
    return det.keypoints[:, ::-1].astype(np.float64), det.descriptors  # (row, col) -> (x, y)


def feature_ransac(inp: Tensor, tpl: Tensor, method: str = "orb", n_keypoints: int = 500,
                   residual_threshold: float = 2.0, max_trials: int = 500, seed: int = 0) -> tuple[Tensor, bool]:
    """H ``[3, 3]`` (template -> input, float64) from one pair ``inp [C, s, s]``, ``tpl [C, t, t]``, and ``ok``."""
    import skimage.feature as skf
    from skimage.measure import ransac
    from skimage.transform import ProjectiveTransform

    kt, dt = _keypoints(_grey(tpl), method, n_keypoints)
    ki, di = _keypoints(_grey(inp), method, n_keypoints)
    if dt is None or di is None or len(kt) < 4 or len(ki) < 4:
        return None, False
    matches = skf.match_descriptors(dt, di, cross_check=True, max_ratio=0.8 if method == "sift" else 0.9)
    if len(matches) < 4:
        return None, False
    src, dst = kt[matches[:, 0]], ki[matches[:, 1]]
    model, inliers = ransac((src, dst), ProjectiveTransform, min_samples=4, residual_threshold=residual_threshold,
                            max_trials=max_trials, rng=np.random.default_rng(seed))
    if model is None or inliers is None or inliers.sum() < 4 or not np.all(np.isfinite(model.params)):
        return None, False
    return torch.from_numpy(model.params / model.params[2, 2]), True


def baseline_homographies(inp: Tensor, tpl: Tensor, H_fallback: Tensor, method: str = "orb",
                          **kw) -> tuple[Tensor, Tensor]:
    """Per pair of ``inp [B, C, s, s]``, ``tpl [B, C, t, t]``: H ``[B, 3, 3]`` and ``ok`` ``[B]`` (bool);
    failed pairs get ``H_fallback`` ``[B, 3, 3]`` (the unperturbed position)."""
    if inp.dim() != 4 or tpl.dim() != 4 or inp.shape[0] != tpl.shape[0] or H_fallback.shape != (inp.shape[0], 3, 3):
        raise ValueError(f"need inp [B, C, s, s], tpl [B, C, t, t], H_fallback [B, 3, 3]; got {tuple(inp.shape)}, "
                         f"{tuple(tpl.shape)}, {tuple(H_fallback.shape)}")
    Hs, oks = [], []
    for b in range(inp.shape[0]):
        H, ok = feature_ransac(inp[b], tpl[b], method, **kw)
        Hs.append(H if ok else H_fallback[b].double().cpu())
        oks.append(ok)
    return torch.stack(Hs), torch.tensor(oks)
