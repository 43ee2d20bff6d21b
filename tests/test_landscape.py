"""Landscape slices against closed forms, the grid minimum finder on hand-made grids, and the plots."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from dlc_teach.landscape import (  # noqa: E402
    find_local_minima,
    plot_landscape_2d,
    plot_slice_1d,
    random_directions,
    slice_1d,
    slice_2d,
)
from dlc_teach.toys import quadratic, wavy_1d  # noqa: E402


class Counting:
    """Wraps f and counts calls (every slice must evaluate f once)."""

    def __init__(self, f):
        self.f, self.calls = f, 0

    def __call__(self, w):
        self.calls += 1
        return self.f(w)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_slice_1d_quadratic_closed_form(dtype):
    f = Counting(quadratic())
    centre = torch.tensor([1.0, 2.0, 0.0], dtype=dtype)
    t, v = slice_1d(lambda w: f(w - centre), centre, torch.tensor([0.0, 2.0, 0.0]), radius=1.0, n=11)
    assert f.calls == 1 and t.dtype == v.dtype == dtype and t.shape == v.shape == (11,)
    torch.testing.assert_close(t, torch.linspace(-1, 1, 11, dtype=dtype))
    torch.testing.assert_close(v, 0.5 * (2 * t) ** 2)  # ‖v‖ = 2, used as given
    t2, v2 = slice_1d(wavy_1d(), torch.zeros(1, dtype=dtype), 0, radius=2.0, n=5)
    torch.testing.assert_close(v2, wavy_1d()(t2[:, None]))


def test_slice_1d_batched_centres():
    centres = torch.tensor([[0.0, 0.0], [1.0, 1.0]])  # [B, d]
    h = lambda w: (w - centres).pow(2).sum(-1)  # noqa: E731  [..., B, d] -> [..., B]
    t, v = slice_1d(h, centres, 1, radius=2.0, n=9)
    assert v.shape == (9, 2)
    torch.testing.assert_close(v, torch.stack([t ** 2, t ** 2], -1))


def test_slice_2d_layout_and_values():
    f = Counting(lambda w: w[..., 0] + 2 * w[..., 1] + 10 * w[..., 2])
    centre = torch.tensor([0.0, 0.0, 5.0], dtype=torch.float64)
    X, Y, Z = slice_2d(f, centre, 0, 1, radius=1.0, n=5)
    assert f.calls == 1 and X.shape == Y.shape == Z.shape == (5, 5)
    assert X[0].tolist() == [-1.0, -0.5, 0.0, 0.5, 1.0] and (X[:, 0] == -1).all()  # "xy" layout
    assert Y[:, 0].tolist() == [-1.0, -0.5, 0.0, 0.5, 1.0]
    torch.testing.assert_close(Z, X + 2 * Y + 50)
    u = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    X, Y, Z = slice_2d(f, centre, u, 0, radius=1.0, n=3)
    torch.testing.assert_close(Z, 10 * X + Y + 50)


def test_slice_2d_quadratic_with_orthonormal_directions():
    dirs = random_directions(6, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    X, Y, Z = slice_2d(quadratic(), torch.zeros(6, dtype=torch.float64), dirs[0], dirs[1], radius=2.0, n=7)
    torch.testing.assert_close(Z, 0.5 * (X ** 2 + Y ** 2))


def test_slices_run_without_grad():
    w = torch.ones(2, requires_grad=True)
    t, v = slice_1d(lambda p: (p * w).sum(-1), torch.zeros(2), 0, 1.0, n=5)
    assert not v.requires_grad


def test_random_directions_orthonormal_and_seeded():
    for d, k in [(3, 3), (50, 2), (1, 1)]:
        q = random_directions(d, k, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        assert q.shape == (k, d)
        torch.testing.assert_close(q @ q.T, torch.eye(k, dtype=torch.float64))
    a = random_directions(10, 2, generator=torch.Generator().manual_seed(5))
    b = random_directions(10, 2, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="k must"):
        random_directions(2, 3)
    with pytest.raises(ValueError, match="d must"):
        random_directions(0, 1)


def test_find_local_minima_hand_made_grid():
    Z = torch.full((6, 7), 5.0)
    Z[2, 3] = 1.0  # strict minimum
    Z[4, 5] = 2.0  # strict minimum
    Z[0, 0] = -1.0  # on the border: excluded
    Z[4, 1], Z[4, 2] = 0.5, 0.5  # a flat pair: not strict
    m = find_local_minima(Z)
    assert sorted(map(tuple, m.tolist())) == [(2, 3), (4, 5)]
    Z[2, 4] = float("nan")
    assert (2, 3) not in map(tuple, find_local_minima(Z).tolist())  # NaN compares False
    assert find_local_minima(torch.zeros(2, 5)).shape == (0, 2)


def test_find_local_minima_1d_and_on_wavy_slice():
    assert find_local_minima(torch.tensor([3.0, 1.0, 2.0, 0.0, 5.0, 5.0, 4.0])).tolist() == [1, 3]
    t, v = slice_1d(wavy_1d(), torch.zeros(1, dtype=torch.float64), 0, 6.0, n=1201)
    assert find_local_minima(v).numel() == 7


def test_find_local_minima_on_quadratic_slice_is_the_centre():
    X, Y, Z = slice_2d(quadratic(), torch.zeros(2), 0, 1, radius=1.0, n=21)
    assert find_local_minima(Z).tolist() == [[10, 10]]
    with pytest.raises(ValueError):
        find_local_minima(torch.zeros(3, 3, 3))
    with pytest.raises(TypeError):
        find_local_minima([[0.0]])


def test_plot_landscape_2d_contour_marks_minima():
    f = lambda w: wavy_1d()(w[..., :1]) + w[..., 1] ** 2  # noqa: E731
    X, Y, Z = slice_2d(f, torch.zeros(2), 0, 1, radius=5.0, n=41)
    n_min = len(find_local_minima(Z))
    assert n_min >= 3
    ax = plot_landscape_2d(X, Y, Z, title="wavy × bowl")
    assert ax.get_title() == "wavy × bowl" and ax.get_xlabel() == "direction 1"
    markers = {line.get_label(): line for line in ax.get_lines()}
    assert len(markers["local minima"].get_xdata()) == n_min
    assert markers["ω*"].get_xdata()[0] == 0.0
    plt.close(ax.figure)


def test_plot_landscape_2d_surface_and_errors():
    X, Y, Z = slice_2d(quadratic(), torch.zeros(2), 0, 1, radius=1.0, n=11)
    ax = plot_landscape_2d(X, Y, Z, kind="surface")
    assert ax.name == "3d" and ax.get_zlabel() == "loss"
    plt.close(ax.figure)
    fig, ax2 = plt.subplots()
    with pytest.raises(ValueError, match="3-D axes"):
        plot_landscape_2d(X, Y, Z, kind="surface", ax=ax2)
    with pytest.raises(ValueError, match="kind"):
        plot_landscape_2d(X, Y, Z, kind="heatmap")
    with pytest.raises(ValueError, match="grids"):
        plot_landscape_2d(X, Y, Z[:3])
    plt.close(fig)


def test_plot_slice_1d():
    t, v = slice_1d(wavy_1d(), torch.zeros(1), 0, 6.0, n=301)
    fig, ax = plt.subplots()
    out = plot_slice_1d(ax, t, v, label="wavy", title="slice")
    assert out is ax and ax.get_title() == "slice" and ax.get_ylabel().startswith("loss")
    xs = [line.get_xdata() for line in ax.get_lines()]
    assert len(xs[1]) == 7 and abs(xs[2][0]) < 1e-6  # seven × and the star at t = 0
    with pytest.raises(ValueError):
        plot_slice_1d(ax, t, v[:-1])
    plt.close(fig)


def test_slice_bad_input():
    f, c = quadratic(), torch.zeros(2)
    with pytest.raises(ValueError, match="coordinate index"):
        slice_1d(f, c, 2, 1.0)
    with pytest.raises(ValueError, match="shape"):
        slice_1d(f, c, torch.ones(3), 1.0)
    with pytest.raises(ValueError, match="non-zero"):
        slice_1d(f, c, torch.zeros(2), 1.0)
    with pytest.raises(TypeError):
        slice_1d(f, c, True, 1.0)
    with pytest.raises(ValueError, match="radius"):
        slice_1d(f, c, 0, -1.0)
    with pytest.raises(ValueError, match="n must"):
        slice_2d(f, c, 0, 1, 1.0, n=2)
    with pytest.raises(TypeError):
        slice_1d(f, [0.0, 0.0], 0, 1.0)
    with pytest.raises(ValueError, match="values"):
        slice_1d(lambda w: w, c, 0, 1.0)
