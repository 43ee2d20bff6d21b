"""Train and store chapter 7's ``ci`` models: small checkpoints + results JSON with provenance.

Introduced in chapter 7. DeepLK and DLC+DeepLK at preset ``ci`` take minutes each on 2 CPU cores,
more than the chapter may spend, so it loads runs stored by::

    python -m dlc_teach.tasks.homography.store            # every run of RUNS (one thread each)
    python -m dlc_teach.tasks.homography.store base dlc   # some runs

Run ``base`` is ``dlc-teach train homography --preset ci --no-dlc`` and ``dlc`` is ``dlc-teach train
homography --preset ci`` (same seed, data and code path: :func:`dlc_teach.training.train`); the
others are the constraint subsets of Fig. 9 and the μ, λ, ρ sweeps of Fig. 10, each the ``ci`` preset
with the overrides in :data:`RUNS` (the sweeps with fewer epochs, to fit). Each writes
``data/checkpoints/homography/<tag>.pt`` (weights and config; loads with ``weights_only=True``) and
``data/results/homography-ci-<tag>.json`` for ``base`` and ``dlc`` (what ``dlc-teach report`` lists) and
``data/results/homography-ablations/<tag>.json`` for the others (train's results, the command, the data
source, and the objective of the first :data:`FIRST_STEPS` steps, which
``tests/test_homography_store.py`` recomputes).
"""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import torch

from ...checkpoint import FORMAT_VERSION, json_atomic, save_atomic
from ...training import train
from ..stored import first_objective, load_model, store_main
from .experiment import DeepLKHomography

__all__ = ["RUNS", "FIRST_STEPS", "CHECKPOINT_DIR", "RESULTS_DIR", "first_steps", "store_run", "load_stored",
           "load_results", "results_path"]

_ROOT = Path(__file__).resolve().parents[3] / "data"
CHECKPOINT_DIR = _ROOT / "checkpoints" / "homography"
RESULTS_DIR = _ROOT / "results"
FIRST_STEPS = 3
_SWEEP = {"epochs": 1, "n_train": 512, "n_test": 64, "eval_train_size": 16}
#: tag -> (dlc, overrides of the ci preset)
RUNS: dict[str, tuple[bool, dict]] = {
    "base": (False, {}), "dlc": (True, {}),
    # Fig. 9: constraint subsets (Eq. 12 = condition 1, Eq. 13 = 2, Eq. 14 = 3), and Fig. 10: one
    # hyper-parameter at a time around the ci values (mu 5e-4, lam 0.5, rho 100); all on a shorter
    # schedule (1 epoch of 512 pairs, 64 test pairs) so that the 11 runs fit
    "c12": (True, {**_SWEEP, "constraints": (12,)}), "c13": (True, {**_SWEEP, "constraints": (13,)}),
    "c14": (True, {**_SWEEP, "constraints": (14,)}),
    "sweep-base": (False, _SWEEP), "sweep-ref": (True, _SWEEP),
    "mu0": (True, {**_SWEEP, "mu": 0.0}), "mu5e-3": (True, {**_SWEEP, "mu": 5e-3}),
    "lam0.25": (True, {**_SWEEP, "lam": 0.25}), "lam0.75": (True, {**_SWEEP, "lam": 0.75}),
    "rho1": (True, {**_SWEEP, "rho": 1.0}), "rho10": (True, {**_SWEEP, "rho": 10.0}),
}


def _experiment(tag: str, preset: str = "ci") -> tuple[DeepLKHomography, bool]:
    if tag not in RUNS:
        raise ValueError(f"unknown run {tag!r}; expected one of {list(RUNS)}")
    dlc, overrides = RUNS[tag]
    return DeepLKHomography.from_preset(preset, **overrides), dlc


def first_steps(tag: str, steps: int = FIRST_STEPS, preset: str = "ci") -> float:
    """The mean objective of the first ``steps`` optimiser steps of run ``tag`` (one torch thread, CPU).

    The test set only enters the evaluation after those steps, never the objective (training pairs,
    initial weights, batch order and neighbour draws are seeded without it), so it is cut to 8 pairs here
    to keep the check fast."""
    exp, dlc = _experiment(tag, preset)
    exp = type(exp)(replace(exp.config, n_test=8, eval_train_size=8), data_dir=exp.data_dir)
    return first_objective(exp, dlc, steps)


def store_run(tag: str) -> dict:
    """Train run ``tag`` at preset ci on one thread; write its checkpoint and results JSON."""
    exp, dlc = _experiment(tag)
    torch.set_num_threads(1)
    first = first_steps(tag)
    res = train(exp, dlc=dlc, progress=False, device="cpu")
    model, objective = res.pop("model"), res.pop("objective")
    dlc_flag = "" if dlc else " --no-dlc"
    res.update({
        "command": (f"dlc-teach train homography --preset ci{dlc_flag}" if not RUNS[tag][1] else
                    f"python -m dlc_teach.tasks.homography.store {tag}  (the ci preset with {RUNS[tag][1]})"),
        "data_source": exp.config.source, "first_steps": {"steps": FIRST_STEPS, "objective": first, "threads": 1},
    })
    save_atomic({"format": FORMAT_VERSION, "experiment": exp.name, "dlc": dlc, "config": res["preset"],
                 "model": model.state_dict(),
                 "dlc_loss": objective.state_dict() if objective is not None else None,
                 "git_commit": res["git_commit"]}, CHECKPOINT_DIR / f"{tag}.pt")
    json_atomic(json.dumps(res, indent=2) + "\n", results_path(tag))
    return res


def results_path(tag: str) -> Path:
    """Where run ``tag``'s results JSON lives (the ablations in a subfolder the report does not list)."""
    _experiment(tag)
    if RUNS[tag][1]:
        return RESULTS_DIR / "homography-ablations" / f"{tag}.json"
    return RESULTS_DIR / f"homography-ci-{tag}.json"


def load_results(tag: str) -> dict:
    """The stored results dict of run ``tag``."""
    path = results_path(tag)
    if not path.is_file():
        raise FileNotFoundError(f"no stored results at {path}; run python -m dlc_teach.tasks.homography.store {tag}")
    return json.loads(path.read_text(encoding="utf-8"))


def load_stored(tag: str):
    """``(experiment, model in eval mode, results dict)`` of a stored ci run."""
    exp, _ = _experiment(tag)
    return exp, load_model(exp, CHECKPOINT_DIR / f"{tag}.pt"), load_results(tag)


if __name__ == "__main__":
    store_main(RUNS, store_run)
