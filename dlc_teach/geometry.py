"""Charts used by the experiments: SE(3) as Euler angles + translation, homographies as corner offsets.

Introduced in chapters 6 and 7; the neighbourhood samplers in
:mod:`dlc_teach.neighborhoods` interpolate in these charts, as the paper does.

Conventions (tested against scipy and kornia in ``tests/test_geometry.py``):

* Euler angles are in **degrees**, ``R = Rx(α_x) · Ry(α_y) · Rz(α_z)`` — the
  DCP data convention, equal to scipy's intrinsic ``Rotation.from_euler("XYZ")``.
* A homography maps template pixel coordinates (x, y, 1) to image coordinates;
  the template's corners are, in order, top-left (0, 0), top-right (w−1, 0),
  bottom-right (w−1, h−1), bottom-left (0, h−1).
"""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "euler_to_matrix", "matrix_to_euler", "se3_to_matrix",
    "template_corners", "corners_to_homography", "homography_to_corners",
]


def _axis_rotation(angle: Tensor, axis: int) -> Tensor:
    c, s = torch.cos(angle), torch.sin(angle)
    one, zero = torch.ones_like(angle), torch.zeros_like(angle)
    if axis == 0:
        rows = [[one, zero, zero], [zero, c, -s], [zero, s, c]]
    elif axis == 1:
        rows = [[c, zero, s], [zero, one, zero], [-s, zero, c]]
    else:
        rows = [[c, -s, zero], [s, c, zero], [zero, zero, one]]
    return torch.stack([torch.stack(r, dim=-1) for r in rows], dim=-2)


def euler_to_matrix(angles_deg: Tensor) -> Tensor:
    """Euler angles ``[..., 3]`` (degrees) -> rotation matrices ``[..., 3, 3]``, R = Rx·Ry·Rz."""
    if angles_deg.shape[-1] != 3:
        raise ValueError(f"angles_deg must have shape [..., 3], got {tuple(angles_deg.shape)}")
    a = torch.deg2rad(angles_deg)
    return _axis_rotation(a[..., 0], 0) @ _axis_rotation(a[..., 1], 1) @ _axis_rotation(a[..., 2], 2)


def matrix_to_euler(R: Tensor) -> Tensor:
    """Rotation matrices ``[..., 3, 3]`` -> Euler angles ``[..., 3]`` in degrees (inverse of
    :func:`euler_to_matrix` for α_y in (−90°, 90°))."""
    if R.shape[-2:] != (3, 3):
        raise ValueError(f"R must have shape [..., 3, 3], got {tuple(R.shape)}")
    ay = torch.asin(R[..., 0, 2].clamp(-1.0, 1.0))  # clamp only guards round-off outside [-1, 1]
    ax = torch.atan2(-R[..., 1, 2], R[..., 2, 2])
    az = torch.atan2(-R[..., 0, 1], R[..., 0, 0])
    return torch.rad2deg(torch.stack([ax, ay, az], dim=-1))


def se3_to_matrix(omega: Tensor) -> tuple[Tensor, Tensor]:
    """ω = (α_x, α_y, α_z [deg], t_x, t_y, t_z) ``[..., 6]`` -> (R ``[..., 3, 3]``, t ``[..., 3]``)."""
    if omega.shape[-1] != 6:
        raise ValueError(f"omega must have shape [..., 6] (3 Euler angles + 3 translations), got {tuple(omega.shape)}")
    return euler_to_matrix(omega[..., :3]), omega[..., 3:]


def template_corners(height: int, width: int, dtype=torch.float32, device=None) -> Tensor:
    """The template's four corners ``[4, 2]`` as (x, y): TL, TR, BR, BL."""
    if height < 2 or width < 2:
        raise ValueError(f"template must be at least 2x2 pixels, got {height}x{width}")
    w, h = width - 1.0, height - 1.0
    return torch.tensor([[0.0, 0.0], [w, 0.0], [w, h], [0.0, h]], dtype=dtype, device=device)


def corners_to_homography(offsets: Tensor, height: int, width: int) -> Tensor:
    """Corner offsets ``[..., 8]`` (pixels) -> homographies ``[..., 3, 3]`` with H[2, 2] = 1.

    Solves the 8×8 direct linear transform that maps each template corner c_k to
    c_k + offset_k.
    """
    if offsets.shape[-1] != 8:
        raise ValueError(f"offsets must have shape [..., 8] (4 corners x (dx, dy)), got {tuple(offsets.shape)}")
    src = template_corners(height, width, offsets.dtype, offsets.device).expand(*offsets.shape[:-1], 4, 2)
    dst = src + offsets.reshape(*offsets.shape[:-1], 4, 2)
    x, y, u, v = src[..., 0], src[..., 1], dst[..., 0], dst[..., 1]  # each [..., 4]
    one, zero = torch.ones_like(x), torch.zeros_like(x)
    rows_u = torch.stack([x, y, one, zero, zero, zero, -u * x, -u * y], dim=-1)  # [..., 4, 8]
    rows_v = torch.stack([zero, zero, zero, x, y, one, -v * x, -v * y], dim=-1)
    A = torch.cat([rows_u, rows_v], dim=-2)  # [..., 8, 8]
    b = torch.cat([u, v], dim=-1).unsqueeze(-1)  # [..., 8, 1]
    p = torch.linalg.solve(A, b).squeeze(-1)  # [..., 8]
    return torch.cat([p, torch.ones_like(p[..., :1])], dim=-1).reshape(*p.shape[:-1], 3, 3)


def homography_to_corners(H: Tensor, height: int, width: int) -> Tensor:
    """Homographies ``[..., 3, 3]`` -> corner offsets ``[..., 8]`` (inverse of :func:`corners_to_homography`)."""
    if H.shape[-2:] != (3, 3):
        raise ValueError(f"H must have shape [..., 3, 3], got {tuple(H.shape)}")
    src = template_corners(height, width, H.dtype, H.device)  # [4, 2]
    hom = torch.cat([src, torch.ones_like(src[:, :1])], dim=-1)  # [4, 3]
    mapped = hom @ H.transpose(-1, -2)  # [..., 4, 3]
    dst = mapped[..., :2] / mapped[..., 2:]
    return (dst - src).reshape(*H.shape[:-2], 8)
