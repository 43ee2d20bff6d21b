"""Rigid fits: the batched weighted Kabsch solution and point-to-point ICP.

Introduced in chapter 6. Convention everywhere in :mod:`dlc_teach.tasks.registration`:
a rigid motion (R, t) maps a source cloud onto a target cloud as

    dst ≈ src @ R.transpose(-1, -2) + t        (x ↦ R x + t, row vectors)

so the ground truth of a pair (src, R src + t) is (R, t), as in DCP's code.
"""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["kabsch", "icp", "apply_rigid", "compose", "check_cloud"]


def check_cloud(name: str, x, batch: int | None = None) -> Tensor:
    """Raise a clear error unless ``x`` is a floating-point tensor ``[B, N, 3]`` with N >= 3 (finite)."""
    if not isinstance(x, Tensor) or not x.is_floating_point():
        got = x.dtype if isinstance(x, Tensor) else type(x).__name__
        raise TypeError(f"{name} must be a floating-point tensor [B, N, 3], got {got}")
    if x.dim() != 3 or x.shape[-1] != 3 or x.shape[1] < 3:
        raise ValueError(f"{name} must have shape [B, N, 3] with N >= 3 points, got {tuple(x.shape)}")
    if batch is not None and x.shape[0] != batch:
        raise ValueError(f"{name} has batch size {x.shape[0]}, expected {batch}")
    return x


def apply_rigid(R: Tensor, t: Tensor, x: Tensor) -> Tensor:
    """x ↦ R x + t for clouds ``x`` ``[..., N, 3]``, ``R`` ``[..., 3, 3]``, ``t`` ``[..., 3]``."""
    return x @ R.transpose(-1, -2) + t.unsqueeze(-2)


def compose(R2: Tensor, t2: Tensor, R1: Tensor, t1: Tensor) -> tuple[Tensor, Tensor]:
    """(R2, t2) ∘ (R1, t1): first (R1, t1), then (R2, t2) -> (R2 R1, R2 t1 + t2)."""
    return R2 @ R1, (R2 @ t1.unsqueeze(-1)).squeeze(-1) + t2


def kabsch(src: Tensor, dst: Tensor, weights: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Least-squares rigid motion from ``src`` to ``dst`` (Kabsch/Umeyama without scale), batched.

    Minimises Σ_i w_i ‖R src_i + t − dst_i‖² over rotations (det R = +1: a reflection
    that would fit better is fixed by flipping the last singular direction) and t.

    Args:
        src, dst: corresponding points ``[B, N, 3]`` (row i of src matches row i of dst).
        weights: optional non-negative ``[B, N]`` (normalised per cloud; each must have a positive sum).

    Returns:
        ``R`` ``[B, 3, 3]`` and ``t`` ``[B, 3]`` with ``dst ≈ src @ R.transpose(-1, -2) + t``,
        in the dtype of ``src``. The SVD runs in float64 (a DCP head backpropagates through it,
        and float32 SVD gradients blow up when two singular values come close).
    """
    check_cloud("src", src)
    check_cloud("dst", dst, batch=src.shape[0])
    if dst.shape != src.shape:
        raise ValueError(f"src and dst must hold corresponding points of the same shape, got "
                         f"{tuple(src.shape)} and {tuple(dst.shape)}")
    out_dtype = src.dtype
    x, y = src.double(), dst.double()
    if weights is None:
        w = torch.full(x.shape[:2], 1.0 / x.shape[1], dtype=x.dtype, device=x.device)
    else:
        if not isinstance(weights, Tensor) or weights.shape != x.shape[:2]:
            got = tuple(weights.shape) if isinstance(weights, Tensor) else type(weights).__name__
            raise ValueError(f"weights must have shape [B, N] = {tuple(x.shape[:2])}, got {got}")
        w = weights.double()
        if bool((w < 0).any()) or bool((w.sum(-1) <= 0).any()):
            raise ValueError("weights must be >= 0 with a positive sum for every cloud")
        w = w / w.sum(-1, keepdim=True)
    cx = (w.unsqueeze(-1) * x).sum(1)  # [B, 3]
    cy = (w.unsqueeze(-1) * y).sum(1)
    H = (x - cx.unsqueeze(1)).transpose(1, 2) @ (w.unsqueeze(-1) * (y - cy.unsqueeze(1)))  # [B, 3, 3]
    U, _, Vh = torch.linalg.svd(H)
    V = Vh.transpose(1, 2)
    d = torch.sign(torch.linalg.det(V @ U.transpose(1, 2)))  # [B], -1 where the best fit is a reflection
    d = torch.where(d == 0, torch.ones_like(d), d)
    D = torch.diag_embed(torch.stack([torch.ones_like(d), torch.ones_like(d), d], dim=-1))
    R = V @ D @ U.transpose(1, 2)
    t = cy - (R @ cx.unsqueeze(-1)).squeeze(-1)
    return R.to(out_dtype), t.to(out_dtype)


@torch.no_grad()
def icp(src: Tensor, dst: Tensor, R0: Tensor | None = None, t0: Tensor | None = None,
        iters: int = 30) -> tuple[Tensor, Tensor]:
    """Point-to-point ICP (Besl and McKay 1992), batched, started at (R0, t0).

    Each iteration matches every transformed source point to its nearest neighbour in ``dst``
    (the clouds need not correspond in order or size) and refits (R, t) with :func:`kabsch`
    on the *original* source points, so the result is a single rigid motion.

    Args:
        src: ``[B, N, 3]``; dst: ``[B, M, 3]``.
        R0, t0: initial estimate ``[B, 3, 3]``, ``[B, 3]`` (identity / zero when None),
            e.g. a network's output (ICP refinement, Table 2).
        iters: number of match-and-fit iterations (>= 0).

    Returns:
        ``(R [B, 3, 3], t [B, 3])``, same convention as :func:`kabsch`.
    """
    check_cloud("src", src)
    check_cloud("dst", dst, batch=src.shape[0])
    if isinstance(iters, bool) or not isinstance(iters, int) or iters < 0:
        raise ValueError(f"iters must be an integer >= 0, got {iters!r}")
    B = src.shape[0]
    R = torch.eye(3, dtype=src.dtype, device=src.device).expand(B, 3, 3) if R0 is None else R0.to(src.dtype)
    t = src.new_zeros(B, 3) if t0 is None else t0.to(src.dtype)
    if R.shape != (B, 3, 3) or t.shape != (B, 3):
        raise ValueError(f"R0 must be [B, 3, 3] and t0 [B, 3] with B = {B}, got {tuple(R.shape)}, {tuple(t.shape)}")
    for _ in range(iters):
        moved = apply_rigid(R, t, src)  # [B, N, 3]
        nearest = torch.cdist(moved, dst).argmin(-1)  # [B, N]
        matched = torch.gather(dst, 1, nearest.unsqueeze(-1).expand(-1, -1, 3))  # [B, N, 3]
        R, t = kabsch(src, matched)
    return R, t
