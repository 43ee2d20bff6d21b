"""Analytic test functions for chapters 1-2: convex, star-convex, and neither.

Introduced in chapters 1 and 2. Every toy is a :class:`Toy`: a torch callable
mapping points ``[..., d]`` to values ``[...]`` (vectorised; the leading dims
are a batch, the same convention as DLC's ``h`` with B as a batch dim), plus
the minimiser ω* it is analysed about. Constants follow the input's dtype and
device, so a toy works in float32/float64 on any device.

==========================  ====  ====================  ==============  ====
toy                         d     star-convex           convex          ω*
==========================  ====  ====================  ==============  ====
``quadratic(A)``            any   yes                   yes             0
``star_nonconvex(c)``       2     yes (μ = 2(1 − c))    no if c > 1/3   0
``double_well()``           1     no                    no              1
``wavy_1d()``               1     no                    no              0
``chamfer_rotation_loss``   1     no (spurious minima)  no              θ*
==========================  ====  ====================  ==============  ====
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

__all__ = [
    "Toy",
    "quadratic",
    "star_nonconvex",
    "double_well",
    "wavy_1d",
    "chamfer_rotation_loss",
    "near_symmetric_shape",
    "rotate_2d",
]


def _check_points(name: str, omega, dim: int | None) -> None:
    if not isinstance(omega, Tensor):
        raise TypeError(f"{name} expects a torch.Tensor of points [..., d], got {type(omega).__name__}")
    if not omega.is_floating_point():
        raise TypeError(f"{name} expects a floating-point tensor, got dtype {omega.dtype}")
    if omega.dim() < 1:
        raise ValueError(f"{name} expects points of shape [..., d] (at least 1-D), got a 0-d tensor")
    if dim is not None and omega.shape[-1] != dim:
        raise ValueError(f"{name} works on d = {dim} coordinates: expected [..., {dim}], got {tuple(omega.shape)}")


@dataclass(frozen=True)
class Toy:
    """A named analytic function ``[..., d] -> [...]`` with its minimiser.

    Attributes:
        name: short name used in plots and reports.
        fn: the function itself (called after input validation).
        omega_star: the point it is analysed about (a global minimiser), or
            ``None`` when unknown; ``()`` with ``dim=None`` means "0 in any d".
        dim: number of coordinates d, or ``None`` for any d.
    """

    name: str
    fn: Callable[[Tensor], Tensor]
    omega_star: tuple[float, ...] | None
    dim: int | None

    def __call__(self, omega: Tensor) -> Tensor:
        _check_points(self.name, omega, self.dim)
        return self.fn(omega)

    def minimizer(self, d: int | None = None, dtype=None, device=None) -> Tensor:
        """ω* as a tensor ``[d]`` (pass ``d`` for a toy defined in any dimension)."""
        if self.omega_star is None:
            raise ValueError(f"{self.name}: the minimiser is unknown (pass theta_star when building it)")
        if self.dim is None:
            if isinstance(d, bool) or not isinstance(d, int) or d < 1:
                raise ValueError(f"{self.name} is defined in any dimension: pass d (an integer >= 1), got {d!r}")
            return torch.zeros(d, dtype=dtype or torch.get_default_dtype(), device=device)
        if d is not None and d != self.dim:
            raise ValueError(f"{self.name} lives in d = {self.dim}, got d = {d}")
        return torch.tensor(self.omega_star, dtype=dtype or torch.get_default_dtype(), device=device)


def quadratic(A=None) -> Toy:
    """f(ω) = ½ ωᵀAω: convex (hence star-convex) about ω* = 0.

    With ``A = None`` it is ½‖ω‖² in any dimension; ``quadratic(mu * eye(d))``
    is μ-strongly (star-)convex with constant exactly μ (Eq. 5 holds with
    equality). ``A`` must be a symmetric positive semi-definite ``[d, d]``
    matrix (otherwise f is not convex and 0 need not be a minimum).
    Introduced in chapter 1.
    """
    if A is None:
        return Toy("quadratic", lambda w: 0.5 * w.pow(2).sum(-1), (), None)
    A = torch.as_tensor(A)
    if not A.is_floating_point():
        A = A.to(torch.get_default_dtype())
    if A.dim() != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"A must be a square matrix [d, d], got shape {tuple(A.shape)}")
    if not torch.isfinite(A).all():
        raise ValueError("A must be finite")
    if not torch.allclose(A, A.T, rtol=1e-6, atol=1e-8):
        raise ValueError("A must be symmetric (f only sees its symmetric part; pass (A + A.T) / 2)")
    eig_min = float(torch.linalg.eigvalsh(A.double()).min())
    if eig_min < -1e-8 * max(1.0, float(A.abs().max())):
        raise ValueError(f"A must be positive semi-definite for a convex quadratic; smallest eigenvalue {eig_min:.3g}")
    d = A.shape[0]

    def f(w: Tensor) -> Tensor:
        Aw = A.to(w)  # [d, d]
        return 0.5 * torch.einsum("...i,ij,...j->...", w, Aw, w)  # [...]

    return Toy("quadratic", f, (0.0,) * d, d)


def star_nonconvex(c: float = 0.5) -> Toy:
    """A 2-D function that is strongly star-convex about 0 but not convex.

    In polar coordinates f(r, φ) = r² · (1 + c·cos 4φ); in Cartesian ones
    f(x, y) = x² + y² + c·(x⁴ − 6x²y² + y⁴)/(x² + y²), f(0) = 0. Introduced in
    chapter 2.

    *Star-convex about ω* = 0 (Eq. 4)*: f is positively homogeneous of degree
    2, so f(λω) = λ²f(ω) ≤ λf(ω) for λ ∈ [0, 1] since f ≥ 0 (needs c ≤ 1).

    *Strongly, with μ = 2(1 − c) (Eqs. 5, 6)*: Euler's identity gives
    ∇f(ω)ᵀω = 2f(ω), so the right side of Eq. 5 is −f(ω) + μ/2·r² =
    r²(μ/2 − 1 − c·cos 4φ) ≤ 0 for all φ iff μ ≤ 2(1 − c); Eq. 6 reads
    r²(1 + c·cos 4φ) ≥ μ/2·r², the same bound. So ``estimate_mu`` should find
    2(1 − c) (= 1 at the default c = 1/2).

    *Not convex for c > 1/3*: f(1, 1) = f(1, −1) = 2(1 − c) but their midpoint
    gives f(1, 0) = 1 + c > 2(1 − c). Its sublevel sets are star-shaped
    four-leaved "flowers" pinched along the diagonals, not convex sets.

    f is differentiable everywhere (∇f(0) = 0, as ``|f| ≤ (1 + c) r²``); the
    rational term is evaluated with a guarded denominator so autograd gives
    0, not NaN, at the origin.
    """
    c = float(c)
    if not 0.0 <= c < 1.0:
        raise ValueError(f"c must lie in [0, 1) (c >= 1 makes f <= 0 on the diagonals, so 0 is no strict minimum), "
                         f"got {c!r}")

    def f(w: Tensor) -> Tensor:
        x, y = w[..., 0], w[..., 1]  # [...], [...]
        r2 = x * x + y * y
        quartic = x ** 4 - 6 * x * x * y * y + y ** 4  # r⁴ cos 4φ
        safe = torch.where(r2 > 0, r2, torch.ones_like(r2))
        return r2 + c * torch.where(r2 > 0, quartic / safe, torch.zeros_like(r2))

    return Toy(f"star_nonconvex(c={c:g})", f, (0.0, 0.0), 2)


def double_well() -> Toy:
    """f(x) = (x² − 1)² in 1-D, analysed about ω* = 1: NOT star-convex.

    Both ±1 are global minima (f = 0). On the segment from ω* = 1 to ω = −1
    the midpoint ω̃ = 0 has f(0) = 1 > ½f(1) + ½f(−1) = 0, so Eq. 4 fails
    (and Eqs. 6-7 fail for every μ ≥ 0). Gradient descent started at x < 0
    converges to −1, never to ω*. Introduced in chapter 2.
    """
    return Toy("double_well", lambda w: (w[..., 0] ** 2 - 1) ** 2, (1.0,), 1)


def wavy_1d(amplitude: float = 2.0, frequency: float = 3.0) -> Toy:
    """f(x) = x²/2 + a·(1 − cos(k·x)): one global minimum, several local ones.

    Both terms are ≥ 0 and vanish only at x = 0, so ω* = 0 is the unique global
    minimum. Stationary points solve x = −a·k·sin(kx); near x ≈ 2πn/k this has
    local minima as long as 2πn/k ≲ a·k. The default a = 2, k = 3 has seven
    minima in [−6, 6], at x ≈ 0, ±1.98, ±3.95, ±5.84 with values ≈ 0, 2.08,
    8.29, 18.6: gradient descent from ``|x| ≳ 1`` gets stuck, the picture of
    chapter 1's basins of attraction. Introduced in chapter 1.
    """
    amplitude, frequency = float(amplitude), float(frequency)
    if not amplitude > 0 or not frequency > 0 or not math.isfinite(amplitude * frequency):
        raise ValueError(f"amplitude and frequency must be finite and > 0, got {amplitude!r}, {frequency!r}")

    def f(w: Tensor) -> Tensor:
        x = w[..., 0]
        return 0.5 * x * x + amplitude * (1 - torch.cos(frequency * x))

    return Toy(f"wavy_1d(a={amplitude:g}, k={frequency:g})", f, (0.0,), 1)


def rotate_2d(points: Tensor, theta: Tensor) -> Tensor:
    """Rotate 2-D points ``[N, 2]`` by angles θ ``[...]`` (radians) -> ``[..., N, 2]``."""
    cos, sin = torch.cos(theta)[..., None], torch.sin(theta)[..., None]  # [..., 1]
    x, y = points[:, 0], points[:, 1]  # [N]
    return torch.stack([cos * x - sin * y, sin * x + cos * y], dim=-1)  # [..., N, 2]


def _check_cloud(name: str, pts) -> None:
    if not isinstance(pts, Tensor) or not pts.is_floating_point():
        raise TypeError(f"{name} must be a floating-point torch.Tensor [N, 2], got {type(pts).__name__}")
    if pts.dim() != 2 or pts.shape[1] != 2 or pts.shape[0] < 1:
        raise ValueError(f"{name} must have shape [N, 2] with N >= 1, got {tuple(pts.shape)}")
    if not torch.isfinite(pts).all():
        raise ValueError(f"{name} must be finite")


def chamfer_rotation_loss(source: Tensor, target: Tensor, theta_star: float | None = None) -> Toy:
    """2-D rigid alignment without correspondences, as a loss of the angle θ.

    f(θ) = (1/N) Σ_n min_m ‖R(θ)·s_n − t_m‖², the mean squared distance from
    each rotated source point ``source`` ``[N, 2]`` to its nearest
    ``target`` ``[M, 2]`` point. f maps θ ``[..., 1]`` (radians) to ``[...]``;
    all angles are evaluated in one batched ``[..., N, M]`` distance tensor.
    For a shape with a near-symmetry (see :func:`near_symmetric_shape`) the
    rotations by the near-symmetry angles are spurious local minima: the
    landscape ICP-like methods get stuck in (chapter 1, paper Fig. 1).

    ``theta_star``: the rotation that maps source onto target, if known (it
    becomes ``Toy.omega_star``). Introduced in chapter 1.
    """
    _check_cloud("source", source)
    _check_cloud("target", target)

    def f(w: Tensor) -> Tensor:
        moved = rotate_2d(source.to(w), w[..., 0])  # [..., N, 2]
        tgt = target.to(w)  # [M, 2]
        sq = (moved[..., :, None, :] - tgt).pow(2).sum(-1)  # [..., N, M]
        return sq.min(dim=-1).values.mean(dim=-1)  # [...]

    star = None if theta_star is None else (float(theta_star),)
    return Toy("chamfer_rotation_loss", f, star, 1)


def near_symmetric_shape(n_points: int = 72, lobes: int = 3, depth: float = 0.3, bump: float = 0.35,
                         dtype=None, device=None) -> Tensor:
    """Points ``[n_points, 2]`` on a closed curve with an almost-``lobes``-fold symmetry.

    The curve is r(φ) = 1 + depth·cos(lobes·φ) + bump·exp(−φ²/(2·0.25²)) (φ in
    (−π, π]): a ``lobes``-fold symmetric "flower" with one extra bump at φ = 0
    that breaks the symmetry, so rotating by 2π/lobes almost, but not quite,
    aligns it with itself. Deterministic (no randomness). Introduced in chapter 1.
    """
    if isinstance(n_points, bool) or not isinstance(n_points, int) or n_points < 3:
        raise ValueError(f"n_points must be an integer >= 3, got {n_points!r}")
    if isinstance(lobes, bool) or not isinstance(lobes, int) or lobes < 1:
        raise ValueError(f"lobes must be an integer >= 1, got {lobes!r}")
    if not 0 <= depth < 1 or not 0 <= bump:
        raise ValueError(f"need 0 <= depth < 1 (radius stays > 0) and bump >= 0, got depth={depth!r}, bump={bump!r}")
    dtype = dtype or torch.get_default_dtype()
    phi = torch.linspace(-math.pi, math.pi, n_points + 1, dtype=dtype, device=device)[1:]  # [N]
    r = 1 + depth * torch.cos(lobes * phi) + bump * torch.exp(-phi ** 2 / (2 * 0.25 ** 2))
    return torch.stack([r * torch.cos(phi), r * torch.sin(phi)], dim=-1)  # [N, 2]
