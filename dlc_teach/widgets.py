"""Interactive explorers for chapters 2-3, with a static fallback.

Introduced in chapters 2 (:func:`star_convexity_explorer`) and 3
(:func:`hinge_explorer`). Each explorer draws with one plain matplotlib
function (:func:`plot_star_envelope`, :func:`plot_hinge_terms`) that the
widget calls on every slider move and that also makes the static figure.
``static=None`` (default) gives widgets when ipywidgets is installed and a
Jupyter kernel is running, otherwise a static ``matplotlib.figure.Figure``
(e.g. in a script, or the built HTML book without a kernel); ``static=True``
forces the figure, ``static=False`` forces widgets. Widget output changes
between runs, so notebook cells showing one start with ``# NBVAL_IGNORE_OUTPUT``.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from .neighborhoods import GaussianNeighborhood
from .objective import _check_nonnegative, _check_unit_interval, hinge_terms
from .toys import wavy_1d

__all__ = ["plot_star_envelope", "plot_hinge_terms", "star_convexity_explorer", "hinge_explorer", "Explorer"]


def _kernel_running() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    ip = get_ipython()
    return ip is not None and getattr(ip, "kernel", None) is not None


def _widgets_module(static):
    """ipywidgets, or None when the static figure should be drawn instead."""
    if static is True:
        return None
    try:
        import ipywidgets
    except ImportError:
        if static is False:
            raise ImportError("static=False needs ipywidgets (pip install ipywidgets)") from None
        return None
    return ipywidgets if (static is False or _kernel_running()) else None


def _vector(name: str, value, like: Tensor | None = None) -> Tensor:
    v = torch.as_tensor(value, dtype=like.dtype if like is not None else None)
    if not v.is_floating_point():
        v = v.to(torch.get_default_dtype())
    v = v.reshape(-1) if v.dim() == 0 else v
    if v.dim() != 1 or not torch.isfinite(v).all():
        raise ValueError(f"{name} must be a finite vector [d] (or a number for d = 1), got shape {tuple(v.shape)}")
    return v


def plot_star_envelope(ax, f, omega_star, omega, mu: float, lam: float, n: int = 201) -> dict:
    """f along the segment ω* -> ω with the bounds of Lemma 1, on ``ax``.

    Draws, against s ∈ [0, 1] (the point (1 − s)ω* + sω): f itself; the
    quadratic lower envelope of Eq. 6, f(ω*) + μ/2·s²‖ω − ω*‖² (f must stay
    above it); the "strong chord" of Eq. 7, (1 − s)f(ω*) + s·f(ω) −
    s(1 − s)μ/2·‖ω − ω*‖² (f must stay below it; the plain chord of Eq. 4
    when μ = 0); and marks ω̃ at s = λ. Returns the gaps at ω̃ (lhs − rhs,
    ≤ 0 where the condition holds): ``{"gap6", "gap7", "f_tilde"}``.
    """
    _check_unit_interval("lam", lam)
    _check_nonnegative("mu", mu)
    omega_star = _vector("omega_star", omega_star)
    omega = _vector("omega", omega, omega_star)
    if omega.shape != omega_star.shape:
        raise ValueError(f"omega and omega_star must have the same shape [d], got {tuple(omega.shape)} "
                         f"and {tuple(omega_star.shape)}")
    s = torch.linspace(0, 1, n, dtype=omega.dtype)
    lam_t = torch.tensor([float(lam)], dtype=omega.dtype)
    pts = omega_star + torch.cat([s, lam_t])[:, None] * (omega - omega_star)  # [n + 1, d]
    with torch.no_grad():
        values = f(pts)  # [n + 1]
        ends = f(torch.stack([omega_star, omega]))  # [2]
    if not isinstance(values, Tensor) or values.shape != (n + 1,):
        raise ValueError(f"f must map points [..., d] to values [...]; got {getattr(values, 'shape', values)}")
    f_s, f_tilde = values[:n], float(values[n])
    f_star, f_omega = float(ends[0]), float(ends[1])
    sq = float((omega - omega_star).pow(2).sum())
    envelope = f_star + 0.5 * mu * s ** 2 * sq  # Eq. 6
    chord = (1 - s) * f_star + s * f_omega - 0.5 * s * (1 - s) * mu * sq  # Eq. 7
    gap6 = f_star - f_tilde + 0.5 * mu * lam ** 2 * sq
    gap7 = f_tilde - (1 - lam) * f_star - lam * f_omega + 0.5 * lam * (1 - lam) * mu * sq
    ax.plot(s.numpy(), f_s.numpy(), color="C0", lw=2, label="f on the segment")
    ax.plot(s.numpy(), envelope.numpy(), "--", color="C2", label="Eq. 6 envelope (f ≥)")
    ax.plot(s.numpy(), chord.numpy(), ":", color="C3", lw=2, label="Eq. 7 chord (f ≤)")
    ax.plot([0.0], [f_star], "*", color="black", ms=12, label="ω*")
    ax.plot([lam], [f_tilde], "o", color="C1", ms=8, label="ω̃ = (1−λ)ω* + λω")
    ax.axvline(lam, color="C1", lw=0.8, alpha=0.6)
    ok = lambda g: "holds" if g <= 1e-9 * (1 + abs(f_tilde)) else "VIOLATED"  # noqa: E731
    ax.set_title(f"μ={mu:.3g}, λ={lam:.2f}: Eq. 6 {ok(gap6)}, Eq. 7 {ok(gap7)}", fontsize="medium")
    ax.set_xlabel("s (position on the segment ω* → ω)")
    ax.set_ylabel("f")
    ax.legend(fontsize="small")
    return {"gap6": gap6, "gap7": gap7, "f_tilde": f_tilde}


def plot_hinge_terms(axes, h=None, omega_star: float = 0.0, mu: float = 1.0, lam: float = 0.5, rho: float = 1.0,
                     sigma: float = 1.0, n_samples: int = 16, seed: int = 0, radius: float = 4.0) -> dict:
    """The hinge terms of Eqs. 12-14 on a 1-D loss ``h`` (``[..., 1] -> [...]``), on two axes.

    Left: h around ω*, K neighbours ω = ω* + σz (fixed seed, so moving σ
    moves the same draws), their ω̃, and the Eq. 13 envelope h(ω*) + μ/2·d²;
    neighbours below it (γ > 0) are red. Right: mean ε, γ, ξ (from
    :func:`dlc_teach.objective.hinge_terms`) and the datapoint's loss
    h(ω*) + ρ·mean(ε + γ + ξ) of Eq. 11. Returns those four numbers.
    """
    _check_nonnegative("rho", rho)
    h = wavy_1d() if h is None else h
    w_star = torch.tensor([[float(omega_star)]], dtype=torch.float64)  # [B=1, d=1]
    gen = torch.Generator().manual_seed(int(seed))
    omega = GaussianNeighborhood(sigma).sample(w_star, n_samples, generator=gen)  # [K, 1, 1]
    omega_tilde = (1 - lam) * w_star + lam * omega  # [K, 1, 1]
    grid = torch.linspace(-radius, radius, 401, dtype=torch.float64) + float(omega_star)  # [G]
    with torch.no_grad():
        h_star, h_omega, h_tilde = h(w_star), h(omega)[:, 0], h(omega_tilde)[:, 0]  # [1], [K], [K]
        curve = h(grid[:, None])  # [G]
    sq = (omega - w_star).pow(2).sum(-1)[:, 0]  # [K]
    eps, gamma, xi = hinge_terms(h_star, h_omega, h_tilde, sq, lam, mu)  # [K] each
    terms = {"eps": float(eps.mean()), "gamma": float(gamma.mean()), "xi": float(xi.mean())}
    terms["loss"] = float(h_star[0]) + rho * (terms["eps"] + terms["gamma"] + terms["xi"])
    ax, bars = axes
    x, xt = omega[:, 0, 0].numpy(), omega_tilde[:, 0, 0].numpy()
    ax.plot(grid.numpy(), curve.numpy(), color="C0", lw=2, label="h(ω)")
    ax.plot(grid.numpy(), (h_star + 0.5 * mu * (grid - float(omega_star)) ** 2).numpy(), "--", color="C2",
            label="Eq. 13 envelope h(ω*) + μ/2·d²")
    colors = ["C3" if g > 0 else "C1" for g in gamma.tolist()]
    ax.scatter(x, h_omega.numpy(), c=colors, s=30, zorder=4, label="neighbours ω (red: γ > 0)")
    ax.scatter(xt, h_tilde.numpy(), marker="+", color="C4", s=40, zorder=4, label="ω̃")
    ax.plot([float(omega_star)], [float(h_star[0])], "*", color="black", ms=13, zorder=5, label="ω*")
    top = float(curve.max())
    ax.set_ylim(min(float(curve.min()), 0.0) - 0.05 * top, 1.1 * top)
    ax.set_xlim(float(grid[0]), float(grid[-1]))
    ax.set_xlabel("ω (prediction)")
    ax.set_ylabel("loss h(ω)")
    ax.set_title(f"K={n_samples} neighbours, σ={sigma:.2g}, λ={lam:.2f}, μ={mu:.3g}", fontsize="medium")
    ax.legend(fontsize="x-small", loc="upper center")
    names = ["ε (Eq. 12)", "γ (Eq. 13)", "ξ (Eq. 14)", "loss (Eq. 11)"]
    vals = [terms["eps"], terms["gamma"], terms["xi"], terms["loss"]]
    bars.bar(names, vals, color=["C1", "C3", "C4", "C0"])
    bars.set_ylabel("mean over the K neighbours")
    bars.set_title(f"ρ={rho:.2g}: loss = h(ω*) + ρ·mean(ε+γ+ξ)", fontsize="medium")
    bars.tick_params(axis="x", labelsize="small")
    return terms


class Explorer:
    """Sliders plus a redrawn figure. ``.sliders`` (name -> slider), ``.figure``
    (the latest figure), ``.result`` (what the plot function returned),
    ``.widget`` (the ipywidgets box, displayed when the explorer is shown)."""

    def __init__(self, widgets, draw, sliders: dict):
        self.draw, self.sliders = draw, sliders
        self.output = widgets.Output()
        self.widget = widgets.VBox([widgets.HBox(list(sliders.values())), self.output])
        self.figure, self.result = None, None
        for s in sliders.values():
            s.observe(self.update, names="value")
        self.update()

    def update(self, change=None) -> None:
        values = {k: s.value for k, s in self.sliders.items()}
        self.figure, self.result = self.draw(**values)
        if _kernel_running():  # outside a kernel there is nothing to redraw into
            from IPython.display import display

            with self.output:
                self.output.clear_output(wait=True)
                display(self.figure)

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)


def _figure(figsize):
    """A new pyplot figure, already closed: Jupyter then shows it once (as the cell's value or in the
    widget), not a second time when the inline backend flushes open figures at the end of the cell."""
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=figsize)
    plt.close(fig)
    return fig


def _slider(widgets, name, value, lo, hi, step):
    return widgets.FloatSlider(value=value, min=lo, max=hi, step=step, description=name,
                               continuous_update=False, readout_format=".2f")


def star_convexity_explorer(f, omega_star, omega, mu: float = 1.0, lam: float = 0.5, *, mu_max: float | None = None,
                            static: bool | None = None):
    """Sliders for μ and λ over :func:`plot_star_envelope` (chapter 2).

    Returns an :class:`Explorer` (widgets) or a static ``Figure`` (see the
    module docstring for ``static``). ``mu_max``: slider range (default
    max(4μ, 4)).
    """
    _check_unit_interval("lam", lam)
    _check_nonnegative("mu", mu)
    mu_max = float(mu_max) if mu_max is not None else max(4.0 * mu, 4.0)
    if not (mu_max >= mu and math.isfinite(mu_max)):
        raise ValueError(f"mu_max must be finite and >= mu, got {mu_max!r}")

    def draw(mu, lam):
        fig = _figure(figsize=(6.5, 4))
        return fig, plot_star_envelope(fig.subplots(), f, omega_star, omega, mu, lam)

    widgets = _widgets_module(static)
    if widgets is None:
        return draw(mu, lam)[0]
    sliders = {"mu": _slider(widgets, "μ", mu, 0.0, mu_max, mu_max / 100),
               "lam": _slider(widgets, "λ", lam, 0.0, 1.0, 0.01)}
    return Explorer(widgets, draw, sliders)


def hinge_explorer(h=None, omega_star: float = 0.0, *, mu: float = 1.0, lam: float = 0.5, rho: float = 1.0,
                   sigma: float = 1.0, n_samples: int = 16, seed: int = 0, radius: float = 4.0,
                   static: bool | None = None):
    """Sliders for μ, λ, ρ and the noise scale σ over :func:`plot_hinge_terms` (chapter 3).

    ``h``: a 1-D toy loss ``[..., 1] -> [...]`` (default :func:`dlc_teach.toys.wavy_1d`).
    Returns an :class:`Explorer` or a static ``Figure``.
    """
    _check_unit_interval("lam", lam)
    _check_nonnegative("mu", mu)
    _check_nonnegative("rho", rho)
    if not (float(sigma) > 0 and math.isfinite(float(sigma))):
        raise ValueError(f"sigma must be finite and > 0, got {sigma!r}")

    def draw(mu, lam, rho, sigma):
        fig = _figure(figsize=(10, 4))
        axes = fig.subplots(1, 2, gridspec_kw={"width_ratios": [2, 1]})
        terms = plot_hinge_terms(axes, h, omega_star, mu, lam, rho, sigma, n_samples, seed, radius)
        fig.tight_layout()
        return fig, terms

    widgets = _widgets_module(static)
    if widgets is None:
        return draw(mu, lam, rho, sigma)[0]
    sliders = {"mu": _slider(widgets, "μ", mu, 0.0, max(4.0 * mu, 4.0), 0.05),
               "lam": _slider(widgets, "λ", lam, 0.0, 1.0, 0.01),
               "rho": _slider(widgets, "ρ", rho, 0.0, max(4.0 * rho, 4.0), 0.05),
               "sigma": _slider(widgets, "σ", sigma, 0.05, max(4.0 * sigma, 4.0), 0.05)}
    return Explorer(widgets, draw, sliders)
