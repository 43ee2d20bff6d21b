"""Fixed-point iteration (Eq. 3), its averaged form (Eq. 10) and gradient descent as a map g.

Introduced in chapter 1 (iterative methods, getting stuck) and used again in
chapter 4 (averaged iterations, Lemma 3). Points are tensors ``[..., d]``; a
leading batch (many starting points at once) is carried through unchanged.
Every iteration returns the whole trajectory ``[steps + 1, ..., d]`` with the
starting point first, detached from autograd.
"""
from __future__ import annotations

import math
from numbers import Real
from typing import Callable

import torch
from torch import Tensor

__all__ = ["fixed_point", "averaged_fixed_point", "gradient_descent", "gd_map", "running_average"]

Map = Callable[[Tensor], Tensor]


def _check_steps(steps) -> int:
    if isinstance(steps, bool) or not isinstance(steps, int):
        raise TypeError(f"steps must be an int >= 0 (number of iterations), got {type(steps).__name__} {steps!r}")
    if steps < 0:
        raise ValueError(f"steps must be >= 0 (number of iterations), got {steps}")
    return steps


def _check_lr(lr) -> float:
    if isinstance(lr, bool) or not isinstance(lr, Real):
        raise TypeError(f"lr must be a real number > 0 (the step size), got {type(lr).__name__} {lr!r}")
    lr = float(lr)
    if not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"lr must be finite and > 0 (the step size), got {lr!r}")
    return lr


def _check_start(omega0) -> Tensor:
    if not isinstance(omega0, Tensor):
        raise TypeError(f"omega0 must be a torch.Tensor [..., d], got {type(omega0).__name__}")
    if not omega0.is_floating_point():
        raise TypeError(f"omega0 must be floating point, got dtype {omega0.dtype}")
    if omega0.dim() < 1:
        raise ValueError("omega0 must have shape [..., d] (at least 1-D), got a 0-d tensor")
    return omega0.detach().clone()


def _apply(g: Map, omega: Tensor) -> Tensor:
    out = g(omega)
    if not isinstance(out, Tensor) or out.shape != omega.shape:
        got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(f"g must map points [..., d] to points of the same shape: "
                         f"for input {tuple(omega.shape)} it returned {got}")
    return out.detach()


def fixed_point(g: Map, omega0: Tensor, steps: int) -> Tensor:
    """Fixed-point iteration ω̂_t = g(ω̂_{t−1}), t = 1..T (Eq. 3).

    Args:
        g: the update map, ``[..., d] -> [..., d]``.
        omega0: starting point(s) ω̂_0 ``[..., d]``.
        steps: T, an int >= 0.

    Returns:
        The trajectory ``[T + 1, ..., d]``: ω̂_0, ω̂_1, ..., ω̂_T (ω̂_T is the
        prediction of Eq. 3). Introduced in chapter 1.
    """
    steps = _check_steps(steps)
    omega = _check_start(omega0)
    traj = [omega]
    for _ in range(steps):
        omega = _apply(g, omega)
        traj.append(omega)
    return torch.stack(traj)  # [T+1, ..., d]


def averaged_fixed_point(g: Map, omega0: Tensor, steps: int) -> Tensor:
    """The averaged iteration of Eq. 10, exactly as the paper writes it.

    Δω̂_t = g(ω̂_{t−1});  ω̂_t = (1/t) Σ_{τ=1..t} Δω̂_τ;  ω̂_0 = ``omega0``.

    Note that g is applied to the previous *average*, not to a separate
    plain fixed-point sequence: ω̂_t = ((t − 1)·ω̂_{t−1} + g(ω̂_{t−1}))/t, a
    Mann/Krasnosel'skii-style iteration with step 1/t. ``omega0`` itself never
    enters an average.

    Args:
        g: the update map, ``[..., d] -> [..., d]``.
        omega0: ω̂_0 ``[..., d]``.
        steps: T, an int >= 0.

    Returns:
        ``[T + 1, ..., d]``: ω̂_0, ω̂_1, ..., ω̂_T. Introduced in chapter 4.
    """
    steps = _check_steps(steps)
    omega = _check_start(omega0)
    traj = [omega]
    total = torch.zeros_like(omega)
    for t in range(1, steps + 1):
        total = total + _apply(g, omega)  # Σ_{τ≤t} Δω̂_τ
        omega = total / t
        traj.append(omega)
    return torch.stack(traj)  # [T+1, ..., d]


