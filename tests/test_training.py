"""The shared training loop: seeding, logging, checkpoints that load with weights_only, exact resume."""
from __future__ import annotations

import json
import math
import sys
from dataclasses import replace

import pytest
import torch

from dlc_teach import provenance
from dlc_teach.checkpoint import load_checkpoint, save_atomic
from dlc_teach.training import train
from support_experiment import SynthRegression


def _exp(**overrides):
    return SynthRegression.from_preset("tiny", **overrides)


def _timeless(history):
    """A history without its wall-clock entries (``*_time_s``), which no two runs share."""
    return [{k: v for k, v in e.items() if not k.endswith("_time_s")} for e in history]


def _weights(results):
    return {k: v.detach().clone() for k, v in results["model"].state_dict().items()}


def test_dlc_run_logs_terms_and_lowers_loss():
    r = train(_exp(epochs=3), dlc=True, progress=False, log=None)
    h = r["history"]
    assert [e["epoch"] for e in h] == [1, 2, 3]
    assert h[-1]["steps"] == 3 * math.ceil(96 / 16)
    for key in ("objective", "base", "eps", "gamma", "xi", "lam", "mu", "train_loss", "test_loss", "test_mae"):
        assert key in h[0] and math.isfinite(h[0][key])
    # the log keeps the terms apart (Eq. 11 with ρ = 1: objective = base + mean hinge slack); γ and ξ are
    # active, so a log that swapped or dropped a term would break the identity
    e = h[0]
    assert e["gamma"] > 0 and e["xi"] > 0 and e["base"] > 0
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
    on_cuda = not saved["device"].startswith("cpu")  # train() picks CUDA when present
    assert saved["versions"]["cuda"] == (torch.version.cuda if on_cuda else None)
    assert saved["versions"]["cudnn"] == (torch.backends.cudnn.version() if on_cuda else None)
    assert saved["command"] == sys.argv and saved["resume_mismatch"] == []
    assert saved["data"] == {"name": "SynthRegression.datasets()", "n_train": 96, "n_test": 32,
                             "description": ckpt["data"]["description"]}
    assert ckpt["data"] == saved["data"] and ckpt["git_commit"] == saved["git_commit"]
    assert ckpt["command"] == sys.argv and ckpt["format"] == 2
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
    assert _timeless(resumed["history"]) == _timeless(straight["history"])
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



def test_cuda_request_without_cuda_is_a_clear_error(monkeypatch):
    # on every machine, GPU or not: pretend CUDA is absent, so the check itself is exercised
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="CUDA is not available"):
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


# --- provenance on resume: other code or other data -------------------------------------------------------
def test_resume_refuses_other_code_unless_allowed(tmp_path, monkeypatch):
    straight = train(_exp(), dlc=True, progress=False, log=None)
    monkeypatch.setattr(provenance, "git_commit", lambda: "1111111111111111111111111111111111111111")
    train(_exp(epochs=1), dlc=True, out_dir=tmp_path, progress=False, log=None)
    monkeypatch.setattr(provenance, "git_commit", lambda: "2222222222222222222222222222222222222222-dirty")
    with pytest.raises(ValueError, match="refusing to resume.*code: checkpoint written at git commit 1111.*"
                                         "2222.*allow-mismatch"):
        train(_exp(), dlc=True, out_dir=tmp_path, resume=True, progress=False, log=None)
    lines = []
    with pytest.warns(UserWarning, match="git commit 1111"):
        resumed = train(_exp(), dlc=True, out_dir=tmp_path, resume=True, progress=False, log=lines.append,
                        allow_mismatch=True)
    assert any(line.startswith("WARNING: resuming across a mismatch") for line in lines)
    assert len(resumed["resume_mismatch"]) == 1 and "1111" in resumed["resume_mismatch"][0]
    assert _timeless(resumed["history"]) == _timeless(straight["history"])  # allowed: it still continues exactly
    assert json.loads((tmp_path / "results.json").read_text())["resume_mismatch"] == resumed["resume_mismatch"]
    # the same commit, dirty or not, resumes silently (uncommitted edits cannot be told apart)
    monkeypatch.setattr(provenance, "git_commit", lambda: "2222222222222222222222222222222222222222")
    again = train(_exp(epochs=3), dlc=True, out_dir=tmp_path, resume=True, progress=False, log=None)
    assert again["resume_mismatch"] == [] and again["epochs_completed"] == 3


