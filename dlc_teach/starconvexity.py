"""Numerical checks of (strong) star-convexity: Defs. 1-2 and Lemma 1 (Eqs. 4-7).

Introduced in chapter 2. ``f`` maps points ``[..., d]`` to values ``[...]``.
Shapes: either one centre ``omega_star`` ``[d]`` with samples ``omega``
``[N, d]``, or a batch of centres ``[B, d]`` with samples ``[N, B, d]`` (the
DLC layout, B datapoints). Every gap is written "lhs − rhs" of its
inequality, so **gap ≤ 0 means the condition holds** at that sample. Each
gap function evaluates all the points it needs in one call of ``f``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .objective import _check_nonnegative, _check_unit_interval

__all__ = [
    "star_gap", "convexity_gap", "strong_star_gaps", "first_order_gap", "estimate_mu",
    "check_star_convexity", "StarConvexityReport", "sample_ball",
]

#: Rows of :class:`StarConvexityReport`, in display order.
CONDITIONS = {
    "minimum": "ω* is a minimum (Def. 1)",
    "eq4": "Eq. 4 star-convexity",
    "eq5": "Eq. 5 first order, μ",
    "eq6": "Eq. 6 quadratic envelope, μ",
    "eq7": "Eq. 7 strong chord, μ",
    "convexity": "convexity (pairs of samples)",
}


def _check_inputs(f, omega_star, omega) -> None:
    if not callable(f):
        raise TypeError(f"f must be a callable mapping points [..., d] to values [...], got {type(f).__name__}")
    for name, t in (("omega_star", omega_star), ("omega", omega)):
        if not isinstance(t, Tensor) or not t.is_floating_point():
            raise TypeError(f"{name} must be a floating-point torch.Tensor, got {type(t).__name__}")
    if omega_star.dim() not in (1, 2):
        raise ValueError(f"omega_star must have shape [d] or [B, d], got {tuple(omega_star.shape)}")
    if omega.dim() != omega_star.dim() + 1 or omega.shape[1:] != omega_star.shape:
        want = "[N, d]" if omega_star.dim() == 1 else "[N, B, d]"
        raise ValueError(f"omega must have shape {want} for omega_star {tuple(omega_star.shape)}, "
                         f"got {tuple(omega.shape)}")


def _eval(f, points: Tensor) -> Tensor:
    values = f(points)
    if not isinstance(values, Tensor) or values.shape != points.shape[:-1]:
        got = tuple(values.shape) if isinstance(values, Tensor) else type(values).__name__
        raise ValueError(f"f must map points [..., d] to values [...]: for input {tuple(points.shape)} "
                         f"expected {tuple(points.shape[:-1])}, got {got}")
    if not torch.isfinite(values).all():
        raise ValueError("f returned non-finite values")
    return values


def _lam(lam, like: Tensor) -> Tensor:
    if isinstance(lam, bool) or torch.as_tensor(lam).numel() != 1:
        raise ValueError(f"lam must be one number in [0, 1], got {lam!r}")
    _check_unit_interval("lam", lam.detach() if isinstance(lam, Tensor) else lam)
    return torch.as_tensor(lam, dtype=like.dtype, device=like.device)


def _three_points(f, omega_star, omega, lam):
    """f(ω*) ``[] | [B]``, f(ω) and f(ω̃) ``[N] | [N, B]`` in one call; ‖ω* − ω‖² ``[N] | [N, B]``."""
    _check_inputs(f, omega_star, omega)
    lam = _lam(lam, omega)
    omega_tilde = (1 - lam) * omega_star + lam * omega  # [N, (B,) d]
    n = omega.shape[0]
    values = _eval(f, torch.cat([omega_star.unsqueeze(0), omega, omega_tilde]))  # [1 + 2N, (B)]
    sq = (omega - omega_star).pow(2).sum(-1)  # [N, (B)]
    return values[0], values[1:1 + n], values[1 + n:], sq, lam


def star_gap(f, omega_star: Tensor, omega: Tensor, lam: float) -> Tensor:
    """Eq. 4 as lhs − rhs: f(ω̃) − [(1 − λ)f(ω*) + λf(ω)], ω̃ = (1 − λ)ω* + λω.

    Returns ``[N]`` (or ``[N, B]``); ≤ 0 where the star-convexity inequality
    holds. With any point in place of ω* it is the convexity gap of the pair.
    """
    f_star, f_omega, f_tilde, _, lam = _three_points(f, omega_star, omega, lam)
    return f_tilde - ((1 - lam) * f_star + lam * f_omega)


def convexity_gap(f, omega_a: Tensor, omega_b: Tensor, lam: float) -> Tensor:
    """Convexity of f on pairs, as lhs − rhs: f((1 − λ)a + λb) − [(1 − λ)f(a) + λf(b)].

    ``omega_a``, ``omega_b``: ``[..., d]`` of the same shape; returns ``[...]``,
    ≤ 0 where convexity holds on that pair. Eq. 4 is this with a = ω* fixed;
    a star-convex but non-convex f has gap > 0 for some pair not through ω*.
    """
    if not callable(f):
        raise TypeError(f"f must be a callable mapping points [..., d] to values [...], got {type(f).__name__}")
    for name, t in (("omega_a", omega_a), ("omega_b", omega_b)):
        if not isinstance(t, Tensor) or not t.is_floating_point() or t.dim() < 1:
            raise TypeError(f"{name} must be a floating-point torch.Tensor [..., d], got {type(t).__name__}")
    if omega_a.shape != omega_b.shape:
        raise ValueError(f"omega_a and omega_b must have the same shape, got {tuple(omega_a.shape)} "
                         f"and {tuple(omega_b.shape)}")
    lam = _lam(lam, omega_a)
    mid = (1 - lam) * omega_a + lam * omega_b
    values = _eval(f, torch.stack([omega_a, omega_b, mid]))  # [3, ...]
    return values[2] - ((1 - lam) * values[0] + lam * values[1])


def strong_star_gaps(f, omega_star: Tensor, omega: Tensor, mu: float, lam: float) -> tuple[Tensor, Tensor]:
    """Lemma 1's two conditions as lhs − rhs, each ``[N]`` (or ``[N, B]``), ≤ 0 where they hold.

    gap6 = f(ω*) − f(ω̃) + μ/2·‖ω* − ω̃‖²                               (Eq. 6)
    gap7 = f(ω̃) − (1 − λ)f(ω*) − λf(ω) + λ(1 − λ)μ/2·‖ω* − ω‖²        (Eq. 7)

    Note ‖ω* − ω̃‖ = λ‖ω* − ω‖. With λ = 1, gap6 is the γ-slack of Eq. 13
    before the hinge; gap7 is always the ξ-slack of Eq. 14.
    """
    _check_nonnegative("mu", mu)
    f_star, f_omega, f_tilde, sq, lam = _three_points(f, omega_star, omega, lam)
    gap6 = f_star - f_tilde + 0.5 * mu * lam * lam * sq
    gap7 = f_tilde - (1 - lam) * f_star - lam * f_omega + 0.5 * lam * (1 - lam) * mu * sq
    return gap6, gap7


def first_order_gap(f, omega_star: Tensor, omega: Tensor, mu: float) -> Tensor:
    """Eq. 5 as lhs − rhs: f(ω) + ∇f(ω)ᵀ(ω* − ω) + μ/2·‖ω* − ω‖² − f(ω*).

    ∇f by autograd (``f`` must treat leading dims as a batch). Returns
    ``[N]`` (or ``[N, B]``), detached; ≤ 0 where Eq. 5 holds.
    """
    _check_inputs(f, omega_star, omega)
    _check_nonnegative("mu", mu)
    with torch.enable_grad():
        w = omega.detach().requires_grad_(True)
        f_omega = _eval(f, w)
        (grad,) = torch.autograd.grad(f_omega.sum(), w)  # [N, (B,) d]
    f_star = _eval(f, omega_star.detach().unsqueeze(0))[0]
    diff = omega_star - omega  # [N, (B,) d]
    return (f_omega.detach() + (grad * diff).sum(-1) + 0.5 * mu * diff.pow(2).sum(-1) - f_star).detach()


def estimate_mu(f, omega_star: Tensor, omega: Tensor, lams=(1.0,)) -> Tensor:
    """The largest μ for which Eq. 6 holds at every given point.

    Eq. 6 at a point p = ω̃ reads μ ≤ 2[f(p) − f(ω*)]/‖p − ω*‖², so the
    estimate is the minimum of that ratio over p ∈ {(1 − λ)ω* + λω : λ ∈
    ``lams``, ω ∈ ``omega``} (by default the samples themselves; points at
    ω* are skipped). Returns a 0-d tensor (or ``[B]``, one per centre).

    A value ≤ 0 means some sample has f(p) ≤ f(ω*): ω* is **not** a strict
    minimum on these samples, and no μ > 0 satisfies Eq. 6. The estimate is an
    upper bound on the true μ (more samples can only lower it).
    """
    _check_inputs(f, omega_star, omega)
    lams = torch.as_tensor(lams, dtype=omega.dtype, device=omega.device).reshape(-1)
    _check_unit_interval("lams", lams)
    lam = lams.view((-1,) + (1,) * omega.dim())  # [L, 1, (1,) 1]
    pts = ((1 - lam) * omega_star + lam * omega).flatten(0, 1)  # [L·N, (B,) d]
    values = _eval(f, torch.cat([omega_star.unsqueeze(0), pts]))
    sq = (pts - omega_star).pow(2).sum(-1)  # [L·N, (B)]
    ratio = 2 * (values[1:] - values[0]) / sq
    ratio = torch.where(sq > 0, ratio, torch.full_like(ratio, math.inf))
    mu = ratio.min(dim=0).values
    if torch.isinf(mu).any():
        raise ValueError("estimate_mu needs at least one point different from omega_star (per centre)")
    return mu


def sample_ball(omega_star: Tensor, n: int, radius: float, generator: torch.Generator | None = None) -> Tensor:
    """``n`` points uniform in the ball of ``radius`` around each centre: ``[n, d]`` or ``[n, B, d]``."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    if not (float(radius) > 0 and math.isfinite(float(radius))):
        raise ValueError(f"radius must be finite and > 0, got {radius!r}")
    d = omega_star.shape[-1]
    shape = (n,) + tuple(omega_star.shape)
    z = torch.randn(shape, generator=generator, dtype=omega_star.dtype, device=omega_star.device)
    u = torch.rand(shape[:-1] + (1,), generator=generator, dtype=omega_star.dtype, device=omega_star.device)
    return omega_star + radius * u.pow(1.0 / d) * z / z.norm(dim=-1, keepdim=True)


