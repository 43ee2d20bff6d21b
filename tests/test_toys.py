"""Toy functions against closed forms and hand-computed values."""
import math

import pytest
import torch

from dlc_teach.toys import (
    Toy,
    chamfer_rotation_loss,
    double_well,
    near_symmetric_shape,
    quadratic,
    rotate_2d,
    star_nonconvex,
    wavy_1d,
)


def _grid_minima(values):
    v = values.tolist()
    return [i for i in range(1, len(v) - 1) if v[i] < v[i - 1] and v[i] < v[i + 1]]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_quadratic_closed_form(dtype):
    A = torch.tensor([[2.0, 0.5], [0.5, 1.0]], dtype=torch.float64)
    f = quadratic(A)
    w = torch.tensor([[1.0, 2.0], [-1.0, 0.0]], dtype=dtype)
    # ½(2·1 + 2·0.5·1·2 + 1·4) = 4; ½·2·1 = 1
    out = f(w)
    assert out.dtype == dtype and out.shape == (2,)
    torch.testing.assert_close(out, torch.tensor([4.0, 1.0], dtype=dtype))
    assert f.minimizer(dtype=dtype).tolist() == [0.0, 0.0]


def test_quadratic_default_any_dimension_and_batch_shape():
    f = quadratic()
    w = torch.ones(3, 4, 5, dtype=torch.float64)
    torch.testing.assert_close(f(w), torch.full((3, 4), 2.5, dtype=torch.float64))
    assert f.minimizer(d=3).shape == (3,)
    with pytest.raises(ValueError, match="pass d"):
        f.minimizer()


@pytest.mark.parametrize("A, msg", [
    ([[1.0, 2.0]], "square"),
    ([[1.0, 1.0], [0.0, 1.0]], "symmetric"),
    ([[1.0, 0.0], [0.0, -1.0]], "positive semi-definite"),
    ([[float("nan")]], "finite"),
])
def test_quadratic_rejects_bad_matrices(A, msg):
    with pytest.raises(ValueError, match=msg):
        quadratic(A)


