"""Reference tests of the DLC objective (Eqs. 11-14): hand-computed hinges, closed-form properties,
autograd, the one-batched-call contract, ablations, the batch-mean variant, trainable λ/μ, bad input."""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dlc_teach.neighborhoods import GaussianNeighborhood
from dlc_teach.objective import CONSTRAINTS, DLCLoss, hinge_coefficients, hinge_terms

F64 = torch.float64
finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)


def quadratic_around(omega_star):
    """h(ω) = ‖ω − ω*‖²: strongly star-convex with μ = 2 exactly. ω [..., B, d] -> [..., B]."""
    return lambda omega: (omega - omega_star).pow(2).sum(-1)


# --- hinge_terms against numbers computed by hand -------------------------------------------------
# (h*, h(ω), h(ω̃), d², λ, μ) -> (ε, γ, ξ)
#   case 1: ε = 1−0.5;  γ = 1−2+½·1·4 = 1;       ξ = 0.5−0.75·1−0.25·2+½·0.25·0.75·1·4 = −0.375 → 0
#   case 2: ε = 3−4 → 0; γ = 3−1+½·2·2 = 4;       ξ = 4−0.5·3−0.5·1+½·0.25·2·2 = 2.5
#   case 3: μ = 0:      ε = 0−0.8 → 0; γ = −1 → 0; ξ = 0.8−0−0.5·1 = 0.3
#   case 4: λ = 1 (ω̃ = ω): ε = 2−1 = 1; γ = 2−1+½·3·1 = 2.5; ξ = 1−0−1·1+0 = 0
HAND = [
    ((1.0, 2.0, 0.5, 4.0, 0.25, 1.0), (0.5, 1.0, 0.0)),
    ((3.0, 1.0, 4.0, 2.0, 0.5, 2.0), (0.0, 4.0, 2.5)),
    ((0.0, 1.0, 0.8, 1.0, 0.5, 0.0), (0.0, 0.0, 0.3)),
    ((2.0, 1.0, 1.0, 1.0, 1.0, 3.0), (1.0, 2.5, 0.0)),
]


@pytest.mark.parametrize("args,expected", HAND)
def test_hinge_terms_hand_computed(args, expected):
    h_star, h_omega, h_tilde, sq, lam, mu = args
    got = hinge_terms(torch.tensor(h_star, dtype=F64), torch.tensor(h_omega, dtype=F64),
                      torch.tensor(h_tilde, dtype=F64), torch.tensor(sq, dtype=F64), lam, mu)
    for g, e in zip(got, expected):
        assert float(g) == pytest.approx(e, abs=1e-12)


def test_hinge_terms_broadcast_shapes():
    eps, gamma, xi = hinge_terms(torch.zeros(5), torch.ones(3, 5), torch.ones(3, 5), torch.ones(3, 5), 0.5, 1.0)
    assert eps.shape == gamma.shape == xi.shape == (3, 5)


@settings(max_examples=60, deadline=None)
@given(finite, finite, finite, st.floats(0, 1e3), st.floats(0, 1), st.floats(0, 100))
def test_hinge_terms_nonnegative(h_star, h_omega, h_tilde, sq, lam, mu):
    t = lambda v: torch.tensor(v, dtype=F64)  # noqa: E731
    for term in hinge_terms(t(h_star), t(h_omega), t(h_tilde), t(sq), lam, mu):
        assert float(term) >= 0.0


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), d=st.integers(1, 5), sigma=st.floats(0.05, 3.0),
       lam=st.floats(0, 1), mu=st.floats(0, 2))