@dataclass(frozen=True, repr=False)
class StarConvexityReport:
    """Result of :func:`check_star_convexity`.

    ``violation_rate[key]``: fraction of checked (sample, λ) pairs where the
    condition's gap exceeds the tolerance; ``worst_gap[key]``: its largest
    gap (> 0 means violated). Keys: see ``CONDITIONS``. ``mu_estimate``:
    :func:`estimate_mu` over samples and interpolated points (minimum over
    centres). ``star_convex``: Def. 1 holds on the samples (ω* is a minimum
    and Eq. 4 never fails). ``strongly_star_convex``: μ > 0 and Eqs. 5-7 never
    fail at that μ. ``convex_on_samples``: no pair of samples violates
    convexity (a necessary check only).
    """

    n_samples: int
    lams: tuple[float, ...]
    mu: float
    tol: float
    radius: float | None
    violation_rate: dict = field(default_factory=dict)
    worst_gap: dict = field(default_factory=dict)
    mu_estimate: float = float("nan")
    star_convex: bool = False
    strongly_star_convex: bool = False
    convex_on_samples: bool = False
    threshold: float = 0.0

    def _rows(self):
        for key, label in CONDITIONS.items():
            label = label.replace("μ", f"μ={self.mu:.3g}")
            gap = self.worst_gap[key]
            shown = "≈ 0" if abs(gap) <= self.threshold else f"{gap:.2g}"
            yield label, f"{100 * self.violation_rate[key]:.1f} %", shown

    def verdict(self) -> str:
        """One sentence a reader can act on."""
        if self.violation_rate["minimum"] > 0:
            return "NOT star-convex: some samples lie below f(ω*), so ω* is not a minimum there (estimated μ ≤ 0)."
        if not self.star_convex:
            return "NOT star-convex: Eq. 4 fails on some segment from ω* (the loss rises above a chord)."
        convex = ("also convex on the sampled pairs" if self.convex_on_samples
                  else "but NOT convex (a pair of samples violates convexity)")
        strong = f"; μ-strongly star-convex with μ={self.mu:.3g}" if self.strongly_star_convex else ""
        return f"star-convex about ω* on these samples, {convex}{strong}."

    def __str__(self) -> str:
        where = f"uniform in a ball of radius {self.radius:g}" if self.radius is not None else "given"
        lam = ", ".join(f"{v:g}" for v in self.lams)
        lines = [f"Star-convexity check: {self.n_samples} samples ({where}), λ ∈ {{{lam}}}, μ = {self.mu:.3g}",
                 f"{'condition':<40}{'violated':>10}{'worst gap':>12}"]
        lines += [f"{a:<40}{b:>10}{c:>12}" for a, b, c in self._rows()]
        lines += [f"estimated μ (Eq. 6): {self.mu_estimate:.3g}", f"verdict: {self.verdict()}"]
        return "\n".join(lines)

    __repr__ = __str__  # rounded, so notebook outputs compare stably

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><td>{a}</td><td style='text-align:right'>{b}</td><td style='text-align:right'>{c}</td>"
                       f"</tr>" for a, b, c in self._rows())
        return ("<table><thead><tr><th>condition</th><th>violated</th><th>worst gap</th></tr></thead>"
                f"<tbody>{rows}</tbody></table><p>estimated μ (Eq. 6): {self.mu_estimate:.3g}<br>"
                f"<b>verdict:</b> {self.verdict()}</p>")


