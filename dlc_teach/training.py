"""The one training loop every experiment shares (baseline Eq. 1, or DLC Eq. 11 / Algorithm 1).

Introduced in chapter 5; chapter 8 uses its checkpoints and multi-GPU mode.
:func:`train` seeds everything from ``config.seed`` (so a baseline and a DLC run
with the same seed start from the same weights and see the same data order),
picks the device (CUDA when present), logs the objective's terms per epoch,
evaluates on the train and test sets after every epoch, writes atomic
checkpoints that load with ``torch.load(weights_only=True)``, resumes from
them exactly, and runs under ``torchrun`` with DistributedDataParallel.
"""
from __future__ import annotations

import dataclasses
import json
import platform
import random
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, Subset
from tqdm.auto import tqdm

from . import distributed
from .checkpoint import FORMAT_VERSION, capture_rng, json_atomic, load_checkpoint, restore_rng, save_atomic
from .presets import format_config
from .tasks.base import Experiment

__all__ = ["train", "evaluate_model", "seed_everything", "provenance"]

_TERMS = ("objective", "base", "eps", "gamma", "xi", "lam", "mu")  # logged per step, averaged per epoch


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _git_commit() -> str:
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if out.returncode != 0:
        return "unknown"
    return out.stdout.strip() + ("-dirty" if dirty.returncode == 0 and dirty.stdout.strip() else "")