def test_quadratic_has_no_violation_when_mu_at_most_2(seed, d, sigma, lam, mu):
    """‖ω − ω*‖² is 2-strongly star-convex, so every slack is zero for μ ≤ 2 (closed form, Lemma 1)."""
    g = torch.Generator().manual_seed(seed)
    omega_star = torch.randn(4, d, generator=g, dtype=F64)
    res = DLCLoss(lam=lam, mu=mu, n_samples=5, neighborhood=GaussianNeighborhood(sigma))(
        quadratic_around(omega_star), omega_star, generator=g)
    for term in (res.eps_k, res.gamma_k, res.xi_k):
        assert term.abs().max().item() <= 1e-12
    assert res.base.item() == 0.0 and res.loss.item() <= 1e-12


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), d=st.integers(1, 5), lam=st.floats(0.01, 0.99), mu=st.floats(2.01, 50))
def test_quadratic_violates_when_mu_above_2(seed, d, lam, mu):
    """For μ > 2: γ = (μ/2 − 1)d² > 0 and ξ = λ(1−λ)(μ/2 − 1)d² > 0 whenever ω ≠ ω*."""
    g = torch.Generator().manual_seed(seed)
    omega_star = torch.randn(3, d, generator=g, dtype=F64)
    res = DLCLoss(lam=lam, mu=mu, n_samples=4)(quadratic_around(omega_star), omega_star, generator=g)
    assert (res.sq_dist > 0).all()
    assert (res.gamma_k > 0).all() and (res.xi_k > 0).all()
    torch.testing.assert_close(res.gamma_k, (mu / 2 - 1) * res.sq_dist)
    torch.testing.assert_close(res.xi_k, lam * (1 - lam) * (mu / 2 - 1) * res.sq_dist)
    assert res.eps_k.max().item() <= 1e-12  # h(ω̃) = λ²d² ≥ 0 = h(ω*)


# --- autograd ------------------------------------------------------------------------------------
def _toy_problem():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(5, 4, generator=g, dtype=F64)  # [B, in]
    omega_star = torch.randn(5, 3, generator=g, dtype=F64)  # [B, d]
    W = torch.randn(4, 3, generator=g, dtype=F64, requires_grad=True)  # θ

    def make_h(W):
        p = x @ W  # [B, d], computed once
        return lambda omega: (p - omega).pow(2).sum(-1) + 0.5 * torch.sin(3 * omega).sum(-1)  # [..., B]

    return omega_star, W, make_h


def test_gradcheck_wrt_network_parameters():
    omega_star, W, make_h = _toy_problem()
    loss_fn = DLCLoss(rho=1.0, lam=0.4, mu=3.0, n_samples=4, neighborhood=GaussianNeighborhood(0.7))

    def f(W):
        return loss_fn(make_h(W), omega_star, generator=torch.Generator().manual_seed(11)).loss

    assert torch.autograd.gradcheck(f, (W,), eps=1e-6, atol=1e-6)


def test_gradcheck_wrt_trainable_lam_and_mu():
    omega_star, W, make_h = _toy_problem()
    loss_fn = DLCLoss(lam=0.4, mu=3.0, n_samples=4, learn_lam=True, learn_mu=True).double()
    a = torch.tensor(0.3, dtype=F64, requires_grad=True)
    b = torch.tensor(0.9, dtype=F64, requires_grad=True)

    def f(W, a, b):
        return torch.func.functional_call(loss_fn, {"lam_logit": a, "mu_log": b}, (make_h(W), omega_star),
                                          {"generator": torch.Generator().manual_seed(5)}).loss

    assert torch.autograd.gradcheck(f, (W, a, b), eps=1e-6, atol=1e-6)


# --- the batched-call contract -------------------------------------------------------------------
@pytest.mark.parametrize("K", [1, 3, 10])
def test_h_is_called_once_on_all_points(K):
    B, d = 6, 4
    omega_star = torch.randn(B, d)
    calls = []

    def h(omega):
        calls.append(omega.detach().clone())
        return omega.pow(2).sum(-1)

    res = DLCLoss(n_samples=K, lam=0.3)(h, omega_star)
    assert len(calls) == 1
    pts = calls[0]
    assert pts.shape == (1 + 2 * K, B, d)
    torch.testing.assert_close(pts[0], omega_star)
    torch.testing.assert_close(pts[1:1 + K], res.omega)
    torch.testing.assert_close(pts[1 + K:], 0.7 * omega_star + 0.3 * res.omega)
    torch.testing.assert_close(res.omega_tilde, pts[1 + K:])
    assert res.h_star.shape == (B,) and res.h_omega.shape == res.sq_dist.shape == (K, B)


def _eq11_by_hand(h, omega_star, omega, lam, mu, rho):
    """Eq. 11 written out datapoint by datapoint and sample by sample, in Python float arithmetic."""
    K, B, _ = omega.shape
    hs = h(omega_star).tolist()  # h is a per-datapoint loss: evaluate whole batches, index by i
    ho = [h(omega[k]).tolist() for k in range(K)]
    ht = [h((1 - lam) * omega_star + lam * omega[k]).tolist() for k in range(K)]
    d2 = [(omega[k] - omega_star).pow(2).sum(-1).tolist() for k in range(K)]
    total = 0.0
    for i in range(B):
        acc = 0.0
        for k in range(K):
            a, b, c, q = hs[i], ho[k][i], ht[k][i], mu / 2 * d2[k][i]
            acc += max(0.0, a - c) + max(0.0, a - b + q) + max(0.0, c - (1 - lam) * a - lam * b + lam * (1 - lam) * q)
        total += hs[i] + rho * acc / K
    return total / B