def test_star_nonconvex_values_and_midpoint_violation():
    f = star_nonconvex(0.5)
    w = torch.tensor([[1.0, 1.0], [1.0, -1.0], [1.0, 0.0], [0.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    # r²(1 + c cos 4φ): diagonals 2·0.5, axis 1·1.5, origin 0, (0, 2): 4·1.5
    torch.testing.assert_close(f(w), torch.tensor([1.0, 1.0, 1.5, 0.0, 6.0], dtype=torch.float64))
    assert f(w[2]) > 0.5 * (f(w[0]) + f(w[1]))  # midpoint convexity fails


def test_star_nonconvex_matches_polar_form_and_is_homogeneous():
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(100, 2, generator=gen, dtype=torch.float64)
    c = 0.7
    f = star_nonconvex(c)
    r2, phi = w.pow(2).sum(-1), torch.atan2(w[:, 1], w[:, 0])
    torch.testing.assert_close(f(w), r2 * (1 + c * torch.cos(4 * phi)))
    torch.testing.assert_close(f(0.3 * w), 0.09 * f(w))


def test_star_nonconvex_gradient_is_finite_at_origin():
    f = star_nonconvex()
    w = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(f(w), w)
    assert g.tolist() == [0.0, 0.0]


def test_star_nonconvex_rejects_bad_c():
    for c in (-0.1, 1.0, 2.0):
        with pytest.raises(ValueError, match="c must lie"):
            star_nonconvex(c)


def test_double_well_values():
    f = double_well()
    x = torch.tensor([[-1.0], [0.0], [1.0], [2.0]])
    torch.testing.assert_close(f(x), torch.tensor([0.0, 1.0, 0.0, 9.0]))
    assert f.minimizer().tolist() == [1.0]


def test_wavy_1d_has_one_global_and_several_local_minima():
    f = wavy_1d()
    x = torch.linspace(-6, 6, 12001, dtype=torch.float64)[:, None]
    v = f(x)
    idx = _grid_minima(v)
    locs = x[idx, 0]
    assert len(idx) == 7
    torch.testing.assert_close(locs, torch.tensor([-5.837, -3.949, -1.982, 0.0, 1.982, 3.949, 5.837],
                                                  dtype=torch.float64), atol=2e-3, rtol=0)
    assert int(v.argmin()) == 6000 and float(v.min()) < 1e-20
    # each local minimum solves x = −a·k·sin(kx) (a = 2, k = 3)
    torch.testing.assert_close(locs, -6 * torch.sin(3 * locs), atol=2e-2, rtol=0)


def test_rotate_2d_against_matrix():
    pts = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    out = rotate_2d(pts, torch.tensor([math.pi / 2, math.pi], dtype=torch.float64))
    expected = torch.tensor([[[0.0, 1.0], [-2.0, 0.0]], [[-1.0, 0.0], [0.0, -2.0]]], dtype=torch.float64)
    torch.testing.assert_close(out, expected, atol=1e-12, rtol=0)


def test_chamfer_loss_hand_computed():
    src = torch.tensor([[1.0, 0.0]])
    tgt = torch.tensor([[0.0, 1.0], [3.0, 0.0]])
    f = chamfer_rotation_loss(src, tgt)
    # θ = 0: nearest is (0, 1) at distance² 2; θ = π/2: exactly on (0, 1)
    torch.testing.assert_close(f(torch.tensor([[0.0], [math.pi / 2]])), torch.tensor([2.0, 0.0]), atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="unknown"):
        f.minimizer()


def test_chamfer_loss_has_spurious_minima_for_near_symmetric_shape():
    shape = near_symmetric_shape(lobes=3, dtype=torch.float64)
    theta_star = 0.4
    f = chamfer_rotation_loss(shape, rotate_2d(shape, torch.tensor(theta_star, dtype=torch.float64)), theta_star)
    theta = torch.linspace(-math.pi, math.pi, 721, dtype=torch.float64)[:, None]  # [n, 1]
    v = f(theta)
    assert abs(float(theta[v.argmin(), 0]) - theta_star) < 0.01
    assert float(f(torch.tensor([theta_star], dtype=torch.float64))) < 1e-20
    minima = theta[_grid_minima(v), 0]
    far = minima[(minima - theta_star).abs() > 0.5]
    assert len(far) >= 2  # spurious minima away from θ*
    near_sym = ((far - theta_star).abs() - 2 * math.pi / 3).abs().min()
    assert near_sym < 0.1  # one of them at the near-symmetry angle 2π/3
    assert f.minimizer(dtype=torch.float64).tolist() == [theta_star]


def test_near_symmetric_shape_and_validation():
    s = near_symmetric_shape(n_points=40, lobes=4)
    assert s.shape == (40, 2) and torch.isfinite(s).all()
    for kwargs in ({"n_points": 2}, {"lobes": 0}, {"depth": 1.0}, {"bump": -1.0}):
        with pytest.raises(ValueError):
            near_symmetric_shape(**kwargs)


def test_toy_input_validation():
    f = double_well()
    with pytest.raises(TypeError, match="torch.Tensor"):
        f([1.0])
    with pytest.raises(TypeError, match="floating"):
        f(torch.tensor([[1]]))
    with pytest.raises(ValueError, match="d = 1"):
        f(torch.zeros(3, 2))
    with pytest.raises(ValueError):
        chamfer_rotation_loss(torch.zeros(3, 3), torch.zeros(3, 2))
    with pytest.raises(TypeError):
        chamfer_rotation_loss([[0.0, 0.0]], torch.zeros(3, 2))
    with pytest.raises(ValueError):
        wavy_1d(amplitude=0.0)
    assert isinstance(wavy_1d(), Toy)
