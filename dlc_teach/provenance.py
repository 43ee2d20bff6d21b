"""Provenance of a run: which code (git commit), data, command line, device and versions produced it.

Introduced in chapter 8 ("Reproducing at full scale"). :func:`dlc_teach.training.train` records
:func:`provenance` in every results JSON, stores the commit, the data source
(:meth:`~dlc_teach.tasks.base.Experiment.data_source`) and the command line in every checkpoint, and on
resume refuses (or, with ``allow_mismatch``, warns about) what :func:`code_and_data_mismatch` reports.
"""
from __future__ import annotations

import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["git_commit", "provenance", "code_and_data_mismatch"]


def git_commit() -> str:
    """``HEAD`` of the checkout this package runs from (``-dirty`` with uncommitted changes to tracked files);
    ``"unknown"`` without git or when the package is not a checkout's own (e.g. an installed wheel)."""
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "rev-parse", "--show-toplevel", "HEAD"], cwd=root, capture_output=True,
                             text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    lines = out.stdout.split()
    if out.returncode != 0 or len(lines) != 2 or Path(lines[0]).resolve() != root:
        return "unknown"  # a site-packages inside some other repository must not borrow its commit
    return lines[1] + ("-dirty" if dirty.returncode == 0 and dirty.stdout.strip() else "")


def provenance(device: torch.device, command: list[str] | None = None) -> dict[str, Any]:
    """Where and with what a result was produced: git commit, device name, versions (CUDA and cuDNN: None
    on a CPU), the command line (default ``sys.argv``), UTC date."""
    from . import __version__

    cuda = device.type == "cuda"
    name = torch.cuda.get_device_name(device) if cuda else f"cpu ({platform.machine()})"
    return {"git_commit": git_commit(), "device": name,
            "versions": {"dlc_teach": __version__, "torch": torch.__version__, "numpy": np.__version__,
                         "python": platform.python_version(), "cuda": torch.version.cuda if cuda else None,
                         "cudnn": torch.backends.cudnn.version() if cuda else None},
            "command": [str(a) for a in (sys.argv if command is None else command)],
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def code_and_data_mismatch(ckpt: dict, commit: str, data: dict) -> list[str]:
    """What differs between a checkpoint's code and data and this run's, one sentence each (empty: nothing).

    Args:
        ckpt: a loaded checkpoint (``git_commit`` and ``data`` are absent from format-1 checkpoints).
        commit: this run's :func:`git_commit`; ``-dirty`` is ignored on both sides (uncommitted edits
            cannot be told apart, so a dirty tree at the same commit counts as the same code).
        data: this run's ``Experiment.data_source()``; every entry but ``description`` must agree.
    """
    problems = []
    then = ckpt.get("git_commit")
    if then is None:
        problems.append("the checkpoint records no git commit (written before checkpoints carried one)")
    elif then.removesuffix("-dirty") != commit.removesuffix("-dirty"):
        problems.append(f"code: checkpoint written at git commit {then}, this run is at {commit}")
    old = ckpt.get("data")
    if old is None:
        problems.append("the checkpoint records no data source (written before checkpoints carried one)")
    else:
        def key(d):
            return {k: v for k, v in d.items() if k != "description"}
        if key(old) != key(data):
            problems.append(f"data: checkpoint trained on {key(old)} ({old.get('description')}), this run "
                            f"loads {key(data)} ({data.get('description')})")
    return problems