def test_resume_refuses_other_data_unless_allowed(tmp_path):
    train(_exp(epochs=1), dlc=True, out_dir=tmp_path, progress=False, log=None)
    other = _exp()
    other.data_source = lambda: {"name": "mnist", "n_train": 96, "n_test": 32, "description": "elsewhere"}
    with pytest.raises(ValueError, match=r"refusing to resume.*data: checkpoint trained on .*'SynthRegression"):
        train(other, dlc=True, out_dir=tmp_path, resume=True, progress=False, log=None)
    # a different description alone (e.g. another cache path) is not a different data set
    same = _exp()
    same.data_source = lambda: {"name": "SynthRegression.datasets()", "n_train": 96, "n_test": 32, "description": "moved"}
    r = train(same, dlc=True, out_dir=tmp_path, resume=True, progress=False, log=None)
    assert r["resume_mismatch"] == [] and r["data"]["description"] == "moved"


def test_checkpoint_without_provenance_resumes_only_when_allowed(tmp_path):
    train(_exp(epochs=1), dlc=True, out_dir=tmp_path, progress=False, log=None)
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt")
    for key in ("git_commit", "data", "command"):
        del ckpt[key]
    save_atomic({**ckpt, "format": 1}, tmp_path / "checkpoint.pt")  # as written before format 2
    assert load_checkpoint(tmp_path / "checkpoint.pt")["format"] == 1  # still readable (e.g. to evaluate)
    with pytest.raises(ValueError, match="records no git commit.*records no data source"):
        train(_exp(), dlc=True, out_dir=tmp_path, resume=True, progress=False, log=None)
    with pytest.warns(UserWarning):
        r = train(_exp(), dlc=True, out_dir=tmp_path, resume=True, progress=False, log=None, allow_mismatch=True)
    assert r["epochs_completed"] == 2 and len(r["resume_mismatch"]) == 2
    save_atomic({**ckpt, "format": 99}, tmp_path / "checkpoint.pt")
    with pytest.raises(ValueError, match="format 99"):
        load_checkpoint(tmp_path / "checkpoint.pt")


# --- trainable λ/μ: their own parameter group, in the model's dtype ----------------------------------------
class _Synth64(SynthRegression):
    """The synthetic task in float64 (model, data and hence h)."""

    def build_model(self):
        return super().build_model().double()

    def loss_fn(self, model, batch):
        x, y = batch
        return super().loss_fn(model, (x.double(), y.double()))

    def evaluate(self, model, loader):
        return super().evaluate(model, [(x.double(), y.double()) for x, y in loader])


def test_trainable_lam_mu_follow_the_model_dtype():
    r = train(_Synth64.from_preset("tiny", learn_lam=True, learn_mu=True, mu=2.0), dlc=True, progress=False,
              log=None)
    obj = r["objective"]
    assert obj.lam_logit.dtype == obj.mu_log.dtype == torch.float64
    assert float(obj.mu_log.detach()) != pytest.approx(math.log(2.0))  # trained
    assert math.isfinite(r["history"][-1]["mu"])


def test_trainable_lam_mu_get_no_weight_decay():
    exp = _exp(learn_lam=True, learn_mu=True, lam=0.3, mu=2.0, weight_decay=0.5)
    model, objective = exp.build_model(), exp.dlc_loss()
    groups = exp.param_groups(model, objective)
    assert [g["name"] for g in groups] == ["network", "dlc"]
    assert {id(p) for p in groups[1]["params"]} == {id(objective.lam_logit), id(objective.mu_log)}
    opt = exp.make_optimizer(groups)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.5, 0.0]
    assert len(exp.param_groups(model, None)) == 1 and len(exp.param_groups(model, _exp().dlc_loss())) == 1
    # behaviour: one SGD step with a huge weight decay moves the network but leaves λ and μ where a step
    # without decay puts them (decay would pull lam_logit and mu_log = log 2 toward 0)
    sgd = dict(optimizer="sgd", lr=0.1, learn_lam=True, learn_mu=True, lam=0.3, mu=2.0)
    plain = train(_exp(**sgd), dlc=True, progress=False, log=None, max_steps=1)
    decayed = train(_exp(weight_decay=5.0, **sgd), dlc=True, progress=False, log=None, max_steps=1)
    for name in ("lam_logit", "mu_log"):
        a, b = getattr(plain["objective"], name), getattr(decayed["objective"], name)
        assert torch.equal(a, b), name
    assert float(plain["objective"].mu_log.detach()) != pytest.approx(math.log(2.0))  # it did move
    wa, wb = _weights(plain), _weights(decayed)
    assert not torch.allclose(wa["0.weight"], wb["0.weight"])
