"""Near-optimality bounds of §3.2.3: Lemma 2 (Eqs. 15-16) and Lemma 3 (Eq. 17).

Introduced in chapter 4. Each bound accepts Python numbers (returns a float)
or tensors (returns a tensor, broadcasting, on the inputs' device/dtype), so
the book can draw a bound as a curve over γ or T in one call.

What the book discusses: **no function is L-Lipschitz and μ-strongly
star-convex (μ > 0) on all of Rⁿ**. Eq. 6 with λ = 1 gives
f(ω) − f(ω*) ≥ μ/2·r² at distance r = ‖ω − ω*‖, Lipschitz continuity gives
f(ω) − f(ω*) ≤ L·r, and μ/2·r² ≤ L·r fails as soon as r > 2L/μ. So Lemma 2
does not say "predictions land within 2L/μ": it says the region where both
assumptions hold has radius at most 2L/μ, and any point where both hold lies
in it. In practice L and μ are local (estimated on a neighbourhood of ω*),
and the bound is vacuous when 2L/μ exceeds that neighbourhood.
"""
from __future__ import annotations

import math
from numbers import Integral, Real

import torch
from torch import Tensor

__all__ = ["lemma2_radius", "lemma3_bound", "estimate_lipschitz"]


def _real(name: str, value, *, positive: bool) -> Tensor | float:
    if isinstance(value, bool) or not isinstance(value, (Real, Tensor)):
        raise TypeError(f"{name} must be a real number or a tensor, got {type(value).__name__} {value!r}")
    v = value.detach() if isinstance(value, Tensor) else torch.tensor(float(value))
    if isinstance(value, Tensor) and not value.is_floating_point():
        value = value.to(torch.get_default_dtype())
    bad = ~torch.isfinite(v) | ((v <= 0) if positive else (v < 0))
    if bad.any():
        raise ValueError(f"{name} must be finite and {'> 0' if positive else '>= 0'}, got {value!r}")
    return value if isinstance(value, Tensor) else float(value)


def lemma2_radius(L, mu, gamma=0.0):
    """Lemma 2 (Eq. 15): ‖ω − ω*‖ ≤ 2L/μ; with a violated constraint γ > 0 (Eq. 13),
    ‖ω − ω*‖ ≤ L/μ · (1 + sqrt(1 + 2μγ/L²)).

    From Eq. 13 with slack, μ/2·r² ≤ h(ω) − h(ω*) + γ ≤ L·r + γ; the positive
    root of μ/2·r² − L·r − γ = 0 is r = (L + sqrt(L² + 2μγ))/μ, computed in
    that form (with hypot, so tiny L does not underflow) so that L = 0 gives
    sqrt(2γ/μ) instead of 0/0. At γ = 0 it is
    exactly 2L/μ; for small γ it grows linearly (≈ 2L/μ + γ/L), for large γ
    like sqrt(2γ/μ).

    Args:
        L: Lipschitz constant ≥ 0. mu: strong star-convexity μ > 0.
        gamma: violation γ ≥ 0 of Eq. 13 (default 0).
    Returns:
        The radius (float, or a tensor if any input is a tensor).
    """
    L, mu, gamma = _real("L", L, positive=False), _real("mu", mu, positive=True), _real("gamma", gamma, positive=False)
    if any(isinstance(v, Tensor) for v in (L, mu, gamma)):
        L, mu, gamma = torch.broadcast_tensors(*_as_tensors(L, mu, gamma))
        return (L + torch.hypot(L, torch.sqrt(2 * mu * gamma))) / mu
    return (L + math.hypot(L, math.sqrt(2 * mu * gamma))) / mu


