"""DeepLK's feature networks: one input network and one template network per pyramid level.

Introduced in chapter 7. Level ℓ = 1, 2, 3 sees the images area-downsampled to scale 2^(ℓ−3)
(¼, ½, full; see :mod:`dlc_teach.tasks.homography.warp`) and maps them to ``out_channels`` feature
maps of the same size, on which inverse-compositional LK runs.

DeepLK's public code (``model_ours/net.py``): per level, six 3 × 3 convolutions of 64 channels with
batch norm and leaky ReLU, then a 1 × 1 convolution to 4 channels; its levels downsample with
stride-2 convolutions (by 8, 4, 2 for its levels one to three). Ours differ, and say so in chapter 7:
area downsampling (2 × 2 means, which keeps the pixel-centre convention exact), stride 1 throughout,
no batch norm (the feature-metric loss is per pair; batch statistics would couple the pairs of a
batch and differ between training and test), replicate padding, and He initialisation (PyTorch's
default gives feature std ≈ 0.004, at which the hinges of Eqs. 12-14 have nothing to act on).
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["level_scale", "feature_net", "DeepLKFeatures"]


def level_scale(level: int, n_levels: int = 3) -> float:
    """Scale of level ``level`` (1 = coarsest): 2^(level − n_levels)."""
    if isinstance(level, bool) or not isinstance(level, int) or not 1 <= level <= n_levels:
        raise ValueError(f"level must be an integer in [1, {n_levels}], got {level!r}")
    return 2.0 ** (level - n_levels)


def feature_net(in_channels: int = 3, width: int = 16, out_channels: int = 4, layers: int = 4) -> nn.Sequential:
    """``layers`` 3 × 3 convolutions (``width`` channels, leaky ReLU) then a 1 × 1 conv to ``out_channels``."""
    if min(in_channels, width, out_channels, layers) < 1:
        raise ValueError(f"need positive sizes, got in={in_channels}, width={width}, out={out_channels}, "
                         f"layers={layers}")
    mods: list[nn.Module] = []
    for i in range(layers):
        conv = nn.Conv2d(in_channels if i == 0 else width, width, 3, padding=1, padding_mode="replicate")
        nn.init.kaiming_normal_(conv.weight, a=0.01, nonlinearity="leaky_relu")
        nn.init.zeros_(conv.bias)
        mods += [conv, nn.LeakyReLU(0.01)]
    out = nn.Conv2d(width, out_channels, 1)
    nn.init.kaiming_normal_(out.weight, nonlinearity="linear")
    nn.init.zeros_(out.bias)
    return nn.Sequential(*mods, out)


class DeepLKFeatures(nn.Module):
    """Separate input and template networks per level.

    ``forward(inp [B, 3, s, s], tpl [B, 3, t, t], levels=None)`` returns, for each requested level
    (default all, coarsest first), ``(template_feat [B, C, t·σ, t·σ], input_feat [B, C, s·σ, s·σ], σ)``.
    """

    def __init__(self, n_levels: int = 3, in_channels: int = 3, width: int = 16, out_channels: int = 4,
                 layers: int = 4):
        super().__init__()
        self.n_levels, self.in_channels = n_levels, in_channels
        self.input_nets = nn.ModuleList(feature_net(in_channels, width, out_channels, layers) for _ in range(n_levels))
        self.template_nets = nn.ModuleList(feature_net(in_channels, width, out_channels, layers)
                                           for _ in range(n_levels))

    def forward(self, inp: Tensor, tpl: Tensor, levels=None) -> list[tuple[Tensor, Tensor, float]]:
        for name, x in (("input", inp), ("template", tpl)):
            if x.dim() != 4 or x.shape[1] != self.in_channels:
                raise ValueError(f"{name} images must be [B, {self.in_channels}, h, w], got {tuple(x.shape)}")
        factor = 2 ** (self.n_levels - 1)
        if inp.shape[-1] % factor or tpl.shape[-1] % factor or inp.shape[-2] % factor or tpl.shape[-2] % factor:
            raise ValueError(f"image sides must be divisible by {factor} for {self.n_levels} levels, got input "
                             f"{tuple(inp.shape[-2:])} and template {tuple(tpl.shape[-2:])}")
        out = []
        for level in (levels or range(1, self.n_levels + 1)):
            s = level_scale(level, self.n_levels)
            k = int(round(1 / s))
            xi, xt = (F.avg_pool2d(inp, k), F.avg_pool2d(tpl, k)) if k > 1 else (inp, tpl)
            out.append((self.template_nets[level - 1](xt), self.input_nets[level - 1](xi), s))
        return out
