"""The DLC authors' public loss, reimplemented exactly — for measurement, not recommended.

Introduced in chapter 5 (section "The paper against the authors' public code").

What this reproduces: class ``convexStarLoss`` in the file
``ICCV_demo/learning3d/losses/starConvexLoss.py`` of the repository
`yshao/StarConvex_TPAMI_ICCV_demo <https://github.com/yshao/StarConvex_TPAMI_ICCV_demo>`_
(commit 476078e4b4602929fb3326a8300b877e2f651fc6), read line by line and written again here
(no code copied). With one-hot labels ω* ``[B, C]``, logits, K samples and per-datapoint
cross-entropies h_i(·), it computes:

* h(ω) = (1/B) Σ_i h_i(ω_i): the **batch-mean** cross-entropy (``nn.CrossEntropyLoss()``), so every
  hinge below compares batch means, not datapoints;
* per sample k, fresh noise n_k ~ (U[0, 1) − 0.5)/scaler drawn **per element** ``[B, C]``
  (scaler = 10: uniform on [−0.05, 0.05));
* ω_k = softmax(ω* + n_k) and ω̃_k = softmax(ω* + λ·n_k): the interpolation is done in the logit
  chart, not ω̃ = (1 − λ)ω* + λω; ω* itself is not mapped, so even at zero noise the "neighbour"
  softmax(ω*) lies at ‖ω − ω*‖² ≈ 0.655 per datapoint from the one-hot ω* (ten classes);
* d²_k = Σ_i ‖ω_k,i − ω*_i‖²: a **sum over the whole batch**;
* ε_k = max(0, h(ω*) − h(ω̃_k)), γ_k = max(0, h(ω*) − h(ω_k) + μ/2 · d²_k),
  ξ_k = max(0, h(ω̃_k) − (1−λ)h(ω*) − λh(ω_k) + λ(1−λ)μ/2 · d²_k)   (Eqs. 12–14 on batch means);
* loss = h(ω*) + balancer · Σ_k (ε_k + γ_k + ξ_k): the K hinges are **summed**;
* λ = sigmoid(a) with a **trainable** a that is initialised to the value passed as λ (so "λ = 0.5"
  acts as sigmoid(0.5) ≈ 0.622); μ is **frozen**.

Hyper-parameter mapping (see :func:`dlc_batch_equivalent`): with the softmax label map left out
(``softmax_labels=False``: ω = ω* + n, ω̃ = ω* + λn) and the same noise, this loss equals
``DLCLoss(reduction="batch")`` to rounding error only under

    ρ = balancer · K,    μ_DLC = B · μ_authors,    λ_DLC = sigmoid(a).

With the same μ, the authors' Eq. 13 term is B times stronger than the batch variant's (d² is a
batch sum, not a mean). The paper's own objective (Eq. 11, ``DLCLoss()``) has per-datapoint hinges
and is a different objective altogether. The PRNet training demo notebook of the same repository is reported
to train yet another loss (``starConvexLoss_PRNetLoss``); this module neither reproduces nor re-checks it.

Note where the code deviates from the paper (§4.1): the paper draws N(0, 1) noise for Pixel-MNIST;
this code draws uniform noise of width 0.1 — 35 times smaller in standard deviation.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import torch
from torch import Tensor, nn

from .objective import DLCResult
from .tasks.base import Experiment

__all__ = ["ConvexStarLossReference", "dlc_batch_equivalent", "authors_equivalent", "WithConvexStarLoss",
           "SOURCE"]

#: Where the reproduced loss lives (repository, commit, file, class).
SOURCE = {"repository": "yshao/StarConvex_TPAMI_ICCV_demo", "commit": "476078e4b4602929fb3326a8300b877e2f651fc6",
          "file": "ICCV_demo/learning3d/losses/starConvexLoss.py", "class": "convexStarLoss"}


def _finite_real(name: str, value, low: float | None = None, strict: bool = False) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a real number, got {value!r}") from None
    if not math.isfinite(v) or (low is not None and (v <= low if strict else v < low)):
        bound = "" if low is None else f" {'>' if strict else '>='} {low}"
        raise ValueError(f"{name} must be a finite number{bound}, got {value!r}")
    return v


class ConvexStarLossReference(nn.Module):
    """The authors' ``convexStarLoss``, same call convention as :class:`~dlc_teach.objective.DLCLoss`.

    Args:
        lam: the authors' ``Lambda`` argument: the *initial value of the logit* a, λ = sigmoid(a)
            (any finite real; their code passes λ itself here).
        mu: the authors' μ ≥ 0 (frozen), applied to d² summed over the batch.
        n_samples: K ≥ 1 noise draws; their hinges are summed over k.
        balancer: the authors' ρ ≥ 0, multiplying the *sum* over K.
        scaler: noise is (U[0, 1) − 0.5)/scaler per element (their default 10).
        softmax_labels: True (theirs): ω = softmax(ω* + n), ω̃ = softmax(ω* + λn). False: ω = ω* + n,
            ω̃ = ω* + λn (for checking the mapping to ``DLCLoss(reduction="batch")``).
        check_finite: raise at once when h returns a non-finite value (a host sync per call).

    ``forward(h, omega_star, generator=None, noise=None)``: ``h`` maps ω ``[..., B, d]`` to
    per-datapoint losses ``[..., B]`` and is called once on ``[1 + 2K, B, d]``; the batch mean is
    taken here, as ``nn.CrossEntropyLoss()`` does. ``noise`` ``[K, B, d]`` replaces the uniform draw
    (for tests). Returns a :class:`~dlc_teach.objective.DLCResult` whose fields follow the authors'
    definitions: ``h_star`` ``[]``, ``h_omega``/``h_tilde``/``sq_dist`` (batch sum)/``eps_k``/
    ``gamma_k``/``xi_k`` ``[K]``, and ``eps``/``gamma``/``xi`` their means over K (so that they compare
    with ``DLCLoss``'s), while ``loss = base + balancer · K · (eps + gamma + xi)``.
    """

    def __init__(self, lam: float = 0.5, mu: float = 1.0, n_samples: int = 3, balancer: float = 1.0,
                 scaler: float = 10.0, softmax_labels: bool = True, check_finite: bool = False):
        super().__init__()
        if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
            raise ValueError(f"n_samples must be an integer >= 1, got {n_samples!r}")
        self.a = nn.Parameter(torch.tensor(_finite_real("lam (the initial logit a of λ = sigmoid(a))", lam)))
        self.fixed_mu = _finite_real("mu", mu, low=0.0)  # a Python float: frozen, and not rounded to float32
        self.n_samples = n_samples
        self.balancer = _finite_real("balancer", balancer, low=0.0)
        self.scaler = _finite_real("scaler", scaler, low=0.0, strict=True)
        self.softmax_labels = bool(softmax_labels)
        self.check_finite = bool(check_finite)

    @property
    def lam(self) -> Tensor:
        """λ = sigmoid(a), 0-d."""
        return torch.sigmoid(self.a)

    @property
    def mu(self) -> Tensor:
        """μ (frozen), 0-d float64."""
        return torch.tensor(self.fixed_mu, dtype=torch.float64)

    def extra_repr(self) -> str:
        return (f"lam=sigmoid({float(self.a.detach()):.4g})={float(self.lam.detach()):.4g}, mu={self.fixed_mu:.4g}, "
                f"K={self.n_samples}, balancer={self.balancer}, scaler={self.scaler}, "
                f"softmax_labels={self.softmax_labels}")

    def draw_noise(self, omega_star: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """(U[0, 1) − 0.5)/scaler per element, ``[K, B, d]`` (K draws of ``[B, d]``, in order)."""
        u = torch.rand((self.n_samples, *omega_star.shape), generator=generator, device=omega_star.device,
                       dtype=omega_star.dtype)
        return (u - 0.5) / self.scaler

    def forward(self, h: Callable[[Tensor], Tensor], omega_star: Tensor, generator: torch.Generator | None = None,
                noise: Tensor | None = None) -> DLCResult:
        """Evaluate the authors' loss on a batch (see the class docstring for shapes)."""
        if not isinstance(omega_star, Tensor) or not omega_star.is_floating_point() or omega_star.dim() != 2:
            got = tuple(omega_star.shape) if isinstance(omega_star, Tensor) else type(omega_star).__name__
            raise ValueError(f"omega_star must be a floating-point tensor [B, d] (one-hot labels), got {got}")
        K, (B, d) = self.n_samples, omega_star.shape
        if noise is None:
            noise = self.draw_noise(omega_star, generator)
        elif not isinstance(noise, Tensor) or noise.shape != (K, B, d):
            got = tuple(noise.shape) if isinstance(noise, Tensor) else type(noise).__name__
            raise ValueError(f"noise must have shape [K, B, d] = {(K, B, d)}, got {got}")
        noise = noise.to(omega_star)
        lam = torch.sigmoid(self.a.to(omega_star))  # in ω*'s dtype (a float32 sigmoid would round λ)
        mu = omega_star.new_tensor(self.fixed_mu)
        omega, omega_tilde = omega_star + noise, omega_star + lam * noise  # [K, B, d]
        if self.softmax_labels:
            omega, omega_tilde = omega.softmax(-1), omega_tilde.softmax(-1)
        values = h(torch.cat([omega_star.unsqueeze(0), omega, omega_tilde], dim=0))
        if not isinstance(values, Tensor) or values.shape != (1 + 2 * K, B):
            got = tuple(values.shape) if isinstance(values, Tensor) else type(values).__name__
            raise ValueError(f"h must map omega [..., B, d] to per-datapoint losses [..., B]: for input "
                             f"{(1 + 2 * K, B, d)} expected {(1 + 2 * K, B)}, got {got}")
        finite = torch.isfinite(values).all()
        if self.check_finite and not bool(finite):
            raise ValueError("h returned non-finite losses")
        means = values.mean(-1)  # [1 + 2K]: batch-mean cross-entropy, as nn.CrossEntropyLoss()
        h_star, h_omega, h_tilde = means[0], means[1:1 + K], means[1 + K:]  # [], [K], [K]
        sq_dist = (omega - omega_star).pow(2).sum((-2, -1))  # [K]: summed over the whole batch
        eps_k = torch.relu(h_star - h_tilde)
        gamma_k = torch.relu(h_star - h_omega + mu * sq_dist / 2)
        xi_k = torch.relu(mu * lam * (1 - lam) * sq_dist / 2 + h_tilde - (1 - lam) * h_star - lam * h_omega)
        extra = {"finite": finite} if "finite" in {f.name for f in dataclasses.fields(DLCResult)} else {}
        return DLCResult(
            loss=h_star + self.balancer * (eps_k + gamma_k + xi_k).sum(), base=h_star,
            eps=eps_k.mean(), gamma=gamma_k.mean(), xi=xi_k.mean(), h_star=h_star, h_omega=h_omega,
            h_tilde=h_tilde, sq_dist=sq_dist, eps_k=eps_k, gamma_k=gamma_k, xi_k=xi_k, omega=omega,
            omega_tilde=omega_tilde, lam=lam, mu=mu, **extra)


def dlc_batch_equivalent(balancer: float, mu: float, lam_logit: float, n_samples: int,
                         batch_size: int) -> dict[str, float]:
    """``DLCLoss(reduction="batch", **kwargs)`` kwargs equal to the authors' loss without its softmax.

    ρ = balancer · K, μ = B · μ_authors, λ = sigmoid(a) (exact only with the same noise and
    ``softmax_labels=False``; λ is then fixed at its initial value).
    """
    K, B = _positive_int("n_samples", n_samples), _positive_int("batch_size", batch_size)
    return {"rho": _finite_real("balancer", balancer, 0.0) * K, "mu": _finite_real("mu", mu, 0.0) * B,
            "lam": 1.0 / (1.0 + math.exp(-_finite_real("lam_logit", lam_logit))), "n_samples": K}


def authors_equivalent(rho: float, mu: float, lam: float, n_samples: int, batch_size: int) -> dict[str, float]:
    """:class:`ConvexStarLossReference` kwargs mapped from DLC's ρ, μ, λ ∈ (0, 1) at batch size B.

    balancer = ρ / K, μ_authors = μ / B, and the logit a = log(λ / (1 − λ)) so that the *effective* λ
    starts at the requested value (passing λ itself, as the authors' code expects, gives sigmoid(λ)).
    """
    K, B = _positive_int("n_samples", n_samples), _positive_int("batch_size", batch_size)
    lam = _finite_real("lam", lam)
    if not 0 < lam < 1:
        raise ValueError(f"lam must lie in (0, 1) to be written as sigmoid(a), got {lam!r}")
    return {"balancer": _finite_real("rho", rho, 0.0) / K, "mu": _finite_real("mu", mu, 0.0) / B,
            "lam": math.log(lam / (1 - lam)), "n_samples": K}


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return value


class WithConvexStarLoss(Experiment):
    """An experiment trained with :class:`ConvexStarLossReference` instead of ``DLCLoss``.

    Delegates data, model, ``loss_fn``, evaluation and optimiser to ``inner``; only ``dlc_loss()``
    changes. ``loss_kwargs`` default to :func:`authors_equivalent` of the inner config's ρ, μ, λ, K
    and batch size (the mapped hyper-parameters). Use with :func:`dlc_teach.training.train` (``dlc=True``).
    """

    def __init__(self, inner: Experiment, **loss_kwargs: Any):
        if not isinstance(inner, Experiment):
            raise TypeError(f"inner must be a dlc_teach Experiment, got {type(inner).__name__}")
        super().__init__(inner.config, inner.data_dir)
        self.inner = inner
        self.name = f"{inner.name}+convexStarLoss"  # a checkpoint of DLCLoss runs does not resume this
        self.main_metric = inner.main_metric
        c = inner.config
        self.loss_kwargs = loss_kwargs or authors_equivalent(c.rho, c.mu, c.lam, c.n_samples, c.batch_size)
        ConvexStarLossReference(**self.loss_kwargs)  # fail now on bad kwargs, not at the first step

    def dlc_loss(self) -> ConvexStarLossReference:
        return ConvexStarLossReference(**self.loss_kwargs)

    def datasets(self):
        return self.inner.datasets()

    def build_model(self):
        return self.inner.build_model()

    def neighborhood(self):
        return self.inner.neighborhood()

    def loss_fn(self, model, batch):
        return self.inner.loss_fn(model, batch)

    def evaluate(self, model, loader):
        return self.inner.evaluate(model, loader)

    def base_loss(self, model, batch):
        return self.inner.base_loss(model, batch)

    def param_groups(self, model, objective=None):
        return self.inner.param_groups(model, objective)

    def make_optimizer(self, params):
        return self.inner.make_optimizer(params)

    def make_scheduler(self, optimizer):
        return self.inner.make_scheduler(optimizer)
