"""Lemma 2/3 bounds against closed forms; Lipschitz estimates against known constants."""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dlc_teach.bounds import estimate_lipschitz, lemma2_radius, lemma3_bound
from dlc_teach.toys import quadratic


def test_lemma2_closed_forms():
    assert lemma2_radius(1.0, 2.0) == 1.0  # 2L/μ
    assert lemma2_radius(3, 0.5) == 12.0
    # L/μ·(1 + sqrt(1 + 2μγ/L²)) with L = 1, μ = 2, γ = 0.5: ½(1 + sqrt 3)
    assert lemma2_radius(1.0, 2.0, 0.5) == pytest.approx(0.5 * (1 + math.sqrt(3)))
    assert lemma2_radius(0.0, 2.0, 1.0) == pytest.approx(1.0)  # L = 0: sqrt(2γ/μ)
    assert lemma2_radius(0.0, 2.0) == 0.0


def test_lemma2_gamma_limits():
    L, mu = 2.0, 0.5
    assert lemma2_radius(L, mu, 1e-12) == pytest.approx(2 * L / mu, rel=1e-10)
    # small γ: grows linearly with slope 1/L
    slope = (lemma2_radius(L, mu, 1e-6) - lemma2_radius(L, mu)) / 1e-6
    assert slope == pytest.approx(1 / L, rel=1e-4)
    # large γ: ~ sqrt(2γ/μ)
    big = 1e10
    assert lemma2_radius(L, mu, big) / math.sqrt(2 * big / mu) == pytest.approx(1.0, rel=1e-3)


@settings(max_examples=50, deadline=None)
@given(st.floats(0.0, 100.0), st.floats(1e-3, 100.0), st.floats(0.0, 100.0))
def test_lemma2_radius_is_the_root_of_eq16_with_slack(L, mu, gamma):
    r = lemma2_radius(L, mu, gamma)
    assert r >= 2 * L / mu * (1 - 1e-12)
    # μ/2·r² = L·r + γ  (the boundary of Eq. 16 with the slack γ of Eq. 13)
    assert 0.5 * mu * r * r == pytest.approx(L * r + gamma, rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_lemma2_tensor_broadcast(dtype):
    gamma = torch.tensor([0.0, 0.5, 2.0], dtype=dtype)
    r = lemma2_radius(1.0, 2.0, gamma)
    assert r.dtype == dtype and r.shape == (3,)
    expected = torch.tensor([lemma2_radius(1.0, 2.0, g) for g in (0.0, 0.5, 2.0)], dtype=dtype)
    torch.testing.assert_close(r, expected)


def test_lemma3_closed_form_and_relation_to_lemma2():
    assert lemma3_bound(1.0, 2.0, 4) == pytest.approx(0.25)  # 4L²/(μ²T)
    assert lemma3_bound(3.0, 0.5, 10) == pytest.approx(lemma2_radius(3.0, 0.5) ** 2 / 10)
    T = torch.arange(1, 6)
    curve = lemma3_bound(1.0, 2.0, T)
    torch.testing.assert_close(curve, 1.0 / T.to(curve.dtype))
    curve64 = lemma3_bound(torch.tensor(1.0, dtype=torch.float64), 2.0, T)
    assert curve64.dtype == torch.float64


@pytest.mark.parametrize("args, exc, msg", [
    ((-1.0, 1.0), ValueError, "L must"),
    ((1.0, 0.0), ValueError, "mu must"),
    ((1.0, -2.0), ValueError, "mu must"),
    ((1.0, 1.0, -0.1), ValueError, "gamma must"),
    ((float("nan"), 1.0), ValueError, "L must"),
    ((float("inf"), 1.0), ValueError, "L must"),
    (("1", 1.0), TypeError, "L must"),
    ((True, 1.0), TypeError, "L must"),
    ((1.0, torch.tensor([1.0, 0.0])), ValueError, "mu must"),
])
def test_lemma2_bad_input(args, exc, msg):
    with pytest.raises(exc, match=msg):
        lemma2_radius(*args)


@pytest.mark.parametrize("T, exc", [(0, ValueError), (-3, ValueError), (1.5, TypeError), (True, TypeError),
                                    (torch.tensor([1.0, 2.0]), TypeError), (torch.tensor([0, 1]), ValueError)])
def test_lemma3_bad_T(T, exc):
    with pytest.raises(exc, match="T must"):
        lemma3_bound(1.0, 1.0, T)


def test_lemma3_bad_constants():
    with pytest.raises(ValueError, match="mu must"):
        lemma3_bound(1.0, 0.0, 3)
    with pytest.raises(ValueError, match="L must"):
        lemma3_bound(-1.0, 1.0, 3)


@pytest.mark.parametrize("method", ["gradient", "secant", "both"])
def test_lipschitz_of_linear_and_norm_functions(method):
    pts = torch.randn(50, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    a = torch.tensor([1.0, -2.0, 2.0], dtype=torch.float64)  # ‖a‖ = 3
    assert estimate_lipschitz(lambda w: w @ a, pts, method) == pytest.approx(3.0, rel=1e-9 if method != "secant"
                                                                            else 0.5)
    assert estimate_lipschitz(lambda w: w.norm(dim=-1), pts, method) <= 1.0 + 1e-9


def test_lipschitz_of_square_on_grid():
    x = torch.linspace(-1, 1, 101, dtype=torch.float64)[:, None]
    f = quadratic()  # ½x², f' = x
    assert estimate_lipschitz(f, x, "gradient") == pytest.approx(1.0)
    # secants |x_n + x_m|/2, largest for the two right-most grid points: (1 + 0.98)/2
    assert estimate_lipschitz(f, x, "secant") == pytest.approx(0.99)
    assert estimate_lipschitz(f, x) == pytest.approx(1.0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_lemma2_holds_on_a_strongly_star_convex_function(dtype):
    # a/2·‖x‖² in the ball of radius R: L = a·R, μ = a, so every point lies within 2L/μ = 2R
    a, R = 4.0, 1.5
    pts = torch.randn(200, 2, generator=torch.Generator().manual_seed(1), dtype=dtype)
    pts = R * pts / pts.norm(dim=-1, keepdim=True).clamp_min(R)
    L = estimate_lipschitz(lambda w: 0.5 * a * w.pow(2).sum(-1), pts)
    assert L <= a * R + 1e-4
    assert pts.norm(dim=-1).max() <= lemma2_radius(L, a)


def test_lipschitz_bad_input():
    pts = torch.zeros(4, 2)
    with pytest.raises(ValueError, match="method"):
        estimate_lipschitz(quadratic(), pts, "max")
    with pytest.raises(ValueError, match="N >= 2"):
        estimate_lipschitz(quadratic(), torch.zeros(1, 2), "secant")
    with pytest.raises(ValueError, match=r"\[N, d\]"):
        estimate_lipschitz(quadratic(), torch.zeros(3), "gradient")
    with pytest.raises(ValueError, match="values"):
        estimate_lipschitz(lambda w: w, pts)
    with pytest.raises(TypeError):
        estimate_lipschitz(quadratic(), [[0.0, 0.0]])
    with pytest.raises(ValueError, match="non-finite"):
        estimate_lipschitz(lambda w: w.sum(-1) / 0.0, pts)
