"""The command line: train / evaluate / report / list, and clear errors."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from dlc_teach import report as report_mod
from dlc_teach import tasks
from dlc_teach.cli import main


@pytest.fixture(autouse=True)
def synth(monkeypatch):
    monkeypatch.setitem(tasks.EXPERIMENTS, "synth", "support_experiment:SynthRegression")
    monkeypatch.delenv("DLC_PRESET", raising=False)


def test_train_prints_preset_first_then_evaluate_reproduces_final_metrics(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "synth", "--preset", "tiny", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("synth: preset 'tiny', DLC (Eq. 11)")
    assert "final: " in printed
    results = json.loads((out / "results.json").read_text())
    assert results["dlc"] is True and results["preset"]["preset"] == "tiny"

    assert main(["evaluate", "synth", "--checkpoint", str(out / "checkpoint.pt")]) == 0
    printed = capsys.readouterr().out
    assert "epoch 2, DLC" in printed
    assert f"written at git commit {results['git_commit']}; trained on SynthRegression.datasets() (96 train / " \
           f"32 test); evaluated on SynthRegression.datasets()" in printed
    metrics = {line.split()[0]: float(line.split()[1]) for line in printed.splitlines()
               if line.startswith("  test_") or line.startswith("  train_")}
    assert metrics.keys() == results["final"].keys()
    for k, v in results["final"].items():
        assert metrics[k] == pytest.approx(v, rel=1e-5), k


def test_default_out_dir_env_preset_and_record(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DLC_PRESET", "tiny")
    monkeypatch.setattr(report_mod, "RESULTS_DIR", tmp_path / "recorded")
    assert main(["train", "synth", "--no-dlc", "--max-steps", "2", "--no-progress", "--record"]) == 0
    run = tmp_path / "runs" / "synth-tiny-base"
    results = json.loads((run / "results.json").read_text())
    assert results["dlc"] is False and results["steps"] == 2 and results["stopped_early"]
    assert json.loads((tmp_path / "recorded" / "synth-tiny-base.json").read_text()) == results
    assert "recorded" in capsys.readouterr().out


def test_resume_flag_continues(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert main(["train", "synth", "--preset", "tiny", "--out", out, "--no-progress"]) == 0
    assert main(["train", "synth", "--preset", "tiny", "--out", out, "--no-progress", "--resume"]) == 0
    assert "resumed from" in capsys.readouterr().out


def test_resume_under_other_code_needs_allow_mismatch(tmp_path, capsys, monkeypatch):
    from dlc_teach import provenance
    from dlc_teach.checkpoint import load_checkpoint

    out = str(tmp_path / "run")
    args = ["train", "synth", "--preset", "tiny", "--out", out, "--no-progress"]
    monkeypatch.setattr(provenance, "git_commit", lambda: "a" * 40)
    assert main(args) == 0
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert ckpt["git_commit"] == "a" * 40 and ckpt["command"] == ["dlc-teach", *args]
    capsys.readouterr()
    monkeypatch.setattr(provenance, "git_commit", lambda: "b" * 40)
    assert main(args + ["--resume"]) == 2
    err = capsys.readouterr().err
    assert "refusing to resume" in err and "--allow-mismatch" in err and "a" * 40 in err
    with pytest.warns(UserWarning, match="git commit"):
        assert main(args + ["--resume", "--allow-mismatch"]) == 0
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["command"] == ["dlc-teach", *args, "--resume", "--allow-mismatch"]
    assert len(results["resume_mismatch"]) == 1 and results["data"]["name"] == "SynthRegression.datasets()"


def test_unknown_experiment_or_preset_exits_nonzero(capsys, monkeypatch):
    with pytest.raises(SystemExit) as info:
        main(["train", "nope"])
    assert info.value.code == 2 and "invalid choice: 'nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["train", "synth", "--preset", "huge"])
    assert info.value.code == 2 and "invalid choice: 'huge'" in capsys.readouterr().err
    monkeypatch.setenv("DLC_PRESET", "huge")
    assert main(["train", "synth"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown preset 'huge'" in err


def test_evaluate_errors_are_one_line(tmp_path, capsys):
    assert main(["evaluate", "synth", "--checkpoint", str(tmp_path / "missing.pt")]) == 2
    assert "no checkpoint at" in capsys.readouterr().err
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    assert main(["evaluate", "synth", "--checkpoint", str(tmp_path / "junk.pt")]) == 2
    assert capsys.readouterr().err.startswith("dlc-teach evaluate: error:")


def test_report_and_list(tmp_path, capsys):
    paper = tmp_path / "paper"
    paper.mkdir()
    (paper / "t.json").write_text(json.dumps({
        "experiment": "synth", "table": "Table 9", "metric": "MAE", "key": "test_mae",
        "rows": [{"method": "paper method", "value": 0.5}], "source": "made up for this test"}))
    assert main(["report", "--paper", str(paper), "--results", str(tmp_path / "none"), "--experiment", "synth"]) == 0
    out = capsys.readouterr().out
    assert "synth: Table 9, MAE" in out and "paper method" in out and report_mod.NO_FULL_RUN in out
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "presets: tiny, ci, full" in out and "synth: SynthRegression  [main metric: test_mae]" in out
    assert "  tiny  epochs=2 batch_size=16 optimizer=adam lr=0.01" in out


def test_python_dash_m_help():
    proc = subprocess.run([sys.executable, "-m", "dlc_teach", "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "{train,evaluate,report,list,fetch}" in proc.stdout and "torchrun" in proc.stdout


def test_fetch_downloads_verifies_and_reports_offline(tmp_path, capsys, monkeypatch):
    import hashlib

    from dlc_teach import datasets

    payload = b"\x00\x00\x08\x01\x00\x00\x00\x03abc"  # a tiny IDX vector
    src = tmp_path / "remote" / "toy-idx1-ubyte"
    src.parent.mkdir()
    src.write_bytes(payload)
    good = datasets.RemoteFile(url=src.as_uri(), filename=src.name, size=len(payload),
                               md5=hashlib.md5(payload).hexdigest())
    monkeypatch.setattr(datasets, "load_registry", lambda path=None: {"toy": {"vec": good}})
    assert main(["fetch", "toy", "--data-dir", str(tmp_path / "cache")]) == 0
    out = capsys.readouterr().out
    assert "verified" in out and (tmp_path / "cache" / "toy" / src.name).read_bytes() == payload

    missing = datasets.RemoteFile(url=(tmp_path / "nowhere").as_uri(), filename="nowhere", size=1, md5="0" * 32)
    monkeypatch.setattr(datasets, "load_registry", lambda path=None: {"toy": {"vec": missing}})
    assert main(["fetch", "toy", "--data-dir", str(tmp_path / "cache2")]) == 2
    err = capsys.readouterr().err
    assert "nowhere" in err and str(tmp_path / "cache2") in err
    assert main(["fetch", "unknown-set"]) == 2
