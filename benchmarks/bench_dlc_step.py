"""How much does DLC add to one training step?  Base loss vs DLCLoss at K = 3 and K = 10.

One training step = forward pass, loss, backward pass, optimizer step. The network runs ONCE per
step and produces a prediction ``p [B, d]``; the loss ``h(ω)`` is cheap in ω, so DLC's extra cost is
only the 2K extra evaluations of ``h`` on a ``[1 + 2K, B, d]`` tensor (one batched call) plus their
backward pass. The paper reports DLC at about 2x the baseline's cost; we aim for <= 1.15x at K = 3.

Networks (``--net``):

* ``conv`` (default): a Pixel-MNIST-sized classifier, 28x28 grey images, batch 128,
  conv 1->32 (3x3) -> conv 32->64 (3x3, stride 2) -> conv 64->128 (3x3, stride 2) -> fc 6272->256
  -> fc 256->10 (about 1.7 M parameters); ω is a soft label on the simplex
  (``SimplexNeighborhood``), h(ω) = −Σ_c ω_c log softmax(p)_c (cross-entropy with a soft label).
* ``mlp``: a regression MLP 784->1024->1024->6, batch 256 (about 1.9 M parameters); ω ∈ R^6
  (``GaussianNeighborhood``), h(ω) = ‖p − ω‖².

The three variants are timed in the SAME run, interleaved (rotating order each round), and the
median of ``--repeats`` steps after ``--warmup`` steps is reported, so drift of a shared machine
affects them alike.

    python benchmarks/bench_dlc_step.py                 # CPU (+ CUDA when present), about 40 s on 2 busy cores
    python benchmarks/bench_dlc_step.py --device cuda --repeats 200 --net mlp

Targets: DLC/base at K = 3 <= 1.15 on a CPU; on a GPU <= 1.10 (conv) and <= 1.15 (mlp).
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from benchcommon import devices, environment
from dlc_teach.neighborhoods import GaussianNeighborhood, SimplexNeighborhood
from dlc_teach.objective import DLCLoss

#: DLC/base at K = 3 that this benchmark aims for, per device type and network
TARGETS = {("cpu", "conv"): 1.15, ("cpu", "mlp"): 1.15, ("cuda", "conv"): 1.10, ("cuda", "mlp"): 1.15}


def make_problem(net: str, device: torch.device, seed: int = 0):
    """Returns (model factory, x [B, ...], omega_star [B, d], h builder, neighbourhood)."""
    g = torch.Generator().manual_seed(seed)
    if net == "conv":
        B, C = 128, 10

        def model():
            torch.manual_seed(seed)
            return nn.Sequential(
                nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(),
                nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(),  # [B, 64, 14, 14]
                nn.Conv2d(64, 128, 3, stride=2, padding=1), nn.ReLU(),  # [B, 128, 7, 7]
                nn.Flatten(), nn.Linear(128 * 7 * 7, 256), nn.ReLU(), nn.Linear(256, C),
            ).to(device)

        x = torch.rand(B, 1, 28, 28, generator=g).to(device)  # [B, 1, 28, 28]
        y = torch.randint(0, C, (B,), generator=g).to(device)
        omega_star = nn.functional.one_hot(y, C).float()  # [B, C]

        def h_of(p):  # p: logits [B, C]
            logp = torch.log_softmax(p, dim=-1)  # computed once, broadcast over the 1 + 2K points
            return lambda omega: -(omega * logp).sum(-1)  # [..., B, C] -> [..., B]

        return model, x, omega_star, h_of, SimplexNeighborhood(sigma=1.0)
    if net == "mlp":
        B, d = 256, 6

        def model():
            torch.manual_seed(seed)
            return nn.Sequential(nn.Flatten(), nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(),
                                 nn.Linear(1024, d)).to(device)

        x = torch.rand(B, 784, generator=g).to(device)  # [B, 784]
        omega_star = torch.randn(B, d, generator=g).to(device)  # [B, d]

        def h_of(p):  # p: prediction [B, d]
            return lambda omega: (p - omega).pow(2).sum(-1)  # [..., B, d] -> [..., B]

        return model, x, omega_star, h_of, GaussianNeighborhood(sigma=0.5)
    raise ValueError(f"--net must be 'conv' or 'mlp', got {net!r}")


def make_step(model, x, omega_star, h_of, loss_fn):
    """One full training step; ``loss_fn=None`` is the base loss mean h(ω*)."""
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

    def step():
        opt.zero_grad(set_to_none=True)
        h = h_of(model(x))
        loss = h(omega_star).mean() if loss_fn is None else loss_fn(h, omega_star).loss
        loss.backward()
        opt.step()
        return loss

    return step


def time_objective_only(p, omega_star, h_of, loss_fn, repeats, sync):
    """Median seconds of the loss alone (forward + backward down to ``p``), network excluded."""
    p = p.detach().requires_grad_()  # [B, d]
    times = []
    for r in range(repeats + 3):
        sync()
        t0 = time.perf_counter()
        h = h_of(p)
        loss = h(omega_star).mean() if loss_fn is None else loss_fn(h, omega_star).loss
        loss.backward()
        sync()
        if r >= 3:
            times.append(time.perf_counter() - t0)
        p.grad = None
    return statistics.median(times)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--net", choices=["conv", "mlp"], default="conv")
    ap.add_argument("--device", default="auto", help="auto (CPU, and CUDA when present), cpu, cuda, cuda:1, ...")
    ap.add_argument("--repeats", type=int, default=25, help="timed steps per variant (median reported)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps per variant first")
    # One thread by default: on a shared CPU, multi-threaded small ops stall waiting for descheduled
    # threads (measured here: 20 ms for a 0.1 ms op), noise unrelated to DLC. 0 keeps torch's default.
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: torch's default)")
    args = ap.parse_args(argv)
    if args.repeats < 1 or args.warmup < 0:
        ap.error("--repeats must be >= 1 and --warmup >= 0")
    if args.threads:
        torch.set_num_threads(args.threads)
    summary = {}
    for device in devices(args.device):
        print(environment(device))
        summary[device.type] = measure(args, device)
    print("summary: DLC/base at K=3 (median whole steps, same run): " + ", ".join(
        f"{dev} {r['DLC K=3'] / r['base']:.3f} (target <= {TARGETS[(dev, args.net)]:.2f})" for dev, r in summary.items()))
    return summary


def measure(args, device: torch.device) -> dict:
    """Median seconds of one step of each variant on ``device``; prints the table."""
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)

    model, x, omega_star, h_of, hood = make_problem(args.net, device)
    variants = {"base": None}
    for K in (3, 10):
        variants[f"DLC K={K}"] = DLCLoss(rho=1.0, lam=0.5, mu=1.0, n_samples=K, neighborhood=hood).to(device)
    steps = {name: make_step(model(), x, omega_star, h_of, fn) for name, fn in variants.items()}
    n_params = sum(p.numel() for p in model().parameters())
    print(f"net={args.net} ({n_params / 1e6:.2f} M parameters), batch={x.shape[0]}, d={omega_star.shape[1]}, "
          f"device={device}, threads={torch.get_num_threads()}, warmup={args.warmup}, repeats={args.repeats}")

    names = list(steps)
    times = {n: [] for n in names}
    for r in range(args.warmup + args.repeats):
        order = names[r % len(names):] + names[:r % len(names)]  # rotate who goes first
        for n in order:
            sync()
            t0 = time.perf_counter()
            steps[n]()
            sync()
            if r >= args.warmup:
                times[n].append(time.perf_counter() - t0)

    base = statistics.median(times["base"])
    with torch.no_grad():
        p = model()(x)  # [B, d]
    loss_only = {n: time_objective_only(p, omega_star, h_of, fn, 4 * args.repeats, sync) for n, fn in variants.items()}
    print("One training step (forward, loss, backward, SGD step); 'loss only' = the objective's forward+backward")
    print(f"{'variant':<10} {'median ms':>10} {'min ms':>8} {'IQR ms':>15} {'x base':>7} {'loss only ms':>13}")
    for n in names:
        t = sorted(times[n])
        med, q1, q3 = statistics.median(t), t[len(t) // 4], t[(3 * len(t)) // 4]
        print(f"{n:<10} {1e3 * med:>10.2f} {1e3 * t[0]:>8.2f} {1e3 * q1:>7.2f}-{1e3 * q3:<7.2f} {med / base:>7.3f}"
              f" {1e3 * loss_only[n]:>13.3f}")
    for K in (3, 10):
        n = f"DLC K={K}"
        extra = (loss_only[n] - loss_only["base"]) / base
        print(f"DLC/base at K={K}: {statistics.median(times[n]) / base:.3f} (medians of whole steps; "
              f"min/min {min(times[n]) / min(times['base']):.3f}); the objective's own extra cost is "
              f"{100 * extra:.2f} % of a base step")
    print(f"target: <= {TARGETS[(device.type, args.net)]:.2f} at K=3 (the paper reports about 2x)")
    return {n: statistics.median(t) for n, t in times.items()}


if __name__ == "__main__":
    main()
