"""Homographies of the DeepLK set-up: corner offsets ω ↔ H, level rescaling, a batched bilinear warp.

Introduced in chapter 7. The conventions, used everywhere in :mod:`dlc_teach.tasks.homography`:

* Pixel coordinates have their origin at the **centre** of the top-left pixel, x to the right, y down;
  pixel (i, j) (row i, column j) sits at (x, y) = (j, i). An image of width w spans x ∈ [0, w − 1].
* A homography H maps **template** coordinates to **input-image** coordinates: T(x) ≈ I(H x).
* The template (side ``t``, 128 at ``full``) sits at offset (o, o) of the input (side ``s``, 192 at
  ``full``, o = (s − t)/2 = 32) when unperturbed. We use 192 px as the DeepLK code does (§4.3 of the
  paper says 196 px).
* ω ∈ R⁸ = the offsets (dx, dy) of the template's four corners, in the order top-left, top-right,
  bottom-right, bottom-left (:func:`dlc_teach.geometry.template_corners`), from their unperturbed
  positions, in input pixels. So H(ω) = Translation(o, o) · ``corners_to_homography(ω, t, t)``.
* Level ℓ = 1, 2, 3 works at scale s_ℓ = 2^(ℓ−3) (¼, ½, full): coarse first, the order in which
  DeepLK's code trains its stages and runs them at test. Under the pixel-centre convention a
  full-resolution coordinate x maps to s·x + (s − 1)/2 at scale s (2 × 2 area averaging puts the
  new pixel i at the centre 2i + ½ of its two parents). So H_ℓ = S · H · S⁻¹ with
  S = [[s, 0, (s−1)/2], [0, s, (s−1)/2], [0, 0, 1]] (:func:`scale_homography`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ...geometry import corners_to_homography, homography_to_corners, template_corners

__all__ = ["offsets_to_homography", "homography_to_offsets", "scale_homography", "check_corners", "warp"]


def _translation(o: float, like: Tensor) -> Tensor:
    T = torch.eye(3, dtype=like.dtype, device=like.device)
    T[0, 2] = T[1, 2] = o
    return T


def check_corners(omega: Tensor, template_size: int = 128) -> None:
    """Raise ValueError unless every ω ``[..., 8]`` gives a convex, non-folded, finite quadrilateral.

    A homography whose template corners fold (self-intersecting or reflected quadrilateral) maps part
    of the template to infinity or mirrors it; no alignment problem has one as its answer.
    """
    if omega.shape[-1:] != (8,):
        raise ValueError(f"omega must have shape [..., 8] (4 corners x (dx, dy)), got {tuple(omega.shape)}")
    if not bool(torch.isfinite(omega).all()):
        raise ValueError("omega has non-finite corner offsets")
    c = template_corners(template_size, template_size, omega.dtype, omega.device) + omega.reshape(*omega.shape[:-1], 4, 2)
    e = c.roll(-1, dims=-2) - c  # edges [..., 4, 2]
    cross = e[..., 0] * e.roll(-1, dims=-2)[..., 1] - e[..., 1] * e.roll(-1, dims=-2)[..., 0]  # [..., 4]
    bad = ~(cross > 0).all(dim=-1)  # corners TL, TR, BR, BL turn clockwise on screen = positive in (x, y-down)
    if bool(bad.any()):
        idx = bad.nonzero()[0].tolist()
        raise ValueError(f"degenerate homography: the template corners fold (not a convex quadrilateral in the "
                         f"order TL, TR, BR, BL) at index {idx}; offsets {omega[tuple(idx)].tolist()}")


def offsets_to_homography(omega: Tensor, template_size: int = 128, offset: float = 32.0) -> Tensor:
    """ω ``[..., 8]`` (corner offsets, input pixels) -> H ``[..., 3, 3]`` (template -> input coordinates)."""
    if omega.shape[-1:] != (8,):
        raise ValueError(f"omega must have shape [..., 8] (4 corners x (dx, dy)), got {tuple(omega.shape)}")
    return _translation(offset, omega) @ corners_to_homography(omega, template_size, template_size)


def homography_to_offsets(H: Tensor, template_size: int = 128, offset: float = 32.0) -> Tensor:
    """H ``[..., 3, 3]`` -> ω ``[..., 8]``: where H puts the template corners, minus their rest positions."""
    if H.shape[-2:] != (3, 3):
        raise ValueError(f"H must have shape [..., 3, 3], got {tuple(H.shape)}")
    return homography_to_corners(H, template_size, template_size) - offset


def scale_homography(H: Tensor, scale: float) -> Tensor:
    """H at full resolution -> the same map at ``scale`` (e.g. 0.5): S · H · S⁻¹ (pixel-centre convention)."""
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale!r}")
    S = torch.eye(3, dtype=H.dtype, device=H.device)
    S[0, 0] = S[1, 1] = scale
    S[0, 2] = S[1, 2] = (scale - 1) / 2
    Si = torch.eye(3, dtype=H.dtype, device=H.device)
    Si[0, 0] = Si[1, 1] = 1 / scale
    Si[0, 2] = Si[1, 2] = -(scale - 1) / (2 * scale)
    return S @ H @ Si


def warp(image: Tensor, H: Tensor, out_size: tuple[int, int] | int) -> Tensor:
    """Bilinear warp: ``out[..., b, :, y, x] = image[b](H[..., b] · (x, y, 1))``, zeros outside the image.

    Args:
        image: ``[B, C, h, w]``.
        H: ``[..., B, 3, 3]``, output (template) coordinates -> image coordinates (pixel centres).
            All leading points (e.g. the 1 + 2K of the DLC objective) are warped in ONE ``grid_sample`` call.
        out_size: ``(height, width)`` of the output, or one int for a square.

    Returns:
        ``[..., B, C, height, width]``.
    """
    if image.dim() != 4:
        raise ValueError(f"image must be [B, C, h, w], got shape {tuple(image.shape)}")
    B, C, h, w = image.shape
    if H.dim() < 3 or H.shape[-3:] != (B, 3, 3):
        raise ValueError(f"H must be [..., B, 3, 3] = [..., {B}, 3, 3] for {B} images, got {tuple(H.shape)}")
    oh, ow = (out_size, out_size) if isinstance(out_size, int) else tuple(out_size)
    if oh < 1 or ow < 1:
        raise ValueError(f"out_size must be positive, got {out_size!r}")
    lead = H.shape[:-3]
    Hb = H.to(image.dtype).reshape(-1, B, 3, 3).transpose(0, 1)  # [B, N, 3, 3]
    N = Hb.shape[1]
    ys, xs = torch.meshgrid(torch.arange(oh, dtype=image.dtype, device=image.device),
                            torch.arange(ow, dtype=image.dtype, device=image.device), indexing="ij")
    pts = torch.stack([xs, ys, torch.ones_like(xs)], dim=-1).reshape(-1, 3)  # [P, 3]
    mapped = pts @ Hb.transpose(-1, -2)  # [B, N, P, 3]
    z = mapped[..., 2:]
    z = torch.where(z.abs() < 1e-8, torch.full_like(z, 1e-8), z)  # a point at infinity reads outside, not NaN
    px, py = mapped[..., 0:1] / z, mapped[..., 1:2] / z
    grid = torch.cat([2 * px / (w - 1) - 1, 2 * py / (h - 1) - 1], dim=-1)  # align_corners=True: centres at ±1
    out = F.grid_sample(image, grid.reshape(B, N * oh, ow, 2), mode="bilinear", padding_mode="zeros",
                        align_corners=True)  # [B, C, N*oh, ow]
    out = out.reshape(B, C, N, oh, ow).permute(2, 0, 1, 3, 4)  # [N, B, C, oh, ow]
    return out.reshape(*lead, B, C, oh, ow)
