"""Inverse-compositional Lucas–Kanade on feature maps (DeepLK), and the feature-metric LK loss h(ω).

Introduced in chapter 7. Conventions (pixel centres, H: template -> input) are those of
:mod:`dlc_teach.tasks.homography.warp`.

The LK objective of a homography H for one pair of feature maps is

    r(H) = mean over channels c and template pixels x of (F_I,c(H x) − F_T,c(x))²,

the *feature-metric* photometric error (on raw intensities it is the classical SSD of
Baker & Matthews' inverse-compositional algorithm). :func:`lk_loss` evaluates it at many H at once
(the DLC objective's 1 + 2K points); :func:`inverse_compositional_lk` minimises it by Gauss–Newton
steps with the Hessian of the template fixed once (the inverse-compositional trick).
"""
from __future__ import annotations

import torch
from torch import Tensor

from .warp import warp

__all__ = ["lk_loss", "inverse_compositional_lk", "coarse_to_fine_lk"]


def _check_pair(template_feat: Tensor, input_feat: Tensor) -> None:
    if template_feat.dim() != 4 or input_feat.dim() != 4:
        raise ValueError(f"template_feat and input_feat must be [B, C, h, w], got {tuple(template_feat.shape)} "
                         f"and {tuple(input_feat.shape)}")
    if template_feat.shape[:2] != input_feat.shape[:2]:
        raise ValueError(f"template and input features must share batch and channels, got "
                         f"{tuple(template_feat.shape)} and {tuple(input_feat.shape)}")
    if min(template_feat.shape[-2:]) < 2:
        raise ValueError(f"template features must be at least 2 x 2, got {tuple(template_feat.shape)}")


def lk_loss(template_feat: Tensor, input_feat: Tensor, H: Tensor) -> Tensor:
    """r(H) for every H ``[..., B, 3, 3]`` -> ``[..., B]`` (one batched warp of the input features)."""
    _check_pair(template_feat, input_feat)
    warped = warp(input_feat, H, tuple(template_feat.shape[-2:]))  # [..., B, C, th, tw]
    return (warped - template_feat).pow(2).mean(dim=(-3, -2, -1))


def _param_homography(p: Tensor) -> Tensor:
    """8 parameters ``[B, 8]`` -> [[1+p1, p2, p3], [p4, 1+p5, p6], [p7, p8, 1]] ``[B, 3, 3]``."""
    eye = torch.eye(3, dtype=p.dtype, device=p.device).expand(p.shape[0], 3, 3)
    return eye + torch.cat([p, torch.zeros_like(p[:, :1])], dim=1).reshape(-1, 3, 3)


def _gradients(feat: Tensor) -> tuple[Tensor, Tensor]:
    """Central differences (one-sided at the border) ``[B, C, h, w]`` -> (∂/∂x, ∂/∂y)."""
    gy, gx = torch.gradient(feat, dim=(-2, -1))
    return gx, gy


def _corners_ok(H: Tensor, th: int, tw: int, ih: int, iw: int) -> Tensor:
    """``[B]`` bool: H finite, the template's corners a convex quadrilateral (no fold) inside the input
    image (``ih × iw``; the data put them there, so a step that leaves it is a divergence)."""
    c = torch.tensor([[0.0, 0.0, 1.0], [tw - 1.0, 0.0, 1.0], [tw - 1.0, th - 1.0, 1.0], [0.0, th - 1.0, 1.0]],
                     dtype=H.dtype, device=H.device)
    m = c @ H.transpose(-1, -2)  # [B, 4, 3]
    z = m[..., 2]
    pts = m[..., :2] / z.unsqueeze(-1)
    e = pts.roll(-1, dims=-2) - pts
    cross = e[..., 0] * e.roll(-1, dims=-2)[..., 1] - e[..., 1] * e.roll(-1, dims=-2)[..., 0]
    inside = ((pts[..., 0] >= -0.5) & (pts[..., 0] <= iw - 0.5) & (pts[..., 1] >= -0.5)
              & (pts[..., 1] <= ih - 0.5)).all(-1)
    return torch.isfinite(H).flatten(1).all(1) & (z > 0).all(-1) & (cross > 0).all(-1) & inside


