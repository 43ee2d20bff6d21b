"""Explorers: the shared plotting functions against the library's gaps/hinges; static fallback; widget updates."""
import sys

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from dlc_teach.neighborhoods import GaussianNeighborhood  # noqa: E402
from dlc_teach.objective import hinge_terms  # noqa: E402
from dlc_teach.starconvexity import strong_star_gaps  # noqa: E402
from dlc_teach.toys import double_well, star_nonconvex, wavy_1d  # noqa: E402
from dlc_teach.widgets import (  # noqa: E402
    Explorer,
    hinge_explorer,
    plot_hinge_terms,
    plot_star_envelope,
    star_convexity_explorer,
)


def _ax():
    return Figure().subplots()


@pytest.mark.parametrize("mu, lam", [(0.0, 0.5), (1.0, 0.3), (3.0, 0.9)])
def test_plot_star_envelope_gaps_match_lemma1(mu, lam):
    star, omega = torch.tensor([0.0, 0.0]), torch.tensor([1.0, 0.3])
    out = plot_star_envelope(_ax(), star_nonconvex(), star, omega, mu, lam)
    g6, g7 = strong_star_gaps(star_nonconvex(), star.double(), omega.double()[None], mu, lam)
    assert out["gap6"] == pytest.approx(g6.item(), abs=1e-6)
    assert out["gap7"] == pytest.approx(g7.item(), abs=1e-6)


def test_plot_star_envelope_draws_curves_and_title():
    ax = _ax()
    out = plot_star_envelope(ax, double_well(), [1.0], [-1.0], mu=0.0, lam=0.5)
    assert out["f_tilde"] == pytest.approx(1.0) and out["gap7"] == pytest.approx(1.0)  # f(0) = 1 above chord 0
    assert "Eq. 7 VIOLATED" in ax.get_title() and "Eq. 6 holds" in ax.get_title()
    labels = [line.get_label() for line in ax.get_lines()]
    assert any("Eq. 6" in s for s in labels) and any("Eq. 7" in s for s in labels)
    chord = next(line for line in ax.get_lines() if "Eq. 7" in line.get_label())
    assert max(abs(y) for y in chord.get_ydata()) < 1e-12  # μ = 0: the chord between f(1) = f(−1) = 0
    assert ax.get_xlabel() and ax.get_ylabel() == "f"


def test_plot_hinge_terms_matches_objective():
    mu, lam, rho, sigma, K, seed = 1.5, 0.4, 2.0, 1.2, 8, 3
    h = wavy_1d()
    terms = plot_hinge_terms(Figure().subplots(1, 2), h, 0.0, mu, lam, rho, sigma, K, seed)
    star = torch.zeros(1, 1, dtype=torch.float64)
    omega = GaussianNeighborhood(sigma).sample(star, K, generator=torch.Generator().manual_seed(seed))
    tilde = (1 - lam) * star + lam * omega
    eps, gamma, xi = hinge_terms(h(star), h(omega)[:, 0], h(tilde)[:, 0], omega[:, 0, 0] ** 2, lam, mu)
    assert terms["eps"] == pytest.approx(eps.mean().item())
    assert terms["gamma"] == pytest.approx(gamma.mean().item())
    assert terms["xi"] == pytest.approx(xi.mean().item())
    assert terms["loss"] == pytest.approx(0.0 + rho * (eps + gamma + xi).mean().item())
    assert terms["gamma"] + terms["xi"] > 0  # wavy_1d is not star-convex: some hinge is active


def test_static_paths_return_figures():
    fig = star_convexity_explorer(double_well(), [1.0], [-1.0], static=True)
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    fig = hinge_explorer(static=True)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    # no kernel in pytest: the default also falls back to a static figure
    assert isinstance(hinge_explorer(), Figure)


def test_missing_ipywidgets_falls_back_or_raises(monkeypatch):
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # import ipywidgets -> ImportError
    assert isinstance(star_convexity_explorer(double_well(), [1.0], [0.0], static=None), Figure)
    with pytest.raises(ImportError, match="ipywidgets"):
        star_convexity_explorer(double_well(), [1.0], [0.0], static=False)


def test_star_explorer_widget_builds_and_updates():
    ex = star_convexity_explorer(double_well(), [1.0], [-1.0], mu=0.0, lam=0.5, static=False)
    assert isinstance(ex, Explorer) and set(ex.sliders) == {"mu", "lam"}
    assert ex.result["gap7"] == pytest.approx(1.0)
    first = ex.figure
    ex.sliders["lam"].value = 0.9  # ω̃ = −0.8: f = 0.1296
    assert ex.figure is not first and ex.result["f_tilde"] == pytest.approx(0.1296, abs=1e-6)
    ex.sliders["mu"].value = 2.0
    assert ex.result["gap6"] == pytest.approx(0 - 0.1296 + 0.5 * 2.0 * 0.81 * 4, abs=1e-5)
    bundle = ex._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle


def test_hinge_explorer_widget_updates_loss_linearly_in_rho():
    ex = hinge_explorer(rho=1.0, static=False)
    assert set(ex.sliders) == {"mu", "lam", "rho", "sigma"}
    hinge = ex.result["eps"] + ex.result["gamma"] + ex.result["xi"]
    ex.sliders["rho"].value = 3.0
    assert ex.result["loss"] == pytest.approx(3.0 * hinge)  # h(ω*) = 0 for wavy_1d
    ex.sliders["mu"].value = 0.0
    assert ex.result["gamma"] == pytest.approx(0.0)  # ω* = 0 is the global minimum: no γ without μ


def test_bad_inputs():
    with pytest.raises(ValueError, match="lam"):
        star_convexity_explorer(double_well(), [1.0], [0.0], lam=1.5)
    with pytest.raises(ValueError, match="mu"):
        hinge_explorer(mu=-1.0)
    with pytest.raises(ValueError, match="rho"):
        hinge_explorer(rho=-1.0)
    with pytest.raises(ValueError, match="sigma"):
        hinge_explorer(sigma=0.0)
    with pytest.raises(ValueError, match="mu_max"):
        star_convexity_explorer(double_well(), [1.0], [0.0], mu=2.0, mu_max=1.0)
    with pytest.raises(ValueError, match="same shape"):
        plot_star_envelope(_ax(), star_nonconvex(), [0.0, 0.0], [1.0], 1.0, 0.5)