def lemma3_bound(L, mu, T):
    """Lemma 3 (Eq. 17): E‖(1/T) Σ_{t≤T} ω_t − ω*‖² ≤ 4L²/(μ²T).

    It is Lemma 2's squared radius divided by T, and holds only under the
    paper's assumption that the errors of different iterates are uncorrelated
    (the book measures how far real iterations are from that).

    Args:
        L: ≥ 0. mu: > 0. T: number of averaged iterates, an integer ≥ 1 (or an
            integer tensor of them, for a curve over T).
    """
    L, mu = _real("L", L, positive=False), _real("mu", mu, positive=True)
    if isinstance(T, Tensor):
        if T.is_floating_point() or T.is_complex() or T.dtype == torch.bool:
            raise TypeError(f"T must hold integers (a count of iterations), got dtype {T.dtype}")
        if (T < 1).any():
            raise ValueError(f"T must be >= 1, got {T!r}")
    elif isinstance(T, bool) or not isinstance(T, Integral):
        raise TypeError(f"T must be an integer >= 1 (a count of iterations), got {type(T).__name__} {T!r}")
    elif T < 1:
        raise ValueError(f"T must be >= 1, got {T}")
    if any(isinstance(v, Tensor) for v in (L, mu, T)):
        L, mu, T = _as_tensors(L, mu, T)
        return 4 * L * L / (mu * mu * T)
    return 4 * L * L / (mu * mu * T)


def _as_tensors(*values) -> list[Tensor]:
    ref = next(v for v in values if isinstance(v, Tensor) and v.is_floating_point()) if any(
        isinstance(v, Tensor) and v.is_floating_point() for v in values) else None
    dtype = ref.dtype if ref is not None else torch.get_default_dtype()
    device = next(v.device for v in values if isinstance(v, Tensor))
    return [torch.as_tensor(v, dtype=dtype, device=device) for v in values]


def estimate_lipschitz(f, points: Tensor, method: str = "both") -> float:
    """Estimate the Lipschitz constant L of ``f`` from sample ``points`` ``[N, d]``.

    * ``"gradient"``: max_n ‖∇f(p_n)‖ (autograd; ``f`` must map ``[N, d]`` to
      ``[N]`` with each value depending on its own point only).
    * ``"secant"``: max over pairs n ≠ m of ``|f(p_n) − f(p_m)| / ‖p_n − p_m‖``
      (an ``[N, N]`` table, so keep N to a few thousand).
    * ``"both"`` (default): the larger of the two.

    Every variant is a **lower** bound on the true L over the convex hull of
    the points (L is a supremum; samples can only miss the steepest spot), so
    bounds computed from it may be slightly optimistic. Returns a float.
    Introduced in chapter 4.
    """
    if method not in ("gradient", "secant", "both"):
        raise ValueError(f"method must be 'gradient', 'secant' or 'both', got {method!r}")
    if not callable(f):
        raise TypeError(f"f must be callable, got {type(f).__name__}")
    if not isinstance(points, Tensor) or not points.is_floating_point():
        raise TypeError(f"points must be a floating-point torch.Tensor [N, d], got {type(points).__name__}")
    if points.dim() != 2 or points.shape[0] < (2 if method != "gradient" else 1):
        raise ValueError(f"points must have shape [N, d] (N >= 2 for secants), got {tuple(points.shape)}")
    with torch.enable_grad():
        w = points.detach().requires_grad_(method != "secant")
        values = f(w)
        if not isinstance(values, Tensor) or values.shape != points.shape[:1]:
            got = tuple(values.shape) if isinstance(values, Tensor) else type(values).__name__
            raise ValueError(f"f must map points [N, d] to values [N]; got {got} for {tuple(points.shape)}")
        if not torch.isfinite(values).all():
            raise ValueError("f returned non-finite values")
        estimates = []
        if method != "secant":
            (grad,) = torch.autograd.grad(values.sum(), w)
            estimates.append(float(grad.norm(dim=-1).max()))
    if method != "gradient":
        v = values.detach()
        dist = torch.cdist(points.detach(), points.detach())  # [N, N]
        diff = (v[:, None] - v[None, :]).abs()  # [N, N]
        ratio = torch.where(dist > 0, diff / torch.where(dist > 0, dist, torch.ones_like(dist)), torch.zeros_like(dist))
        estimates.append(float(ratio.max()))
    return max(estimates)
