"""What every benchmark prints first, and the devices it measures on.

``--device auto`` (the default of the benchmarks) measures on the CPU and, when one is present, on CUDA, in the same
run, so the two ratios can be read side by side: on a CPU a step is long and DLC's fixed cost hides in it; on a GPU a
base step takes milliseconds and every host sync or small kernel of the objective shows.
"""
from __future__ import annotations

import platform

import torch

__all__ = ["devices", "environment", "sync"]


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
