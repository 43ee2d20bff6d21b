"""Batches for the training loop, kept on the device when the data set fits there.

Introduced in chapter 8 ("Reproducing at full scale"). A ``TensorDataset`` (Pixel-MNIST, the toy alignment
tasks) is moved to the device once; each batch is then one ``index_select`` per tensor on the device, instead of
a ``DataLoader`` that collates items one by one on the host and copies every batch over. The order is exactly the
``DataLoader``'s (``RandomSampler`` draws ``torch.randperm(n, generator)``), so a run is the same batch for batch
whichever path serves it, and resuming replays an epoch. Other data sets, and runs under ``torchrun``, use a
``DataLoader`` with pinned memory on CUDA (so the ``non_blocking`` copies really overlap).
"""
from __future__ import annotations

from typing import Any, Iterator

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler, RandomSampler, Subset, TensorDataset

__all__ = ["ResidentTensors", "can_reside", "train_batches", "eval_indices", "eval_batches", "resident_limit_bytes"]


def resident_limit_bytes(device: torch.device) -> int:
    """The largest data set kept on ``device``: a quarter of a GPU's memory; any size on the CPU (it is there)."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory // 4
    return 1 << 62


class ResidentTensors:
    """The tensors of a ``TensorDataset`` on the device, served in batches of given indices.

    Args:
        ds: a ``TensorDataset`` whose tensors are ``[N, ...]``.
        device: where the tensors (and the batches) live.
    """

    def __init__(self, ds: TensorDataset, device: torch.device):
        self.tensors = [t.to(device) for t in ds.tensors]
        self.device = device

    def __len__(self) -> int:
        return len(self.tensors[0])

    def batches(self, order: Tensor, batch_size: int) -> "_Batches":
        """Batches of the items ``order`` ``[n]`` (CPU indices), in that order, as lists like default collation."""
        return _Batches(self.tensors, order.to(self.device), batch_size)


class _Batches:
    def __init__(self, tensors: list[Tensor], order: Tensor, batch_size: int):
        self.tensors, self.order, self.batch_size = tensors, order, batch_size

    def __len__(self) -> int:
        return -(-len(self.order) // self.batch_size)

    def __iter__(self) -> Iterator[list[Tensor]]:
        for idx in self.order.split(self.batch_size):
            yield [t.index_select(0, idx) for t in self.tensors]


def can_reside(ds: Dataset, device: torch.device, distributed: bool) -> bool:
    """Whether :class:`ResidentTensors` may serve ``ds``: a ``TensorDataset`` that fits, outside ``torchrun``."""
    if distributed or not isinstance(ds, TensorDataset):
        return False
    size = sum(t.element_size() * t.nelement() for t in ds.tensors)
    return size <= resident_limit_bytes(device)


def train_batches(ds: Dataset, resident: ResidentTensors | None, seed: int, epoch: int, batch_size: int,
                  info, device: torch.device) -> Any:
    """This epoch's shuffled batches; the order depends only on (seed, epoch), so resuming replays it.

    ``resident`` serves a ``TensorDataset`` from the device; otherwise a ``DataLoader`` (distributed sampler under
    ``torchrun``) yields host batches that the caller moves to the device.
    """
    if info.enabled:
        sampler = DistributedSampler(ds, num_replicas=info.world_size, rank=info.rank, shuffle=True, seed=seed)
        sampler.set_epoch(epoch)
    else:
        g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        if resident is not None:
            return resident.batches(torch.randperm(len(ds), generator=g), batch_size)  # RandomSampler's order
        sampler = RandomSampler(ds, generator=g)
    return DataLoader(ds, batch_size=batch_size, sampler=sampler, pin_memory=device.type == "cuda")


def eval_indices(n_train: int, eval_train_size: int, seed: int) -> Tensor:
    """The fixed random subset of at most ``eval_train_size`` training items evaluated after each epoch."""
    return torch.randperm(n_train, generator=torch.Generator().manual_seed(seed))[:min(n_train, eval_train_size)]


def eval_batches(ds: Dataset, indices: Tensor | None, batch_size: int, device: torch.device,
                 resident: ResidentTensors | None = None) -> Any:
    """Batches of ``ds`` (or of its items ``indices``) in order, from the device when ``resident`` is given."""
    if resident is not None:
        return resident.batches(indices if indices is not None else torch.arange(len(ds)), batch_size)
    sub = Subset(ds, indices.tolist()) if indices is not None else ds
    return DataLoader(sub, batch_size=batch_size, pin_memory=device.type == "cuda")
