"""Train and store the ``ci`` models of chapter 6 (small checkpoints + results JSON with provenance).

Introduced in chapter 6. Training DCP and DLC+DCP at preset ``ci`` takes minutes on 2 CPU cores, more
than a notebook may spend, so the chapter loads models stored by::

    python -m dlc_teach.tasks.registration.store            # all runs of RUNS (one thread each)
    python -m dlc_teach.tasks.registration.store dcp-s0     # one run

Each run is ``dlc_teach.training.train(<experiment>.from_preset("ci", seed=s), dlc=...)`` — the same
as ``dlc-teach train <experiment> --preset ci [--no-dlc]`` for seed 0. It writes
``data/checkpoints/registration/<tag>.pt`` (model weights, the DLC λ/μ parameters, the config; loads
with ``weights_only=True``) and ``data/results/registration-ci/<tag>.json`` (the results of ``train``,
the command, the data source, and the objective after the first ``FIRST_STEPS`` steps, which
``tests/test_registration_store.py`` recomputes to check that the stored models are reproducible).
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from ...checkpoint import FORMAT_VERSION, json_atomic, save_atomic
from ...training import train
from ..stored import first_objective, load_model, store_main
from .experiment import Registration, RegistrationDCPLoss

__all__ = ["RUNS", "FIRST_STEPS", "CHECKPOINT_DIR", "RESULTS_DIR", "first_steps", "as_trained", "store_run", "load_stored"]

_ROOT = Path(__file__).resolve().parents[3] / "data"
CHECKPOINT_DIR = _ROOT / "checkpoints" / "registration"
#: a folder of its own: ``dlc-teach report`` and chapter 8 read only ``data/results/*.json`` (one row per run);
#: these seeds and controls are chapter 6's material
RESULTS_DIR = _ROOT / "results" / "registration-ci"
FIRST_STEPS = 3
_CHAIN_ONLY = {"baseline_chain": 4}
#: tag -> (experiment class, dlc, seed, config overrides). The ``chain-*`` runs are the controls: four chained
#: passes trained on h(ω*) alone (the base term of DLC+DCP without its hinges), to separate chaining from DLC.
RUNS = {
    "dcp-s0": (Registration, False, 0, {}), "dlc-corr-s0": (Registration, True, 0, {}),
    "dlc-dcploss-s0": (RegistrationDCPLoss, True, 0, {}),
    "dcp-s1": (Registration, False, 1, {}), "dlc-corr-s1": (Registration, True, 1, {}),
    "dcp-s2": (Registration, False, 2, {}), "dlc-corr-s2": (Registration, True, 2, {}),
    "chain-corr-s0": (Registration, False, 0, {**_CHAIN_ONLY, "baseline_h": "corr"}),
    "chain-dcploss-s0": (RegistrationDCPLoss, False, 0, {**_CHAIN_ONLY, "baseline_h": "dcp"}),
}


def first_steps(tag: str, steps: int = FIRST_STEPS, preset: str = "ci", eval_size: int | None = None) -> float:
    """The mean objective of the first ``steps`` optimiser steps of run ``tag`` (one torch thread).

    ``eval_size`` shrinks the test set and the evaluated training subset (evaluated only after the
    steps, so the objective does not change; the reproducibility test uses it to stay fast).
    """
    cls, dlc, seed, over = RUNS[tag]
    if eval_size is not None:
        over = {**over, "n_test": eval_size, "eval_train_size": eval_size}
    return first_objective(cls.from_preset(preset, seed=seed, **over), dlc, steps)


def as_trained(tag: str, final: dict) -> dict:
    """``test_mse_euler_as_trained`` etc.: the errors of the prediction the run was trained to make.

    ``train`` reports every model after 1 pass (``test_mse_euler``) and after ``chain`` passes
    (``test_mse_euler_x4``); a DLC+DCP run and a chain-only control were trained as the chain, DCP as
    one pass. This picks the matching key (what ``data/paper/registration.json`` compares with).
    """
    cls, dlc, _, over = RUNS[tag]
    chained = dlc or over.get("baseline_chain", 1) > 1
    out = {}
    for split in ("train", "test"):
        for m in ("mse_R", "mse_euler", "mse_t"):
            src = f"{split}_{m}_x{cls.presets['ci'].chain}" if chained else f"{split}_{m}"
            out[f"{split}_{m}_as_trained"] = final[src]
    return out


def store_run(tag: str) -> dict:
    """Train run ``tag`` at preset ci on one thread and write its checkpoint and results JSON."""
    cls, dlc, seed, over = RUNS[tag]
    torch.set_num_threads(1)
    first = first_steps(tag)
    exp = cls.from_preset("ci", seed=seed, **over)
    res = train(exp, dlc=dlc, progress=False, device="cpu")
    model, objective = res.pop("model"), res.pop("objective")
    res["final"].update(as_trained(tag, res["final"]))
    res.update({
        "command": f"python -m dlc_teach.tasks.registration.store {tag}  (= train({cls.__name__}.from_preset"
                   f"('ci', seed={seed}{''.join(f', {k}={v!r}' for k, v in over.items())}), dlc={dlc})"
                   + ("" if over else f"; dlc-teach train {cls.name} --preset ci{'' if dlc else ' --no-dlc'} "
                                      f"for seed 0") + ")",
        "data_source": exp.source, "first_steps": {"steps": FIRST_STEPS, "objective": first, "threads": 1},
    })
    save_atomic({"format": FORMAT_VERSION, "experiment": cls.name, "dlc": dlc, "config": res["preset"],
                 "model": model.state_dict(),
                 "dlc_loss": objective.state_dict() if objective is not None else None,
                 "git_commit": res["git_commit"]}, CHECKPOINT_DIR / f"{tag}.pt")
    json_atomic(json.dumps(res, indent=2) + "\n", RESULTS_DIR / f"{tag}.json")
    return res


def load_stored(tag: str):
    """``(experiment, model in eval mode, results dict)`` of a stored ci run."""
    cls, dlc, seed, over = RUNS[tag]
    exp = cls.from_preset("ci", seed=seed, **over)
    results = json.loads((RESULTS_DIR / f"{tag}.json").read_text(encoding="utf-8"))
    return exp, load_model(exp, CHECKPOINT_DIR / f"{tag}.pt"), results


if __name__ == "__main__":
    store_main(RUNS, store_run)
