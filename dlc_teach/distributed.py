"""Multi-process (multi-GPU) helpers for :func:`dlc_teach.training.train`.

Introduced in chapter 8 ("Reproducing at full scale"). ``torchrun`` starts one
process per GPU and sets ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``,
``MASTER_ADDR`` and ``MASTER_PORT``; :func:`setup` reads them and joins the
process group (NCCL on CUDA, Gloo on CPU). With ``WORLD_SIZE`` unset or 1
everything here is a no-op, so single-process training needs nothing special.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["DistInfo", "setup", "teardown", "pick_device", "all_reduce_grads"]


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: ``rank`` of ``world_size`` processes, ``local_rank`` on its machine."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False  # True when :func:`setup` created the process group (and must destroy it)

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Only the main process (rank 0) prints and writes files."""
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"environment variable {name} must be an integer, got {raw!r}") from None


def pick_device(device: str | torch.device | None, info: DistInfo) -> torch.device:
    """The device to train on: ``device`` if given, else ``cuda:<local_rank>`` when CUDA is present, else CPU."""
    if device is not None:
        dev = torch.device(device)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {str(device)!r} requested but CUDA is not available on this machine")
        if dev.type == "cuda" and dev.index is None:
            dev = torch.device("cuda", info.local_rank if info.enabled else torch.cuda.current_device())
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda", info.local_rank if info.enabled else torch.cuda.current_device())
    return torch.device("cpu")


def setup(device: str | torch.device | None = None) -> tuple[DistInfo, torch.device]:
    """Read the ``torchrun`` environment, join the process group if ``WORLD_SIZE > 1``, choose the device."""
    world_size = _env_int("WORLD_SIZE", 1)
    if world_size < 1:
        raise ValueError(f"WORLD_SIZE must be >= 1, got {world_size}")
    rank, local_rank = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    if world_size == 1:
        info = DistInfo()
        return info, pick_device(device, info)
    info = DistInfo(rank=rank, world_size=world_size, local_rank=local_rank)
    dev = pick_device(device, info)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    owns = False
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
        owns = True
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, owns_group=owns), dev


def teardown(info: DistInfo) -> None:
    """Leave the process group if :func:`setup` created it."""
    if info.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_grads(module: nn.Module, info: DistInfo) -> None:
    """Average the gradients of ``module`` (not wrapped in DDP, e.g. a trainable λ/μ) over all processes."""
    if not info.enabled:
        return
    for p in module.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad /= info.world_size