@pytest.mark.parametrize("learn", [False, True])
def test_loss_matches_eq_11_written_out_by_hand(learn):
    omega_star, W, make_h = _toy_problem()
    h = make_h(W)
    loss_fn = DLCLoss(rho=0.7, lam=0.4, mu=3.0, n_samples=3, learn_lam=learn, learn_mu=learn).double()
    res = loss_fn(h, omega_star, generator=torch.Generator().manual_seed(4))
    expected = _eq11_by_hand(h, omega_star, res.omega, res.lam.item(), res.mu.item(), 0.7)  # λ, μ as used
    assert res.gamma.item() > 0 and res.xi.item() > 0  # every hinge is active somewhere
    assert res.loss.item() == pytest.approx(expected, rel=1e-10)
    assert set(res.as_dict()) == {"loss", "base", "eps", "gamma", "xi", "lam", "mu"}
    assert res.hinge.item() == pytest.approx((res.eps + res.gamma + res.xi).item())


def test_fused_hinges_equal_the_reference_hinge_terms():
    omega_star, W, make_h = _toy_problem()
    res = DLCLoss(rho=1.0, lam=0.3, mu=4.0, n_samples=5).double()(make_h(W), omega_star)
    ref = hinge_terms(res.h_star, res.h_omega, res.h_tilde, res.sq_dist, 0.3, 4.0)
    for got, want in zip((res.eps_k, res.gamma_k, res.xi_k), ref):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("lam,mu", [(0.3, 4.0), (0.0, 0.0), (1.0, 2.5)])
def test_hinge_coefficients_rows(lam, mu):
    C = hinge_coefficients(lam, mu)
    expected = torch.tensor([[1, 0, -1, 0], [1, -1, 0, mu / 2], [-(1 - lam), -lam, 1, lam * (1 - lam) * mu / 2]],
                            dtype=torch.float64)
    torch.testing.assert_close(C, expected, rtol=0, atol=1e-15)
    torch.testing.assert_close(hinge_coefficients(torch.tensor(lam, dtype=F64), torch.tensor(mu, dtype=F64)),
                               expected, rtol=0, atol=1e-15)
    assert hinge_coefficients(lam, mu, constraints=(13,))[[0, 2]].abs().sum() == 0


@pytest.mark.parametrize("subset", [(), (12,), (13,), (14,), (12, 14), (13, 14)])
def test_constraint_subsets_zero_the_disabled_terms(subset):
    omega_star, W, make_h = _toy_problem()
    kwargs = dict(rho=1.0, lam=0.4, mu=5.0, n_samples=6)
    full = DLCLoss(**kwargs)(make_h(W), omega_star, generator=torch.Generator().manual_seed(2))
    part = DLCLoss(constraints=subset, **kwargs)(make_h(W), omega_star, generator=torch.Generator().manual_seed(2))
    total = torch.zeros_like(full.h_star)
    for eq, name in zip(CONSTRAINTS, ("eps_k", "gamma_k", "xi_k")):
        got, ref = getattr(part, name), getattr(full, name)
        if eq in subset:
            torch.testing.assert_close(got, ref)
            total = total + ref.mean(0)
        else:
            assert torch.count_nonzero(got) == 0
    assert full.gamma.item() > 0 and full.xi.item() > 0  # so the zeros above are not trivially true
    torch.testing.assert_close(part.loss, (full.h_star + total).mean())


