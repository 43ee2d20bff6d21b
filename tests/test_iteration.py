"""Fixed-point, averaged (Eq. 10) and gradient-descent iterations against hand-unrolled recursions."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dlc_teach.iteration import averaged_fixed_point, fixed_point, gd_map, gradient_descent, running_average
from dlc_teach.toys import double_well, quadratic


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gradient_descent_on_quadratic_matches_closed_form(dtype):
    a, lr, steps = 3.0, 0.1, 8
    f = quadratic(torch.tensor([[a]], dtype=dtype))
    omega0 = torch.tensor([[1.0], [-2.0], [0.5]], dtype=dtype)  # a batch of 3 starting points
    traj = gradient_descent(f, omega0, lr, steps)
    assert traj.shape == (steps + 1, 3, 1) and traj.dtype == dtype
    factor = (1 - lr * a) ** torch.arange(steps + 1, dtype=dtype)  # (1 − lr·a)^t
    torch.testing.assert_close(traj[..., 0], factor[:, None] * omega0[:, 0])


def test_gradient_descent_diagonal_quadratic_per_coordinate():
    f = quadratic(torch.diag(torch.tensor([1.0, 4.0], dtype=torch.float64)))
    traj = gradient_descent(f, torch.tensor([1.0, 1.0], dtype=torch.float64), 0.2, 3)
    expected = torch.stack([0.8 ** torch.arange(4.0), 0.2 ** torch.arange(4.0)], -1).double()
    torch.testing.assert_close(traj, expected)


def test_gradient_descent_works_under_no_grad_and_gets_stuck_in_double_well():
    with torch.no_grad():
        traj = gradient_descent(double_well(), torch.tensor([[-0.5], [0.5]]), 0.05, 300)
    torch.testing.assert_close(traj[-1, :, 0], torch.tensor([-1.0, 1.0]))
    assert not traj.requires_grad


def test_fixed_point_hand_unrolled():
    g = lambda w: 0.5 * w + 1.0  # noqa: E731
    traj = fixed_point(g, torch.tensor([0.0]), 3)
    torch.testing.assert_close(traj[:, 0], torch.tensor([0.0, 1.0, 1.5, 1.75]))
    assert fixed_point(g, torch.tensor([2.0]), 0).shape == (1, 1)


def test_averaged_fixed_point_matches_hand_unrolled_eq10():
    g = lambda w: torch.cos(w) + 0.3 * w  # noqa: E731, a non-linear map
    w0 = torch.tensor([0.7, -1.2], dtype=torch.float64)
    # Eq. 10 by hand: Δ_t = g(ω̂_{t−1}); ω̂_t = mean(Δ_1..Δ_t)
    d1 = g(w0)
    w1 = d1
    d2 = g(w1)
    w2 = (d1 + d2) / 2
    d3 = g(w2)
    w3 = (d1 + d2 + d3) / 3
    d4 = g(w3)
    w4 = (d1 + d2 + d3 + d4) / 4
    traj = averaged_fixed_point(g, w0, 4)
    torch.testing.assert_close(traj, torch.stack([w0, w1, w2, w3, w4]))


def test_averaged_fixed_point_numbers():
    traj = averaged_fixed_point(lambda w: 0.5 * w + 1.0, torch.tensor([0.0]), 3)
    # Δ1 = 1 -> 1; Δ2 = 1.5 -> 1.25; Δ3 = 1.625 -> 1.375
    torch.testing.assert_close(traj[:, 0], torch.tensor([0.0, 1.0, 1.25, 1.375]))


def test_gd_map_is_one_step():
    f = quadratic(torch.tensor([[2.0]]))
    g = gd_map(f, 0.25)
    torch.testing.assert_close(g(torch.tensor([4.0])), torch.tensor([2.0]))


def test_running_average_hand_computed():
    traj = torch.tensor([10.0, 1.0, 2.0, 3.0])[:, None]
    torch.testing.assert_close(running_average(traj)[:, 0], torch.tensor([10.0, 1.0, 1.5, 2.0]))
    torch.testing.assert_close(running_average(traj, include_start=True)[:, 0], torch.tensor([10.0, 5.5, 13 / 3, 4.0]))
    assert running_average(traj[:1]).tolist() == [[10.0]]


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-1e3, 1e3), min_size=2, max_size=12))
def test_running_average_last_entry_is_mean_of_iterates(values):
    traj = torch.tensor(values, dtype=torch.float64)[:, None, None]  # [T+1, 1, 1]
    out = running_average(traj)
    assert out.shape == traj.shape
    torch.testing.assert_close(out[-1], traj[1:].mean(0))


@pytest.mark.parametrize("steps, exc", [(-1, ValueError), (1.5, TypeError), (True, TypeError), ("3", TypeError)])
def test_bad_steps(steps, exc):
    with pytest.raises(exc, match="steps"):
        fixed_point(lambda w: w, torch.zeros(1), steps)
    with pytest.raises(exc, match="steps"):
        averaged_fixed_point(lambda w: w, torch.zeros(1), steps)


@pytest.mark.parametrize("lr, exc", [(0.0, ValueError), (-0.1, ValueError), (float("inf"), ValueError),
                                     ("0.1", TypeError), (None, TypeError)])
def test_bad_lr(lr, exc):
    with pytest.raises(exc, match="lr"):
        gradient_descent(quadratic(), torch.zeros(2), lr, 1)


def test_bad_maps_and_starts():
    with pytest.raises(ValueError, match="same shape"):
        fixed_point(lambda w: w.sum(-1), torch.zeros(3, 2), 1)
    with pytest.raises(ValueError, match="values"):
        gradient_descent(lambda w: w, torch.zeros(3, 2), 0.1, 1)
    with pytest.raises(TypeError, match="floating"):
        fixed_point(lambda w: w, torch.zeros(2, dtype=torch.long), 1)
    with pytest.raises(TypeError):
        fixed_point(lambda w: w, [0.0], 1)
    with pytest.raises(TypeError):
        running_average([1.0, 2.0])
