"""Pixel error (PE) and success rates, as §4.3 of the paper and DeepLK evaluate homographies.

Introduced in chapter 7. PE of one pair = the mean, over the template's four corners, of the L2
distance (input pixels) between the corner mapped by the predicted and by the true homography.
A success rate is the percentage of pairs whose PE is below a threshold.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["THRESHOLDS", "pixel_error", "success_rates"]

#: the PE thresholds of Table 5 (pixels)
THRESHOLDS = (0.1, 0.5, 1, 3, 5, 10, 20)


def pixel_error(H_pred: Tensor, H_true: Tensor, template_size: int = 128) -> Tensor:
    """Mean corner distance ``[B]`` (pixels) between ``H_pred`` and ``H_true`` ``[B, 3, 3]``.

    The corners are the template's (0, 0), (t−1, 0), (t−1, t−1), (0, t−1), t = ``template_size``.
    A prediction that is not finite (or sends a corner to infinity) has PE = inf, never a number.
    """
    if H_pred.dim() != 3 or H_pred.shape[-2:] != (3, 3) or H_pred.shape != H_true.shape:
        raise ValueError(f"H_pred and H_true must both be [B, 3, 3], got {tuple(H_pred.shape)} and "
                         f"{tuple(H_true.shape)}")
    t = float(template_size - 1)
    c = torch.tensor([[0, 0, 1], [t, 0, 1], [t, t, 1], [0, t, 1]], dtype=torch.float64, device=H_pred.device)

    def project(H):
        m = c @ H.to(torch.float64).transpose(-1, -2)  # [B, 4, 3]
        return m[..., :2] / m[..., 2:]

    pe = (project(H_pred) - project(H_true)).norm(dim=-1).mean(dim=-1)  # [B]
    return torch.where(torch.isfinite(pe), pe, torch.full_like(pe, math.inf))


def success_rates(pe: Tensor, thresholds=THRESHOLDS) -> dict[float, float]:
    """``{threshold: percentage of pairs with PE < threshold}`` for PEs ``[B]`` (NaN counts as a failure)."""
    pe = torch.as_tensor(pe)
    if pe.dim() != 1 or pe.numel() == 0:
        raise ValueError(f"pe must be a non-empty 1-D tensor of pixel errors, got shape {tuple(pe.shape)}")
    if any(not (isinstance(t, (int, float)) and t > 0) for t in thresholds):
        raise ValueError(f"thresholds must be positive numbers, got {thresholds!r}")
    pe = pe.to(torch.float64)
    return {t: float((pe < t).double().mean() * 100) for t in thresholds}
