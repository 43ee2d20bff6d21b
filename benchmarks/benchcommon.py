"""What every benchmark prints first, and the devices it measures on.

``--device auto`` (the default of the benchmarks) measures on the CPU and, when one is present, on CUDA, in the same
run, so the two ratios can be read side by side: on a CPU a step is long and DLC's fixed cost hides in it; on a GPU a
base step takes milliseconds and every host sync or small kernel of the objective shows.
"""
from __future__ import annotations

import platform
import statistics
import time
from typing import Any, Callable

import torch

__all__ = ["devices", "environment", "sync", "training_step", "time_interleaved"]


def devices(arg: str) -> list[torch.device]:
    """``"auto"`` -> CPU, plus ``cuda`` when available; otherwise the one device named (checked)."""
    if arg == "auto":
        return [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    dev = torch.device(arg)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device {arg} given, but torch.cuda.is_available() is False (torch {torch.__version__}, "
                         f"built with CUDA {torch.version.cuda})")
    return [dev]


def environment(device: torch.device) -> str:
    """One line: the device's name, torch, CUDA and cuDNN versions, CPU threads."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        extra = f"CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}"
    else:
        name = f"CPU ({platform.processor() or platform.machine()})"
        extra = f"{torch.get_num_threads()} thread(s)"
    return f"device: {name}; torch {torch.__version__}; {extra}; python {platform.python_version()}"


def sync(device: torch.device) -> None:
    """Wait for the device (CUDA kernels are asynchronous), so wall-clock times are true."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def training_step(exp, dlc: bool, batch: Any, device: torch.device) -> Callable[[], None]:
    """One training step of experiment ``exp`` on a fixed ``batch`` (already on ``device``), as a closure.

    The calls are :func:`dlc_teach.training.train`'s: ``loss_fn`` → DLC objective (or the base loss) → backward →
    optimiser step; the model is seeded from the preset, so the DLC and base steps start from the same weights.
    """
    torch.manual_seed(exp.config.seed)
    model = exp.build_model().to(device)
    objective = exp.dlc_loss().to(device) if dlc else None
    params = list(model.parameters()) + (list(objective.parameters()) if objective is not None else [])
    opt = exp.make_optimizer(params)
    noise = torch.Generator(device=device).manual_seed(2)

    def step() -> None:
        if objective is not None:
            h, omega_star = exp.loss_fn(model, batch)
            loss = objective(h, omega_star, generator=noise).loss
        else:
            loss = exp.base_loss(model, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def time_interleaved(steps: dict[str, Callable[[], None]], warmup: int, repeats: int,
                     device: torch.device) -> dict[str, float]:
    """Median seconds per call of each closure; calls interleaved with a rotating order, so drift of a shared
    machine affects every variant alike."""
    names = list(steps)
    for _ in range(warmup):
        for n in names:
            steps[n]()
    sync(device)
    times = {n: [] for n in names}
    for r in range(repeats):
        for n in names[r % len(names):] + names[:r % len(names)]:
            sync(device)
            t0 = time.perf_counter()
            steps[n]()
            sync(device)
            times[n].append(time.perf_counter() - t0)
    return {n: statistics.median(v) for n, v in times.items()}
