"""The DLC objective: hinge terms (Eqs. 12-14) and the full loss (Eq. 11).

Introduced in chapter 3 ("Deep Loss Convexification").

For one datapoint with ground truth ω*, a neighbour ω ~ N(ω*), λ ∈ [0, 1],
ω̃ = (1 − λ)ω* + λω, d² = ‖ω* − ω‖² and h(·) = ℓ(f(x; θ), ·):

* ε = max(0, h(ω*) − h(ω̃))                                        (Eq. 12)
* γ = max(0, h(ω*) − h(ω) + μ/2 · d²)                               (Eq. 13)
* ξ = max(0, h(ω̃) − (1−λ)h(ω*) − λh(ω) + λ(1−λ)μ/2 · d²)            (Eq. 14)

and the loss (Eq. 11) is the mean over datapoints i of
``h(ω*_i) + ρ · mean_k (ε_ik + γ_ik + ξ_ik)``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable

import torch
from torch import Tensor, nn

from .neighborhoods import GaussianNeighborhood, Neighborhood

__all__ = ["hinge_terms", "DLCLoss", "DLCResult", "CONSTRAINTS"]

#: The three constraints of the paper, by equation number.
CONSTRAINTS = (12, 13, 14)

LossFn = Callable[[Tensor], Tensor]


def _check_unit_interval(name: str, value) -> None:
    v = torch.as_tensor(value)
    if not torch.all((v >= 0) & (v <= 1)):
        raise ValueError(f"{name} must lie in [0, 1] (it is the interpolation weight of ω̃), got {value!r}")


def _check_nonnegative(name: str, value) -> None:
    v = torch.as_tensor(value)
    if torch.any(torch.isnan(v)) or not torch.all(v >= 0):
        raise ValueError(f"{name} must be >= 0, got {value!r}")


def hinge_terms(h_star, h_omega, h_tilde, sq_dist, lam, mu) -> tuple[Tensor, Tensor, Tensor]:
    """The three slack variables of Eqs. 12-14, elementwise with broadcasting.

    Args:
        h_star: h(ω*), any shape broadcastable with the others, e.g. ``[B]``.
        h_omega: h(ω) at the neighbours, e.g. ``[K, B]``.
        h_tilde: h(ω̃) at the interpolated points, e.g. ``[K, B]``.
        sq_dist: d² = ‖ω* − ω‖², e.g. ``[K, B]``.
        lam: λ ∈ [0, 1] (float or tensor).
        mu: μ ≥ 0 (float or tensor).

    Returns:
        ``(eps, gamma, xi)``, each of the broadcast shape and ≥ 0:
        ε (Eq. 12), γ (Eq. 13), ξ (Eq. 14).

    Raises:
        ValueError: λ outside [0, 1] or μ < 0.
    """
    _check_unit_interval("lam", lam.detach() if isinstance(lam, Tensor) else lam)
    _check_nonnegative("mu", mu.detach() if isinstance(mu, Tensor) else mu)
    h_star, h_omega, h_tilde, sq_dist = (torch.as_tensor(t) for t in (h_star, h_omega, h_tilde, sq_dist))
    eps = torch.relu(h_star - h_tilde)  # Eq. 12
    gamma = torch.relu(h_star - h_omega + 0.5 * mu * sq_dist)  # Eq. 13
    xi = torch.relu(  # Eq. 14
        h_tilde - (1 - lam) * h_star - lam * h_omega + 0.5 * lam * (1 - lam) * mu * sq_dist
    )
    return eps, gamma, xi


@dataclass
class DLCResult:
    """What :class:`DLCLoss` returns.

    Scalars (0-d tensors): ``loss`` (Eq. 11), ``base`` (mean h(ω*)), ``eps``,
    ``gamma``, ``xi`` (mean slack of each constraint, zero for a disabled one).
    Per-sample tensors for plotting: ``h_star`` ``[B]`` (``[]`` for the batch
    reduction), ``h_omega``/``h_tilde``/``sq_dist``/``eps_k``/``gamma_k``/``xi_k``
    ``[K, B]`` (``[K]`` for the batch reduction), ``omega``/``omega_tilde``
    ``[K, B, d]``, and the λ, μ actually used.
    """

    loss: Tensor
    base: Tensor
    eps: Tensor
    gamma: Tensor
    xi: Tensor
    h_star: Tensor
    h_omega: Tensor
    h_tilde: Tensor
    sq_dist: Tensor
    eps_k: Tensor
    gamma_k: Tensor
    xi_k: Tensor
    omega: Tensor
    omega_tilde: Tensor
    lam: Tensor
    mu: Tensor

    @property
    def hinge(self) -> Tensor:
        """Mean total slack ε + γ + ξ (the bracket of Eq. 11, before ρ)."""
        return self.eps + self.gamma + self.xi

    def as_dict(self) -> dict[str, float]:
        """The scalar fields as Python floats, for logging."""
        keys = ("loss", "base", "eps", "gamma", "xi", "lam", "mu")
        return {k: float(getattr(self, k).detach()) for k in keys}


class DLCLoss(nn.Module):
    """The DLC objective of Eq. 11 with the hinge constraints of Eqs. 12-14.

    Introduced in chapter 3. ``forward(h, omega_star)`` takes a callable ``h``
    mapping ω of shape ``[..., B, d]`` to losses ``[..., B]`` and the ground
    truth ``omega_star`` ``[B, d]``. It draws K neighbours ω ~ N(ω*), forms
    ω̃ = (1 − λ)ω* + λω, evaluates h at ω*, all ω and all ω̃ in **one** batched
    call on a ``[1 + 2K, B, d]`` tensor, and returns a :class:`DLCResult`.

    Args:
        rho: trade-off ρ ≥ 0 between the base loss and the hinges.
        lam: interpolation weight λ ∈ [0, 1] (shared by all constraints, §3.2.2).
        mu: sharpness μ ≥ 0. It is compared with differences of h through
            μ/2 · d², so choose it relative to the scale of h and of d².
        n_samples: K ≥ 1 neighbours per datapoint.
        neighborhood: sampler of ω ~ N(ω*) (see :mod:`dlc_teach.neighborhoods`).
        constraints: any subset of ``(12, 13, 14)``, for ablations (Fig. 9).
        learn_lam: reparametrise λ = sigmoid(a) with trainable a (§4.2).
        learn_mu: reparametrise μ = exp(b) with trainable b (§4.2). Under the
            same loss a trainable μ is pushed toward 0 (it only adds to γ, ξ).
        reduction: ``"datapoint"`` (default; the paper's Eq. 11: hinges per
            datapoint, then averaged) or ``"batch"`` (what public code by the
            paper's authors computes: h averaged over the batch before the
            hinges, and one noise draw shared by the whole batch).
    """

    def __init__(
        self,
        rho: float = 1.0,
        lam: float = 0.5,
        mu: float = 1.0,
        n_samples: int = 3,
        neighborhood: Neighborhood | None = None,
        constraints: Iterable[int] = CONSTRAINTS,
        learn_lam: bool = False,
        learn_mu: bool = False,
        reduction: str = "datapoint",
    ):
        super().__init__()
        _check_nonnegative("rho", rho)
        _check_unit_interval("lam", lam)
        _check_nonnegative("mu", mu)
        if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
            raise ValueError(f"n_samples must be an integer >= 1, got {n_samples!r}")
        try:
            chosen = set(constraints)
        except TypeError:
            raise ValueError(f"constraints must be an iterable subset of {CONSTRAINTS}, e.g. (13, 14); "
                             f"got {constraints!r}") from None
        unknown = [c for c in chosen if c not in CONSTRAINTS]
        constraints = tuple(c for c in CONSTRAINTS if c in chosen)
        if unknown:
            raise ValueError(f"constraints must be a subset of {CONSTRAINTS} (equation numbers), got {unknown}")
        if reduction not in ("datapoint", "batch"):
            raise ValueError(f"reduction must be 'datapoint' (the paper's Eq. 11) or 'batch', got {reduction!r}")
        self.rho = float(rho)
        self.n_samples = n_samples
        self.neighborhood = neighborhood if neighborhood is not None else GaussianNeighborhood(sigma=1.0)
        self.constraints = constraints
        self.reduction = reduction
        if learn_lam:
            if not 0 < lam < 1:
                raise ValueError(f"learn_lam=True uses λ = sigmoid(a) and needs 0 < lam < 1 to start, got {lam!r}")
            self.lam_logit = nn.Parameter(torch.tensor(math.log(lam / (1 - lam))))
        else:
            self.fixed_lam = float(lam)  # a Python float: a float32 buffer would round λ for float64 inputs
        if learn_mu:
            if not mu > 0:
                raise ValueError(f"learn_mu=True uses μ = exp(b) and needs mu > 0 to start, got {mu!r}")
            self.mu_log = nn.Parameter(torch.tensor(math.log(mu)))
        else:
            self.fixed_mu = float(mu)

    @property
    def lam(self) -> Tensor:
        """λ as a 0-d tensor (sigmoid(a) when trainable; float64 when fixed)."""
        if hasattr(self, "lam_logit"):
            return torch.sigmoid(self.lam_logit)
        return torch.tensor(self.fixed_lam, dtype=torch.float64)

    @property
    def mu(self) -> Tensor:
        """μ as a 0-d tensor (exp(b) when trainable; float64 when fixed)."""
        return torch.exp(self.mu_log) if hasattr(self, "mu_log") else torch.tensor(self.fixed_mu, dtype=torch.float64)

    def extra_repr(self) -> str:
        return (
            f"rho={self.rho}, lam={float(self.lam):.3g}, mu={float(self.mu):.3g}, K={self.n_samples}, "
            f"constraints={self.constraints}, reduction={self.reduction!r}, neighborhood={self.neighborhood!r}"
        )

    def forward(self, h: LossFn, omega_star: Tensor, generator: torch.Generator | None = None) -> DLCResult:
        """Evaluate Eq. 11 on a batch.

        Args:
            h: maps ω ``[..., B, d]`` to losses ``[..., B]``.
            omega_star: ground truth ω* ``[B, d]``.
            generator: optional ``torch.Generator`` for the neighbour draw.
        """
        if not isinstance(omega_star, Tensor):
            raise TypeError(f"omega_star must be a tensor of shape [B, d], got {type(omega_star).__name__}")
        if omega_star.dim() != 2:
            raise ValueError(f"omega_star must have shape [B, d], got {tuple(omega_star.shape)}")
        K, (B, d) = self.n_samples, omega_star.shape
        # fixed values are made directly in ω*'s dtype/device (no float32 round-off, no float64 on MPS)
        lam = self.lam.to(omega_star) if hasattr(self, "lam_logit") else omega_star.new_tensor(self.fixed_lam)
        mu = self.mu.to(omega_star) if hasattr(self, "mu_log") else omega_star.new_tensor(self.fixed_mu)
        shared = self.reduction == "batch"
        omega = self.neighborhood.sample(omega_star, K, generator=generator, shared=shared)  # [K, B, d]
        if omega.shape != (K, B, d):
            raise ValueError(f"neighborhood returned shape {tuple(omega.shape)}, expected {(K, B, d)}")
        omega_tilde = (1 - lam) * omega_star + lam * omega  # [K, B, d]
        points = torch.cat([omega_star.unsqueeze(0), omega, omega_tilde], dim=0)  # [1+2K, B, d]
        values = h(points)
        if not isinstance(values, Tensor) or values.shape != (1 + 2 * K, B):
            got = tuple(values.shape) if isinstance(values, Tensor) else type(values).__name__
            raise ValueError(f"h must map omega [..., B, d] to losses [..., B]: for input {(1 + 2 * K, B, d)} "
                             f"expected {(1 + 2 * K, B)}, got {got}")
        if not torch.isfinite(values).all():
            bad = ["h(omega*)", "h(omega)", "h(omega_tilde)"]
            parts = [values[:1], values[1:1 + K], values[1 + K:]]
            names = [n for n, p in zip(bad, parts) if not torch.isfinite(p).all()]
            raise ValueError(f"h returned non-finite losses at {', '.join(names)}")
        h_star, h_omega, h_tilde = values[0], values[1:1 + K], values[1 + K:]  # [B], [K, B], [K, B]
        sq_dist = (omega_star - omega).pow(2).sum(-1)  # [K, B]
        if shared:  # batch-mean variant: hinge of batch means
            h_star, h_omega, h_tilde, sq_dist = h_star.mean(), h_omega.mean(-1), h_tilde.mean(-1), sq_dist.mean(-1)
        eps_k, gamma_k, xi_k = hinge_terms(h_star, h_omega, h_tilde, sq_dist, lam, mu)
        zero = torch.zeros_like(eps_k)
        eps_k = eps_k if 12 in self.constraints else zero
        gamma_k = gamma_k if 13 in self.constraints else zero
        xi_k = xi_k if 14 in self.constraints else zero
        per_point = h_star + self.rho * (eps_k + gamma_k + xi_k).mean(0)  # [B] (or [] for "batch")
        return DLCResult(
            loss=per_point.mean(), base=h_star.mean(), eps=eps_k.mean(), gamma=gamma_k.mean(), xi=xi_k.mean(),
            h_star=h_star, h_omega=h_omega, h_tilde=h_tilde, sq_dist=sq_dist,
            eps_k=eps_k, gamma_k=gamma_k, xi_k=xi_k, omega=omega, omega_tilde=omega_tilde, lam=lam, mu=mu,
        )
