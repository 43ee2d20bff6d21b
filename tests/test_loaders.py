"""Device-resident batches (dlc_teach.loaders) and the training loop's deferred non-finite check."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch.utils.data import DataLoader, RandomSampler, TensorDataset

from dlc_teach import loaders
from dlc_teach.training import train
from support_experiment import SynthRegression

NOT_DISTRIBUTED = SimpleNamespace(enabled=False, world_size=1, rank=0)


def test_resident_batches_are_the_dataloaders_batches():
    """Same items, same order, same values as DataLoader(RandomSampler(generator)): runs do not change."""
    ds = TensorDataset(torch.randn(53, 3, 2), torch.randint(0, 10, (53,)))
    resident = loaders.ResidentTensors(ds, torch.device("cpu"))
    fast = list(loaders.train_batches(ds, resident, seed=7, epoch=2, batch_size=8, info=NOT_DISTRIBUTED,
                                      device=torch.device("cpu")))
    g = torch.Generator().manual_seed(7 * 1_000_003 + 2)
    slow = list(DataLoader(ds, batch_size=8, sampler=RandomSampler(ds, generator=g)))
    assert len(fast) == len(slow) == 7
    for a, b in zip(fast, slow):
        assert type(a) is type(b) and all(torch.equal(x, y) for x, y in zip(a, b))
    other = list(loaders.train_batches(ds, resident, seed=7, epoch=3, batch_size=8, info=NOT_DISTRIBUTED,
                                       device=torch.device("cpu")))
    assert not torch.equal(other[0][1], fast[0][1])  # a new order each epoch


def test_resident_eval_batches_follow_the_subset_in_order():
    ds = TensorDataset(torch.arange(20.0)[:, None])
    idx = loaders.eval_indices(20, 6, seed=1)
    batches = loaders.eval_batches(ds, idx, 4, torch.device("cpu"), loaders.ResidentTensors(ds, torch.device("cpu")))
    got = torch.cat([b[0][:, 0] for b in batches])
    assert got.tolist() == idx.float().tolist() and len(batches) == 2


def test_only_tensor_datasets_outside_torchrun_reside():
    ds = TensorDataset(torch.zeros(4, 2))
    assert loaders.can_reside(ds, torch.device("cpu"), distributed=False)
    assert not loaders.can_reside(ds, torch.device("cpu"), distributed=True)
    assert not loaders.can_reside([torch.zeros(2)] * 4, torch.device("cpu"), distributed=False)


class ExplodingRegression(SynthRegression):
    """h turns non-finite on the third step (a stand-in for a diverging network)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = 0

    def loss_fn(self, model, batch):
        h, y = super().loss_fn(model, batch)
        self.calls += 1
        bad = self.calls == 3
        return (lambda omega: h(omega) * (float("nan") if bad else 1.0)), y


@pytest.mark.parametrize("dlc", [True, False])
def test_a_non_finite_loss_stops_training_at_the_end_of_its_epoch(dlc):
    exp = ExplodingRegression.from_preset("tiny")
    with pytest.raises(FloatingPointError, match=r"not finite in [1-6] of 6 steps of epoch 1"):
        train(exp, dlc=dlc, progress=False, log=None)
