"""Helpers for experiments whose ``ci`` models are trained once and stored (chapters 6 and 7).

Introduced in chapter 6. A store module (``tasks/registration/store.py``, ``tasks/homography/store.py``) names its
runs in ``RUNS`` and writes each run's checkpoint and results JSON; these helpers are what both do alike: the mean
objective of a run's first steps on one CPU thread (recorded at store time, recomputed by a fast test), loading a
stored model, and the command line ``python -m <store module> [TAG ...]``.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from ..checkpoint import load_checkpoint
from ..training import train
from .base import Experiment

__all__ = ["first_objective", "load_model", "store_main"]


def first_objective(exp: Experiment, dlc: bool, steps: int) -> float:
    """The mean objective of the first ``steps`` optimiser steps of ``exp`` on the CPU, on one torch thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        res = train(exp, dlc=dlc, max_steps=steps, progress=False, log=None, device="cpu")
    finally:
        torch.set_num_threads(before)
    return res["history"][0]["objective"]


def load_model(exp: Experiment, path: str | Path) -> nn.Module:
    """``exp``'s model with the weights of the stored checkpoint at ``path`` (``weights_only=True``), in eval mode."""
    model = exp.build_model()
    model.load_state_dict(load_checkpoint(path)["model"])
    return model.eval()


def store_main(runs: dict, store_run: Callable[[str], dict], argv: list[str] | None = None) -> None:
    """Store the runs named in ``argv`` (default: all of ``runs``), printing each one's final metrics."""
    tags = (sys.argv[1:] if argv is None else argv) or list(runs)
    unknown = [t for t in tags if t not in runs]
    if unknown:
        raise SystemExit(f"unknown run(s) {unknown}; expected some of {list(runs)}")
    for t in tags:
        r = store_run(t)
        print(t, {k: round(v, 4) for k, v in r["final"].items()}, f"{r['wall_time_s']:.0f} s", flush=True)
