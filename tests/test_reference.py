"""dlc_teach.reference: the authors' convexStarLoss, pinned by hand and mapped onto DLCLoss(reduction="batch")."""
import math

import pytest
import torch
import torch.nn.functional as F

from dlc_teach.neighborhoods import Neighborhood
from dlc_teach.objective import DLCLoss
from dlc_teach.reference import (
    ConvexStarLossReference,
    WithConvexStarLoss,
    authors_equivalent,
    dlc_batch_equivalent,
)
from dlc_teach.tasks.pixel_mnist import PixelMNIST, soft_label_ce
from dlc_teach.training import train


def _ce_h(logits):
    """Per-datapoint soft-label cross-entropy h: [..., B, C] -> [..., B]."""
    return lambda omega: soft_label_ce(logits, omega)


class GivenNoise(Neighborhood):
    """A sampler that returns ω* + the given noise [K, B, d] (per element, also for shared=True)."""

    def __init__(self, noise):
        self.noise = noise

    def sample(self, omega_star, n, generator=None, shared=False):
        assert self.noise.shape == (n, *omega_star.shape)
        return omega_star + self.noise


# --- a case computed by hand (plain Python floats): B = 2, C = 3, K = 2 ------------------------------
LOGITS = [[2.0, -1.0, 0.5], [0.0, 1.0, -0.5]]
LABELS = [0, 2]
NOISE = [[[0.03, -0.02, 0.01], [-0.04, 0.05, 0.0]],
         [[-0.01, 0.04, -0.03], [0.02, -0.05, 0.045]]]  # [K, B, C], inside [-0.05, 0.05)


def _by_hand(a, mu, balancer, softmax_labels=True):
    lam = 1 / (1 + math.exp(-a))

    def softmax(v):
        e = [math.exp(x) for x in v]
        return [x / sum(e) for x in e]

    def ce(logits, target):  # -Σ_c t_c log softmax(z)_c
        lse = math.log(sum(math.exp(z) for z in logits))
        return -sum(t * (z - lse) for t, z in zip(target, logits))

    star = [[1.0 if c == y else 0.0 for c in range(3)] for y in LABELS]
    h_star = sum(ce(z, s) for z, s in zip(LOGITS, star)) / 2
    total, terms = h_star, []
    for n_k in NOISE:
        w = [[s + n for s, n in zip(s_i, n_i)] for s_i, n_i in zip(star, n_k)]
        wt = [[s + lam * n for s, n in zip(s_i, n_i)] for s_i, n_i in zip(star, n_k)]
        if softmax_labels:
            w, wt = [softmax(v) for v in w], [softmax(v) for v in wt]
        h_w = sum(ce(z, v) for z, v in zip(LOGITS, w)) / 2
        h_wt = sum(ce(z, v) for z, v in zip(LOGITS, wt)) / 2
        d2 = sum((wc - sc) ** 2 for w_i, s_i in zip(w, star) for wc, sc in zip(w_i, s_i))  # batch sum
        eps = max(0.0, h_star - h_wt)
        gamma = max(0.0, h_star - h_w + mu * d2 / 2)
        xi = max(0.0, h_wt - (1 - lam) * h_star - lam * h_w + lam * (1 - lam) * mu * d2 / 2)
        terms.append((eps, gamma, xi, d2))
        total += balancer * (eps + gamma + xi)
    return total, h_star, terms, lam