def provenance(device: torch.device) -> dict[str, Any]:
    """Where and with what a result was produced: git commit, device name, versions, UTC date."""
    from . import __version__

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({platform.machine()})"
    return {"git_commit": _git_commit(), "device": name,
            "versions": {"dlc_teach": __version__, "torch": torch.__version__, "numpy": np.__version__,
                         "python": platform.python_version()},
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def _to_device(batch: Any, device: torch.device) -> Any:
    """Move every tensor inside ``batch`` (tensors, tuples, lists, dicts) to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # namedtuple
        return type(batch)(*(_to_device(v, device) for v in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch


class _OnDevice:
    """A loader whose batches arrive already on ``device`` (what ``loss_fn`` and ``evaluate`` receive)."""

    def __init__(self, loader: DataLoader, device: torch.device):
        self.loader, self.device = loader, device

    def __iter__(self):
        return (_to_device(b, self.device) for b in self.loader)

    def __len__(self):
        return len(self.loader)


def _train_loader(ds, cfg, epoch: int, batch_size: int, info: distributed.DistInfo) -> DataLoader:
    """This epoch's shuffled loader; the order depends only on (seed, epoch), so resuming replays it."""
    if info.enabled:
        sampler = DistributedSampler(ds, num_replicas=info.world_size, rank=info.rank, shuffle=True, seed=cfg.seed)
        sampler.set_epoch(epoch)
    else:
        g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
        sampler = RandomSampler(ds, generator=g)
    return DataLoader(ds, batch_size=batch_size, sampler=sampler)


def _eval_loaders(cfg, train_ds, test_ds, dev: torch.device) -> dict[str, _OnDevice]:
    """The whole test set, and a fixed random subset of at most ``cfg.eval_train_size`` training items."""
    n_eval = min(len(train_ds), cfg.eval_train_size)
    subset = torch.randperm(len(train_ds), generator=torch.Generator().manual_seed(cfg.seed))[:n_eval]
    return {split: _OnDevice(DataLoader(ds, batch_size=cfg.batch_size), dev)
            for split, ds in (("train", Subset(train_ds, subset.tolist())), ("test", test_ds))}


def evaluate_model(experiment: Experiment, model, device: str | torch.device | None = None) -> dict[str, float]:
    """``train_*`` (on the same subset :func:`train` uses) and ``test_*`` metrics of ``model``."""
    dev = distributed.pick_device(device, distributed.DistInfo())
    seed_everything(experiment.config.seed)
    train_ds, test_ds = experiment.datasets()
    return _evaluate(experiment, model.to(dev), _eval_loaders(experiment.config, train_ds, test_ds, dev))


def _evaluate(experiment: Experiment, model, loaders: dict[str, _OnDevice]) -> dict[str, float]:
    was_training, out = model.training, {}
    model.eval()
    with torch.no_grad():
        for split, loader in loaders.items():
            out.update({f"{split}_{k}": float(v) for k, v in experiment.evaluate(model, loader).items()})
    model.train(was_training)
    return out


def _check_resumable(ckpt: dict, experiment: Experiment, dlc: bool, world_size: int) -> None:
    if ckpt["experiment"] != experiment.name or ckpt["dlc"] != dlc:
        raise ValueError(f"checkpoint is from experiment {ckpt['experiment']!r} (dlc={ckpt['dlc']}); cannot resume "
                         f"{experiment.name!r} (dlc={dlc}) from it")
    now = dataclasses.asdict(experiment.config)
    diff = sorted(k for k in set(now) | set(ckpt["config"]) if k != "epochs" and now.get(k) != ckpt["config"].get(k))
    if diff:
        raise ValueError(f"checkpoint config differs from this run's in {diff}; only 'epochs' may change on resume")
    if ckpt["world_size"] != world_size:
        raise ValueError(f"checkpoint was written by {ckpt['world_size']} process(es), this run has {world_size}")


def train(experiment: Experiment, *, dlc: bool = True, out_dir: str | Path | None = None, resume: bool = False,
          device: str | torch.device | None = None, progress: bool = True, max_steps: int | None = None,
          log: Callable[[str], Any] | None = print) -> dict[str, Any]:
    """Train ``experiment`` with the DLC objective (Eq. 11) or the baseline (Eq. 1); return the results dict.

    Args:
        experiment: an :class:`~dlc_teach.tasks.base.Experiment` (its ``config`` is the preset).
        dlc: True: ``experiment.dlc_loss()(h, ω*).loss`` (Eq. 11); False: ``experiment.base_loss`` (Eq. 1).
        out_dir: where ``checkpoint.pt`` (every ``config.checkpoint_every`` epochs and at the end) and
            ``results.json`` go; None writes nothing.
        resume: continue from ``out_dir/checkpoint.pt`` (starts afresh, saying so, when there is none).
            Only ``epochs`` may differ from the checkpoint's config (to extend a run).
        device: e.g. ``"cuda:1"``; default CUDA when present, else CPU.
        progress: show tqdm progress bars (terminal and JupyterLab).
        max_steps: stop after this many optimiser steps in total (the partial epoch is evaluated and logged,
            ``stopped_early`` is set, and no checkpoint is written for it).
        log: called with one line per epoch (and the config at the start); None for silence.

    Returns:
        The results dict written to ``results.json``: ``experiment``, ``preset`` (the config as a dict),
        ``dlc``, ``main_metric``, ``history`` (one dict per epoch: the mean per-step ``objective``, ``base``,
        and for DLC ``eps``/``gamma``/``xi``/``lam``/``mu``; ``lr``; ``train_*`` metrics on a fixed subset of
        at most ``config.eval_train_size`` training items; ``test_*`` metrics on the whole test set),
        ``final`` (the last epoch's metrics), ``epochs_completed``, ``steps``, ``stopped_early``,
        ``world_size``, provenance (``git_commit``, ``device``, ``versions``, ``date``) and ``wall_time_s``.
        The returned dict (not the JSON) also holds ``"model"``, the trained ``nn.Module`` in eval mode, and
        ``"objective"``, the :class:`~dlc_teach.objective.DLCLoss` module (None for the baseline).
    """
    if not isinstance(experiment, Experiment):
        raise TypeError(f"experiment must be a dlc_teach Experiment, got {type(experiment).__name__}")
    if max_steps is not None and (isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1):
        raise ValueError(f"max_steps must be a positive integer or None, got {max_steps!r}")
    if resume and out_dir is None:
        raise ValueError("resume=True needs out_dir (the directory holding checkpoint.pt)")
    info, dev = distributed.setup(device)
    try:
        return _train(experiment, dlc, Path(out_dir) if out_dir is not None else None, resume, dev, info,
                      progress, max_steps, log if (log is not None and info.is_main) else (lambda *_: None))
    finally:
        distributed.teardown(info)


def _train(experiment, dlc, out, resume, dev, info, progress, max_steps, say) -> dict[str, Any]:
    t_start = time.perf_counter()
    cfg = experiment.config
    say(format_config(cfg, f"{experiment.name}: preset {cfg.preset!r}, {'DLC (Eq. 11)' if dlc else 'baseline'}, "
                           f"device {dev}" + (f" x {info.world_size} processes" if info.enabled else "")))
    if cfg.batch_size % info.world_size:
        raise ValueError(f"batch_size {cfg.batch_size} is the global batch and must be divisible by the "
                         f"{info.world_size} processes")
    seed_everything(cfg.seed)
    train_ds, test_ds = experiment.datasets()
    seed_everything(cfg.seed)  # the same initial weights whatever the datasets consumed, with or without DLC
    model = experiment.build_model().to(dev)
    objective = experiment.dlc_loss().to(dev) if dlc else None
    params = list(model.parameters()) + (list(objective.parameters()) if objective is not None else [])
    optimizer = experiment.make_optimizer(params)
    scheduler = experiment.make_scheduler(optimizer)
    noise = torch.Generator(device=dev).manual_seed(cfg.seed + 1 + info.rank)  # neighbour draws ω ~ N(ω*)

    eval_loaders = _eval_loaders(cfg, train_ds, test_ds, dev)

    start_epoch, step, history, wall_before = 0, 0, [], 0.0
    ckpt_path = out / "checkpoint.pt" if out is not None else None
    if resume and ckpt_path.is_file():
        ckpt = load_checkpoint(ckpt_path)
        _check_resumable(ckpt, experiment, dlc, info.world_size)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(ckpt["scheduler"])
        if objective is not None:
            objective.load_state_dict(ckpt["dlc_loss"])
        restore_rng(ckpt["rng"][info.rank], noise)
        start_epoch, step, history, wall_before = ckpt["epoch"], ckpt["step"], ckpt["history"], ckpt["wall_time_s"]
        say(f"resumed from {ckpt_path} after epoch {start_epoch} ({step} steps)")
    elif resume:
        say(f"no checkpoint at {ckpt_path}; starting from scratch")

    net = model
    if info.enabled:
        net = DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)
    model.train()
    stopped = False
    for epoch in range(start_epoch, cfg.epochs):
        loader = _OnDevice(_train_loader(train_ds, cfg, epoch, cfg.batch_size // info.world_size, info), dev)
        sums, n_batches = torch.zeros(len(_TERMS), device=dev), 0
        bar = tqdm(loader, desc=f"{experiment.name} {'dlc' if dlc else 'base'} epoch {epoch + 1}/{cfg.epochs}",
                   disable=not (progress and info.is_main), leave=False, dynamic_ncols=True)
        for batch in bar:
            if objective is not None:
                h, omega_star = experiment.loss_fn(net, batch)
                res = objective(h, omega_star, generator=noise)
                loss = res.loss
                terms = torch.stack([t.detach().float() for t in (res.loss, res.base, res.eps, res.gamma, res.xi,
                                                                  res.lam, res.mu)])
            else:
                loss = experiment.base_loss(net, batch)
                terms = torch.cat([loss.detach().float().expand(2), sums.new_zeros(len(_TERMS) - 2)])  # no hinges
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if objective is not None:
                distributed.all_reduce_grads(objective, info)
            optimizer.step()
            sums += terms
            n_batches += 1
            step += 1
            if n_batches % 20 == 1:
                bar.set_postfix(loss=f"{float(terms[0]):.4g}")
            if max_steps is not None and step >= max_steps:
                stopped = True
                break
        bar.close()
        if info.enabled:
            dist.all_reduce(sums)
            sums /= info.world_size
        means = (sums / max(n_batches, 1)).tolist()
        entry = {"epoch": epoch + 1, "steps": step, "lr": float(optimizer.param_groups[0]["lr"])}
        entry.update({k: v for k, v in zip(_TERMS, means) if objective is not None or k in ("objective", "base")})
        if scheduler is not None and not stopped:
            scheduler.step()
        entry.update(_evaluate(experiment, model, eval_loaders))
        history.append(entry)
        say(f"epoch {epoch + 1}/{cfg.epochs}  " + "  ".join(f"{k} {v:.4g}" for k, v in entry.items()
                                                           if k not in ("epoch", "steps", "lr")))
        if stopped:
            say(f"stopped after max_steps={max_steps} optimiser steps (epoch {epoch + 1} incomplete)")
            break
        last = epoch + 1 == cfg.epochs
        if ckpt_path is not None and ((epoch + 1) % cfg.checkpoint_every == 0 or last):
            _save(ckpt_path, experiment, dlc, epoch + 1, step, model, optimizer, scheduler, objective, history,
                  noise, info, wall_before + time.perf_counter() - t_start)

    results = {
        "experiment": experiment.name, "preset": dataclasses.asdict(cfg), "dlc": dlc,
        "main_metric": experiment.main_metric, "history": history,
        "final": {k: v for k, v in (history[-1] if history else {}).items() if k.startswith(("train_", "test_"))},
        "epochs_completed": history[-1]["epoch"] - int(stopped) if history else 0, "steps": step,
        "stopped_early": stopped, "world_size": info.world_size,
        **provenance(dev), "wall_time_s": round(wall_before + time.perf_counter() - t_start, 3),
    }
    if out is not None and info.is_main:
        json_atomic(json.dumps(results, indent=2) + "\n", out / "results.json")
    model.eval()
    return {**results, "model": model, "objective": objective}


def _save(path, experiment, dlc, epoch, step, model, optimizer, scheduler, objective, history, noise, info, wall):
    """Write the checkpoint (rank 0 only; every rank contributes its RNG state)."""
    rng = capture_rng(noise)
    if info.enabled:
        gathered = [None] * info.world_size
        dist.all_gather_object(gathered, rng)
        rng = gathered
    else:
        rng = [rng]
    if info.is_main:
        save_atomic({
            "format": FORMAT_VERSION, "experiment": experiment.name, "dlc": dlc,
            "config": dataclasses.asdict(experiment.config), "epoch": epoch, "step": step,
            "world_size": info.world_size, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "dlc_loss": objective.state_dict() if objective is not None else None,
            "history": history, "rng": rng, "wall_time_s": wall, "python": sys.version.split()[0],
        }, path)
    if info.enabled:
        dist.barrier()
