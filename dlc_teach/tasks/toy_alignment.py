"""A tiny learned Lucas–Kanade: align a 1-D signal to a shifted copy through learned features.

Introduced in chapter 3. A pair is a template ``T`` ``[L]``, an input ``I`` ``[L]`` with
``I(x + ω*) = T(x)`` (plus a little noise), and the shift ω* ``[1]``. A small convolutional
feature map f_θ turns both into ``C`` channels, and the alignment loss of a shift ω is

    h_θ(ω) = mean over channels c and central-window positions x of (f_θ(I)_c(x + ω) − f_θ(T)_c(x))²,

with fractional positions read by linear interpolation (``grid_sample``), so h is differentiable
in ω and θ. Raw signals (``model=None``) give the classical sum-of-squared-differences loss.
Gradient descent on h from ω* ± offset succeeds when it ends within ``tol`` of ω*;
DLC (Eqs. 11-14) trains f_θ so that this happens from farther away.

The 2-D version (image patches shifted in x and y) lives in :mod:`dlc_teach.tasks.toy_alignment2d`
and reuses :func:`shifted_sq_diff`, :func:`make_loss` and :func:`gd_success_rate` from here.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from ..neighborhoods import GaussianNeighborhood
from .base import Experiment, ExperimentConfig

__all__ = [
    "ToyAlignmentConfig", "ToyAlignment1D", "ConvFeatures1d", "random_smooth_signals", "make_pairs_1d",
    "shifted_sq_diff", "make_loss", "landscape_1d", "gd_success_rate", "normalised",
]


# ---------------------------------------------------------------------------------------------
# The loss h(ω): sample shifted features with linear interpolation, compare on a central window
# ---------------------------------------------------------------------------------------------
def shifted_sq_diff(feat_i: Tensor, feat_t: Tensor, omega: Tensor, margin: int) -> Tensor:
    """h(ω) = mean_{c, x ∈ window} (feat_i_c(x + ω) − feat_t_c(x))², batched over any leading dims of ω.

    Works for 1-D signals and 2-D images alike (d = 1 or 2). Positions outside the signal read the nearest
    edge value (``padding_mode="border"``; zeros would turn a constant offset of the features into a wall).

    Args:
        feat_i: features of the inputs, ``[B, C, L]`` (d = 1) or ``[B, C, H, W]`` (d = 2).
        feat_t: features of the templates, same shape as ``feat_i``.
        omega: shifts ``[..., B, d]`` in samples (pixels); for d = 2 the order is (x, y).
        margin: the window is the signal without ``margin`` samples at each border.

    Returns:
        losses ``[..., B]``.
    """
    if feat_i.shape != feat_t.shape or feat_i.dim() not in (3, 4):
        raise ValueError(f"feat_i and feat_t must both be [B, C, L] or [B, C, H, W], got "
                         f"{tuple(feat_i.shape)} and {tuple(feat_t.shape)}")
    d = feat_i.dim() - 2
    B, C, *size = feat_i.shape
    if omega.dim() < 2 or omega.shape[-2:] != (B, d):
        raise ValueError(f"omega must have shape [..., B, d] = [..., {B}, {d}], got {tuple(omega.shape)}")
    if isinstance(margin, bool) or not isinstance(margin, int) or margin < 0 or 2 * margin >= min(size):
        raise ValueError(f"margin must be an integer in [0, {(min(size) - 1) // 2}], got {margin!r}")
    lead = omega.shape[:-2]
    w = omega.to(feat_i.dtype).reshape(-1, B, d).transpose(0, 1)  # [B, N, d]
    N = w.shape[1]
    if d == 1:
        (L,) = size
        x = torch.arange(margin, L - margin, device=feat_i.device, dtype=feat_i.dtype)  # [W]
        px = x + w[..., :1]  # [B, N, W]
        grid = torch.stack([2 * px / (L - 1) - 1, torch.zeros_like(px)], dim=-1)  # [B, N, W, 2]
        sampled = F.grid_sample(feat_i.unsqueeze(2), grid, mode="bilinear", padding_mode="border",
                                align_corners=True)  # [B, C, N, W]
        target = feat_t[:, :, margin:L - margin].unsqueeze(2)  # [B, C, 1, W]
    else:
        H, W_ = size
        ys = torch.arange(margin, H - margin, device=feat_i.device, dtype=feat_i.dtype)  # [Hw]
        xs = torch.arange(margin, W_ - margin, device=feat_i.device, dtype=feat_i.dtype)  # [Ww]
        Hw, Ww = len(ys), len(xs)
        px = xs.view(1, 1, 1, Ww) + w[..., 0].view(B, N, 1, 1)  # [B, N, 1, Ww]
        py = ys.view(1, 1, Hw, 1) + w[..., 1].view(B, N, 1, 1)  # [B, N, Hw, 1]
        px, py = torch.broadcast_tensors(px, py)  # [B, N, Hw, Ww]
        grid = torch.stack([2 * px / (W_ - 1) - 1, 2 * py / (H - 1) - 1], dim=-1)  # [B, N, Hw, Ww, 2]
        sampled = F.grid_sample(feat_i, grid.reshape(B, N * Hw, Ww, 2), mode="bilinear",
                                padding_mode="border", align_corners=True)  # [B, C, N*Hw, Ww]
        sampled = sampled.reshape(B, C, N, Hw * Ww)
        target = feat_t[:, :, margin:H - margin, margin:W_ - margin].reshape(B, C, 1, Hw * Ww)
    values = (sampled - target).pow(2).mean(dim=(1, 3))  # [B, N]
    return values.transpose(0, 1).reshape(*lead, B)


def _features(model: nn.Module | None, x: Tensor) -> Tensor:
    """Raw signals as one channel (``model=None``) or the model's features: ``[B, *S]`` -> ``[B, C, *S]``."""
    return x.unsqueeze(1) if model is None else model(x)