def inverse_compositional_lk(template_feat: Tensor, input_feat: Tensor, H0: Tensor, iters: int = 30,
                             damping: float = 1e-3) -> Tensor:
    """Feature-metric inverse-compositional LK (DeepLK's layer): refine H0 so that F_I(H x) ≈ F_T(x).

    Each iteration: warp the input features by H, residual e = F_I(H x) − F_T(x), Gauss–Newton step
    Δp = (JᵀJ + damping·I)⁻¹ Jᵀ e with J = ∇F_T · ∂W/∂p at p = 0 (fixed: computed once), and the
    inverse-compositional update H ← H · W(Δp)⁻¹. The 8 parameters act on template coordinates
    normalised to [−1, 1] (centre and half-width), so the damping means the same at every level.
    A step that would make H non-finite, fold the template's corners or move a corner out of the input
    image is rejected for that pair (H stays); nothing here looks at the ground truth. Runs a fixed number of iterations.

    Args:
        template_feat: ``[B, C, th, tw]`` (``[B, C, 128, 128]`` at the finest level of ``full``).
        input_feat: ``[B, C, h, w]`` (``[B, C, 192, 192]``).
        H0: ``[B, 3, 3]`` initial homography (template -> input coordinates at this level).
        iters: Gauss–Newton iterations.
        damping: added to the diagonal of the 8 × 8 Gauss–Newton matrix (DeepLK uses 1e-3).

    Returns:
        H ``[B, 3, 3]`` (differentiable in the features, as in DeepLK).
    """
    _check_pair(template_feat, input_feat)
    B, C, th, tw = template_feat.shape
    if H0.shape != (B, 3, 3):
        raise ValueError(f"H0 must be [B, 3, 3] = [{B}, 3, 3], got {tuple(H0.shape)}")
    if isinstance(iters, bool) or not isinstance(iters, int) or iters < 0:
        raise ValueError(f"iters must be an integer >= 0, got {iters!r}")
    if not damping >= 0:
        raise ValueError(f"damping must be >= 0, got {damping!r}")
    dt = template_feat.dtype
    cx, cy = (tw - 1) / 2, (th - 1) / 2
    s = max(cx, cy)
    N = torch.tensor([[1 / s, 0, -cx / s], [0, 1 / s, -cy / s], [0, 0, 1]], dtype=torch.float64,
                     device=template_feat.device)  # pixel -> normalised template coordinates
    Ni = torch.linalg.inv(N)
    ys, xs = torch.meshgrid(torch.arange(th, dtype=dt, device=template_feat.device),
                            torch.arange(tw, dtype=dt, device=template_feat.device), indexing="ij")
    xn, yn = (xs - cx) / s, (ys - cy) / s  # [th, tw]
    zero, one = torch.zeros_like(xn), torch.ones_like(xn)
    # ∂W/∂p at p = 0 in pixels: s · [[x, y, 1, 0, 0, 0, −x², −xy], [0, 0, 0, x, y, 1, −xy, −y²]] (normalised x, y)
    jx = torch.stack([xn, yn, one, zero, zero, zero, -xn * xn, -xn * yn], dim=-1) * s  # [th, tw, 8]
    jy = torch.stack([zero, zero, zero, xn, yn, one, -xn * yn, -yn * yn], dim=-1) * s
    gx, gy = _gradients(template_feat)  # [B, C, th, tw]
    sd = gx.unsqueeze(-1) * jx + gy.unsqueeze(-1) * jy  # steepest-descent images [B, C, th, tw, 8]
    sd = sd.reshape(B, -1, 8)
    hess = (sd.transpose(1, 2) @ sd).double() + damping * torch.eye(8, dtype=torch.float64, device=sd.device)
    H = H0.to(torch.float64)
    for _ in range(iters):
        e = (warp(input_feat, H.to(dt), (th, tw)) - template_feat).reshape(B, -1, 1)  # [B, C*th*tw, 1]
        dp = torch.linalg.solve(hess, (sd.transpose(1, 2) @ e).double()).squeeze(-1)  # [B, 8]
        dH = Ni @ _param_homography(dp) @ N
        H_new = H @ torch.linalg.inv(dH)
        H_new = H_new / H_new[:, 2:, 2:]
        ok = _corners_ok(H_new.detach(), th, tw, *input_feat.shape[-2:])
        H = torch.where(ok.view(B, 1, 1), H_new, H)
    return H.to(H0.dtype)


def coarse_to_fine_lk(levels: list[tuple[Tensor, Tensor, float]], H0: Tensor, iters: int = 30,
                      damping: float = 1e-3) -> Tensor:
    """Coarse-to-fine IC-LK: ``levels`` = [(template_feat, input_feat, scale), ...] coarsest first.

    ``H0`` ``[B, 3, 3]`` is at full resolution; each level refines ``scale_homography(H, scale)`` and the
    result is mapped back to full resolution. Returns H ``[B, 3, 3]`` at full resolution.
    """
    from .warp import scale_homography

    H = H0
    for tf, inf, scale in levels:
        H = scale_homography(inverse_compositional_lk(tf, inf, scale_homography(H, scale), iters, damping),
                             1 / scale)
    return H
