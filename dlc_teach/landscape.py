"""Loss-landscape slices around ω*, a grid local-minimum finder, and plots (as the paper's Fig. 4).

Introduced in chapter 1 and used through chapter 4 (and for Fig. 4 in
chapter 6). ``f`` maps points ``[..., d]`` to values ``[...]``; ``omega_star``
is ``[d]`` (values ``[n]``/``[n, n]``) or a batch ``[B, d]`` (values
``[n, B]``/``[n, n, B]``). Every slice evaluates ``f`` once on the whole grid,
under ``torch.no_grad()``.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["slice_1d", "slice_2d", "random_directions", "find_local_minima", "plot_slice_1d", "plot_landscape_2d"]


def _check_centre(omega_star) -> None:
    if not isinstance(omega_star, Tensor) or not omega_star.is_floating_point():
        raise TypeError(f"omega_star must be a floating-point torch.Tensor [d] or [B, d], "
                        f"got {type(omega_star).__name__}")
    if omega_star.dim() not in (1, 2):
        raise ValueError(f"omega_star must have shape [d] or [B, d], got {tuple(omega_star.shape)}")


def _direction(direction, omega_star: Tensor, name: str) -> Tensor:
    """A coordinate index -> unit vector e_i; a vector ``[d]`` (or ``[B, d]``) is used as given."""
    d = omega_star.shape[-1]
    if isinstance(direction, bool):
        raise TypeError(f"{name} must be a coordinate index or a vector, got a bool")
    if isinstance(direction, int):
        if not 0 <= direction < d:
            raise ValueError(f"{name}: coordinate index must be in [0, {d}), got {direction}")
        e = torch.zeros(d, dtype=omega_star.dtype, device=omega_star.device)
        e[direction] = 1
        return e
    v = torch.as_tensor(direction, dtype=omega_star.dtype, device=omega_star.device)
    if v.shape not in ((d,), tuple(omega_star.shape)):
        raise ValueError(f"{name} must be a coordinate index or a vector of shape [{d}] (or {tuple(omega_star.shape)}),"
                         f" got shape {tuple(v.shape)}")
    if not torch.isfinite(v).all() or not (v.abs().sum(-1) > 0).all():
        raise ValueError(f"{name} must be finite and non-zero")
    return v


def _grid(radius, n: int, like: Tensor, minimum: int) -> Tensor:
    if isinstance(n, bool) or not isinstance(n, int) or n < minimum:
        raise ValueError(f"n must be an integer >= {minimum}, got {n!r}")
    if not (float(radius) > 0 and math.isfinite(float(radius))):
        raise ValueError(f"radius must be finite and > 0, got {radius!r}")
    return torch.linspace(-float(radius), float(radius), n, dtype=like.dtype, device=like.device)


def _evaluate(f, points: Tensor) -> Tensor:
    with torch.no_grad():
        values = f(points)
    if not isinstance(values, Tensor) or values.shape != points.shape[:-1]:
        got = tuple(values.shape) if isinstance(values, Tensor) else type(values).__name__
        raise ValueError(f"f must map points [..., d] to values [...]: for input {tuple(points.shape)} "
                         f"expected {tuple(points.shape[:-1])}, got {got}")
    return values


def slice_1d(f, omega_star: Tensor, direction, radius: float, n: int = 201) -> tuple[Tensor, Tensor]:
    """f along the line ω* + t·v, t ∈ [−radius, radius].

    ``direction``: a coordinate index i (v = e_i) or a vector v ``[d]`` used as
    given (so ``v = ω − ω*`` puts ω at t = 1). Returns ``t`` ``[n]`` and
    ``values`` ``[n]`` (``[n, B]`` for a batch of centres).
    """
    _check_centre(omega_star)
    v = _direction(direction, omega_star, "direction")
    t = _grid(radius, n, omega_star, 2)  # [n]
    shape = (n,) + (1,) * omega_star.dim()
    points = omega_star + t.view(shape) * v  # [n, (B,) d]
    return t, _evaluate(f, points)


def slice_2d(f, omega_star: Tensor, dir1, dir2, radius: float, n: int = 61) -> tuple[Tensor, Tensor, Tensor]:
    """f on the plane ω* + x·u + y·v, x, y ∈ [−radius, radius] (Fig. 4's picture).

    ``dir1``/``dir2``: coordinate indices or vectors (see :func:`slice_1d`;
    :func:`random_directions` gives orthonormal ones). Returns ``X``, ``Y``,
    ``Z`` ``[n, n]`` in matplotlib's "xy" layout (``X[i, j]`` = x_j,
    ``Y[i, j]`` = y_i); ``Z`` is ``[n, n, B]`` for a batch of centres.
    """
    _check_centre(omega_star)
    u = _direction(dir1, omega_star, "dir1")
    v = _direction(dir2, omega_star, "dir2")
    t = _grid(radius, n, omega_star, 3)
    Y, X = torch.meshgrid(t, t, indexing="ij")  # [n, n] each; rows follow y
    shape = (n, n) + (1,) * omega_star.dim()
    points = omega_star + X.view(shape) * u + Y.view(shape) * v  # [n, n, (B,) d]
    return X, Y, _evaluate(f, points)


def random_directions(d: int, k: int = 2, generator: torch.Generator | None = None, dtype=None,
                      device=None) -> Tensor:
    """``k`` random orthonormal directions in R^d, as rows ``[k, d]`` (QR of a Gaussian matrix)."""
    if isinstance(d, bool) or not isinstance(d, int) or d < 1:
        raise ValueError(f"d must be an integer >= 1, got {d!r}")
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= d:
        raise ValueError(f"k must be an integer in [1, d = {d}] (at most d orthonormal directions), got {k!r}")
    g = torch.randn(d, k, generator=generator, dtype=dtype or torch.get_default_dtype())
    q, r = torch.linalg.qr(g)  # [d, k]
    q = q * torch.sign(torch.diagonal(r))  # unique up to sign: fix it by R's diagonal
    return q.T.contiguous().to(device) if device is not None else q.T.contiguous()


def find_local_minima(Z: Tensor) -> Tensor:
    """Strict local minima of a grid, excluding the border.

    ``Z`` ``[n, m]``: a point is a minimum when it is strictly below all 8
    neighbours; returns index pairs ``[k, 2]`` (row i, column j: use
    ``X[i, j], Y[i, j]``). ``Z`` ``[n]``: strictly below both neighbours;
    returns indices ``[k]``. NaN never counts as a minimum.
    """
    if not isinstance(Z, Tensor):
        raise TypeError(f"Z must be a torch.Tensor [n] or [n, m], got {type(Z).__name__}")
    if Z.dim() == 1:
        if Z.shape[0] < 3:
            return torch.zeros(0, dtype=torch.long, device=Z.device)
        c = Z[1:-1]
        return torch.nonzero((c < Z[:-2]) & (c < Z[2:])).reshape(-1) + 1
    if Z.dim() != 2:
        raise ValueError(f"Z must have shape [n] or [n, m], got {tuple(Z.shape)}")
    n, m = Z.shape
    if n < 3 or m < 3:
        return torch.zeros(0, 2, dtype=torch.long, device=Z.device)
    c = Z[1:-1, 1:-1]
    is_min = torch.ones_like(c, dtype=torch.bool)
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            if di or dj:
                is_min &= c < Z[1 + di:n - 1 + di, 1 + dj:m - 1 + dj]
    return torch.nonzero(is_min) + 1


def _np(x):
    return x.detach().cpu().numpy() if isinstance(x, Tensor) else x


def plot_slice_1d(ax, t, values, *, label: str | None = None, mark_star: bool = True, mark_minima: bool = True,
                  title: str | None = None, xlabel: str = "t (step along the direction from ω*)",
                  ylabel: str = "loss h(ω* + t·v)"):
    """Draw one 1-D slice on ``ax``; ω* (t = 0) as a star, grid local minima as ×. Returns ``ax``."""
    t, values = torch.as_tensor(t), torch.as_tensor(values)
    if t.dim() != 1 or values.shape != t.shape:
        raise ValueError(f"t and values must both have shape [n], got {tuple(t.shape)} and {tuple(values.shape)}")
    (line,) = ax.plot(_np(t), _np(values), label=label)
    if mark_minima:
        idx = find_local_minima(values)
        ax.plot(_np(t[idx]), _np(values[idx]), "x", color=line.get_color(), ms=8, mew=2)
    if mark_star:
        i0 = int(t.abs().argmin())
        ax.plot([float(t[i0])], [float(values[i0])], "*", color="black", ms=12, zorder=5)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if label:
        ax.legend()
    return ax


def plot_landscape_2d(X, Y, Z, kind: str = "contour", ax=None, title: str = "Loss landscape around ω*",
                      mark_minima: bool = True, xlabel: str = "direction 1", ylabel: str = "direction 2",
                      zlabel: str = "loss", levels: int = 30):
    """Contour or surface plot of a 2-D slice, as the paper's Fig. 4.

    ω* (0, 0) is marked with a star and the strict local minima of the grid
    (:func:`find_local_minima`) with ×, so spurious minima stand out. Pass
    an ``ax`` (a 3-D one for ``kind="surface"``) or get a new figure. Returns
    the axes.
    """
    import matplotlib.pyplot as plt

    if kind not in ("contour", "surface"):
        raise ValueError(f"kind must be 'contour' or 'surface', got {kind!r}")
    X, Y, Z = (torch.as_tensor(a) for a in (X, Y, Z))
    if not (X.dim() == 2 and X.shape == Y.shape == Z.shape):
        raise ValueError(f"X, Y, Z must be [n, n] grids of one shape, got {tuple(X.shape)}, {tuple(Y.shape)}, "
                         f"{tuple(Z.shape)} (slice one centre of a batch first)")
    if ax is None:
        fig = plt.figure(figsize=(5.5, 4.5))
        ax = fig.add_subplot(projection="3d") if kind == "surface" else fig.add_subplot()
    elif kind == "surface" and getattr(ax, "name", "") != "3d":
        raise ValueError("kind='surface' needs a 3-D axes (fig.add_subplot(projection='3d'))")
    x, y, z = _np(X), _np(Y), _np(Z)
    minima = find_local_minima(Z)
    i0 = divmod(int((X.abs() + Y.abs()).argmin()), X.shape[1])
    if kind == "contour":
        cs = ax.contourf(x, y, z, levels=levels, cmap="viridis")
        ax.contour(x, y, z, levels=levels, colors="k", linewidths=0.3)
        ax.figure.colorbar(cs, ax=ax, label=zlabel)
        if mark_minima and len(minima):
            ax.plot(x[minima[:, 0], minima[:, 1]], y[minima[:, 0], minima[:, 1]], "x", color="red", ms=9, mew=2,
                    label="local minima")
        ax.plot([x[i0]], [y[i0]], "*", color="white", mec="black", ms=14, label="ω*")
        ax.set_aspect("equal")
    else:
        ax.plot_surface(x, y, z, cmap="viridis", linewidth=0, antialiased=True, alpha=0.9)
        if mark_minima and len(minima):
            r, c = minima[:, 0], minima[:, 1]
            ax.scatter(x[r, c], y[r, c], z[r, c], marker="x", color="red", s=60, depthshade=False,
                       label="local minima")
        ax.scatter([x[i0]], [y[i0]], [z[i0]], marker="*", color="white", edgecolors="black", s=150,
                   depthshade=False, label="ω*")
        ax.set_zlabel(zlabel)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize="small")
    return ax