def make_loss(model: nn.Module | None, pairs: Sequence[Tensor], margin: int) -> tuple[Callable, Tensor]:
    """Features computed ONCE for a batch of pairs; returns ``(h, omega_star)``.

    Args:
        model: feature map ``[B, *S]`` -> ``[B, C, *S]``, or None for the raw signals.
        pairs: ``(I, T, omega_star)`` with I, T ``[B, L]`` or ``[B, H, W]`` and omega_star ``[B, d]``.
        margin: border excluded from the comparison window.

    Returns:
        ``h`` mapping ω ``[..., B, d]`` to ``[..., B]`` (see :func:`shifted_sq_diff`), and omega_star.
    """
    if len(pairs) != 3:
        raise ValueError(f"pairs must be (I, T, omega_star), got {len(pairs)} items")
    inp, tpl, omega_star = pairs
    feats = _features(model, torch.cat([inp, tpl], dim=0))  # [2B, C, *S]
    feat_i, feat_t = feats.chunk(2, dim=0)
    return (lambda omega: shifted_sq_diff(feat_i, feat_t, omega, margin)), omega_star


def normalised(h: Callable, grid: Tensor) -> Callable:
    """h divided, per pair, by its mean over a fixed grid of shifts ``grid`` ``[G, d]`` (no ground truth used).

    Gradient descent on the normalised loss is plain GD with a per-pair step size, which makes success
    rates depend on the *shape* of each landscape, not on the scale of the learned features.
    """
    def probe(B: int, like: Tensor) -> Tensor:
        g = grid.to(like)  # [G, d]
        return h(g.unsqueeze(1).expand(len(g), B, g.shape[-1])).mean(0).detach().clamp_min(1e-12)  # [B]

    cache: dict[str, Tensor] = {}

    def h_norm(omega: Tensor) -> Tensor:
        if "scale" not in cache:
            cache["scale"] = probe(omega.shape[-2], omega)
        return h(omega) / cache["scale"]

    return h_norm