@pytest.mark.parametrize("softmax_labels", [True, False])
@pytest.mark.parametrize("mu", [0.0, 1.0, 25.0])
def test_matches_hand_computed_case(softmax_labels, mu):
    a, balancer = 0.5, 0.7
    logits = torch.tensor(LOGITS, dtype=torch.float64)
    star = F.one_hot(torch.tensor(LABELS), 3).double()
    loss = ConvexStarLossReference(lam=a, mu=mu, n_samples=2, balancer=balancer, softmax_labels=softmax_labels)
    with torch.no_grad():
        res = loss(_ce_h(logits), star, noise=torch.tensor(NOISE, dtype=torch.float64))
    total, h_star, terms, lam = _by_hand(a, mu, balancer, softmax_labels)
    assert float(res.loss) == pytest.approx(total, abs=1e-12, rel=1e-12)
    assert float(res.base) == pytest.approx(h_star, abs=1e-12)
    assert float(res.lam) == pytest.approx(lam, abs=1e-15)
    for k, (eps, gamma, xi, d2) in enumerate(terms):
        assert float(res.eps_k[k]) == pytest.approx(eps, abs=1e-12)
        assert float(res.gamma_k[k]) == pytest.approx(gamma, abs=1e-12)
        assert float(res.xi_k[k]) == pytest.approx(xi, abs=1e-12)
        assert float(res.sq_dist[k]) == pytest.approx(d2, abs=1e-12)
    # the mean fields are means over K; the loss sums over K
    assert float(res.loss) == pytest.approx(float(res.base) + balancer * 2 * float(res.hinge), abs=1e-12)
    if mu == 25.0:  # the case exercises every hinge being active at least once
        assert min(float(res.gamma_k.min()), float(res.xi_k.min())) > 0


def test_lambda_is_sigmoid_of_the_value_passed_and_mu_is_frozen():
    loss = ConvexStarLossReference(lam=0.5, mu=2.0)
    assert float(loss.lam.detach()) == pytest.approx(1 / (1 + math.exp(-0.5)), abs=1e-7)  # ≈ 0.622, not 0.5
    assert [n for n, p in loss.named_parameters() if p.requires_grad] == ["a"]
    logits = torch.randn(8, 10, requires_grad=True)
    star = F.one_hot(torch.randint(0, 10, (8,)), 10).float()
    res = loss(_ce_h(logits), star, generator=torch.Generator().manual_seed(0))
    res.loss.backward()
    assert loss.a.grad is not None and float(res.mu) == 2.0


def test_noise_is_uniform_per_element_and_softmax_is_far_from_the_one_hot_label():
    loss = ConvexStarLossReference(n_samples=4).double()
    star = F.one_hot(torch.arange(10).repeat(50), 10).double()  # [500, 10]
    noise = loss.draw_noise(star, torch.Generator().manual_seed(0))
    assert noise.shape == (4, 500, 10)
    assert float(noise.min()) >= -0.05 and float(noise.max()) < 0.05
    assert float(noise.std()) == pytest.approx(0.1 / math.sqrt(12), rel=0.05)
    assert not torch.allclose(noise[:, 0], noise[:, 1])  # not one draw shared by the batch
    # the same numbers as K successive draws of [B, d], as the authors' loop makes them
    g = torch.Generator().manual_seed(0)
    assert torch.equal(noise, torch.stack([(torch.rand(500, 10, generator=g, dtype=torch.float64) - 0.5) / 10
                                           for _ in range(4)]))
    res = loss(lambda w: w.sum(-1), star, noise=torch.zeros(4, 500, 10, dtype=torch.float64))
    per_point = float(res.sq_dist[0]) / 500  # softmax(e_y) vs e_y, with no noise at all
    e = math.e
    assert per_point == pytest.approx((1 - e / (e + 9)) ** 2 + 9 / (e + 9) ** 2, abs=1e-12)  # ≈ 0.655
    assert res.sq_dist.shape == (4,) and res.h_omega.shape == (4,) and res.h_star.shape == ()


