"""The stored ci runs of chapter 7 are what the code produces: re-run their first steps (one thread)."""
from __future__ import annotations

import pytest
import torch

from dlc_teach.checkpoint import load_checkpoint
from dlc_teach.tasks.homography.store import CHECKPOINT_DIR, FIRST_STEPS, RUNS, first_steps, load_results, load_stored

STORED = [t for t in RUNS if (CHECKPOINT_DIR / f"{t}.pt").is_file()]


def test_the_chapter_runs_are_stored():
    assert {"base", "dlc"} <= set(STORED), f"stored runs: {STORED}; run python -m dlc_teach.tasks.homography.store"


@pytest.mark.parametrize("tag", ["base", "dlc"])
def test_first_steps_match_the_recorded_objective(tag):
    rec = load_results(tag)["first_steps"]
    assert rec["steps"] == FIRST_STEPS and rec["threads"] == 1
    assert first_steps(tag) == pytest.approx(rec["objective"], rel=1e-4)


@pytest.mark.parametrize("tag", STORED)
def test_stored_checkpoints_load_safely_and_match_their_results(tag):
    ckpt = load_checkpoint(CHECKPOINT_DIR / f"{tag}.pt")  # weights_only=True inside
    exp, model, res = load_stored(tag)
    assert ckpt["dlc"] == RUNS[tag][0] == res["dlc"]
    assert res["preset"] == {**res["preset"], **{k: list(v) if isinstance(v, tuple) else v
                                                 for k, v in RUNS[tag][1].items()}}
    assert res["data_source"] == "basemap" and res["stopped_early"] is False
    assert all(torch.isfinite(p).all() for p in model.parameters())
