"""DLCLoss never waits for the device, and launches few kernels (issue: DLC at GPU speed).

On a GPU a base training step takes a few milliseconds, so every host-device synchronisation and every small kernel
of the objective shows in the step time. These CPU tests record every ATen op that the forward AND backward pass of
``DLCLoss`` dispatch (``TorchDispatchMode`` sees the ops below autograd, exactly those a GPU would launch) and check:

* no op that copies a device value to the host (``aten::_local_scalar_dense`` is what ``.item()``, ``bool(t)``,
  ``if t:`` and ``float(t)`` dispatch to; ``aten::is_nonzero`` and ``aten::item`` likewise);
* the number of ops that are not views (views launch no kernel) stays within a budget: 60 for the reference
  configuration (K = 3, Gaussian neighbours, a quadratic h); before this work it was 90, 4 of them host syncs.
"""
from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from dlc_teach.neighborhoods import CornerNeighborhood, EulerNeighborhood, GaussianNeighborhood, SimplexNeighborhood
from dlc_teach.objective import DLCLoss

SYNC_OPS = {"aten::_local_scalar_dense", "aten::is_nonzero", "aten::item"}
#: forward + backward, K = 3, Gaussian neighbours, quadratic h, fixed λ and μ (the default configuration)
BUDGET = 60


class OpRecorder(TorchDispatchMode):
    """Records the name of every ATen op dispatched, and whether it is a view (an alias of its input)."""

    def __init__(self):
        super().__init__()
        self.ops: list[tuple[str, bool]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append((func._schema.name, bool(func.is_view)))
        return func(*args, **(kwargs or {}))

    @property
    def syncs(self) -> list[str]:
        return [name for name, _ in self.ops if name in SYNC_OPS]

    @property
    def kernels(self) -> list[str]:
        return [name for name, view in self.ops if not view]


def record(loss_fn: DLCLoss, h_of_net, omega_star: torch.Tensor, net: torch.nn.Module) -> OpRecorder:
    """Forward + backward of ``loss_fn`` under the recorder (the network's own forward runs outside it)."""
    features = net(omega_star)  # [B, d]: the expensive part, done once and not counted
    loss_fn(h_of_net(features), omega_star)  # warm-up: per-device constants are made on the first call
    features = net(omega_star)
    gen = torch.Generator().manual_seed(0)
    with OpRecorder() as rec:
        res = loss_fn(h_of_net(features), omega_star, generator=gen)
        res.loss.backward()
        res.terms()  # what the training loop logs, still on the device
    return rec


def quadratic(features):
    return lambda omega: (omega - features).pow(2).sum(-1)  # [..., B]


def simplex_ce(features):
    logp = torch.log_softmax(features, -1)
    return lambda omega: -(omega * logp).sum(-1)


@pytest.fixture
def net():
    torch.manual_seed(0)
    return torch.nn.Linear(6, 6)


def test_default_configuration_has_no_sync_and_fits_the_budget(net):
    rec = record(DLCLoss(n_samples=3, neighborhood=GaussianNeighborhood(0.5)), quadratic, torch.randn(16, 6), net)
    assert rec.syncs == []
    assert len(rec.kernels) <= BUDGET, f"{len(rec.kernels)} non-view ops: {rec.kernels}"
    assert len(rec.kernels) >= 10  # the recorder saw the objective at all


@pytest.mark.parametrize("neighborhood,h,d", [
    (SimplexNeighborhood(1.0), simplex_ce, 6),
    (EulerNeighborhood(2.0, 0.05), quadratic, 6),
    (CornerNeighborhood(2.0), quadratic, 8),
])
@pytest.mark.parametrize("kwargs", [{}, {"learn_lam": True, "learn_mu": True}, {"reduction": "batch"},
                                    {"constraints": (13, 14)}])
def test_no_sync_in_any_configuration(neighborhood, h, d, kwargs):
    torch.manual_seed(0)
    net = torch.nn.Linear(d, d)
    omega_star = torch.softmax(torch.randn(8, d), -1) if isinstance(neighborhood, SimplexNeighborhood) \
        else torch.randn(8, d)
    rec = record(DLCLoss(n_samples=3, neighborhood=neighborhood, **kwargs), h, omega_star, net)
    assert rec.syncs == []
    assert len(rec.kernels) <= BUDGET + 25, rec.kernels  # trainable λ, μ add their own small graph


def test_check_finite_is_the_one_opt_in_sync(net):
    rec = record(DLCLoss(n_samples=3, check_finite=True), quadratic, torch.randn(16, 6), net)
    assert rec.syncs == ["aten::_local_scalar_dense"]


def test_the_recorder_catches_a_host_read():
    """The test above could not fail if the recorder missed syncs: show that it sees one."""
    with OpRecorder() as rec:
        x = torch.randn(3)
        if (x > 10).any():
            pass
        float(x.sum())
    assert len(rec.syncs) == 2
