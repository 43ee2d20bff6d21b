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

__all__ = ["hinge_terms", "hinge_coefficients", "DLCLoss", "DLCResult", "CONSTRAINTS"]

#: The three constraints of the paper, by equation number.
CONSTRAINTS = (12, 13, 14)

LossFn = Callable[[Tensor], Tensor]


def _check_unit_interval(name: str, value) -> None:
    """Every entry of ``value`` (number, array or CPU tensor) in [0, 1]. For analysis code, not the hot path."""
    v = torch.as_tensor(value)
    if not torch.all((v >= 0) & (v <= 1)):
        raise ValueError(f"{name} must lie in [0, 1] (it is the interpolation weight of ω̃), got {value!r}")


def _check_nonnegative(name: str, value) -> None:
    """Every entry of ``value`` (number, array or CPU tensor) >= 0 and not NaN. For analysis code."""
    v = torch.as_tensor(value)
    if torch.any(torch.isnan(v)) or not torch.all(v >= 0):
        raise ValueError(f"{name} must be >= 0, got {value!r}")


def _check_finite_number(name: str, value, low: float = 0.0, high: float = math.inf) -> float:
    """A hyper-parameter as a finite Python float in [low, high], or a clear ValueError."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a finite number, got {value!r}") from None
    if not (math.isfinite(v) and low <= v <= high):
        what = "in [0, 1] (it is the interpolation weight of ω̃)" if high == 1 else f">= {low:g}"
        raise ValueError(f"{name} must be a finite number {what}, got {value!r}")
    return v


def _check_tensor_or_number(name: str, value, high: float) -> None:
    """Validate λ or μ given to :func:`hinge_terms`; tensors on an accelerator are not read (no host sync)."""
    if not isinstance(value, Tensor):
        _check_finite_number(name, value, 0.0, high)
        return
    if value.device.type != "cpu":
        return
    v = value.detach()
    if not bool(torch.all(torch.isfinite(v) & (v >= 0) & (v <= high))):
        rng = "[0, 1] (it is the interpolation weight of ω̃)" if high == 1 else ">= 0 and finite"
        raise ValueError(f"{name} must lie in {rng}, got {value!r}")


def hinge_terms(h_star, h_omega, h_tilde, sq_dist, lam, mu) -> tuple[Tensor, Tensor, Tensor]:
    """The three slack variables of Eqs. 12-14, elementwise with broadcasting.

    This is the readable reference form; :class:`DLCLoss` computes the same three terms in one fused
    expression (see :func:`hinge_coefficients`) and is tested against this function.

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
        ValueError: λ outside [0, 1], μ < 0, or either not finite (numbers and CPU tensors; a tensor on a
            GPU is not checked here, since reading it would stall the device).
    """
    _check_tensor_or_number("lam", lam, 1.0)
    _check_tensor_or_number("mu", mu, math.inf)
    h_star, h_omega, h_tilde, sq_dist = (torch.as_tensor(t) for t in (h_star, h_omega, h_tilde, sq_dist))
    eps = torch.relu(h_star - h_tilde)  # Eq. 12
    gamma = torch.relu(h_star - h_omega + 0.5 * mu * sq_dist)  # Eq. 13
    xi = torch.relu(  # Eq. 14
        h_tilde - (1 - lam) * h_star - lam * h_omega + 0.5 * lam * (1 - lam) * mu * sq_dist
    )
    return eps, gamma, xi


#: Eqs. 12-14 as a polynomial in (λ, μ): C = Σ_j c_j(λ, μ) · _BASIS[j] with c = (1, λ, μ/2, λμ/2, λ²μ/2).
#: Columns act on (h(ω*), h(ω), h(ω̃), d²); rows are ε, γ, ξ.
_BASIS = (
    ((1, 0, -1, 0), (1, -1, 0, 0), (-1, 0, 1, 0)),  # 1
    ((0, 0, 0, 0), (0, 0, 0, 0), (1, -1, 0, 0)),  # λ
    ((0, 0, 0, 0), (0, 0, 0, 1), (0, 0, 0, 0)),  # μ/2
    ((0, 0, 0, 0), (0, 0, 0, 0), (0, 0, 0, 1)),  # λ·μ/2
    ((0, 0, 0, 0), (0, 0, 0, 0), (0, 0, 0, -1)),  # λ²·μ/2
)


def _basis(constraints: Iterable[int], like: Tensor) -> Tensor:
    """``_BASIS`` as a ``[5, 3, 4]`` tensor, rows of switched-off constraints zeroed."""
    mask = torch.tensor([float(eq in set(constraints)) for eq in CONSTRAINTS])
    return (torch.tensor(_BASIS, dtype=torch.float64) * mask[None, :, None]).to(like)


def hinge_coefficients(lam, mu, constraints: Iterable[int] = CONSTRAINTS, like: Tensor | None = None) -> Tensor:
    """Eqs. 12-14 as one linear map: the ``[3, 4]`` matrix C with ``(ε, γ, ξ) = relu(C · (h*, h_ω, h̃, d²))``.

    Row by row (a row is zero for a constraint that is switched off, so its slack is exactly 0)::

        ε:  [ 1,        0,   -1,  0           ]   h(ω*) − h(ω̃)                          (Eq. 12)
        γ:  [ 1,       -1,    0,  μ/2         ]   h(ω*) − h(ω) + μ/2·d²                  (Eq. 13)
        ξ:  [ −(1−λ),  −λ,    1,  λ(1−λ)·μ/2  ]   h(ω̃) − (1−λ)h(ω*) − λh(ω) + λ(1−λ)μ/2·d² (Eq. 14)

    ``lam`` and ``mu`` are floats or 0-d tensors (trainable λ, μ keep their gradient); the result has the
    dtype and device of ``like`` (default: of a tensor argument, else float64 on the CPU).
    """
    if like is None:
        like = next((t for t in (lam, mu) if isinstance(t, Tensor)), torch.zeros((), dtype=torch.float64))
    basis = _basis(constraints, like)  # [5, 3, 4]
    if not isinstance(lam, Tensor) and not isinstance(mu, Tensor):
        c = [1.0, lam, mu / 2, lam * mu / 2, lam * lam * mu / 2]
        return sum(ci * b for ci, b in zip(c, basis))
    return _tensor_coefficients(torch.as_tensor(lam).to(like), torch.as_tensor(mu).to(like), basis)


def _tensor_coefficients(lam: Tensor, mu: Tensor, basis: Tensor) -> Tensor:
    """C = Σ_j c_j · basis[j] for 0-d tensors λ, μ (gradients flow to both); basis ``[5, 3, 4]`` -> ``[3, 4]``."""
    m = mu / 2
    c = torch.stack([torch.ones_like(m), lam, m, lam * m, lam * lam * m])  # [5]
    return (c[:, None, None] * basis).sum(0)


@dataclass
class DLCResult:
    """What :class:`DLCLoss` returns.

    Scalars (0-d tensors): ``loss`` (Eq. 11), ``base`` (mean h(ω*)), ``eps``,
    ``gamma``, ``xi`` (mean slack of each constraint, zero for a disabled one).
    Per-sample tensors for plotting: ``h_star`` ``[B]`` (``[]`` for the batch
    reduction), ``h_omega``/``h_tilde``/``sq_dist``/``eps_k``/``gamma_k``/``xi_k``
    ``[K, B]`` (``[K]`` for the batch reduction), ``omega``/``omega_tilde``
    ``[K, B, d]``, and the λ, μ actually used. ``finite`` is a 0-d bool tensor on
    the device: False when h returned a non-finite value anywhere (read it when
    you read your metrics; :func:`dlc_teach.training.train` does, once an epoch).
    All tensors stay on the device: nothing here reads a value back to the host.
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
    finite: Tensor

    @property
    def hinge(self) -> Tensor:
        """Mean total slack ε + γ + ξ (the bracket of Eq. 11, before ρ)."""
        return self.eps + self.gamma + self.xi

    def terms(self) -> Tensor:
        """``[loss, base, eps, gamma, xi, lam, mu]`` detached, as one float32 tensor on the device (for logging)."""
        return torch.stack([self.loss, self.base, self.eps, self.gamma, self.xi, self.lam, self.mu]).detach().float()

    def as_dict(self) -> dict[str, float]:
        """The scalar fields as Python floats, for logging (this reads the device: one sync)."""
        keys = ("loss", "base", "eps", "gamma", "xi", "lam", "mu")
        return dict(zip(keys, self.terms().tolist()))


