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
import random
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from . import distributed, loaders
from .checkpoint import FORMAT_VERSION, capture_rng, json_atomic, load_checkpoint, restore_rng, save_atomic
from .presets import format_config
from .provenance import code_and_data_mismatch, provenance
from .tasks.base import Experiment

__all__ = ["train", "evaluate_model", "seed_everything", "provenance"]

_TERMS = ("objective", "base", "eps", "gamma", "xi", "lam", "mu")  # logged per step, averaged per epoch


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _float_dtype(model: torch.nn.Module) -> torch.dtype:
    """The dtype of the model's first floating-point parameter (float32 when it has none)."""
    return next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)


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


def _resident(train_ds, test_ds, dev: torch.device, info: distributed.DistInfo) -> dict:
    """``TensorDataset``s that fit on the device, moved there once (see :mod:`dlc_teach.loaders`); else None."""
    return {split: loaders.ResidentTensors(ds, dev) if loaders.can_reside(ds, dev, info.enabled) else None
            for split, ds in (("train", train_ds), ("test", test_ds))}


def _eval_loaders(cfg, train_ds, test_ds, dev: torch.device, resident: dict | None = None) -> dict:
    """The whole test set, and a fixed random subset of at most ``cfg.eval_train_size`` training items."""
    resident = resident or {}
    subset = loaders.eval_indices(len(train_ds), cfg.eval_train_size, cfg.seed)
    out = {}
    for split, ds, idx in (("train", train_ds, subset), ("test", test_ds, None)):
        batches = loaders.eval_batches(ds, idx, cfg.batch_size, dev, resident.get(split))
        out[split] = batches if resident.get(split) is not None else _OnDevice(batches, dev)
    return out


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
          log: Callable[[str], Any] | None = print, allow_mismatch: bool = False,
          command: list[str] | None = None) -> dict[str, Any]:
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
        allow_mismatch: resume even when the checkpoint was written by other code (git commit) or trained on
            other data (:meth:`~dlc_teach.tasks.base.Experiment.data_source`); a warning names the difference
            and the results record it under ``resume_mismatch``. False (default): such a resume raises.
        command: the command line recorded in the results and checkpoints (default ``sys.argv``).

    Returns:
        The results dict written to ``results.json``: ``experiment``, ``preset`` (the config as a dict),
        ``dlc``, ``main_metric``, ``history`` (one dict per epoch: the mean per-step ``objective``, ``base``,
        and for DLC ``eps``/``gamma``/``xi``/``lam``/``mu``; ``lr``; ``train_*`` metrics on a fixed subset of
        at most ``config.eval_train_size`` training items; ``test_*`` metrics on the whole test set;
        ``epoch_time_s``, the epoch's wall time with its evaluation),
        ``final`` (the last epoch's metrics), ``epochs_completed``, ``steps``, ``stopped_early``,
        ``world_size``, ``data`` (:meth:`~dlc_teach.tasks.base.Experiment.data_source`: source and sizes),
        provenance (``git_commit``, ``device``, ``versions`` incl. CUDA/cuDNN or None, ``command``, ``date``),
        ``resume_mismatch`` (what differed on a resume with ``allow_mismatch``; empty otherwise),
        ``peak_memory_bytes`` (``torch.cuda.max_memory_allocated`` of this process on CUDA; None on a CPU) and
        ``wall_time_s``.
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
                      progress, max_steps, log if (log is not None and info.is_main) else (lambda *_: None),
                      allow_mismatch=allow_mismatch, command=command)
    finally:
        distributed.teardown(info)


def _train(experiment, dlc, out, resume, dev, info, progress, max_steps, say, *, allow_mismatch=False,
           command=None) -> dict[str, Any]:
    t_start = time.perf_counter()
    if dev.type == "cuda":  # peak_memory_bytes in the results: this run's peak, not an earlier one's
        torch.cuda.reset_peak_memory_stats(dev)
    cfg = experiment.config
    say(format_config(cfg, f"{experiment.name}: preset {cfg.preset!r}, {'DLC (Eq. 11)' if dlc else 'baseline'}, "
                           f"device {dev}" + (f" x {info.world_size} processes" if info.enabled else "")))
    if cfg.batch_size % info.world_size:
        raise ValueError(f"batch_size {cfg.batch_size} is the global batch and must be divisible by the "
                         f"{info.world_size} processes")
    seed_everything(cfg.seed)
    train_ds, test_ds = experiment.datasets()
    data = experiment.data_source()  # what was loaded: recorded in the results and checkpoints
    prov = provenance(dev, command)
    seed_everything(cfg.seed)  # the same initial weights whatever the datasets consumed, with or without DLC
    model = experiment.build_model().to(dev)
    # trainable λ/μ (§4.2) live in the model's dtype, in their own parameter group (no weight decay, no clipping)
    objective = experiment.dlc_loss().to(device=dev, dtype=_float_dtype(model)) if dlc else None
    optimizer = experiment.make_optimizer(experiment.param_groups(model, objective))
    scheduler = experiment.make_scheduler(optimizer)
    noise = torch.Generator(device=dev).manual_seed(cfg.seed + 1 + info.rank)  # neighbour draws ω ~ N(ω*)

    resident = _resident(train_ds, test_ds, dev, info)  # data sets that fit live on the device
    eval_loaders = _eval_loaders(cfg, train_ds, test_ds, dev, resident)

    start_epoch, step, history, wall_before, mismatch = 0, 0, [], 0.0, []
    ckpt_path = out / "checkpoint.pt" if out is not None else None
    if resume and ckpt_path.is_file():
        ckpt = load_checkpoint(ckpt_path)
        _check_resumable(ckpt, experiment, dlc, info.world_size)
        mismatch = code_and_data_mismatch(ckpt, prov["git_commit"], data)
        if mismatch and not allow_mismatch:
            raise ValueError(f"refusing to resume from {ckpt_path}: " + "; ".join(mismatch) + ". Pass "
                             f"allow_mismatch=True (CLI: --allow-mismatch) to resume anyway, or start afresh")
        for problem in mismatch:
            warnings.warn(f"resuming from {ckpt_path} across a mismatch: {problem}", stacklevel=3)
            say(f"WARNING: resuming across a mismatch: {problem}")
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
    no_hinges = torch.zeros(len(_TERMS) - 2, device=dev)  # the baseline logs no hinge terms
    show_loss = progress and info.is_main and dev.type == "cpu"
    for epoch in range(start_epoch, cfg.epochs):
        t_epoch = time.perf_counter()
        loader = loaders.train_batches(train_ds, resident["train"], cfg.seed, epoch,
                                       cfg.batch_size // info.world_size, info, dev)
        loader = loader if resident["train"] is not None else _OnDevice(loader, dev)
        sums, n_batches = torch.zeros(len(_TERMS), device=dev), 0
        not_finite = torch.zeros((), dtype=torch.long, device=dev)  # steps with a non-finite loss, on the device
        bar = tqdm(loader, desc=f"{experiment.name} {'dlc' if dlc else 'base'} epoch {epoch + 1}/{cfg.epochs}",
                   disable=not (progress and info.is_main), leave=False, dynamic_ncols=True)
        for batch in bar:
            if objective is not None:
                h, omega_star = experiment.loss_fn(net, batch)
                res = objective(h, omega_star, generator=noise)
                loss, terms, finite = res.loss, res.terms(), res.finite
            else:
                loss = experiment.base_loss(net, batch)
                terms = torch.cat([loss.detach().float().expand(2), no_hinges])
                finite = torch.isfinite(loss)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if objective is not None:
                distributed.all_reduce_grads(objective, info)
            optimizer.step()
            sums += terms
            not_finite += ~finite  # read with the metrics below: no host sync per step
            n_batches += 1
            step += 1
            if show_loss and n_batches % 20 == 1:  # reads the device: only on the CPU, where it costs nothing
                bar.set_postfix(loss=f"{float(terms[0]):.4g}")
            if max_steps is not None and step >= max_steps:
                stopped = True
                break
        bar.close()
        if info.enabled:
            dist.all_reduce(sums)
            sums /= info.world_size
        means = (sums / max(n_batches, 1)).tolist()
        if int(not_finite):
            raise FloatingPointError(
                f"{experiment.name}: the loss was not finite in {int(not_finite)} of {n_batches} steps of epoch "
                f"{epoch + 1} ({'h(ω) at ω*, a neighbour or an interpolant' if dlc else 'the base loss'}); lower the "
                f"learning rate or check the data" + ("; DLCLoss(check_finite=True) stops at the first such step" if dlc else ""))
        entry = {"epoch": epoch + 1, "steps": step, "lr": float(optimizer.param_groups[0]["lr"])}
        entry.update({k: v for k, v in zip(_TERMS, means) if objective is not None or k in ("objective", "base")})
        if scheduler is not None and not stopped:
            scheduler.step()
        entry.update(_evaluate(experiment, model, eval_loaders))
        entry["epoch_time_s"] = round(time.perf_counter() - t_epoch, 3)  # training + evaluation (ends synced)
        history.append(entry)
        say(f"epoch {epoch + 1}/{cfg.epochs}  " + "  ".join(f"{k} {v:.4g}" for k, v in entry.items()
                                                           if k not in ("epoch", "steps", "lr", "epoch_time_s")))
        if stopped:
            say(f"stopped after max_steps={max_steps} optimiser steps (epoch {epoch + 1} incomplete)")
            break
        last = epoch + 1 == cfg.epochs
        if ckpt_path is not None and ((epoch + 1) % cfg.checkpoint_every == 0 or last):
            _save(ckpt_path, experiment, dlc, epoch + 1, step, model, optimizer, scheduler, objective, history,
                  noise, info, wall_before + time.perf_counter() - t_start, prov, data)

    results = {
        "experiment": experiment.name, "preset": dataclasses.asdict(cfg), "dlc": dlc,
        "main_metric": experiment.main_metric, "history": history,
        "final": {k: v for k, v in (history[-1] if history else {}).items() if k.startswith(("train_", "test_"))},
        "epochs_completed": history[-1]["epoch"] - int(stopped) if history else 0, "steps": step,
        "stopped_early": stopped, "world_size": info.world_size, "data": data,
        **prov, "resume_mismatch": mismatch,
        "peak_memory_bytes": torch.cuda.max_memory_allocated(dev) if dev.type == "cuda" else None,
        "wall_time_s": round(wall_before + time.perf_counter() - t_start, 3),
    }
    if out is not None and info.is_main:
        json_atomic(json.dumps(results, indent=2) + "\n", out / "results.json")
    model.eval()
    return {**results, "model": model, "objective": objective}


def _save(path, experiment, dlc, epoch, step, model, optimizer, scheduler, objective, history, noise, info, wall,
          prov, data):
    """Write the checkpoint (rank 0 only; every rank contributes its RNG state).

    Besides the state it records the code (``git_commit``), the data (``data``, from ``data_source()``) and
    the ``command`` line, so that a resume can tell when either differs."""
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
            "git_commit": prov["git_commit"], "data": data, "command": prov["command"],
        }, path)
    if info.enabled:
        dist.barrier()
