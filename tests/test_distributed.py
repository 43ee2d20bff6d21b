"""Multi-process training through torchrun: two CPU processes (Gloo) finish with identical weights."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from dlc_teach.distributed import DistInfo, setup

TESTS = Path(__file__).resolve().parent

WORKER = textwrap.dedent("""
    import os, sys
    import torch
    sys.path.insert(0, {tests!r})
    from support_experiment import SynthRegression
    from dlc_teach.training import train

    exp = SynthRegression.from_preset("tiny", learn_mu=True)
    r = train(exp, dlc=True, out_dir={out!r}, progress=False, device="cpu")
    torch.save({{"model": r["model"].state_dict(), "objective": r["objective"].state_dict(),
                 "history": r["history"]}}, os.path.join({out!r}, "rank%s.pt" % os.environ["RANK"]))
""")


def test_two_gloo_processes_end_with_identical_weights(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER.format(tests=str(TESTS), out=str(tmp_path)))
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env.update(OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(script)], capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    for part in ("model", "objective"):
        for k in r0[part]:
            assert torch.equal(r0[part][k], r1[part][k]), (part, k)
    # logged means are averaged over both processes (wall-clock entries, *_time_s, are each rank's own)
    timeless = [[{k: v for k, v in e.items() if not k.endswith("_time_s")} for e in r["history"]] for r in (r0, r1)]
    assert timeless[0] == timeless[1] and "objective" in timeless[0][0]
    assert r0["objective"]["mu_log"] != 0.0  # the trainable μ moved, identically on both ranks
    # only rank 0 wrote files and printed: one results.json, one checkpoint, the config block once
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["world_size"] == 2 and saved["epochs_completed"] == 2
    # each process sees 96 / 2 items per epoch in batches of 16 / 2
    assert saved["steps"] == 2 * 6
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert ckpt["world_size"] == 2 and len(ckpt["rng"]) == 2
    assert proc.stdout.count("synth: preset 'tiny'") == 1


def test_setup_without_torchrun_is_single_process(monkeypatch):
    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(k, raising=False)
    info, dev = setup("cpu")
    assert info == DistInfo() and info.is_main and not info.enabled and dev == torch.device("cpu")
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ValueError, match="WORLD_SIZE"):
        setup("cpu")