def test_batch_reduction_is_hinge_of_batch_means_with_shared_noise():
    omega_star, W, make_h = _toy_problem()
    h = make_h(W)
    lam, mu, rho, K = 0.3, 4.0, 2.0, 5
    res = DLCLoss(rho=rho, lam=lam, mu=mu, n_samples=K, reduction="batch")(h, omega_star)
    noise = res.omega - omega_star  # [K, B, d]
    torch.testing.assert_close(noise, noise[:, :1].expand_as(noise))  # one draw for the whole batch
    hs = h(omega_star).mean().item()
    loss, eps_sum = hs, 0.0
    for k in range(K):
        ho = h(res.omega[k]).mean().item()
        ht = h((1 - lam) * omega_star + lam * res.omega[k]).mean().item()
        d2 = (res.omega[k] - omega_star).pow(2).sum(-1).mean().item()
        e = max(0.0, hs - ht)
        g = max(0.0, hs - ho + mu / 2 * d2)
        x = max(0.0, ht - (1 - lam) * hs - lam * ho + lam * (1 - lam) * mu / 2 * d2)
        loss += rho * (e + g + x) / K
        eps_sum += e
    assert res.loss.item() == pytest.approx(loss, rel=1e-10)
    assert res.eps.item() == pytest.approx(eps_sum / K, rel=1e-10, abs=1e-14)
    assert res.h_star.shape == () and res.h_omega.shape == (K,)


def test_generator_makes_the_draw_reproducible():
    omega_star, W, make_h = _toy_problem()
    loss_fn = DLCLoss(n_samples=3)
    r1 = loss_fn(make_h(W), omega_star, generator=torch.Generator().manual_seed(9))
    r2 = loss_fn(make_h(W), omega_star, generator=torch.Generator().manual_seed(9))
    r3 = loss_fn(make_h(W), omega_star, generator=torch.Generator().manual_seed(10))
    assert torch.equal(r1.omega, r2.omega) and r1.loss.item() == r2.loss.item()
    assert not torch.equal(r1.omega, r3.omega)


# --- trainable λ and μ (§4.2) ---------------------------------------------------------------------
def test_learn_lam_and_mu_create_parameters_with_the_reparametrisation():
    loss_fn = DLCLoss(lam=0.2, mu=3.0, learn_lam=True, learn_mu=True)
    names = dict(loss_fn.named_parameters())
    assert set(names) == {"lam_logit", "mu_log"}
    assert loss_fn.lam.item() == pytest.approx(0.2) and loss_fn.mu.item() == pytest.approx(3.0)
    with torch.no_grad():
        names["lam_logit"].fill_(1.5)
        names["mu_log"].fill_(-0.5)
    assert loss_fn.lam.item() == pytest.approx(1 / (1 + math.exp(-1.5)))
    assert loss_fn.mu.item() == pytest.approx(math.exp(-0.5))
    assert list(DLCLoss().parameters()) == []  # fixed λ, μ by default


def test_one_sgd_step_pushes_a_trainable_mu_down():
    """μ only adds to γ and ξ, so under the same loss a trainable μ is pushed toward 0 (book, ch. 3)."""
    omega_star = torch.randn(8, 2, dtype=F64)
    loss_fn = DLCLoss(mu=4.0, learn_mu=True).double()  # μ > 2 on ‖ω − ω*‖² -> γ > 0
    opt = torch.optim.SGD(loss_fn.parameters(), lr=0.01)
    res = loss_fn(quadratic_around(omega_star), omega_star, generator=torch.Generator().manual_seed(0))
    assert res.gamma.item() > 0
    mu_before = loss_fn.mu.item()
    res.loss.backward()
    assert loss_fn.mu_log.grad.item() > 0
    opt.step()
    assert loss_fn.mu.item() < mu_before


# --- bad input -----------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs,word", [
    (dict(lam=-0.1), "lam"), (dict(lam=1.5), "lam"), (dict(lam=float("nan")), "lam"),
    (dict(mu=-1.0), "mu"), (dict(mu=float("nan")), "mu"), (dict(rho=-0.5), "rho"),
    (dict(mu=float("inf")), "mu.*finite"), (dict(rho=float("inf")), "rho.*finite"),
    (dict(rho=float("nan")), "rho"), (dict(lam="half"), "lam"),
    (dict(n_samples=0), "n_samples"), (dict(n_samples=True), "n_samples"), (dict(n_samples=2.0), "n_samples"),
    (dict(constraints=(11, 13)), "subset"), (dict(constraints=12), "subset"), (dict(constraints="12"), "subset"),
    (dict(reduction="sum"), "reduction"),
    (dict(lam=0.0, learn_lam=True), "0 < lam < 1"), (dict(lam=1.0, learn_lam=True), "0 < lam < 1"),
    (dict(mu=0.0, learn_mu=True), "mu > 0"),
])
def test_bad_constructor_arguments(kwargs, word):
    with pytest.raises(ValueError, match=word):
        DLCLoss(**kwargs)


