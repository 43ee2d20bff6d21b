"""What does DLC cost for DeepLK?  One training step with DLC (Eq. 11) vs without (Eq. 1), full model size.

The ``full`` preset's model (per level an input and a template network of ``layers`` 3 × 3 convs of
``width`` channels; three levels ¼, ½, full on 192 × 192 inputs and 128 × 128 templates; batch 4),
timed for one training step (``loss_fn`` → objective → backward → optimiser step, the calls of
:func:`dlc_teach.training.train`) with and without DLC, interleaved, median of ``--repeats`` steps.
The feature networks run once per step either way; DLC only adds warps and LK losses at the 2K extra
corner offsets (one batched warp per level). Target: DLC / base <= 1.3.
Also prints the ``gpu`` preset's step (batch 16) when measuring on CUDA.

    python benchmarks/bench_homography.py                 # CPU (one thread) + CUDA when present
    python benchmarks/bench_homography.py --device cuda --repeats 20
"""
from __future__ import annotations

import argparse

import torch

from benchcommon import devices, environment, time_interleaved, training_step
from dlc_teach.tasks.homography import DeepLKHomography


def make_step(exp: DeepLKHomography, dlc: bool, device: torch.device):
    """One training step on a fixed random batch of the preset's sizes (input, template, corner offsets)."""
    c = exp.config
    g = torch.Generator().manual_seed(1)
    B = c.batch_size
    batch = (torch.rand(B, 3, c.input_size, c.input_size, generator=g).to(device),
             torch.rand(B, 3, c.template_size, c.template_size, generator=g).to(device),
             ((torch.rand(B, 8, generator=g) * 2 - 1) * c.max_perturb).to(device))
    return training_step(exp, dlc, batch, device)


def measure(preset: str, args, device: torch.device) -> float:
    exp = DeepLKHomography.from_preset(preset)
    c = exp.config
    t = time_interleaved({"base": make_step(exp, False, device), "dlc": make_step(exp, True, device)},
                         args.warmup, args.repeats, device)
    ratio = t["dlc"] / t["base"]
    print(f"preset {preset} (input {c.input_size}, template {c.template_size}, width {c.width}, layers {c.layers}, "
          f"levels {c.levels}, batch {c.batch_size}, K={c.n_samples}): base {t['base'] * 1e3:.1f} ms/step, "
          f"DLC {t['dlc'] * 1e3:.1f} ms/step, DLC/base = {ratio:.3f} (target <= 1.3)", flush=True)
    return ratio


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="auto", help="auto (CPU, and CUDA when present; default), cpu, cuda, ...")
    ap.add_argument("--threads", type=int, default=None, help="torch threads on CPU (default 1)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    out = {}
    for device in devices(args.device):
        if device.type == "cpu":
            torch.set_num_threads(args.threads or 1)
        print(environment(device), flush=True)
        out[device.type] = {"full": measure("full", args, device)}
        if device.type == "cuda":
            out[device.type]["gpu"] = measure("gpu", args, device)
    print("summary: DLC/base at full size: " + ", ".join(f"{d} {r['full']:.3f}" for d, r in out.items())
          + " (target <= 1.3)")
    return out


if __name__ == "__main__":
    main()