class DLCLoss(nn.Module):
    """The DLC objective of Eq. 11 with the hinge constraints of Eqs. 12-14.

    Introduced in chapter 3. ``forward(h, omega_star)`` takes a callable ``h``
    mapping ω of shape ``[..., B, d]`` to losses ``[..., B]`` and the ground
    truth ``omega_star`` ``[B, d]``. It draws K neighbours ω ~ N(ω*), forms
    ω̃ = (1 − λ)ω* + λω, evaluates h at ω*, all ω and all ω̃ in **one** batched
    call on a ``[1 + 2K, B, d]`` tensor, and returns a :class:`DLCResult`.

    The forward and backward passes never wait for the device (no host-device
    synchronisation) unless ``check_finite=True``: the three hinges are one fused
    expression (:func:`hinge_coefficients`), fixed λ and μ are cached per device
    and dtype, and a non-finite h is reported through ``DLCResult.finite``.

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
            datapoint, then averaged) or ``"batch"`` (h, h(ω), h(ω̃) and d² are
            averaged over the batch before the hinges, and one noise draw is
            shared by the batch). The batch variant is *not* the authors' public
            code (it differs in label chart, noise, sums and μ's scale):
            :mod:`dlc_teach.reference` holds that loss and the mapping between the two.
        check_finite: raise ``ValueError`` at once when h is not finite. This
            reads a value from the device, so it costs a synchronisation per call
            on a GPU; the default reports it through ``DLCResult.finite``.
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
        check_finite: bool = False,
    ):
        super().__init__()
        rho = _check_finite_number("rho", rho)
        lam = _check_finite_number("lam", lam, 0.0, 1.0)
        mu = _check_finite_number("mu", mu)
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
        self.rho = rho
        self.n_samples = n_samples
        self.neighborhood = neighborhood if neighborhood is not None else GaussianNeighborhood(sigma=1.0)
        self.constraints = constraints
        self.reduction = reduction
        self.check_finite = bool(check_finite)
        if learn_lam:
            if not 0 < lam < 1:
                raise ValueError(f"learn_lam=True uses λ = sigmoid(a) and needs 0 < lam < 1 to start, got {lam!r}")
            self.lam_logit = nn.Parameter(torch.tensor(math.log(lam / (1 - lam))))
        else:
            self.fixed_lam = lam  # a Python float: a float32 buffer would round λ for float64 inputs
        if learn_mu:
            if not mu > 0:
                raise ValueError(f"learn_mu=True uses μ = exp(b) and needs mu > 0 to start, got {mu!r}")
            self.mu_log = nn.Parameter(torch.tensor(math.log(mu)))
        else:
            self.fixed_mu = mu
        self._constants: dict = {}  # (device, dtype) -> (λ, μ, C or None, basis): made once, not per call

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

    def _fixed(self, like: Tensor):
        """λ, μ (0-d, or None when trainable), the hinge matrix C (None unless both are fixed) and the basis."""
        key = (like.device, like.dtype)
        if key not in self._constants:
            lam = like.new_tensor(self.fixed_lam) if not hasattr(self, "lam_logit") else None
            mu = like.new_tensor(self.fixed_mu) if not hasattr(self, "mu_log") else None
            C = (hinge_coefficients(self.fixed_lam, self.fixed_mu, self.constraints, like=like)
                 if lam is not None and mu is not None else None)
            self._constants[key] = (lam, mu, C, _basis(self.constraints, like))
        return self._constants[key]

    def _apply(self, fn, *args, **kwargs):  # .to() / .double() / .cuda(): drop the cached constants
        self._constants = {}
        return super()._apply(fn, *args, **kwargs)

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
        shared = self.reduction == "batch"
        omega = self.neighborhood.sample(omega_star, K, generator=generator, shared=shared)  # [K, B, d]
        if omega.shape != (K, B, d):
            raise ValueError(f"neighborhood returned shape {tuple(omega.shape)}, expected {(K, B, d)}")
        lam, mu, C, basis = self._fixed(omega_star)
        if lam is None:
            lam = torch.sigmoid(self.lam_logit).to(omega_star.dtype)
        if mu is None:
            mu = torch.exp(self.mu_log).to(omega_star.dtype)
        diff = omega - omega_star  # [K, B, d]
        if hasattr(self, "lam_logit"):
            omega_tilde = omega_star + lam * diff  # (1 − λ)ω* + λω   [K, B, d]
        else:  # the same, with λ fused into the addition (one kernel)
            omega_tilde = torch.add(omega_star, diff, alpha=self.fixed_lam)
        points = torch.cat([omega_star.unsqueeze(0), omega, omega_tilde], dim=0)  # [1+2K, B, d]
        values = h(points)
        if not isinstance(values, Tensor) or values.shape != (1 + 2 * K, B):
            got = tuple(values.shape) if isinstance(values, Tensor) else type(values).__name__
            raise ValueError(f"h must map omega [..., B, d] to losses [..., B]: for input {(1 + 2 * K, B, d)} "
                             f"expected {(1 + 2 * K, B)}, got {got}")
        finite = torch.isfinite(values).all()  # stays on the device
        if self.check_finite and not bool(finite):
            _raise_non_finite(values, K)
        sq_dist = (diff * diff).sum(-1)  # d²   [K, B]
        h_star, h_omega, h_tilde = values[0], values[1:1 + K], values[1 + K:]  # [B], [K, B], [K, B]
        if shared:  # batch-mean variant: hinge of batch means
            h_star, h_omega, h_tilde, sq_dist = h_star.mean(), h_omega.mean(-1), h_tilde.mean(-1), sq_dist.mean(-1)
        if C is None:  # trainable λ or μ: C keeps their gradient
            C = _tensor_coefficients(lam, mu, basis)
        X = torch.stack([h_star.expand_as(h_omega), h_omega, h_tilde, sq_dist])  # [4, K, B]
        slack = torch.relu((C.view(3, 4, *([1] * h_omega.dim())) * X).sum(1))  # ε, γ, ξ (Eqs. 12-14)  [3, K, B]
        means = slack.mean(dim=tuple(range(1, slack.dim())))  # [3]
        base = h_star.mean()
        return DLCResult(
            loss=base + self.rho * means.sum(),  # Eq. 11: mean_i [h_i(ω*) + ρ mean_k (ε+γ+ξ)]
            base=base, eps=means[0], gamma=means[1], xi=means[2],
            h_star=h_star, h_omega=h_omega, h_tilde=h_tilde, sq_dist=sq_dist,
            eps_k=slack[0], gamma_k=slack[1], xi_k=slack[2], omega=omega, omega_tilde=omega_tilde,
            lam=lam, mu=mu, finite=finite,
        )


def _raise_non_finite(values: Tensor, K: int):
    """The immediate error of ``check_finite=True``: which of h(ω*), h(ω), h(ω̃) was not finite."""
    parts = {"h(omega*)": values[:1], "h(omega)": values[1:1 + K], "h(omega_tilde)": values[1 + K:]}
    names = [n for n, p in parts.items() if not bool(torch.isfinite(p).all())]
    raise ValueError(f"h returned non-finite losses at {', '.join(names)} (check the network's outputs, the "
                     f"scale of ω and the learning rate)")
