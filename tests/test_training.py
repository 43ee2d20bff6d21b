"""The shared training loop: seeding, logging, checkpoints that load with weights_only, exact resume."""
from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
import torch

from dlc_teach.checkpoint import load_checkpoint
from dlc_teach.training import train
from support_experiment import SynthRegression


def _exp(**overrides):
    return SynthRegression.from_preset("tiny", **overrides)


def _weights(results):
    return {k: v.detach().clone() for k, v in results["model"].state_dict().items()}


def test_dlc_run_logs_terms_and_lowers_loss():
    r = train(_exp(epochs=3), dlc=True, progress=False, log=None)
    h = r["history"]
    assert [e["epoch"] for e in h] == [1, 2, 3]
    assert h[-1]["steps"] == 3 * math.ceil(96 / 16)
    for key in ("objective", "base", "eps", "gamma", "xi", "lam", "mu", "train_loss", "test_loss", "test_mae"):
        assert key in h[0] and math.isfinite(h[0][key])
    # Eq. 11 with ρ = 1: the objective is the base loss plus the mean hinge slack
    e = h[0]
    assert e["objective"] == pytest.approx(e["base"] + e["eps"] + e["gamma"] + e["xi"], rel=1e-5)
    assert e["lam"] == 0.5 and e["mu"] == 1.0
    assert h[-1]["test_loss"] < h[0]["test_loss"]
    assert r["final"] == {k: v for k, v in h[-1].items() if k.startswith(("train_", "test_"))}
    assert r["main_metric"] == "test_mae" and r["dlc"] is True and not r["stopped_early"]


def test_baseline_and_dlc_share_initial_weights_and_data_order():
    base = train(_exp(), dlc=False, progress=False, log=None, max_steps=1)
    dlc = train(_exp(), dlc=True, progress=False, log=None, max_steps=1)
    assert set(base["history"][0]) >= {"objective", "base"} and "eps" not in base["history"][0]
    # one step of plain SGD with ρ = 0 makes DLC's gradient equal to the baseline's: same init, same first batch
    sgd = dict(optimizer="sgd", lr=0.1, rho=0.0)
    a = _weights(train(_exp(**sgd), dlc=False, progress=False, log=None, max_steps=2))
    b = _weights(train(_exp(**sgd), dlc=True, progress=False, log=None, max_steps=2))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6)
    assert base["stopped_early"] and base["steps"] == 1 and base["epochs_completed"] == 0


def test_checkpoint_loads_weights_only_and_results_json(tmp_path):
    r = train(_exp(), dlc=True, out_dir=tmp_path, progress=False, log=None)
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=True)  # the contract: safe loading
    assert ckpt["epoch"] == 2 and ckpt["experiment"] == "synth" and ckpt["dlc"] is True
    assert ckpt["scheduler"]["last_epoch"] == 2 and ckpt["dlc_loss"] is not None
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == r["steps"]
    saved = json.loads((tmp_path / "results.json").read_text())
    for key in ("experiment", "preset", "dlc", "history", "final", "git_commit", "device", "versions", "date",
                "wall_time_s"):
        assert key in saved
    assert saved["preset"]["preset"] == "tiny" and saved["preset"]["n_train"] == 96
    assert saved["versions"]["torch"] == torch.__version__
    assert "model" not in saved and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("learn_mu", [False, True])
def test_resume_matches_uninterrupted_run_exactly(tmp_path, learn_mu):
    straight = train(_exp(learn_mu=learn_mu), dlc=True, progress=False, log=None)
    train(_exp(epochs=1, learn_mu=learn_mu), dlc=True, out_dir=tmp_path, progress=False, log=None)
    lines = []
    resumed = train(_exp(learn_mu=learn_mu), dlc=True, out_dir=tmp_path, resume=True, progress=False,
                    log=lines.append)
    assert any("resumed" in line for line in lines)
    a, b = _weights(straight), _weights(resumed)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert resumed["history"] == straight["history"]
    if learn_mu:  # the trainable μ = exp(b) is part of the state and moved
        assert resumed["history"][-1]["mu"] == straight["history"][-1]["mu"] != 1.0


def test_resume_rejects_other_config_and_needs_out_dir(tmp_path):
    train(_exp(epochs=1), dlc=True, out_dir=tmp_path, progress=False, log=None)
    with pytest.raises(ValueError, match="lr"):
        train(_exp(lr=0.5), dlc=True, out_dir=tmp_path, resume=True, progress=False, log=None)
    with pytest.raises(ValueError, match="dlc"):
        train(_exp(), dlc=False, out_dir=tmp_path, resume=True, progress=False, log=None)
    with pytest.raises(ValueError, match="out_dir"):
        train(_exp(), resume=True, progress=False, log=None)
    lines = []
    r = train(_exp(epochs=1), out_dir=tmp_path / "fresh", resume=True, progress=False, log=lines.append)
    assert r["epochs_completed"] == 1 and any("starting from scratch" in line for line in lines)


def test_bad_arguments():
    with pytest.raises(TypeError, match="Experiment"):
        train("synth")
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="max_steps"):
            train(_exp(), max_steps=bad, progress=False, log=None)
    with pytest.raises(ValueError, match="CUDA"):
        if torch.cuda.is_available():
            pytest.skip("CUDA present")
        train(_exp(), device="cuda", progress=False, log=None)


def test_log_prints_config_first_and_one_line_per_epoch():
    lines = []
    train(_exp(), dlc=True, progress=False, log=lines.append)
    assert lines[0].startswith("synth: preset 'tiny'") and "eval_train_size  = 40" in lines[0]
    assert [line.split()[1] for line in lines[1:]] == ["1/2", "2/2"]


def test_same_seed_same_result_other_seed_differs():
    a = train(_exp(), progress=False, log=None)["final"]
    b = train(_exp(), progress=False, log=None)["final"]
    c = train(_exp(seed=1), progress=False, log=None)["final"]
    assert a == b and a != c
    assert replace(SynthRegression.presets["tiny"], seed=1).seed == 1