def gd_map(h: Callable[[Tensor], Tensor], lr: float) -> Map:
    """The gradient-descent update g(ω) = ω − lr·∇h(ω) as a map (chapter 1).

    ``h`` maps points ``[..., d]`` to values ``[...]`` and must treat the
    leading dims as an independent batch (each value depends only on its own
    point), so that ∇ of ``h(ω).sum()`` is the per-point gradient. The
    gradient is taken by autograd (even inside ``torch.no_grad()``); the
    returned points are detached.
    """
    lr = _check_lr(lr)

    def g(omega: Tensor) -> Tensor:
        with torch.enable_grad():
            w = omega.detach().requires_grad_(True)
            values = h(w)
            if not isinstance(values, Tensor) or values.shape != w.shape[:-1]:
                got = tuple(values.shape) if isinstance(values, Tensor) else type(values).__name__
                raise ValueError(f"h must map points [..., d] to values [...]: for input {tuple(w.shape)} "
                                 f"expected {tuple(w.shape[:-1])}, got {got}")
            (grad,) = torch.autograd.grad(values.sum(), w)
        return (omega.detach() - lr * grad).detach()

    return g


def gradient_descent(h: Callable[[Tensor], Tensor], omega0: Tensor, lr: float, steps: int) -> Tensor:
    """Gradient descent ω_t = ω_{t−1} − lr·∇h(ω_{t−1}): Eq. 3 with g = :func:`gd_map`.

    Works on a batch of starting points ``omega0`` ``[..., d]`` at once.
    Returns the trajectory ``[steps + 1, ..., d]`` with ``omega0`` first. A
    step size that is too large makes the iterates diverge; they are returned
    as they are (possibly inf/NaN), not clipped. Introduced in chapter 1.
    """
    return fixed_point(gd_map(h, lr), omega0, steps)


def running_average(traj: Tensor, include_start: bool = False) -> Tensor:
    """Running means of a trajectory ``[T + 1, ...]`` (Lemma 3's quantity).

    With ``include_start=False`` (Lemma 3, Eq. 17: the mean of ω_1..ω_t),
    ``out[t] = (1/t) Σ_{τ=1..t} traj[τ]`` for t >= 1 and ``out[0] = traj[0]``
    (no iterate yet), so indices line up with ``traj``. With
    ``include_start=True``, ``out[t] = mean(traj[0..t])``.

    Returns ``[T + 1, ...]``. Introduced in chapter 4.
    """
    if not isinstance(traj, Tensor) or not traj.is_floating_point():
        raise TypeError(f"traj must be a floating-point torch.Tensor [T + 1, ...], got {type(traj).__name__}")
    if traj.dim() < 1 or traj.shape[0] < 1:
        raise ValueError(f"traj must have shape [T + 1, ...] with at least one point, got {tuple(traj.shape)}")
    count_shape = (-1,) + (1,) * (traj.dim() - 1)
    if include_start:
        counts = torch.arange(1, traj.shape[0] + 1, dtype=traj.dtype, device=traj.device).view(count_shape)
        return traj.cumsum(0) / counts
    out = traj.clone()
    if traj.shape[0] > 1:
        counts = torch.arange(1, traj.shape[0], dtype=traj.dtype, device=traj.device).view(count_shape)
        out[1:] = traj[1:].cumsum(0) / counts
    return out
