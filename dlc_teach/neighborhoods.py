"""Samplers of neighbours ω ~ N(ω*) around a ground truth (Eq. 11, Alg. 1).

Introduced in chapter 3. Every sampler works in the *chart* in which the paper
interpolates ω̃ = (1 − λ)ω* + λω: plain vectors, probability vectors (§4.1),
Euler angles + translation for SE(3) (§4.2), four corner offsets for a
homography (§4.3). Each has ``sample(omega_star, n, generator=None,
shared=False) -> [n, B, d]``; ``shared=True`` draws one noise vector per
sample and reuses it for the whole batch (the batch-mean variant
``DLCLoss(reduction="batch")``). The authors' public code draws its noise per
element instead, uniform (U[0, 1) − 0.5)/10 in a softmax chart; that loss is
:class:`dlc_teach.reference.ConvexStarLossReference`.
"""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "Neighborhood",
    "GaussianNeighborhood",
    "SimplexNeighborhood",
    "EulerNeighborhood",
    "CornerNeighborhood",
]


def _positive(name: str, value: float) -> float:
    value = float(value)
    if not value > 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return value


class Neighborhood:
    """Base class: subclasses implement :meth:`perturb` on a noise tensor."""

    #: size of the chart (None: any d)
    dim: int | None = None

    def noise_scale(self, d: int, like: Tensor) -> Tensor:
        """Standard deviation per coordinate, shape ``[d]``."""
        raise NotImplementedError

    def perturb(self, omega_star: Tensor, noise: Tensor) -> Tensor:
        """Map ω* ``[B, d]`` and scaled noise ``[n, B, d]`` to neighbours ``[n, B, d]``."""
        return omega_star + noise

    def sample(self, omega_star: Tensor, n: int, generator: torch.Generator | None = None,
               shared: bool = False) -> Tensor:
        """Draw ``n`` neighbours of each row of ``omega_star`` ``[B, d]`` -> ``[n, B, d]``."""
        if not isinstance(omega_star, Tensor) or not omega_star.is_floating_point():
            got = omega_star.dtype if isinstance(omega_star, Tensor) else type(omega_star).__name__
            raise TypeError(f"omega_star must be a floating-point tensor [B, d] (e.g. F.one_hot(y, C).float()), "
                            f"got {got}")
        if omega_star.dim() != 2:
            raise ValueError(f"omega_star must have shape [B, d], got {tuple(omega_star.shape)}")
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be an integer >= 1, got {n!r}")
        B, d = omega_star.shape
        if self.dim is not None and d != self.dim:
            raise ValueError(f"{type(self).__name__} works on d = {self.dim} coordinates, got d = {d}")
        shape = (n, 1, d) if shared else (n, B, d)
        z = torch.randn(shape, generator=generator, device=omega_star.device, dtype=omega_star.dtype)
        noise = z * self._scale(d, omega_star)  # one draw, one scaling kernel
        return self.perturb(omega_star, noise.expand(n, B, d))

    def _scale(self, d: int, like: Tensor) -> float | Tensor:
        """:meth:`noise_scale`, computed once per (d, device, dtype): a float when every coordinate has the same
        σ, else a ``[d]`` tensor already on the device (so sampling never builds or copies a tensor per call)."""
        cache = self.__dict__.setdefault("_scale_cache", {})
        key = (d, like.device, like.dtype)
        if key not in cache:
            values = self.noise_scale(d, torch.empty(0, dtype=like.dtype)).tolist()  # on the CPU: no device read
            cache[key] = values[0] if len(set(values)) == 1 else torch.tensor(values, dtype=like.dtype,
                                                                               device=like.device)
        return cache[key]


class GaussianNeighborhood(Neighborhood):
    """ω = ω* + σ·z, z ~ N(0, I). Any dimension d."""

    def __init__(self, sigma: float = 1.0):
        self.sigma = _positive("sigma", sigma)

    def noise_scale(self, d, like):
        return torch.full((d,), self.sigma, device=like.device, dtype=like.dtype)

    def __repr__(self):
        return f"GaussianNeighborhood(sigma={self.sigma})"


class SimplexNeighborhood(Neighborhood):
    """ω = softmax(ω* + σ·z) for a one-hot ω* (§4.1: N(0, 1) noise per entry, then softmax).

    The neighbours are probability vectors (soft labels); ω* itself stays
    one-hot, so ω̃ is a mixture of the one-hot label and a soft label.
    """

    def __init__(self, sigma: float = 1.0):
        self.sigma = _positive("sigma", sigma)

    def noise_scale(self, d, like):
        return torch.full((d,), self.sigma, device=like.device, dtype=like.dtype)

    def perturb(self, omega_star, noise):
        return torch.softmax(omega_star + noise, dim=-1)

    def __repr__(self):
        return f"SimplexNeighborhood(sigma={self.sigma})"


class EulerNeighborhood(Neighborhood):
    """SE(3) as ω = (α_x, α_y, α_z in degrees, t_x, t_y, t_z); Gaussian noise on each (§4.2).

    Convert with :func:`dlc_teach.geometry.euler_to_matrix` (R = Rx·Ry·Rz).
    """

    dim = 6

    def __init__(self, sigma_deg: float = 1.0, sigma_t: float = 1.0):
        self.sigma_deg = _positive("sigma_deg", sigma_deg)
        self.sigma_t = _positive("sigma_t", sigma_t)

    def noise_scale(self, d, like):
        return torch.tensor([self.sigma_deg] * 3 + [self.sigma_t] * 3, device=like.device, dtype=like.dtype)

    def __repr__(self):
        return f"EulerNeighborhood(sigma_deg={self.sigma_deg}, sigma_t={self.sigma_t})"


class CornerNeighborhood(Neighborhood):
    """A homography as the offsets (in pixels) of the template's four corners, d = 8 (§4.3).

    Order: (dx, dy) of top-left, top-right, bottom-right, bottom-left. Convert
    with :func:`dlc_teach.geometry.corners_to_homography`.
    """

    dim = 8

    def __init__(self, sigma_px: float = 1.0):
        self.sigma_px = _positive("sigma_px", sigma_px)

    def noise_scale(self, d, like):
        return torch.full((d,), self.sigma_px, device=like.device, dtype=like.dtype)

    def __repr__(self):
        return f"CornerNeighborhood(sigma_px={self.sigma_px})"