@pytest.mark.parametrize("B", [1, 4, 32])
def test_mapping_onto_dlc_batch_reduction_is_exact_without_the_softmax(B):
    K, balancer, mu_a, a = 3, 0.4, 0.7, 0.5  # 0.5 is exact in float32, so both sides use the same λ
    gen = torch.Generator().manual_seed(B)
    logits = torch.randn(B, 10, dtype=torch.float64, generator=gen) * 3
    star = F.one_hot(torch.randint(0, 10, (B,), generator=gen), 10).double()
    ref = ConvexStarLossReference(lam=a, mu=mu_a, n_samples=K, balancer=balancer, softmax_labels=False)
    noise = ref.draw_noise(star, gen)
    with torch.no_grad():
        r = ref(_ce_h(logits), star, noise=noise)
    kw = dlc_batch_equivalent(balancer, mu_a, a, K, B)
    assert kw["rho"] == pytest.approx(balancer * K) and kw["mu"] == pytest.approx(B * mu_a)
    d = DLCLoss(reduction="batch", neighborhood=GivenNoise(noise), **kw)(_ce_h(logits), star)
    assert abs(float(r.loss) - float(d.loss)) < 1e-13
    for f in ("eps_k", "gamma_k", "xi_k"):
        assert torch.allclose(getattr(r, f), getattr(d, f), rtol=0, atol=1e-13)
    # with the same μ (no mapping) the Eq. 13 margin differs by the factor B
    d_same = DLCLoss(reduction="batch", neighborhood=GivenNoise(noise), rho=kw["rho"], mu=mu_a, lam=kw["lam"],
                     n_samples=K)(_ce_h(logits), star)
    assert torch.allclose(r.sq_dist * mu_a, B * d_same.sq_dist * float(d_same.mu), atol=1e-12)
    if B > 1:
        assert abs(float(r.loss) - float(d_same.loss)) > 1e-6


def test_authors_equivalent_inverts_the_mapping():
    kw = authors_equivalent(rho=1.0, mu=1.0, lam=0.5, n_samples=3, batch_size=32)
    assert kw == {"balancer": pytest.approx(1 / 3), "mu": pytest.approx(1 / 32), "lam": 0.0, "n_samples": 3}
    back = dlc_batch_equivalent(kw["balancer"], kw["mu"], kw["lam"], 3, 32)
    assert back == {"rho": pytest.approx(1.0), "mu": pytest.approx(1.0), "lam": pytest.approx(0.5), "n_samples": 3}


@pytest.mark.parametrize("kwargs, match", [
    ({"mu": -1.0}, "mu must be a finite number >= 0"),
    ({"balancer": float("nan")}, "balancer"),
    ({"n_samples": 0}, "n_samples"),
    ({"scaler": 0.0}, "scaler must be a finite number > 0"),
    ({"lam": float("inf")}, "lam"),
])
def test_bad_hyperparameters_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ConvexStarLossReference(**kwargs)


def test_bad_inputs_raise():
    loss = ConvexStarLossReference(n_samples=2)
    star = F.one_hot(torch.tensor([0, 1]), 3).float()
    h = _ce_h(torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"omega_star must be a floating-point tensor \[B, d\]"):
        loss(h, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"noise must have shape \[K, B, d\]"):
        loss(h, star, noise=torch.zeros(1, 2, 3))
    with pytest.raises(ValueError, match="per-datapoint losses"):
        loss(lambda w: w.sum((-2, -1)), star)  # a batch-mean h would be averaged twice
    with pytest.raises(ValueError, match="non-finite"):
        ConvexStarLossReference(check_finite=True)(lambda w: w.sum(-1) * float("nan"), star)
    with pytest.raises(ValueError, match="lam must lie in"):
        authors_equivalent(rho=1.0, mu=1.0, lam=1.0, n_samples=3, batch_size=8)
    with pytest.raises(TypeError, match="inner must be a dlc_teach Experiment"):
        WithConvexStarLoss(object())


def test_trains_pixel_mnist_through_the_shared_loop():
    torch.set_num_threads(1)
    exp = WithConvexStarLoss(PixelMNIST.from_preset("tiny", epochs=1))
    assert exp.loss_kwargs["mu"] == pytest.approx(1.0 / 32) and exp.name == "pixel-mnist+convexStarLoss"
    out = train(exp, dlc=True, progress=False, log=None, max_steps=4)
    hist = out["history"][-1]
    assert out["steps"] == 4 and isinstance(out["objective"], ConvexStarLossReference)
    assert all(math.isfinite(hist[k]) for k in ("objective", "eps", "gamma", "xi", "lam"))
    assert hist["lam"] != 0.5  # λ = sigmoid(a) moved: a is trained with the network
    groups = exp.param_groups(out["model"], out["objective"])  # the inner experiment's grouping
    assert [g["name"] for g in groups] == ["network", "dlc"] and groups[1]["params"] == [out["objective"].a]
