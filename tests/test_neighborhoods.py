"""Tests of the neighbour samplers ω ~ N(ω*): shapes, dtype/device, reproducibility, shared noise,
the simplex chart, the SE(3) and corner charts' dimensions, empirical spread, bad input."""
import pytest
import torch
import torch.nn.functional as F

from dlc_teach.neighborhoods import (
    CornerNeighborhood,
    EulerNeighborhood,
    GaussianNeighborhood,
    SimplexNeighborhood,
)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])

# (sampler, d) pairs that are valid
SAMPLERS = [
    (GaussianNeighborhood(0.5), 5),
    (SimplexNeighborhood(1.0), 10),
    (EulerNeighborhood(sigma_deg=2.0, sigma_t=0.1), 6),
    (CornerNeighborhood(sigma_px=4.0), 8),
]
IDS = [type(s).__name__ for s, _ in SAMPLERS]


def _omega_star(sampler, B, d, **kw):
    if isinstance(sampler, SimplexNeighborhood):
        return F.one_hot(torch.arange(B) % d, d).to(**kw)
    return torch.randn(B, d, **kw)


@pytest.mark.parametrize("sampler,d", SAMPLERS, ids=IDS)
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shared", [False, True])
def test_shape_dtype_device_follow_omega_star(sampler, d, device, dtype, shared):
    omega_star = _omega_star(sampler, 7, d, dtype=dtype, device=device)
    out = sampler.sample(omega_star, 4, shared=shared)
    assert out.shape == (4, 7, d)
    assert out.dtype == dtype and out.device.type == device
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("sampler,d", SAMPLERS, ids=IDS)
def test_generator_reproducibility(sampler, d):
    omega_star = _omega_star(sampler, 3, d, dtype=torch.float64)
    a = sampler.sample(omega_star, 5, generator=torch.Generator().manual_seed(1))
    b = sampler.sample(omega_star, 5, generator=torch.Generator().manual_seed(1))
    c = sampler.sample(omega_star, 5, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


@pytest.mark.parametrize("sampler,d", [s for s in SAMPLERS if not isinstance(s[0], SimplexNeighborhood)],
                         ids=[i for i in IDS if i != "SimplexNeighborhood"])
def test_shared_noise_is_the_same_for_every_batch_row(sampler, d):
    omega_star = torch.randn(6, d)
    noise = sampler.sample(omega_star, 3, shared=True) - omega_star  # [3, 6, d]
    torch.testing.assert_close(noise, noise[:, :1].expand_as(noise))
    assert not torch.allclose(noise[0], noise[1])  # but differs between samples
    free = sampler.sample(omega_star, 3, shared=False) - omega_star
    assert not torch.allclose(free[:, 0], free[:, 1])  # and differs between rows when not shared


def test_simplex_shared_noise_is_shared_before_the_softmax():
    omega_star = F.one_hot(torch.tensor([0, 3, 1]), 5).double()
    out = SimplexNeighborhood(0.8).sample(omega_star, 4, shared=True)
    logits = out.log() - omega_star  # = z − logsumexp(ω* + z): z shared up to a per-row constant
    centred = logits - logits.mean(-1, keepdim=True)
    torch.testing.assert_close(centred, centred[:, :1].expand_as(centred))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_simplex_returns_probability_vectors(dtype):
    omega_star = F.one_hot(torch.tensor([2, 0, 9, 4]), 10).to(dtype)
    out = SimplexNeighborhood(1.0).sample(omega_star, 2000, generator=torch.Generator().manual_seed(0))
    assert (out > 0).all() and (out < 1).all()
    torch.testing.assert_close(out.sum(-1), torch.ones(2000, 4, dtype=dtype))
    # the true class keeps the largest mean mass: softmax(e_c + z) favours c on average
    assert torch.equal(out.mean(0).argmax(-1), torch.tensor([2, 0, 9, 4]))


def test_simplex_matches_softmax_of_noisy_logits():
    omega_star = F.one_hot(torch.tensor([1, 2]), 3).double()
    out = SimplexNeighborhood(0.7).sample(omega_star, 2, generator=torch.Generator().manual_seed(4))
    z = torch.randn(2, 2, 3, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    torch.testing.assert_close(out, torch.softmax(omega_star + 0.7 * z, -1))


@pytest.mark.parametrize("sampler,dim", [(EulerNeighborhood(), 6), (CornerNeighborhood(), 8)])
@pytest.mark.parametrize("d", [3, 7, 9])
def test_chart_dimension_is_checked(sampler, dim, d):
    with pytest.raises(ValueError, match=f"d = {dim}"):
        sampler.sample(torch.zeros(2, d), 1)


def test_empirical_std_matches_sigma():
    g = torch.Generator().manual_seed(0)
    n = 4000
    out = GaussianNeighborhood(0.3).sample(torch.full((2, 3), 5.0, dtype=torch.float64), n, generator=g)
    noise = out - 5.0
    assert noise.mean().abs().item() < 0.02
    torch.testing.assert_close(noise.reshape(-1, 3).std(0), torch.full((3,), 0.3, dtype=torch.float64), rtol=0.05,
                               atol=0)
    out = EulerNeighborhood(sigma_deg=5.0, sigma_t=0.02).sample(torch.zeros(2, 6, dtype=torch.float64), n,
                                                                generator=g)
    expected = torch.tensor([5.0] * 3 + [0.02] * 3, dtype=torch.float64)
    torch.testing.assert_close(out.reshape(-1, 6).std(0), expected, rtol=0.05, atol=0)
    out = CornerNeighborhood(sigma_px=8.0).sample(torch.zeros(2, 8, dtype=torch.float64), n, generator=g)
    torch.testing.assert_close(out.reshape(-1, 8).std(0), torch.full((8,), 8.0, dtype=torch.float64), rtol=0.05,
                               atol=0)


@pytest.mark.parametrize("make", [
    lambda s: GaussianNeighborhood(s), lambda s: SimplexNeighborhood(s), lambda s: CornerNeighborhood(s),
    lambda s: EulerNeighborhood(sigma_deg=s), lambda s: EulerNeighborhood(sigma_t=s),
])
@pytest.mark.parametrize("sigma", [0.0, -1.0, float("nan")])
def test_bad_sigma(make, sigma):
    with pytest.raises(ValueError, match="> 0"):
        make(sigma)


@pytest.mark.parametrize("n", [0, -2, 1.5, True])
def test_bad_number_of_samples(n):
    with pytest.raises(ValueError, match="n must be an integer"):
        GaussianNeighborhood().sample(torch.zeros(2, 3), n)


@pytest.mark.parametrize("shape", [(3,), (2, 3, 4)])
def test_omega_star_must_be_2d(shape):
    with pytest.raises(ValueError, match=r"\[B, d\]"):
        GaussianNeighborhood().sample(torch.zeros(shape), 2)


def test_integer_one_hot_gets_a_clear_error():
    with pytest.raises(TypeError, match="floating-point"):
        SimplexNeighborhood().sample(F.one_hot(torch.tensor([0, 1]), 3), 2)


def test_repr_names_the_parameters():
    assert repr(EulerNeighborhood(2.0, 0.5)) == "EulerNeighborhood(sigma_deg=2.0, sigma_t=0.5)"
    assert "sigma_px=3.0" in repr(CornerNeighborhood(3))
