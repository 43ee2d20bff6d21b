"""The 2-D toy alignment task: an image patch translated in x and y (d = 2), learned 2-D features.

Introduced in chapter 3. Pairs are random crops of natural images bundled with scikit-image
(grayscale): the template ``T`` ``[P, P]`` is a crop, the input ``I`` is the crop read at
x − ω* (bilinear), so that I(x + ω*) = T(x); ω* = (ω_x, ω_y) ~ U[−max_shift, max_shift]².
Training crops come from ``train_images``, test crops from other images (``test_images``), so
the success rates measure transfer to unseen image content. The loss, the batched GD success
rate and the scale normalisation are those of the 1-D task (:mod:`dlc_teach.tasks.toy_alignment`).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset, TensorDataset

from .toy_alignment import ToyAlignment1D, ToyAlignmentConfig, conv_stack, make_loss

__all__ = ["ToyAlignment2DConfig", "ToyAlignment2D", "ConvFeatures2d", "load_gray_image", "make_pairs_2d",
           "landscape_2d"]


def load_gray_image(name: str, downscale: int = 2) -> Tensor:
    """A scikit-image sample image (e.g. ``"camera"``, ``"astronaut"``, ``"coffee"``) as grayscale ``[H, W]`` in [0, 1].

    ``downscale`` averages ``downscale × downscale`` blocks (area downsampling).
    """
    import skimage.color
    import skimage.data
    import skimage.util

    if not hasattr(skimage.data, name) or name.startswith("_"):
        raise ValueError(f"unknown scikit-image sample image {name!r} (e.g. 'camera', 'astronaut', 'coffee')")
    if isinstance(downscale, bool) or not isinstance(downscale, int) or downscale < 1:
        raise ValueError(f"downscale must be an integer >= 1, got {downscale!r}")
    img = getattr(skimage.data, name)()
    img = skimage.color.rgb2gray(img[..., :3]) if img.ndim == 3 else skimage.util.img_as_float(img)
    x = torch.as_tensor(img, dtype=torch.float32)[None, None]  # [1, 1, H, W]
    return F.avg_pool2d(x, downscale)[0, 0] if downscale > 1 else x[0, 0]


def make_pairs_2d(images: list[Tensor], n: int, size: int, max_shift: float, noise: float,
                  generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """``n`` pairs: I, T ``[n, size, size]`` (standardised by T's mean and std), ω* ``[n, 2]`` as (x, y)."""
    omega_star = (torch.rand(n, 2, generator=generator, dtype=torch.float64) * 2 - 1) * max_shift  # [n, 2]
    which = torch.randint(len(images), (n,), generator=generator)
    inp, tpl = torch.empty(n, size, size), torch.empty(n, size, size)
    pad = max_shift + 1
    grid1 = torch.arange(size, dtype=torch.float64)
    for k, img in enumerate(images):
        idx = (which == k).nonzero().flatten()
        if len(idx) == 0:
            continue
        H, W = img.shape
        if min(H, W) < size + 2 * pad:
            raise ValueError(f"image {k} of shape {(H, W)} is too small for patches of {size} ± {max_shift}")
        corner = torch.rand(len(idx), 2, generator=generator, dtype=torch.float64)
        corner = pad + corner * torch.tensor([W - size - 2 * pad, H - size - 2 * pad], dtype=torch.float64)
        for target, shift in ((tpl, torch.zeros_like(omega_star[idx])), (inp, omega_star[idx])):
            px = corner[:, 0, None, None] + grid1.view(1, 1, size) - shift[:, 0, None, None]  # [m, 1, P]
            py = corner[:, 1, None, None] + grid1.view(1, size, 1) - shift[:, 1, None, None]  # [m, P, 1]
            px, py = torch.broadcast_tensors(px, py)  # [m, P, P]
            grid = torch.stack([2 * px / (W - 1) - 1, 2 * py / (H - 1) - 1], dim=-1).float()
            src = img.expand(len(idx), 1, H, W)
            target[idx] = F.grid_sample(src, grid, mode="bilinear", align_corners=True)[:, 0]
    mean = tpl.mean(dim=(1, 2), keepdim=True)
    std = tpl.std(dim=(1, 2), keepdim=True).clamp_min(1e-3)
    tpl = (tpl - mean) / std + noise * torch.randn(tpl.shape, generator=generator)
    inp = (inp - mean) / std + noise * torch.randn(inp.shape, generator=generator)
    return inp, tpl, omega_star.float()


@functools.lru_cache(maxsize=4)
def _cached_pairs_2d(train_images, test_images, downscale, n_train, n_test, size, max_shift, noise, seed):
    g = torch.Generator().manual_seed(2000 + seed)
    train_imgs = [load_gray_image(n, downscale) for n in train_images]
    test_imgs = [load_gray_image(n, downscale) for n in test_images]
    return (make_pairs_2d(train_imgs, n_train, size, max_shift, noise, g),
            make_pairs_2d(test_imgs, n_test, size, max_shift, noise, g))


class ConvFeatures2d(nn.Module):
    """f_θ: ``[B, H, W]`` -> ``[B, C, H, W]``; ``layers`` same-size 2-D convolutions with tanh between them."""

    def __init__(self, channels: int = 8, layers: int = 3, kernel: int = 5):
        super().__init__()
        self.net = conv_stack(nn.Conv2d, channels, layers, kernel)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 3:
            raise ValueError(f"expected images [B, H, W], got {tuple(x.shape)}")
        return self.net(x.unsqueeze(1))  # [B, C, H, W]


def landscape_2d(model: nn.Module | None, pair, radius: float, n: int = 41, margin: int = 16,
                 chunk: int = 256) -> tuple[Tensor, Tensor, Tensor]:
    """h on an ``n × n`` grid of shifts ω* + [−radius, radius]² for ONE pair ``(I [P, P], T [P, P], ω* [2])``.

    Returns ``(wx [n], wy [n], values [n, n])`` with ``values[i, j] = h(wx[j], wy[i])`` (rows = y), no gradients.
    """
    inp, tpl, omega_star = pair
    if inp.dim() != 2 or tpl.shape != inp.shape or omega_star.shape != (2,):
        raise ValueError("pair must be (I [P, P], T [P, P], omega_star [2]) for one 2-D pair; got shapes "
                         f"{tuple(inp.shape)}, {tuple(tpl.shape)}, {tuple(omega_star.shape)}")
    if not radius > 0:
        raise ValueError(f"radius must be > 0, got {radius!r}")
    with torch.no_grad():
        h, _ = make_loss(model, (inp[None], tpl[None], omega_star[None]), margin)
        offs = torch.linspace(-radius, radius, n, dtype=inp.dtype, device=inp.device)
        wx, wy = omega_star[0] + offs, omega_star[1] + offs
        gy, gx = torch.meshgrid(wy, wx, indexing="ij")  # [n, n]
        pts = torch.stack([gx.flatten(), gy.flatten()], dim=-1)  # [n*n, 2]
        vals = torch.cat([h(p.unsqueeze(1))[:, 0] for p in pts.split(chunk)])  # [n*n]
    return wx, wy, vals.view(n, n)


_COMMON_2D = dict(size=48, max_shift=6.0, margin=12, sigma=3.0, mu=1 / 9, kernel=3, noise=0.05,
                  gd_lr=2.0, gd_steps=100, eval_offsets=(2.0, 4.0, 6.0))


@dataclass(frozen=True)
class ToyAlignment2DConfig(ToyAlignmentConfig):
    """Preset of the 2-D task: ``size`` is the patch side; images are scikit-image sample names."""

    train_images: tuple = ("camera", "astronaut")
    test_images: tuple = ("coffee",)
    downscale: int = 2


class ToyAlignment2D(ToyAlignment1D):
    """The 2-D learned Lucas–Kanade (d = 2, ω = (ω_x, ω_y) in pixels). Introduced in chapter 3.

    μ follows the 1-D task's rule: μ/2 · E[d²] = μ/2 · 2σ² = 1. Neighbourhood, loss and evaluation
    are inherited from :class:`~dlc_teach.tasks.toy_alignment.ToyAlignment1D`.
    """

    name = "toy-alignment-2d"
    main_metric = "test_gd_success_6"
    presets = {
        "tiny": ToyAlignment2DConfig(preset="tiny", n_train=32, n_test=16, batch_size=16, epochs=2, lr=3e-3,
                                     channels=4, eval_train_size=16, **{**_COMMON_2D, "gd_steps": 30}),
        "ci": ToyAlignment2DConfig(preset="ci", n_train=1600, n_test=128, batch_size=32, epochs=2, lr=3e-3,
                                   eval_train_size=64, **_COMMON_2D),
        "full": ToyAlignment2DConfig(preset="full", n_train=16384, n_test=1024, batch_size=64, epochs=10, lr=2e-3,
                                     channels=16, layers=4, eval_train_size=512, **{**_COMMON_2D, "gd_steps": 200}),
    }

    def datasets(self) -> tuple[Dataset, Dataset]:
        """Train crops of ``train_images``, test crops of ``test_images`` (seed 2000 + ``seed``; cached in memory)."""
        c = self.config
        train, test = _cached_pairs_2d(c.train_images, c.test_images, c.downscale, c.n_train, c.n_test, c.size,
                                       c.max_shift, c.noise, c.seed)
        return TensorDataset(*train), TensorDataset(*test)

    def data_source(self) -> dict:
        """Crops of scikit-image's bundled sample images (named in the preset), shifted synthetically."""
        import skimage

        c = self.config
        train, test = self.datasets()
        return {"name": "skimage.data", "n_train": len(train), "n_test": len(test),
                "images": {"train": list(c.train_images), "test": list(c.test_images)},
                "description": f"crops of scikit-image {skimage.__version__} sample images (train "
                               f"{', '.join(c.train_images)}; test {', '.join(c.test_images)}), downscaled "
                               f"{c.downscale}x, shifted synthetically (seed 2000 + {c.seed})"}

    def build_model(self) -> nn.Module:
        c = self.config
        return ConvFeatures2d(c.channels, c.layers, c.kernel)
