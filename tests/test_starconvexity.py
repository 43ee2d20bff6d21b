"""Star-convexity gaps (Eqs. 4-7) against closed forms; the checker classifies the toys correctly."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dlc_teach.starconvexity import (
    StarConvexityReport,
    check_star_convexity,
    convexity_gap,
    estimate_mu,
    first_order_gap,
    sample_ball,
    star_gap,
    strong_star_gaps,
)
from dlc_teach.toys import double_well, quadratic, star_nonconvex, wavy_1d


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _scaled_sq(a):
    """f(ω) = a/2·‖ω‖²."""
    return lambda w: 0.5 * a * w.pow(2).sum(-1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gaps_closed_form_for_scaled_square(dtype):
    a, mu, lam = 3.0, 1.0, 0.3
    f = _scaled_sq(a)
    star = torch.zeros(2, dtype=dtype)
    omega = torch.randn(50, 2, generator=_gen(), dtype=torch.float64).to(dtype)
    d2 = omega.pow(2).sum(-1)
    g4 = star_gap(f, star, omega, lam)
    assert g4.shape == (50,) and g4.dtype == dtype
    torch.testing.assert_close(g4, -0.5 * a * lam * (1 - lam) * d2)  # ½aλ²d² − λ·½a d²
    g6, g7 = strong_star_gaps(f, star, omega, mu, lam)
    torch.testing.assert_close(g6, 0.5 * (mu - a) * lam ** 2 * d2)
    torch.testing.assert_close(g7, 0.5 * lam * (1 - lam) * (mu - a) * d2)
    torch.testing.assert_close(first_order_gap(f, star, omega, mu), 0.5 * (mu - a) * d2)


def test_gaps_hand_computed_double_well():
    f = double_well()
    star, omega = torch.tensor([1.0], dtype=torch.float64), torch.tensor([[-1.0]], dtype=torch.float64)
    # ω̃ = 0 at λ = ½: f(0) = 1 above the chord 0 -> gap 1
    assert star_gap(f, star, omega, 0.5).item() == pytest.approx(1.0)
    g6, g7 = strong_star_gaps(f, star, omega, 2.0, 0.5)
    assert g6.item() == pytest.approx(0 - 1 + 0.5 * 2 * 0.25 * 4)  # f* − f̃ + μ/2·λ²d²
    assert g7.item() == pytest.approx(1 + 0.5 * 0.25 * 2 * 4)
    # f'(−1) = 4x(x² − 1) = 0 -> Eq. 5 gap = f(ω) − f(ω*) + μ/2·d² = 4
    assert first_order_gap(f, star, omega, 2.0).item() == pytest.approx(4.0)


def test_batched_centres_shapes_and_values():
    centres = torch.tensor([[0.0, 0.0], [1.0, -1.0], [2.0, 3.0]], dtype=torch.float64)  # [B, d]

    def h(w):  # [..., B, d] -> [..., B], a different bowl per datapoint
        return 0.5 * (w - centres).pow(2).sum(-1)

    omega = centres + torch.randn(7, 3, 2, generator=_gen(), dtype=torch.float64)  # [N, B, d]
    d2 = (omega - centres).pow(2).sum(-1)
    g4 = star_gap(h, centres, omega, 0.5)
    assert g4.shape == (7, 3)
    torch.testing.assert_close(g4, -0.125 * d2)
    torch.testing.assert_close(estimate_mu(h, centres, omega), torch.ones(3, dtype=torch.float64))


def test_convexity_gap_closed_form_and_star_nonconvex_violation():
    f = _scaled_sq(2.0)
    a = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    b = torch.tensor([[-1.0, 2.0]], dtype=torch.float64)
    # for a/2‖x‖²: gap = −a/2·λ(1−λ)‖a − b‖² = −(0.25)(8)
    assert convexity_gap(f, a, b, 0.5).item() == pytest.approx(-2.0)
    g = star_nonconvex(0.5)
    pair_gap = convexity_gap(g, torch.tensor([1.0, 1.0]), torch.tensor([1.0, -1.0]), 0.5)
    assert pair_gap.item() == pytest.approx(1.5 - 1.0)


@pytest.mark.parametrize("mu0", [0.5, 2.0, 7.0])
def test_estimate_mu_recovers_mu0(mu0):
    f = _scaled_sq(mu0)
    omega = torch.randn(100, 3, generator=_gen(), dtype=torch.float64)
    est = estimate_mu(f, torch.zeros(3, dtype=torch.float64), omega)
    assert est.shape == () and est.item() == pytest.approx(mu0, rel=1e-12)


def test_estimate_mu_star_nonconvex_is_two_times_one_minus_c():
    c = 0.5
    omega = sample_ball(torch.zeros(2, dtype=torch.float64), 4000, 1.0, _gen())
    est = estimate_mu(star_nonconvex(c), torch.zeros(2, dtype=torch.float64), omega).item()
    assert 2 * (1 - c) <= est < 2 * (1 - c) + 1e-3  # an upper bound that tightens with samples


def test_estimate_mu_nonpositive_when_centre_is_not_a_minimum():
    f = _scaled_sq(1.0)
    omega = torch.randn(64, 2, generator=_gen(), dtype=torch.float64)
    assert estimate_mu(f, torch.tensor([1.0, 0.0], dtype=torch.float64), omega).item() < 0
    with pytest.raises(ValueError, match="different from omega_star"):
        estimate_mu(f, torch.zeros(2), torch.zeros(4, 2))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_checker_classifies_quadratic(dtype):
    rep = check_star_convexity(quadratic(), torch.zeros(3, dtype=dtype), mu=1.0, generator=_gen())
    assert rep.star_convex and rep.strongly_star_convex and rep.convex_on_samples
    assert all(rate == 0 for rate in rep.violation_rate.values())
    assert rep.mu_estimate == pytest.approx(1.0, rel=1e-4)
    rep2 = check_star_convexity(quadratic(), torch.zeros(3, dtype=dtype), mu=1.5, generator=_gen())
    assert rep2.star_convex and not rep2.strongly_star_convex and rep2.violation_rate["eq6"] > 0.9


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_checker_classifies_star_nonconvex(dtype):
    rep = check_star_convexity(star_nonconvex(0.5), torch.zeros(2, dtype=dtype), mu=1.0, generator=_gen())
    assert rep.star_convex and rep.strongly_star_convex
    assert not rep.convex_on_samples and rep.violation_rate["convexity"] > 0.01  # midpoint convexity fails
    assert rep.worst_gap["convexity"] > 0.1
    assert rep.mu_estimate == pytest.approx(1.0, abs=0.05)
    too_sharp = check_star_convexity(star_nonconvex(0.5), torch.zeros(2, dtype=dtype), mu=1.3, generator=_gen())
    assert too_sharp.star_convex and not too_sharp.strongly_star_convex


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_checker_classifies_double_well_and_wavy(dtype):
    rep = check_star_convexity(double_well(), torch.ones(1, dtype=dtype), radius=2.5, generator=_gen())
    assert not rep.star_convex and rep.violation_rate["eq4"] > 0
    assert rep.violation_rate["minimum"] == 0  # ω* = 1 is a (non-unique) global minimum
    rep = check_star_convexity(wavy_1d(), torch.zeros(1, dtype=dtype), radius=3.0, generator=_gen())
    assert not rep.star_convex and rep.worst_gap["eq4"] > 1.0


def test_checker_detects_centre_that_is_not_a_minimum():
    rep = check_star_convexity(quadratic(), torch.tensor([0.5, 0.0]), generator=_gen())
    assert not rep.star_convex and rep.violation_rate["minimum"] > 0 and rep.mu_estimate < 0
    assert "not a minimum" in str(rep)


def test_checker_given_samples_and_batched_centres():
    centres = torch.tensor([[0.0], [2.0]], dtype=torch.float64)
    h = lambda w: (w - centres).pow(2).sum(-1)  # noqa: E731
    omega = centres + torch.linspace(-1, 1, 9, dtype=torch.float64)[:, None, None]  # [9, 2, 1]
    rep = check_star_convexity(h, centres, omega, mu=2.0)
    assert rep.radius is None and rep.n_samples == 9 and rep.star_convex and rep.strongly_star_convex
    assert rep.mu_estimate == pytest.approx(2.0)


def test_report_text_and_html():
    rep = check_star_convexity(star_nonconvex(), torch.zeros(2), generator=_gen())
    assert isinstance(rep, StarConvexityReport)
    text = str(rep)
    for needle in ("Eq. 4", "Eq. 5", "Eq. 6", "Eq. 7", "convexity", "estimated μ", "NOT convex"):
        assert needle in text
    assert repr(rep) == text
    html = rep._repr_html_()
    assert html.startswith("<table>") and html.count("<tr>") == 7
    with pytest.raises(Exception):
        rep.mu = 3.0  # frozen


def test_sample_ball_inside_radius_and_fills_it():
    pts = sample_ball(torch.tensor([1.0, -1.0, 0.0]), 2000, 0.5, _gen())
    r = (pts - torch.tensor([1.0, -1.0, 0.0])).norm(dim=-1)
    assert pts.shape == (2000, 3) and r.max() <= 0.5 + 1e-6
    # uniform in a 3-ball: P(r <= R/2) = 1/8
    assert abs(float((r <= 0.25).double().mean()) - 0.125) < 0.03


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(0.1, 10.0), min_size=1, max_size=4), st.floats(0.0, 1.0))
def test_convex_quadratics_satisfy_eq4_and_lemma1_at_their_mu(diag, lam):
    A = torch.diag(torch.tensor(diag, dtype=torch.float64))
    f = quadratic(A)
    d = len(diag)
    star = torch.zeros(d, dtype=torch.float64)
    omega = torch.randn(20, d, generator=_gen(), dtype=torch.float64)
    mu = min(diag)  # strong convexity = smallest eigenvalue
    assert (star_gap(f, star, omega, lam) <= 1e-12).all()
    g6, g7 = strong_star_gaps(f, star, omega, mu, lam)
    assert (g6 <= 1e-9).all() and (g7 <= 1e-9).all()
    assert (first_order_gap(f, star, omega, mu) <= 1e-9).all()
    assert estimate_mu(f, star, omega).item() >= mu - 1e-9


def test_bad_inputs():
    f, star, omega = quadratic(), torch.zeros(2), torch.ones(5, 2)
    with pytest.raises(ValueError, match="lam"):
        star_gap(f, star, omega, 1.5)
    with pytest.raises(ValueError, match="lam"):
        star_gap(f, star, omega, torch.tensor([0.1, 0.2]))
    with pytest.raises(ValueError, match="mu"):
        strong_star_gaps(f, star, omega, -1.0, 0.5)
    with pytest.raises(ValueError, match="mu"):
        first_order_gap(f, star, omega, float("nan"))
    with pytest.raises(ValueError, match=r"\[N, d\]"):
        star_gap(f, star, torch.ones(5, 3), 0.5)
    with pytest.raises(ValueError, match=r"\[N, B, d\]"):
        star_gap(f, torch.zeros(2, 2), torch.ones(5, 2), 0.5)
    with pytest.raises(TypeError):
        star_gap(f, [0.0, 0.0], omega, 0.5)
    with pytest.raises(TypeError):
        star_gap("f", star, omega, 0.5)
    with pytest.raises(ValueError, match="values"):
        star_gap(lambda w: w, star, omega, 0.5)
    with pytest.raises(ValueError, match="non-finite"):
        star_gap(lambda w: w.sum(-1) / 0.0, star, omega, 0.5)
    with pytest.raises(ValueError, match="n must"):
        check_star_convexity(f, star, n=0)
    with pytest.raises(ValueError, match="radius"):
        check_star_convexity(f, star, radius=0.0)
    with pytest.raises(ValueError, match="lams"):
        check_star_convexity(f, star, lams=())
    with pytest.raises(ValueError, match="lams"):
        check_star_convexity(f, star, lams=(0.5, 2.0))
    with pytest.raises(ValueError, match="tol"):
        check_star_convexity(f, star, tol=-1.0)
    with pytest.raises(ValueError, match="same shape"):
        convexity_gap(f, torch.zeros(3, 2), torch.zeros(4, 2), 0.5)