# ---------------------------------------------------------------------------------------------
# Evaluation helpers used by the book
# ---------------------------------------------------------------------------------------------
def landscape_1d(model: nn.Module | None, pair: Sequence[Tensor], radius: float, n: int = 201,
                 margin: int = 32) -> tuple[Tensor, Tensor]:
    """h along ω ∈ [ω* − radius, ω* + radius] for ONE pair ``(I [L], T [L], omega_star [1])``.

    Returns ``(omegas [n], values [n])``, computed without gradients.
    """
    inp, tpl, omega_star = pair
    if inp.dim() != 1 or tpl.shape != inp.shape or omega_star.numel() != 1:
        raise ValueError("pair must be (I [L], T [L], omega_star [1]) for one 1-D pair; "
                         f"got shapes {tuple(inp.shape)}, {tuple(tpl.shape)}, {tuple(omega_star.shape)}")
    if not radius > 0:
        raise ValueError(f"radius must be > 0, got {radius!r}")
    with torch.no_grad():
        h, _ = make_loss(model, (inp[None], tpl[None], omega_star.reshape(1, 1)), margin)
        omegas = omega_star.reshape(()).to(inp) + torch.linspace(-radius, radius, n, dtype=inp.dtype, device=inp.device)
        values = h(omegas.view(n, 1, 1))[:, 0]  # [n]
    return omegas, values


def _directions(B: int, d: int, generator: torch.Generator, like: Tensor) -> Tensor:
    """Unit start directions ``[B, d]``: alternating ±1 for d = 1, seeded random angles for d = 2."""
    if d == 1:
        signs = torch.ones(B, 1)
        signs[1::2] = -1
        return signs.to(like)
    z = torch.randn(B, d, generator=generator).to(like)
    return z / z.norm(dim=-1, keepdim=True)


def gd_success_rate(model: nn.Module | None, pairs: Sequence[Tensor], offsets: Sequence[float], lr: float,
                    steps: int, tol: float, margin: int = 32, search_radius: float = 16.0,
                    seed: int = 0) -> dict[float, float]:
    """Fraction of pairs where gradient descent from ω* + offset·u ends within ``tol`` of ω*.

    Every pair starts at distance ``offset`` from its ω* (direction u: alternating ± in 1-D, seeded
    random in 2-D) and runs ``steps`` of GD with step ``lr`` on the scale-normalised loss
    (:func:`normalised`, grid of shifts spanning ±``search_radius``), all pairs at once through
    :func:`dlc_teach.iteration.gradient_descent`.

    Returns:
        ``{offset: success rate in [0, 1]}``.
    """
    from ..iteration import gradient_descent

    if not (lr > 0 and tol > 0 and search_radius > 0) or isinstance(steps, bool) or int(steps) != steps or steps < 1:
        raise ValueError(f"need lr > 0, tol > 0, search_radius > 0 and an integer steps >= 1; "
                         f"got lr={lr!r}, tol={tol!r}, search_radius={search_radius!r}, steps={steps!r}")
    if any(not (o >= 0 and math.isfinite(o)) for o in offsets):
        raise ValueError(f"offsets must be finite and >= 0, got {list(offsets)}")
    was_training = model.training if model is not None else False
    if model is not None:
        model.eval()
    try:
        with torch.no_grad():
            h, omega_star = make_loss(model, pairs, margin)
        B, d = omega_star.shape
        ticks = torch.linspace(-search_radius, search_radius, 9 if d == 1 else 5, dtype=omega_star.dtype)
        grid = ticks.view(-1, 1) if d == 1 else torch.cartesian_prod(ticks, ticks)  # [G, d]
        h_norm = normalised(h, grid)
        u = _directions(B, d, torch.Generator().manual_seed(seed), omega_star)  # [B, d]
        rates = {}
        for off in offsets:
            traj = gradient_descent(h_norm, omega_star + float(off) * u, lr=lr, steps=int(steps))  # [T+1, B, d]
            err = (traj[-1] - omega_star).norm(dim=-1)  # [B]
            rates[float(off)] = float((err < tol).to(torch.float64).mean())
    finally:
        if model is not None:
            model.train(was_training)
    return rates