@pytest.mark.parametrize("lam,mu,word", [(-0.5, 1.0, "lam"), (torch.tensor([0.2, 1.2]), 1.0, "lam"),
                                         (0.5, -2.0, "mu"), (0.5, torch.tensor(float("nan")), "mu")])
def test_hinge_terms_bad_lam_mu(lam, mu, word):
    with pytest.raises(ValueError, match=word):
        hinge_terms(torch.zeros(2), torch.zeros(2), torch.zeros(2), torch.zeros(2), lam, mu)


@pytest.mark.parametrize("shape", [(4,), (2, 4, 3), ()])
def test_omega_star_must_be_2d(shape):
    with pytest.raises(ValueError, match=r"\[B, d\]"):
        DLCLoss()(lambda w: w.sum(-1), torch.zeros(shape))


def test_omega_star_must_be_a_float_tensor():
    with pytest.raises(TypeError, match="tensor"):
        DLCLoss()(lambda w: w.sum(-1), [[0.0, 1.0]])
    with pytest.raises(TypeError, match="floating-point"):
        DLCLoss()(lambda w: w.sum(-1), torch.zeros(2, 3, dtype=torch.long))


@pytest.mark.parametrize("h", [
    lambda w: w.sum(),  # reduces everything
    lambda w: w[0].sum(-1),  # evaluates ω* only: [B]
    lambda w: w,  # forgets to reduce d
    lambda w: w.sum(-1).tolist(),  # not a tensor
])
def test_h_with_the_wrong_output_shape(h):
    with pytest.raises(ValueError, match="expected"):
        DLCLoss(n_samples=2)(h, torch.zeros(3, 2))


@pytest.mark.parametrize("where,bad,name", [(0, float("nan"), "h\\(omega\\*\\)"), (1, float("inf"), "h\\(omega\\)"),
                                            (-1, float("-inf"), "h\\(omega_tilde\\)")])
def test_non_finite_h_is_flagged_and_named_on_request(where, bad, name):
    def h(w):
        out = w.pow(2).sum(-1).clone()
        out[where, 0] = bad
        return out

    res = DLCLoss(n_samples=2)(h, torch.zeros(3, 2))  # default: no host read, a device-side flag
    assert res.finite.dtype == torch.bool and not res.finite.item()
    with pytest.raises(ValueError, match="non-finite.*" + name):
        DLCLoss(n_samples=2, check_finite=True)(h, torch.zeros(3, 2))


def test_finite_h_sets_the_flag():
    res = DLCLoss(n_samples=2, check_finite=True)(lambda w: w.pow(2).sum(-1), torch.zeros(3, 2))
    assert res.finite.item()


def test_cached_constants_follow_the_module_dtype():
    omega_star = torch.randn(3, 2)
    loss_fn = DLCLoss(lam=0.3, mu=0.1)
    assert loss_fn(quadratic_around(omega_star), omega_star).lam.dtype == torch.float32
    res = loss_fn.double()(quadratic_around(omega_star.double()), omega_star.double())
    assert res.lam.dtype == torch.float64 and res.lam.item() == 0.3


# --- device / dtype ------------------------------------------------------------------------------
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("learn", [False, True])
def test_outputs_follow_input_device_and_dtype(device, dtype, learn):
    omega_star = torch.randn(4, 3, device=device, dtype=dtype)
    loss_fn = DLCLoss(n_samples=2, learn_lam=learn, learn_mu=learn).to(device)
    gen = torch.Generator(device=device).manual_seed(0)
    res = loss_fn(quadratic_around(omega_star), omega_star, generator=gen)
    for name in ("loss", "base", "eps", "gamma", "xi", "h_omega", "sq_dist", "omega", "omega_tilde", "lam", "mu"):
        t = getattr(res, name)
        assert t.dtype == dtype and t.device.type == device, name


def test_fixed_lam_and_mu_are_not_rounded_to_float32():
    omega_star = torch.randn(2, 3, dtype=F64)
    res = DLCLoss(lam=0.3, mu=0.1)(quadratic_around(omega_star), omega_star)
    assert res.lam.item() == 0.3 and res.mu.item() == 0.1  # exact: a float32 store gives 0.30000001192...
    torch.testing.assert_close(res.omega_tilde, 0.7 * omega_star + 0.3 * res.omega, rtol=0, atol=1e-15)
