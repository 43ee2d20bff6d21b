"""Numerical checks of the claims chapter 4 (near-optimality, paper §3.2.3) makes.

Each test pins a claim of the chapter to something outside the code under test: a closed form
(the roots of a quadratic, Γ-function products, the moments of a linear-Gaussian recursion) or an
inequality that must hold sample by sample. Monte-Carlo checks use fixed seeds and tolerances of
several standard errors (stated next to each).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dlc_teach.bounds import estimate_lipschitz, lemma2_radius, lemma3_bound
from dlc_teach.iteration import averaged_fixed_point, fixed_point, gradient_descent, running_average
from dlc_teach.starconvexity import estimate_mu
from dlc_teach.toys import double_well, quadratic, star_nonconvex, wavy_1d

F64 = torch.float64


def ball_points(d: int, radius: float, n: int, seed: int = 0) -> torch.Tensor:
    """n points uniform in the ball of radius `radius` about 0, plus n points on its sphere: [2n, d]."""
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(n, d, generator=g, dtype=F64)
    u = u / u.norm(dim=-1, keepdim=True)  # [n, d] unit directions
    r = radius * torch.rand(n, 1, generator=g, dtype=F64) ** (1.0 / d)  # [n, 1]
    v = torch.randn(n, d, generator=g, dtype=F64)
    sphere = radius * v / v.norm(dim=-1, keepdim=True)  # [n, d]
    return torch.cat([r * u, sphere])  # [2n, d]


# ---------------------------------------------------------------- Lemma 2 (Eqs. 15-16)

@pytest.mark.parametrize("L,mu,gamma", [(1.0, 1.0, 0.0), (3.0, 0.5, 0.2), (0.1, 4.0, 7.0), (2.0, 2.0, 1e-6)])
def test_violated_radius_is_the_root_of_the_quadratic(L, mu, gamma):
    # The chapter derives L/μ·(1 + sqrt(1 + 2μγ/L²)) as the positive root of μ/2·r² = L·r + γ.
    r = lemma2_radius(L, mu, gamma)
    assert mu / 2 * r**2 == pytest.approx(L * r + gamma, rel=1e-10, abs=1e-12)
    positive_root = (L + math.sqrt(L * L + 2 * mu * gamma)) / mu  # quadratic formula, independent form
    assert r == pytest.approx(positive_root, rel=1e-12)
    if gamma == 0.0:
        assert r == pytest.approx(2 * L / mu, rel=1e-12)  # Eq. 15


def test_violated_radius_regimes():
    # Small γ: r(γ) ≈ 2L/μ + γ/L (grows like O(γ)); large γ: r(γ) ≈ sqrt(2γ/μ) (grows like O(√γ)).
    L, mu = 2.0, 0.5
    for gamma in (1e-4, 1e-3):
        slope = (lemma2_radius(L, mu, gamma) - 2 * L / mu) / gamma
        assert slope == pytest.approx(1 / L, rel=1e-2)
    for gamma in (1e6, 1e8):
        assert lemma2_radius(L, mu, gamma) / math.sqrt(2 * gamma / mu) == pytest.approx(1.0, rel=1e-2)


def test_lemma2_rejects_what_it_cannot_use():
    with pytest.raises(ValueError):
        lemma2_radius(1.0, 0.0)  # μ = 0: no strong star-convexity, no bound
    with pytest.raises(ValueError):
        lemma2_radius(1.0, -0.3)
    with pytest.raises(ValueError):
        lemma2_radius(1.0, 1.0, gamma=-1.0)


@pytest.mark.parametrize("radius", [0.5, 1.0, 3.0])
@pytest.mark.parametrize("toy", ["quadratic", "star_nonconvex"])
def test_lemma2_radius_is_never_smaller_than_the_region_it_was_estimated_on(toy, radius):
    # The chapter's remark: if h is L-Lipschitz and satisfies Eq. 6 with μ on a set reaching distance R from ω*,
    # then μ/2·R² <= h(ω) - h(ω*) <= L·R at the far point, so 2L/μ >= R: Lemma 2 never says more than "ω is in
    # the region". Both toys are convex along rays from ω*, so a gradient-norm estimate of L is >= every secant.
    f = quadratic(2.0 * torch.eye(2, dtype=F64)) if toy == "quadratic" else star_nonconvex(0.5)
    star = torch.zeros(2, dtype=F64)
    pts = ball_points(2, radius, 400)
    L = estimate_lipschitz(f, pts)
    mu = float(estimate_mu(f, star, pts))
    exact_mu = 2.0 if toy == "quadratic" else 1.0  # μ = A's eigenvalue; star_nonconvex: 2(1 - c)
    assert mu == pytest.approx(exact_mu, rel=2e-2)
    r_max = float(pts.norm(dim=-1).max())
    assert lemma2_radius(L, mu) >= r_max * (1 - 1e-9)
    # and the bound grows with the region: for these degree-2 homogeneous functions L is proportional to R
    # (quadratic: |∇f| = μ0·r; star_nonconvex: |∇f|² = r²(8 + 4u - 3u²), u = cos 4φ, largest at u = 2/3)
    exact_L_over_R = 2.0 if toy == "quadratic" else math.sqrt(28 / 3)
    assert L / radius == pytest.approx(exact_L_over_R, rel=1e-2)


def test_generalised_lemma2_holds_point_by_point_with_its_own_violation():
    # wavy_1d is not star-convex; fix a μ larger than the Eq. 6 constant so that some points violate Eq. 13.
    # For every ω, with γ_ω = max(0, h(ω*) - h(ω) + μ/2·d²): |ω - ω*| <= L/μ·(1 + sqrt(1 + 2μγ_ω/L²)).
    f = wavy_1d()
    x = torch.linspace(-4.0, 4.0, 2001, dtype=F64)[:, None]  # [N, 1], dense, so the max slope is the Lipschitz L
    L = estimate_lipschitz(f, x)
    true_L = float((x[:, 0] + 6.0 * torch.sin(3.0 * x[:, 0])).abs().max())  # |f'| = |x + a·k·sin(kx)|
    assert L == pytest.approx(true_L, rel=1e-3)
    mu = 3.0
    h_star = f(torch.zeros(1, dtype=F64))
    d = x[:, 0].abs()
    gamma = torch.relu(h_star - f(x) + mu / 2 * d**2)  # Eq. 13's slack
    assert (gamma > 0).float().mean() > 0.3  # the constraint really is violated at many points
    bounds = torch.tensor([lemma2_radius(L, mu, float(g)) for g in gamma], dtype=F64)
    assert bool((d <= bounds + 1e-12).all())


def test_sublevel_bound_for_gradient_descent_end_points():
    # The informative half of Eq. 16: ||ω - ω*||² <= 2/μ·(h(ω) - h(ω*)), here for GD end points on a
    # strongly star-convex, non-convex toy with known μ = 2(1 - c).
    c = 0.5
    f = star_nonconvex(c)
    starts = ball_points(2, 2.0, 64, seed=1)
    traj = gradient_descent(f, starts, lr=0.05, steps=20)  # [21, 128, 2]
    end = traj[-1]
    dist = end.norm(dim=-1)
    bound = torch.sqrt(2 * f(end) / (2 * (1 - c)))
    assert bool((dist <= bound * (1 + 1e-9) + 1e-15).all())
    assert float(dist.max()) < 0.5 * float(starts.norm(dim=-1).max())  # GD did move toward ω*


def test_double_well_gives_no_positive_mu():
    # A neighbourhood of ω* = 1 that contains the other global minimum -1 has μ̂ <= 0; Lemma 2 cannot be used.
    f = double_well()
    pts = torch.linspace(-1.5, 3.5, 501, dtype=F64)[:, None]
    mu = float(estimate_mu(f, torch.ones(1, dtype=F64), pts))
    assert mu <= 1e-9
    with pytest.raises(ValueError):
        lemma2_radius(estimate_lipschitz(f, pts), mu)


# ---------------------------------------------------------------- Lemma 3 (Eq. 17) and Eq. 10

def test_lemma3_bound_closed_form():
    for L, mu, T in [(1.0, 1.0, 1), (2.0, 0.5, 10), (0.3, 3.0, 1000)]:
        assert lemma3_bound(L, mu, T) == pytest.approx(4 * L**2 / (mu**2 * T), rel=1e-12)
        assert lemma3_bound(L, mu, T) == pytest.approx(lemma2_radius(L, mu) ** 2 / T, rel=1e-12)
    for bad_T in (0, -3):
        with pytest.raises(ValueError):
            lemma3_bound(1.0, 1.0, bad_T)


def noisy_contraction(a: float, sigma: float, seed: int):
    """g(ω) = a·ω + σ·ξ (ω* = 0) with fresh N(0, 1) noise ξ at every call, drawn from a seeded generator."""
    gen = torch.Generator().manual_seed(seed)

    def g(w):
        return a * w + sigma * torch.randn(w.shape, generator=gen, dtype=w.dtype)

    return g


def exact_moments(a: float, sigma: float, e0: float, T: int, d: int):
    """Exact E||e_t||² for t = 1..T of the plain iterates, their running mean and Eq. 10, all from e_0 = e0·1."""
    t = np.arange(1, T + 1)
    plain = d * (e0**2 * a ** (2 * t) + sigma**2 * (1 - a ** (2 * t)) / (1 - a**2))
    # running mean of e_1..e_T: e_t = a^t e0 + Σ_{s<=t} a^{t-s} σ ξ_s, so mean = bias + Σ_s c_s σ ξ_s / T
    avg = np.empty(T)
    for T_ in t:
        s = np.arange(1, T_ + 1)
        coeff = (1 - a ** (T_ - s + 1)) / (1 - a)  # weight of ξ_s in Σ_t e_t
        bias = e0 * a * (1 - a**T_) / (1 - a) / T_
        avg[T_ - 1] = d * (bias**2 + sigma**2 * np.sum(coeff**2) / T_**2)
    # Eq. 10: e_t = c_t e_{t-1} + σ ξ_t / t with c_t = (t - 1 + a)/t; mean and variance recursions
    m, v, eq10 = e0, 0.0, np.empty(T)
    for t_ in t:
        c = (t_ - 1 + a) / t_
        m, v = c * m, c * c * v + sigma**2 / t_**2
        eq10[t_ - 1] = d * (m * m + v)
    return plain, avg, eq10


@pytest.mark.parametrize("a", [0.0, 0.3, 0.8])
def test_noisy_contraction_matches_exact_moments(a):
    # Monte Carlo over N chains against the exact second moments; relative standard error of a mean of
    # N·d squared Gaussians is about sqrt(2/(N·d)) = 1.6 % here, so 8 % is ~5 standard errors.
    N, d, T, sigma, e0 = 4000, 2, 200, 0.5, 1.0
    w0 = torch.full((N, d), e0, dtype=F64)
    plain = fixed_point(noisy_contraction(a, sigma, seed=1), w0, T)  # [T+1, N, d]
    avg = running_average(plain)
    eq10 = averaged_fixed_point(noisy_contraction(a, sigma, seed=2), w0, T)
    mc = [x[1:].pow(2).sum(-1).mean(-1).numpy() for x in (plain, avg, eq10)]  # each [T]
    exact = exact_moments(a, sigma, e0, T, d)
    for got, want in zip(mc, exact):
        np.testing.assert_allclose(got[9:], want[9:], rtol=0.08)


def loglog_slope(T: np.ndarray, y: np.ndarray, t_min: int = 10) -> float:
    keep = T >= t_min
    return float(np.polyfit(np.log(T[keep]), np.log(y[keep]), 1)[0])


def test_averaging_rates_claimed_in_the_chapter():
    # Plain iterates of a noisy contraction stall at their stationary variance (slope 0); their running
    # mean decays like 1/T (slope -1) for every a < 1; Eq. 10 is Robbins-Monro with step 1/t and decays like
    # T^(-min(1, 2(1-a))). Exact moments, so the fitted slopes are deterministic (T from 10 to 2000).
    T = np.arange(1, 2001)
    for a, eq10_slope in [(0.0, -1.0), (0.3, -1.0), (0.8, -0.4)]:
        plain, avg, eq10 = exact_moments(a, 0.5, 1.0, len(T), 2)
        assert loglog_slope(T, plain) == pytest.approx(0.0, abs=0.01)
        assert loglog_slope(T, avg) == pytest.approx(-1.0, abs=0.05)
        assert loglog_slope(T, eq10) == pytest.approx(eq10_slope, abs=0.05)


def test_lemma3_identity_needs_uncorrelated_errors():
    # Lemma 3's proof uses E||mean_t e_t||² = (1/T²) Σ_t E||e_t||², true when the cross terms vanish.
    # For a = 0 the errors are independent and the identity holds; for a > 0 they are positively correlated
    # and the left side is larger by about (1 + a)/(1 - a) for large T.
    T = 400
    for a in (0.0, 0.5):
        plain, avg, _ = exact_moments(a, 0.5, 0.0, T, 2)
        ratio = avg[-1] / (plain.sum() / T**2)
        assert ratio == pytest.approx((1 + a) / (1 - a), rel=0.02)
    # the same with Monte Carlo for the uncorrelated case (4000 chains: ~2 % standard error)
    N, d = 4000, 2
    traj = fixed_point(noisy_contraction(0.0, 0.5, seed=3), torch.zeros(N, d, dtype=F64), 50)
    lhs = float(running_average(traj)[-1].pow(2).sum(-1).mean())
    rhs = float(traj[1:].pow(2).sum(-1).mean(-1).sum()) / 50**2
    assert lhs == pytest.approx(rhs, rel=0.1)


@pytest.mark.parametrize("a", [0.2, 0.5, 0.9])
def test_eq10_on_a_linear_map_is_a_gamma_ratio(a):
    # g(ω) = ω* + a(ω - ω*): Eq. 10 gives e_t = c_t e_{t-1}, c_t = (t - 1 + a)/t, so
    # e_t = e_0 Γ(t + a)/(Γ(a) Γ(t + 1)) ~ e_0 t^(a-1)/Γ(a): polynomial, not geometric, convergence.
    star = torch.tensor([0.5, -1.0], dtype=F64)
    e0 = torch.tensor([2.0, 1.0], dtype=F64)
    traj = averaged_fixed_point(lambda w: star + a * (w - star), star + e0, 60)  # [61, 2]
    t = np.arange(1, 61)
    factor = np.exp([math.lgamma(k + a) - math.lgamma(a) - math.lgamma(k + 1) for k in t])  # [60]
    np.testing.assert_allclose((traj[1:] - star).numpy(), factor[:, None] * e0.numpy()[None, :], rtol=1e-10)
    assert factor[-1] * math.gamma(a) * 60 ** (1 - a) == pytest.approx(1.0, rel=0.02)


def test_plain_gd_is_geometric_and_averaging_is_slower_but_within_lemma3():
    # Deterministic GD on μ0/2·||ω||² with lr·μ0 = 1/2: plain error = 2^-t exactly; the running mean of the
    # plain iterates decays like 1/T and Eq. 10 like T^(-1/2); all within Lemma 3's 4L²/(μ²T), with L = μ0·R on
    # the ball of radius R = ||e_0|| that GD never leaves.
    mu0, lr, T = 2.0, 0.25, 200
    f = quadratic(mu0 * torch.eye(2, dtype=F64))
    e0 = torch.tensor([[0.6, -0.8]], dtype=F64)  # [1, 2], R = 1
    plain = gradient_descent(f, e0, lr=lr, steps=T)  # [T+1, 1, 2]
    err = plain[1:].norm(dim=-1)[:, 0].numpy()
    np.testing.assert_allclose(err, 0.5 ** np.arange(1, T + 1), rtol=1e-9, atol=1e-300)
    avg_mse = running_average(plain)[1:].pow(2).sum(-1)[:, 0].numpy()
    g = lambda w: w - lr * mu0 * w  # the same GD map, closed form
    eq10_mse = averaged_fixed_point(g, e0, T)[1:].pow(2).sum(-1)[:, 0].numpy()
    Ts = np.arange(1, T + 1)
    assert loglog_slope(Ts, avg_mse) == pytest.approx(-2.0, abs=0.05)  # bias only: (e0/(T(1-a)))² ~ T^-2
    assert loglog_slope(Ts, eq10_mse) == pytest.approx(-1.0, abs=0.05)  # (T^(a-1))², a = 1/2
    bound = np.array([lemma3_bound(mu0 * 1.0, mu0, int(t)) for t in Ts])
    assert (avg_mse <= bound).all() and (eq10_mse <= bound).all()
    assert err[29] ** 2 < 1e-6 * min(avg_mse[29], eq10_mse[29])  # plain GD is far ahead at T = 30