# ---------------------------------------------------------------------------------------------
# Data and model (1-D)
# ---------------------------------------------------------------------------------------------
def random_smooth_signals(n: int, length: int, width: float, generator: torch.Generator,
                          shift: Tensor | None = None) -> Tensor:
    """Random smooth signals ``[n, length]``: sums of Gaussian bumps (one per ``width`` samples).

    The signals are analytic functions of x, so ``shift`` ``[n]`` evaluates s(x − shift) exactly,
    without interpolation. Each signal is scaled to unit standard deviation (before shifting).
    """
    if shift is not None and shift.shape != (n,):
        raise ValueError(f"shift must have shape [n] = [{n}], got {tuple(shift.shape)}")
    n_bumps = int(math.ceil((length + 80) / width))
    centres = torch.rand(n, n_bumps, generator=generator, dtype=torch.float64) * (length + 80) - 40
    weights = torch.randn(n, n_bumps, generator=generator, dtype=torch.float64)
    x = torch.arange(length, dtype=torch.float64).view(1, length, 1)  # [1, L, 1]

    def evaluate(rows, offset):  # rows [m], offset [m] -> s(x − offset) [m, L]
        z = (x - offset.view(-1, 1, 1) - centres[rows].unsqueeze(1)) / width  # [m, L, bumps]
        return (weights[rows].unsqueeze(1) * torch.exp(-0.5 * z * z)).sum(-1)

    out = torch.empty(n, length)
    for rows in torch.arange(n).split(256):  # chunks keep the [n, L, bumps] intermediate small
        zero = torch.zeros(len(rows), dtype=torch.float64)
        scale = evaluate(rows, zero).std(dim=1, keepdim=True)  # [m, 1]
        out[rows] = (evaluate(rows, zero if shift is None else shift[rows].to(torch.float64)) / scale).float()
    return out


