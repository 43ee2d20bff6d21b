"""scripts/gpu_check.sh: its plan, the no-GPU error, and the runner's summary (all on the CPU)."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest
import torch

from conftest import ROOT

_spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "scripts" / "gpu_check.py")
gpu_check = importlib.util.module_from_spec(_spec)
sys.modules["gpu_check"] = gpu_check  # dataclasses look their module up there
_spec.loader.exec_module(gpu_check)
PY = sys.executable


def _names(steps):
    return [s.name for s in steps]


def test_plan_for_one_experiment_interrupts_resumes_and_runs_torchrun(tmp_path):
    steps = gpu_check.plan(["toy-alignment-2d"], "cuda", tmp_path, n_gpus=1)
    assert _names(steps) == ["nccl-all-reduce", "toy-alignment-2d-tiny-interrupted", "toy-alignment-2d-tiny-resume",
                             "toy-alignment-2d-tiny-torchrun"]  # no gpu preset: no gpu steps
    nccl, stop, resume, ddp = steps
    assert nccl.command[-1] == "--nccl-smoke" and "--nproc_per_node" in nccl.command
    # tiny: 32 training pairs in batches of 16 -> 2 steps an epoch; stop one step into epoch 2
    assert stop.command[stop.command.index("--max-steps") + 1] == "3"
    assert stop.command[stop.command.index("--device") + 1] == "cuda"
    assert resume.command[:-1] == stop.command[:stop.command.index("--max-steps")] and resume.command[-1] == "--resume"
    assert "after epoch 1" in resume.expect
    assert ddp.command[ddp.command.index("--nproc_per_node") + 1] == "1" and "--device" not in ddp.command
    two = gpu_check.plan(["toy-alignment-2d"], "cuda:1", tmp_path, n_gpus=2)[-1]
    assert two.command[two.command.index("--nproc_per_node") + 1] == "2" and two.expect == ["x 2 processes"]


def test_plan_runs_base_then_dlc_of_each_gpu_preset_with_record(tmp_path):
    steps = [s for s in gpu_check.plan(["pixel-mnist"], "cuda", tmp_path, n_gpus=1) if "-gpu-" in s.name]
    assert _names(steps) == ["pixel-mnist-gpu-base", "pixel-mnist-gpu-dlc"]
    base, dlc = (s.command for s in steps)
    assert base[base.index("--preset") + 1] == "gpu" and "--no-dlc" in base and "--record" in base
    assert "--no-dlc" not in dlc and "--record" in dlc
    assert all("--record" not in s.command for s in gpu_check.plan(["pixel-mnist"], "cuda", tmp_path,
                                                                      record=False, n_gpus=1))


def test_plan_shared_steps_and_bad_arguments(tmp_path):
    steps = gpu_check.plan(["tests", "benchmarks"], "cuda", tmp_path, n_gpus=1)
    tests = steps[0]
    assert tests.name == "unit-tests-cuda" and tests.command[tests.command.index("-k") + 1] == "cuda"
    benches = sorted(p.stem for p in (ROOT / "benchmarks").glob("bench_*.py"))
    assert benches and {s.name for s in steps[1:]} >= set(benches)
    assert all(s.command[s.command.index("--device") + 1] == "cuda" for s in steps[1:])
    assert gpu_check.plan(["tests", "benchmarks"], "cpu", tmp_path) == []  # the CPU rehearsal skips them
    with pytest.raises(ValueError, match=r"--only 'nope': expected an experiment"):
        gpu_check.plan(["nope"], "cuda", tmp_path)
    with pytest.raises(ValueError, match="--device must be cuda, cuda:N or cpu, got 'gpu'"):
        gpu_check.plan(["tests"], "gpu", tmp_path)


def test_no_cuda_device_is_a_clear_error(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(gpu_check, "_cuda_count", lambda: 0)
    assert gpu_check.main(["--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gpu_check: error: no CUDA device is visible") and "--dry-run" in err
    assert not (tmp_path / "gpu_check.json").exists()
    if not torch.cuda.is_available():  # the shell wrapper passes the status through
        proc = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), "--only", "tests"],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 2 and "no CUDA device is visible" in proc.stderr


def test_dry_run_writes_the_plan_without_running_it(capsys, tmp_path):
    assert gpu_check.main(["--dry-run", "--only", "tests", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    path = tmp_path / "gpu_check.json"
    assert f"summary: {path}" in out and "unit-tests-cuda" in out
    summary = json.loads(path.read_text())
    assert summary["dry_run"] is True and summary["n_steps"] == 1 and summary["n_run"] == 0
    assert summary["ok"] is False and summary["steps"][0]["rc"] is None
    assert summary["steps"][0]["command"].endswith("-k cuda " + str(ROOT / "tests"))
    with pytest.raises(SystemExit):
        gpu_check.main(["--bogus"])


def _step(name, code, expect=(), timeout=60):
    return gpu_check.Step(name, "g", [PY, "-c", code], timeout, list(expect))


def test_run_step_records_rc_seconds_and_expected_output(tmp_path):
    good = gpu_check.run_step(_step("good", "print('final: ok')", ["final:"]), tmp_path)
    assert (good.rc, good.ok, good.problem) == (0, True, None) and good.seconds > 0
    assert (tmp_path / "good.log").read_text().splitlines()[1] == "final: ok"
    silent = gpu_check.run_step(_step("silent", "print('hello')", ["final:"]), tmp_path)
    assert silent.rc == 0 and silent.ok is False and "expected output not found: ['final:']" in silent.problem
    bad = gpu_check.run_step(_step("bad", "import sys; print('boom'); sys.exit(3)"), tmp_path)
    assert bad.rc == 3 and bad.ok is False and bad.problem == "exit status 3; last line: boom"
    slow = gpu_check.run_step(_step("slow", "import time; time.sleep(30)", timeout=1), tmp_path)
    assert slow.rc == 124 and slow.ok is False and slow.problem == "timed out after 1 s"


def test_main_runs_the_plan_and_summarises_it(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(gpu_check, "_cuda_count", lambda: 1)  # pretend a GPU, run a stand-in plan on the CPU
    monkeypatch.setattr(gpu_check, "_environment", lambda device: {"device": "stand-in GPU"})
    plans = {"pass": [_step("one", "print('x')"), _step("two", "print('final: 1')", ["final:"])],
             "fail": [_step("one", "print('x')"), _step("two", "raise SystemExit(4)")]}
    for kind, want in (("pass", 0), ("fail", 1)):
        monkeypatch.setattr(gpu_check, "plan", lambda *a, **k: plans[kind])
        out = tmp_path / kind
        assert gpu_check.main(["--out", str(out)]) == want
        printed = capsys.readouterr().out
        summary = json.loads((out / "gpu_check.json").read_text())
        assert summary["device"] == "stand-in GPU" and summary["n_run"] == 2 and summary["ok"] is (want == 0)
        assert [s["rc"] for s in summary["steps"]] == [0, 0 if want == 0 else 4]
        assert all(isinstance(s["seconds"], float) and s["command"].startswith(PY) for s in summary["steps"])
        assert summary["n_failed"] == (0 if want == 0 else 1) and not list(out.glob("*.tmp"))
        assert f"summary: {out / 'gpu_check.json'}" in printed.splitlines()[-1]


def test_results_record_epoch_time_and_peak_memory_for_chapter_8(tmp_path):
    from dlc_teach.training import train
    from support_experiment import SynthRegression

    device = "cuda" if torch.cuda.is_available() else "cpu"
    res = train(SynthRegression.from_preset("tiny"), out_dir=tmp_path, device=device, progress=False, log=None)
    saved = json.loads((tmp_path / "results.json").read_text())
    times = [e["epoch_time_s"] for e in saved["history"]]
    assert len(times) == 2 and all(0 < t < res["wall_time_s"] for t in times)
    assert sum(times) <= saved["wall_time_s"]
    if device == "cpu":
        assert saved["peak_memory_bytes"] is None
    else:
        assert isinstance(saved["peak_memory_bytes"], int) and saved["peak_memory_bytes"] > 0
