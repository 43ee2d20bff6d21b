"""Deep Closest Point (DCP-v2, Wang and Solomon 2019) as its public code builds it, batched.

Introduced in chapter 6. Structure (sizes shrink in the ``tiny``/``ci`` presets, never the structure):

* :class:`DGCNN` — the kNN graph (k = 20) is built **once** on xyz; edge features
  [x_j − x_i, x_i] go through 1×1 conv layers (64, 64, 128, 256), each max-pooled over the k
  neighbours; the four pooled maps are concatenated and projected to ``emb`` (512) per point.
* :class:`Pointer` — one transformer encoder and one decoder layer (4 heads, feed-forward 1024,
  pre-norm, no dropout) across the two clouds; its output is *added* to the embeddings (residual).
* SVD head — soft matches m_i = softmax(Φx_i·Φyᵀ/√emb)·Y, then (R, t) = :func:`~.icp.kabsch`
  (src, m), reflection fixed.

:class:`DCP` ``(src [B, N, 3], tgt [B, M, 3]) -> (R [B, 3, 3], t [B, 3], matches [B, N, 3])``.
The loss of DCP's code, MSE(R̂ᵀR, I) + MSE(t̂, t), is :func:`~.experiment.dcp_loss_h`.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .rigid import check_cloud, kabsch

__all__ = ["knn", "DGCNN", "Pointer", "DCP"]


def knn(x: Tensor, k: int) -> Tensor:
    """Indices ``[B, N, k]`` of the k nearest points of each point of ``x`` ``[B, N, 3]`` (itself included)."""
    if k > x.shape[1]:
        raise ValueError(f"k = {k} neighbours needs at least k points per cloud, got {x.shape[1]}")
    return torch.cdist(x, x).topk(k, dim=-1, largest=False).indices


class DGCNN(nn.Module):
    """DGCNN embedding as in DCP: one graph on xyz, stacked 1×1 edge convs, concat, project. ``[B, N, 3] -> [B, N, emb]``."""

    def __init__(self, emb: int = 512, widths: tuple = (64, 64, 128, 256), k: int = 20):
        super().__init__()
        self.k = k
        chans = (6,) + tuple(widths)
        self.convs = nn.ModuleList(nn.Sequential(nn.Conv2d(a, b, 1, bias=False), nn.BatchNorm2d(b), nn.ReLU())
                                   for a, b in zip(chans[:-1], chans[1:]))
        self.project = nn.Sequential(nn.Conv1d(sum(widths), emb, 1, bias=False), nn.BatchNorm1d(emb), nn.ReLU())

    def forward(self, x: Tensor) -> Tensor:
        B, N, _ = x.shape
        idx = knn(x, self.k)  # [B, N, k]
        nb = torch.gather(x.unsqueeze(1).expand(B, N, N, 3), 2, idx.unsqueeze(-1).expand(B, N, self.k, 3))
        centre = x.unsqueeze(2).expand_as(nb)
        h = torch.cat([nb - centre, centre], dim=-1).permute(0, 3, 1, 2)  # [B, 6, N, k]
        pooled = []
        for conv in self.convs:
            h = conv(h)
            pooled.append(h.amax(dim=-1))  # [B, C, N]
        return self.project(torch.cat(pooled, dim=1)).transpose(1, 2)  # [B, N, emb]


class Pointer(nn.Module):
    """DCP's attention module: encoder on one cloud, decoder on the other, both directions, residual."""

    def __init__(self, emb: int = 512, heads: int = 4, ff: int = 1024):
        super().__init__()
        self.encoder = nn.TransformerEncoderLayer(emb, heads, ff, dropout=0.0, batch_first=True, norm_first=True)
        self.decoder = nn.TransformerDecoderLayer(emb, heads, ff, dropout=0.0, batch_first=True, norm_first=True)
        self.enc_norm, self.dec_norm = nn.LayerNorm(emb), nn.LayerNorm(emb)

    def _attend(self, memory_src: Tensor, target: Tensor) -> Tensor:
        return self.dec_norm(self.decoder(target, self.enc_norm(self.encoder(memory_src))))

    def forward(self, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
        """Embeddings ``[B, N, emb]``, ``[B, M, emb]`` -> the same plus their attended updates."""
        return a + self._attend(b, a), b + self._attend(a, b)


class DCP(nn.Module):
    """DGCNN + Pointer + SVD head. ``forward(src, tgt) -> (R, t, matches)`` with ``tgt ≈ R src + t``."""

    def __init__(self, emb: int = 512, widths: tuple = (64, 64, 128, 256), k: int = 20, heads: int = 4,
                 ff: int = 1024):
        super().__init__()
        self.emb = emb
        self.embed = DGCNN(emb, widths, k)
        self.pointer = Pointer(emb, heads, ff)

    def forward(self, src: Tensor, tgt: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        check_cloud("src", src)
        check_cloud("tgt", tgt, batch=src.shape[0])
        phi_x, phi_y = self.pointer(self.embed(src), self.embed(tgt))  # [B, N, emb], [B, M, emb]
        scores = torch.softmax(phi_x @ phi_y.transpose(1, 2) / math.sqrt(self.emb), dim=-1)  # [B, N, M]
        matches = scores @ tgt  # [B, N, 3]
        R, t = kabsch(src, matches)
        return R, t, matches
