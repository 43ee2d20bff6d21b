"""What does DLC cost on Pixel-MNIST?  One training step with DLC (Eq. 11) vs without (Eq. 1).

Two measurements, in one run:

1. **Full-size step ratio.** The paper's model — LSTM(1 → 128) over 784 pixels, batch 128 — timed for
   one training step (``loss_fn`` → objective → backward → optimiser step, exactly the calls
   :func:`dlc_teach.training.train` makes) with and without DLC. The two variants alternate
   (rotating which goes first each round) and we report the median of ``--repeats`` steps after
   ``--warmup`` steps, so drift on a shared machine affects both alike. Target: DLC / base <= 1.10
   (the paper reports about 2x; here the network runs once and only h is re-evaluated at 1 + 2K points).
2. **Throughput at preset ci** (the notebook's setting: 49 steps, hidden 128, batch 32): samples/s of
   training with and without DLC.

Inputs are random normalised sequences of the right shape (timing does not depend on the pixels).

    python benchmarks/bench_pixel_mnist.py                    # CPU (one thread) + CUDA when present
    python benchmarks/bench_pixel_mnist.py --threads 2        # more threads (slower when the cores are shared)
    python benchmarks/bench_pixel_mnist.py --device cuda --repeats 50
"""
from __future__ import annotations

import argparse

import torch

from benchcommon import devices, environment, time_interleaved, training_step
from dlc_teach.tasks.pixel_mnist import PixelMNIST


def make_step(exp: PixelMNIST, dlc: bool, batch_size: int, device: torch.device):
    """One training step on a fixed random batch of normalised sequences, ``x [B, T, 1]``, ``y [B]``."""
    g = torch.Generator().manual_seed(1)
    batch = (torch.randn(batch_size, exp.config.seq_len, 1, generator=g).to(device),
             torch.randint(0, 10, (batch_size,), generator=g).to(device))
    return training_step(exp, dlc, batch, device)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="auto", help="auto (CPU, and CUDA when present; default), cpu, cuda, ...")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch.set_num_threads; default 1 on CPU (these LSTM matrices are small, and on a shared "
                         "machine extra threads mostly wait on each other: measured 2.7x noisier), torch's choice on GPU")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--ci-repeats", type=int, default=30, help="repeats for the preset-ci throughput")
    args = ap.parse_args(argv)
    default_threads = torch.get_num_threads()
    out = {}
    for device in devices(args.device):
        threads = args.threads if args.threads is not None else (1 if device.type == "cpu" else default_threads)
        torch.set_num_threads(threads)
        print(environment(device))
        out[device.type] = measure(args, device)
    print("summary: DLC/base at full size (same run): " + ", ".join(
        f"{dev} {r['full_ratio']:.3f}" for dev, r in out.items()) + " (target <= 1.10)")
    return out


def measure(args, device: torch.device) -> dict:
    """The full-size step ratio and the preset-ci throughput on ``device``."""
    name = environment(device)

    full = PixelMNIST.from_preset("full")
    c = full.config
    t = time_interleaved({"base": make_step(full, False, c.batch_size, device),
                          "dlc": make_step(full, True, c.batch_size, device)}, args.warmup, args.repeats, device)
    ratio = t["dlc"] / t["base"]
    print(f"full size (T={c.seq_len}, hidden {c.hidden}, batch {c.batch_size}, K={c.n_samples}): "
          f"base {t['base'] * 1e3:.1f} ms/step, DLC {t['dlc'] * 1e3:.1f} ms/step, "
          f"DLC/base = {ratio:.3f} (target <= 1.10)")

    ci = PixelMNIST.from_preset("ci")
    b = ci.config.batch_size
    t_ci = time_interleaved({"base": make_step(ci, False, b, device), "dlc": make_step(ci, True, b, device)},
                            args.warmup, args.ci_repeats, device)
    print(f"preset ci (T={ci.config.seq_len}, hidden {ci.config.hidden}, batch {b}): "
          f"base {b / t_ci['base']:.0f} samples/s, DLC {b / t_ci['dlc']:.0f} samples/s, "
          f"DLC/base time = {t_ci['dlc'] / t_ci['base']:.3f}")
    return {"device": name, "full_ms": {k: v * 1e3 for k, v in t.items()}, "full_ratio": ratio,
            "ci_samples_per_s": {k: b / v for k, v in t_ci.items()}}


if __name__ == "__main__":
    main()
