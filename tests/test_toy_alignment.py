"""The toy alignment tasks (chapter 3): the shift loss, its interpolation, data, GD success, training."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from dlc_teach.tasks import get_experiment
from dlc_teach.tasks.toy_alignment import (
    ConvFeatures1d, ToyAlignment1D, gd_success_rate, landscape_1d, make_loss, make_pairs_1d,
    random_smooth_signals, shifted_sq_diff,
)
from dlc_teach.tasks.toy_alignment2d import ToyAlignment2D, landscape_2d, load_gray_image


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


# --- the loss h(ω) -----------------------------------------------------------------------------
def test_shapes_and_batching_are_consistent():
    feat_i, feat_t = torch.randn(5, 3, 40, generator=_gen(1)), torch.randn(5, 3, 40, generator=_gen(2))
    omega = torch.randn(4, 2, 5, 1, generator=_gen(3)) * 3  # [..., B, d]
    out = shifted_sq_diff(feat_i, feat_t, omega, margin=8)
    assert out.shape == (4, 2, 5)
    # each leading point evaluated on its own gives the same numbers
    single = torch.stack([shifted_sq_diff(feat_i, feat_t, omega[i, j], 8) for i in range(4) for j in range(2)])
    torch.testing.assert_close(out.reshape(8, 5), single)
    # each pair only sees its own features
    b = 3
    alone = shifted_sq_diff(feat_i[b:b + 1], feat_t[b:b + 1], omega[..., b:b + 1, :], 8)
    torch.testing.assert_close(out[..., b:b + 1], alone)


def test_integer_shift_is_exact_and_fractional_matches_numpy_interp():
    L, margin = 50, 10
    f = torch.randn(1, 1, L, dtype=torch.float64, generator=_gen(4))
    zero = torch.zeros_like(f)
    # with feat_t = 0, h(ω) = mean over the window of feat_i(x + ω)²
    for k in (-7, -1, 0, 3, 9):
        got = shifted_sq_diff(f, zero, torch.tensor([[float(k)]], dtype=torch.float64), margin)
        want = f[0, 0, margin + k:L - margin + k].pow(2).mean()
        torch.testing.assert_close(got[0], want)
    x = np.arange(margin, L - margin)
    for w in (-6.3, 0.25, 2.5, 8.9):
        got = shifted_sq_diff(f, zero, torch.tensor([[w]], dtype=torch.float64), margin)
        want = np.mean(np.interp(x + w, np.arange(L), f[0, 0].numpy()) ** 2)
        assert float(got[0]) == pytest.approx(want, rel=1e-10)


def test_2d_bilinear_matches_scipy_map_coordinates():
    H = W = 20
    margin = 5
    img = torch.randn(1, 2, H, W, dtype=torch.float64, generator=_gen(5))
    zero = torch.zeros_like(img)
    wx, wy = 1.7, -2.4
    got = shifted_sq_diff(img, zero, torch.tensor([[wx, wy]], dtype=torch.float64), margin)
    ys, xs = np.meshgrid(np.arange(margin, H - margin), np.arange(margin, W - margin), indexing="ij")
    ref = [ndimage.map_coordinates(img[0, c].numpy(), [ys + wy, xs + wx], order=1) for c in range(2)]
    assert float(got[0]) == pytest.approx(np.mean(np.square(ref)), rel=1e-10)


def test_identical_signals_have_zero_loss_at_omega_star_with_identity_features():
    g = _gen(6)
    k = torch.tensor([5.0, -3.0, 0.0], dtype=torch.float64)
    state = g.get_state()
    tpl = random_smooth_signals(3, 120, 2.5, g)
    g.set_state(state)
    inp = random_smooth_signals(3, 120, 2.5, g, shift=k)  # I(x) = T(x − k) exactly
    h, _ = make_loss(None, (inp, tpl, k.float().view(3, 1)), margin=20)
    assert h(k.float().view(1, 3, 1)).abs().max() < 1e-10
    assert h((k.float() + 1.5).view(1, 3, 1)).min() > 0.05


def test_pairs_align_at_omega_star_and_omega_star_is_the_raw_landscapes_local_minimum():
    inp, tpl, omega_star = make_pairs_1d(8, 160, 16.0, 2.5, noise=0.0, generator=_gen(7))
    assert inp.shape == tpl.shape == (8, 160) and omega_star.shape == (8, 1)
    assert omega_star.abs().max() <= 16
    h, _ = make_loss(None, (inp, tpl, omega_star), margin=32)
    assert h(omega_star[None]).max() < 0.01  # linear-interpolation error only
    assert h((omega_star + 3)[None]).min() > 0.1
    w, v = landscape_1d(None, (inp[0], tpl[0], omega_star[0]), radius=2.0, n=81)
    assert abs(float(w[v.argmin()] - omega_star[0, 0])) <= 0.1


def test_gradients_flow_to_omega_and_theta_in_float64():
    model = ConvFeatures1d(channels=2, layers=2, kernel=3).double()
    inp, tpl, omega_star = (t.double() for t in make_pairs_1d(2, 60, 4.0, 2.5, 0.05, _gen(8)))
    h, _ = make_loss(model, (inp, tpl, omega_star), margin=10)
    omega = (omega_star + 0.37).requires_grad_(True)  # away from the interpolation knots
    assert torch.autograd.gradcheck(lambda w: h(w), (omega,))
    h(omega).sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert h(omega).dtype == torch.float64


def test_bad_inputs_raise_clear_errors():
    f = torch.zeros(2, 1, 30)
    with pytest.raises(ValueError, match=r"\[\.\.\., B, d\]"):
        shifted_sq_diff(f, f, torch.zeros(3, 2), margin=5)
    with pytest.raises(ValueError, match="margin"):
        shifted_sq_diff(f, f, torch.zeros(2, 1), margin=15)
    with pytest.raises(ValueError, match="same shape|both be"):
        shifted_sq_diff(f, torch.zeros(2, 1, 31), torch.zeros(2, 1), margin=5)
    with pytest.raises(ValueError, match="I, T, omega_star"):
        make_loss(None, (f, f), margin=5)
    with pytest.raises(ValueError, match="one 1-D pair"):
        landscape_1d(None, (torch.zeros(2, 30), torch.zeros(2, 30), torch.zeros(2, 1)), radius=3)
    with pytest.raises(ValueError, match="offsets"):
        gd_success_rate(None, (torch.zeros(2, 80), torch.zeros(2, 80), torch.zeros(2, 1)), [-1.0], 1.0, 5, 1.0)
    with pytest.raises(ValueError, match="unknown scikit-image"):
        load_gray_image("no_such_image")
    with pytest.raises(ValueError, match="odd kernel"):
        ConvFeatures1d(kernel=4)


# --- GD success rate on a hand-made case ---------------------------------------------------------
def test_gd_success_rate_on_a_single_bump():
    """One Gaussian bump (width 3): GD finds it from 1 sample away, but 40 samples away h is flat."""
    L, shift = 160, torch.tensor([[2.0], [-4.0]])
    x = torch.arange(L, dtype=torch.float32)
    tpl = torch.exp(-0.5 * ((x - 80) / 3) ** 2).expand(2, L)
    inp = torch.exp(-0.5 * ((x.view(1, L) - 80 - shift) / 3) ** 2)  # I(x + ω*) = T(x)
    rates = gd_success_rate(None, (inp, tpl, shift), offsets=[1.0, 40.0], lr=20.0, steps=200, tol=0.1)
    assert rates == {1.0: 1.0, 40.0: 0.0}


# --- the experiments ---------------------------------------------------------------------------------
def test_registry_presets_and_dlc_loss_follow_the_config():
    assert get_experiment("toy-alignment") is ToyAlignment1D
    exp = ToyAlignment1D.from_preset("tiny", constraints=(13,), rho=0.5)
    loss = exp.dlc_loss()
    assert loss.constraints == (13,) and loss.rho == 0.5 and loss.neighborhood.sigma == exp.config.sigma
    # μ/2 · E[d²] = μ/2 · σ² = 1 (the scale rule of DESIGN.md) in every preset
    for cfg in ToyAlignment1D.presets.values():
        assert cfg.mu / 2 * cfg.sigma ** 2 == pytest.approx(1.0)
    for cfg in ToyAlignment2D.presets.values():
        assert cfg.mu / 2 * 2 * cfg.sigma ** 2 == pytest.approx(1.0)


def test_training_at_tiny_lowers_the_dlc_loss():
    from dlc_teach.training import seed_everything, train

    exp = ToyAlignment1D.from_preset("tiny")
    _, test = exp.datasets()
    batch = test[:]

    def objective(model):
        with torch.no_grad():
            h, omega_star = exp.loss_fn(model, batch)
            return float(exp.dlc_loss()(h, omega_star, generator=_gen(0)).loss)

    seed_everything(exp.config.seed)
    before = objective(exp.build_model())  # train() starts from these weights
    result = train(exp, dlc=True, progress=False, log=None)
    after = objective(result["model"])
    assert after < 0.7 * before
    assert set(result["final"]) >= {"test_loss", exp.main_metric}
    # the logged success rates are the trained model's on the whole test set: whole pairs out of n_test,
    # equal to a recomputation outside the training loop
    c = exp.config
    _, test = exp.datasets()
    dev = next(result["model"].parameters()).device  # CUDA where present
    rates = gd_success_rate(result["model"], [t.to(dev) for t in test[:]], c.eval_offsets, c.gd_lr, c.gd_steps,
                            c.gd_tol, margin=c.margin, search_radius=c.max_shift, seed=c.seed)
    for o in c.eval_offsets:
        logged = result["final"][f"test_gd_success_{o:g}"]
        assert logged == pytest.approx(rates[o], abs=1e-12)
        assert logged * c.n_test == pytest.approx(round(logged * c.n_test), abs=1e-9)


def test_2d_task_pairs_landscape_and_evaluate():
    exp = ToyAlignment2D.from_preset("tiny", noise=0.0)
    train_ds, test_ds = exp.datasets()
    inp, tpl, omega_star = test_ds[:]
    c = exp.config
    assert inp.shape == tpl.shape == (c.n_test, c.size, c.size) and omega_star.shape == (c.n_test, 2)
    wx, wy, Z = landscape_2d(None, (inp[0], tpl[0], omega_star[0]), radius=1.0, n=21, margin=c.margin)
    i, j = divmod(int(Z.argmin()), Z.shape[1])
    assert math.hypot(float(wx[j] - omega_star[0, 0]), float(wy[i] - omega_star[0, 1])) <= 0.15
    feats = exp.build_model()(inp[:2])
    assert feats.shape == (2, c.channels, c.size, c.size)
    metrics = exp.evaluate(exp.build_model(), [test_ds[:8]])
    assert set(metrics) == {"loss"} | {f"gd_success_{o:g}" for o in c.eval_offsets}


def test_positions_outside_the_signal_read_the_edge_value():
    f = torch.arange(10.0, dtype=torch.float64).view(1, 1, 10)
    zero = torch.zeros_like(f)
    # window x = 2..7, shifted by 5: positions 7..12 read f = 7, 8, 9, 9, 9, 9
    got = shifted_sq_diff(f, zero, torch.tensor([[5.0]], dtype=torch.float64), margin=2)
    assert float(got[0]) == pytest.approx((49 + 64 + 81 * 4) / 6)


def test_data_source_names_what_the_datasets_hold():
    one = ToyAlignment1D.from_preset("tiny").data_source()
    assert one["name"] == "generated" and (one["n_train"], one["n_test"]) == (256, 32)
    exp = ToyAlignment2D.from_preset("tiny")
    two = exp.data_source()
    assert two["name"] == "skimage.data" and (two["n_train"], two["n_test"]) == (32, 16)
    assert two["images"] == {"train": ["camera", "astronaut"], "test": ["coffee"]}
