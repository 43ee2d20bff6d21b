"""Check everything CUDA-specific in one go (<= 6 minutes on one H100-class GPU); driven by scripts/gpu_check.sh.

Introduced in chapter 8 ("Reproducing at full scale"). The plan, in order:

1. ``tests``: the CUDA-parametrised unit tests (``pytest -k cuda``: the ``device`` parameters of
   ``tests/test_objective.py``, ``tests/test_neighborhoods.py``, ...); collecting none is a failure.
2. ``benchmarks``: every ``benchmarks/bench_*.py --device cuda`` (and ``bench_dlc_step.py --net mlp``).
3. per experiment (``dlc_teach.tasks.EXPERIMENTS``):
   ``tiny`` through the CLI, stopped one step into its second epoch (``--max-steps``), then ``--resume``
   (which must say it resumed after epoch 1); ``tiny`` through ``torchrun`` with one process per visible
   GPU (NCCL joins a process group only with two or more; a one-process NCCL all-reduce checks the
   backend itself); and, where the experiment defines the optional ``gpu`` preset, its baseline and DLC
   runs with ``--record`` (results land in ``data/results/<experiment>-gpu-<base|dlc>.json``).

Every step's output goes to ``OUT/logs/<step>.log``; one JSON summary (each step's command, return
code, seconds, whether its expected output appeared) goes to ``OUT/gpu_check.json``, printed at the start
and the end. ``--dry-run`` writes and prints the plan without running it (works without a GPU);
``--device cpu`` rehearses the experiment steps on the CPU (Gloo instead of NCCL) to check the commands.
Without a CUDA device (and neither of those) it stops at once with a clear error (exit status 2).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GROUPS = ("tests", "benchmarks")  # the shared steps; --only also accepts experiment names
BUDGET_S = 360  # the whole check should fit in 6 minutes on one H100-class GPU



def nccl_smoke() -> int:
    """Under torchrun: join an NCCL process group (any world size, also 1) and all-reduce a CUDA tensor."""
    import torch
    import torch.distributed as dist

    torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl")
    x = torch.ones(1, device="cuda")
    dist.all_reduce(x)
    ok = int(x.item()) == dist.get_world_size()
    print(f"nccl all_reduce {'ok' if ok else 'WRONG'}: {x.item()} over world size {dist.get_world_size()}")
    dist.destroy_process_group()
    return 0 if ok else 1


@dataclass
class Step:
    """One command of the plan; ``expect`` are substrings its output must contain to pass."""

    name: str
    group: str  # "tests", "benchmarks" or an experiment name
    command: list[str]
    timeout_s: int
    expect: list[str] = field(default_factory=list)
    rc: int | None = None
    seconds: float | None = None
    ok: bool | None = None
    log: str | None = None
    problem: str | None = None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="scripts/gpu_check.sh", description=__doc__.split("\n")[0])
    p.add_argument("--only", action="append", metavar="NAME", default=None,
                   help="run only these parts (repeatable): an experiment name, 'tests' or 'benchmarks'")
    p.add_argument("--out", metavar="DIR", help="where logs and gpu_check.json go (default runs/gpu-check-<UTC>)")
    p.add_argument("--device", default="cuda", help="cuda (default), cuda:N, or cpu to rehearse the experiment "
                                                     "steps without a GPU")
    p.add_argument("--dry-run", action="store_true", help="write and print the plan; run nothing")
    p.add_argument("--no-record", action="store_true", help="run the gpu presets without --record")
    p.add_argument("--nccl-smoke", action="store_true", help=argparse.SUPPRESS)  # the nccl step, under torchrun
    return p


def _cuda_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _resume_steps(name: str) -> int | None:
    """Optimiser steps that end one step into epoch 2 of the ``tiny`` preset (one epoch = ceil(n / batch));
    None when ``tiny`` has a single epoch (then the first run completes and the resume loads its checkpoint)."""
    from dlc_teach.presets import get_config
    from dlc_teach.tasks import get_experiment

    cfg = get_config(name, "tiny")
    if cfg.epochs < 2:
        return None
    n_train = len(get_experiment(name)(cfg).datasets()[0])
    return math.ceil(n_train / cfg.batch_size) + 1


def plan(only: list[str] | None, device: str, out: Path, record: bool = True,
         n_gpus: int | None = None) -> list[Step]:
    """The ordered steps for ``device`` (``cuda``/``cuda:N``/``cpu``), restricted to ``only`` when given."""
    from dlc_teach.presets import available_presets
    from dlc_teach.tasks import EXPERIMENTS

    names = sorted(EXPERIMENTS)
    wanted = list(only) if only else list(GROUPS) + names
    unknown = [w for w in wanted if w not in GROUPS and w not in names]
    if unknown:
        raise ValueError(f"--only {unknown[0]!r}: expected an experiment {names} or one of {list(GROUPS)}")
    cpu = device == "cpu"
    if not cpu and not (device == "cuda" or (device.startswith("cuda:") and device[5:].isdigit())):
        raise ValueError(f"--device must be cuda, cuda:N or cpu, got {device!r}")
    py, runs = sys.executable, out / "runs"
    steps = []
    if "tests" in wanted and not cpu:
        steps.append(Step("unit-tests-cuda", "tests", [py, "-m", "pytest", "-p", "no:randomly", "-q", "-k", "cuda",
                                                        str(ROOT / "tests")], 240, ["passed"]))
    if "benchmarks" in wanted and not cpu:
        for bench in sorted((ROOT / "benchmarks").glob("bench_*.py")):
            steps.append(Step(bench.stem, "benchmarks", [py, str(bench), "--device", device], 120))
            if bench.stem == "bench_dlc_step":
                steps.append(Step(bench.stem + "-mlp", "benchmarks",
                                  [py, str(bench), "--device", device, "--net", "mlp"], 120))
    n_proc = max(1, n_gpus if n_gpus is not None else (1 if cpu else _cuda_count()))
    torchrun = [py, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(n_proc)]
    if not cpu and any(w in names for w in wanted):
        steps.append(Step("nccl-all-reduce", "torchrun", torchrun + [str(Path(__file__).resolve()), "--nccl-smoke"],
                          90, ["nccl all_reduce ok"]))
    for name in (n for n in names if n in wanted):
        cli = [py, "-m", "dlc_teach", "train", name, "--no-progress"]
        tiny = cli + ["--preset", "tiny", "--device", device, "--out", str(runs / f"{name}-tiny")]
        stop = _resume_steps(name)
        if stop is None:
            steps.append(Step(f"{name}-tiny", name, tiny, 150, ["final:"]))
        else:
            steps.append(Step(f"{name}-tiny-interrupted", name, tiny + ["--max-steps", str(stop)], 150,
                              ["stopped after max_steps"]))
        steps.append(Step(f"{name}-tiny-resume", name, tiny + ["--resume"], 150, ["resumed from", "after epoch 1"]))
        ddp = torchrun + ["-m", "dlc_teach", "train", name, "--no-progress", "--preset", "tiny",
                          "--out", str(runs / f"{name}-tiny-torchrun")] + (["--device", "cpu"] if cpu else [])
        steps.append(Step(f"{name}-tiny-torchrun", name, ddp, 150,
                          [f"x {n_proc} processes"] if n_proc > 1 else ["final:"]))
        if "gpu" in available_presets(name):
            for tag, flag in (("base", ["--no-dlc"]), ("dlc", [])):
                steps.append(Step(f"{name}-gpu-{tag}", name, cli + ["--preset", "gpu", "--device", device, "--out",
                                  str(runs / f"{name}-gpu-{tag}")] + flag + (["--record"] if record else []), 300,
                                  ["recorded"] if record else ["final:"]))
    return steps


def run_step(step: Step, logs: Path, env: dict | None = None) -> Step:
    """Run one step (output to ``logs/<name>.log``); fill in ``rc``, ``seconds``, ``ok`` and ``problem``."""
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{step.name}.log"
    step.log = str(log)
    t0 = time.perf_counter()
    with open(log, "w", encoding="utf-8") as fh:
        fh.write("$ " + shlex.join(step.command) + "\n")
        fh.flush()
        try:
            step.rc = subprocess.run(step.command, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT,
                                     timeout=step.timeout_s, env=env).returncode
        except subprocess.TimeoutExpired:
            step.rc = 124
        except OSError as err:
            step.rc, step.problem = 127, f"could not start: {err}"
    step.seconds = round(time.perf_counter() - t0, 2)
    text = log.read_text(encoding="utf-8", errors="replace")
    missing = [e for e in step.expect if e not in text]
    step.ok = step.rc == 0 and not missing
    if step.rc == 124:
        step.problem = f"timed out after {step.timeout_s} s"
    elif step.rc == 5 and "pytest" in step.command:
        step.problem = "pytest collected no tests (no CUDA-parametrised tests found)"
    elif step.rc != 0 and step.problem is None:
        step.problem = f"exit status {step.rc}; last line: " + (text.strip().splitlines() or [""])[-1][:200]
    elif missing:
        step.problem = f"expected output not found: {missing}"
    return step


def _environment(device: str) -> dict:
    import torch

    cuda = device != "cpu" and torch.cuda.is_available()
    return {"device": torch.cuda.get_device_name(torch.device(device)) if cuda else "cpu",
            "n_gpus": _cuda_count(), "torch": torch.__version__, "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if cuda else None, "python": sys.version.split()[0]}


def write_summary(path: Path, steps: list[Step], meta: dict) -> dict:
    """Write the JSON summary atomically; returns it."""
    done = [s for s in steps if s.rc is not None]
    summary = {**meta, "steps": [asdict(s) | {"command": shlex.join(s.command)} for s in steps],
               "n_steps": len(steps), "n_run": len(done), "n_failed": sum(not s.ok for s in done),
               "total_seconds": round(sum(s.seconds or 0 for s in done), 1), "budget_seconds": BUDGET_S}
    summary["ok"] = bool(done) and len(done) == len(steps) and summary["n_failed"] == 0
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return summary


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    if a.nccl_smoke:
        return nccl_smoke()
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = Path(a.out) if a.out else ROOT / "runs" / f"gpu-check-{stamp}"
    if a.device != "cpu" and not a.dry_run and _cuda_count() == 0:
        import torch

        print(f"gpu_check: error: no CUDA device is visible (torch {torch.__version__}, built for CUDA "
              f"{torch.version.cuda}); this script checks the CUDA paths and needs an NVIDIA GPU. "
              f"Use --dry-run to see the plan, or --device cpu to rehearse the experiment steps.", file=sys.stderr)
        return 2
    try:
        steps = plan(a.only, a.device, out, record=not a.no_record)
    except ValueError as err:
        print(f"gpu_check: error: {err}", file=sys.stderr)
        return 2
    summary_path = out / "gpu_check.json"
    meta = {"started": datetime.now(timezone.utc).isoformat(timespec="seconds"), "argv": sys.argv[1:],
            "dry_run": a.dry_run, "requested_device": a.device, **_environment(a.device)}
    write_summary(summary_path, steps, meta)
    print(f"gpu_check: {len(steps)} steps on {meta['device']}; summary: {summary_path}")
    for i, s in enumerate(steps, 1):
        print(f"  {i:2d}. [{s.group}] {s.name}: {shlex.join(s.command)}")
    if a.dry_run:
        return 0
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for i, s in enumerate(steps, 1):
        print(f"[{i}/{len(steps)}] {s.name} ...", end=" ", flush=True)
        run_step(s, out / "logs", env)
        print(f"{'ok' if s.ok else 'FAILED'} ({s.seconds:.1f} s)" + (f": {s.problem}" if s.problem else ""),
              flush=True)
        meta["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        summary = write_summary(summary_path, steps, meta)
    over = summary["total_seconds"] > BUDGET_S
    print(f"gpu_check: {summary['n_run'] - summary['n_failed']}/{summary['n_run']} steps ok in "
          f"{summary['total_seconds']:.0f} s" + (f" (over the {BUDGET_S} s budget)" if over else "")
          + f"; summary: {summary_path}")
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