def make_pairs_1d(n: int, length: int, max_shift: float, width: float, noise: float,
                  generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """``n`` pairs: I ``[n, L]`` with I(x + ω*) = T(x) (+ noise on both), T ``[n, L]``, and
    ω* ``[n, 1]`` ~ U[−max_shift, max_shift]."""
    omega_star = (torch.rand(n, generator=generator, dtype=torch.float64) * 2 - 1) * max_shift  # [n]
    state = generator.get_state()
    tpl = random_smooth_signals(n, length, width, generator)
    generator.set_state(state)  # same bumps again, evaluated at x − ω*
    inp = random_smooth_signals(n, length, width, generator, shift=omega_star)
    inp = inp + noise * torch.randn(inp.shape, generator=generator)
    tpl = tpl + noise * torch.randn(tpl.shape, generator=generator)
    return inp, tpl, omega_star.to(torch.float32).view(n, 1)


@functools.lru_cache(maxsize=4)
def _cached_pairs_1d(n_train, n_test, length, max_shift, width, noise, seed):
    g = torch.Generator().manual_seed(1000 + seed)
    return (make_pairs_1d(n_train, length, max_shift, width, noise, g),
            make_pairs_1d(n_test, length, max_shift, width, noise, g))


def conv_stack(conv: type[nn.Module], channels: int, layers: int, kernel: int) -> nn.Sequential:
    """``layers`` same-size convolutions (``nn.Conv1d`` or ``nn.Conv2d``) from 1 to ``channels`` channels, tanh
    between them, replicate padding (shared by the 1-D and 2-D feature maps)."""
    if channels < 1 or layers < 1 or kernel < 1 or kernel % 2 == 0:
        raise ValueError(f"need channels >= 1, layers >= 1 and an odd kernel; got {channels}, {layers}, {kernel}")
    mods: list[nn.Module] = []
    for i in range(layers):
        mods.append(conv(1 if i == 0 else channels, channels, kernel, padding=kernel // 2, padding_mode="replicate"))
        if i < layers - 1:
            mods.append(nn.Tanh())
    return nn.Sequential(*mods)


class ConvFeatures1d(nn.Module):
    """f_θ: ``[B, L]`` -> ``[B, C, L]``; ``layers`` same-size 1-D convolutions with tanh between them."""

    def __init__(self, channels: int = 8, layers: int = 3, kernel: int = 7):
        super().__init__()
        self.net = conv_stack(nn.Conv1d, channels, layers, kernel)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 2:
            raise ValueError(f"expected signals [B, L], got {tuple(x.shape)}")
        return self.net(x.unsqueeze(1))  # [B, C, L]


@dataclass(frozen=True)
class ToyAlignmentConfig(ExperimentConfig):
    """Preset of the toy alignment tasks (1-D and 2-D). Shifts and lengths are in samples (pixels)."""

    size: int = 160  # signal length (1-D) or patch side (2-D)
    max_shift: float = 16.0  # ω* ~ U[−max_shift, max_shift] per coordinate
    margin: int = 32  # border excluded from the comparison window
    width: float = 2.5  # bump width of the random signals (1-D)
    noise: float = 0.05
    n_train: int = 1024
    n_test: int = 256
    channels: int = 8
    layers: int = 3
    kernel: int = 7
    sigma: float = 8.0  # neighbourhood N(ω*) = ω* + σ·z
    gd_lr: float = 2.0  # GD on the normalised loss
    gd_steps: int = 100
    gd_tol: float = 1.0
    eval_offsets: tuple = (4.0, 8.0, 12.0, 16.0)
    eval_train_size: int = 128  # training pairs evaluated after each epoch by dlc_teach.training.train


class ToyAlignment1D(Experiment):
    """The 1-D learned Lucas–Kanade (d = 1). Introduced in chapter 3.

    μ is set on the absolute scale: μ/2 · E[d²] = μ/2 · σ² equals 1, about the value of h for raw,
    unit-variance signals compared at unrelated shifts (2 for independent signals, less in the window).
    Learned features are free to scale themselves to meet the hinges; GD success rates use the
    scale-normalised loss (:func:`normalised`), so they compare landscape shapes.
    """

    name = "toy-alignment"
    main_metric = "test_gd_success_12"
    presets = {
        "tiny": ToyAlignmentConfig(preset="tiny", n_train=256, n_test=32, batch_size=32, epochs=2, lr=1e-2,
                                   channels=4, mu=2 / 64, gd_steps=30, eval_train_size=32),
        "ci": ToyAlignmentConfig(preset="ci", n_train=4800, n_test=256, batch_size=32, epochs=4, lr=3e-3,
                                 mu=2 / 64),
        "full": ToyAlignmentConfig(preset="full", n_train=32768, n_test=2048, batch_size=128, epochs=20, lr=2e-3,
                                   channels=16, layers=4, mu=2 / 64, gd_steps=200, eval_train_size=512),
    }

    def datasets(self) -> tuple[Dataset, Dataset]:
        """Train and test pairs from a fixed seed (1000 + ``seed``); cached in memory across runs."""
        c = self.config
        train, test = _cached_pairs_1d(c.n_train, c.n_test, c.size, c.max_shift, c.width, c.noise, c.seed)
        return TensorDataset(*train), TensorDataset(*test)

    def data_source(self) -> dict:
        """Synthetic signal pairs (sums of Gaussian bumps), generated from the preset's seed."""
        train, test = self.datasets()
        return {"name": "generated", "n_train": len(train), "n_test": len(test),
                "description": f"random smooth 1-D signals and their shifts, generated with seed "
                               f"1000 + {self.config.seed}; no external files"}

    def build_model(self) -> nn.Module:
        c = self.config
        return ConvFeatures1d(c.channels, c.layers, c.kernel)

    def neighborhood(self) -> GaussianNeighborhood:
        """ω ~ N(ω*, σ²I) with σ = ``config.sigma`` (half the shift range by default)."""
        return GaussianNeighborhood(sigma=self.config.sigma)

    def loss_fn(self, model: nn.Module, batch) -> tuple[Callable[[Tensor], Tensor], Tensor]:
        return make_loss(model, batch, self.config.margin)

    def evaluate(self, model: nn.Module | None, loader: DataLoader) -> dict[str, float]:
        """Mean base loss h(ω*) and GD success rates ``gd_success_<offset>`` on all pairs of ``loader``."""
        c = self.config
        batches = list(loader)
        pairs = [torch.cat([b[i] for b in batches]) for i in range(3)]
        device = next(model.parameters()).device if model is not None else pairs[0].device
        pairs = [p.to(device) for p in pairs]
        with torch.no_grad():
            h, omega_star = make_loss(model, pairs, c.margin)
            loss = float(h(omega_star.unsqueeze(0)).mean())
        rates = gd_success_rate(model, pairs, c.eval_offsets, c.gd_lr, c.gd_steps, c.gd_tol, margin=c.margin,
                                search_radius=c.max_shift, seed=c.seed)
        return {"loss": loss, **{f"gd_success_{off:g}": r for off, r in rates.items()}}