def check_star_convexity(f, omega_star: Tensor, omega: Tensor | None = None, *, radius: float = 1.0, n: int = 256,
                         lams=(0.25, 0.5, 0.75), mu: float = 0.0, tol: float = 1e-6,
                         generator: torch.Generator | None = None) -> StarConvexityReport:
    """Check Def. 1, Eq. 5 and Lemma 1 (Eqs. 6-7) on samples around ``omega_star``.

    Samples ``n`` points uniformly in the ball of ``radius`` around ω* when
    ``omega`` is None (so the verdict is about that ball only). A gap counts
    as a violation when it exceeds ``tol · (1 + max |f|)`` over the evaluated
    points (a tolerance relative to the scale of f, so float32 rounding at
    exact equality, e.g. Eq. 5 for μ/2‖ω‖² at that μ, is not a violation).
    Convexity is probed on pairs (ω_i, ω_{i−1}) of samples at the same λs.
    Introduced in chapter 2.
    """
    if isinstance(omega_star, Tensor) and omega_star.is_floating_point() and omega is None:
        omega = sample_ball(omega_star, n, radius, generator)
    else:
        radius = None
    _check_inputs(f, omega_star, omega)
    _check_nonnegative("mu", mu)
    lams = tuple(float(v) for v in lams)
    if not lams:
        raise ValueError("lams must contain at least one λ in [0, 1]")
    _check_unit_interval("lams", lams)
    if not (float(tol) >= 0 and math.isfinite(float(tol))):
        raise ValueError(f"tol must be finite and >= 0, got {tol!r}")
    mu = float(mu)
    gaps = {k: [] for k in CONDITIONS}
    scale = [_eval(f, omega).abs().max()]
    for lam in lams:
        gaps["eq4"].append(star_gap(f, omega_star, omega, lam))
        g6, g7 = strong_star_gaps(f, omega_star, omega, mu, lam)
        gaps["eq6"].append(g6)
        gaps["eq7"].append(g7)
        gaps["convexity"].append(convexity_gap(f, omega.roll(1, dims=0), omega, lam))
    gaps["minimum"].append(strong_star_gaps(f, omega_star, omega, 0.0, 1.0)[0])
    gaps["eq5"].append(first_order_gap(f, omega_star, omega, mu))
    scale.append(_eval(f, omega_star.unsqueeze(0)).abs().max())
    threshold = float(tol) * (1 + float(torch.stack(scale).max()))
    rate, worst = {}, {}
    for key, parts in gaps.items():
        g = torch.cat([p.reshape(-1) for p in parts]).detach()
        rate[key] = float((g > threshold).double().mean())
        worst[key] = float(g.max())
    mu_hat = float(estimate_mu(f, omega_star, omega, lams=lams + (1.0,)).min())
    star = rate["minimum"] == 0 and rate["eq4"] == 0
    strong = mu > 0 and all(rate[k] == 0 for k in ("minimum", "eq5", "eq6", "eq7"))
    return StarConvexityReport(
        n_samples=omega.shape[0], lams=lams, mu=mu, tol=float(tol), radius=radius, violation_rate=rate,
        worst_gap=worst, mu_estimate=mu_hat, star_convex=star, strongly_star_convex=strong,
        convex_on_samples=rate["convexity"] == 0, threshold=threshold,
    )
