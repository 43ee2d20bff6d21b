"""What do the four chained copies and the DLC objective each cost per DCP training step?

Three training steps (forward, loss, backward, Adam step) on the same batch, timed interleaved
(rotating order each round) and reported as medians, so drift of a shared machine affects them alike:

* ``DCP``: one pass of the network, DCP's loss MSE(R̂ᵀR, I) + MSE(t̂, t) (the baseline, Eq. 1);
* ``chain4``: four chained passes, h(ω*) only (DLC+DCP **without** the hinge terms);
* ``DLC+DCP``: four chained passes and the full DLC objective (Eq. 11, K = 3, trainable λ, μ).

chain4/DCP is the cost of the copies, DLC+DCP/chain4 the cost of the objective (target <= 1.10).

    python benchmarks/bench_registration.py                     # preset ci on the CPU, about 1 min
    python benchmarks/bench_registration.py --preset gpu --device cuda --h dcp
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from benchcommon import devices, environment, sync
from dlc_teach.tasks.registration import Registration, RegistrationDCPLoss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="ci", choices=("tiny", "ci", "gpu", "full"))
    ap.add_argument("--h", default="corr", choices=("corr", "dcp"), help="which h DLC+DCP uses")
    ap.add_argument("--device", default="cpu", help="cpu, cuda, or 'all'")
    ap.add_argument("--repeats", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave as is)")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    cls = Registration if a.h == "corr" else RegistrationDCPLoss
    for dev in devices(a.device):
        print(environment(dev))
        exp = cls.from_preset(a.preset, data="procedural" if a.preset == "full" else "auto")
        c = exp.config
        train, _ = exp.datasets()
        batch = [torch.stack(z).to(dev) for z in zip(*(train[i] for i in range(c.batch_size)))]
        torch.manual_seed(0)
        model = exp.build_model().to(dev)
        objective = exp.dlc_loss().to(dev)
        opt = exp.make_optimizer(exp.param_groups(model, objective))

        def dcp():
            return exp.base_loss(model, batch)

        def chain4():
            h, w = exp.loss_fn(model, batch)
            return h(w.unsqueeze(0))[0].mean()

        def dlc():
            h, w = exp.loss_fn(model, batch)
            return objective(h, w).loss

        variants = {"DCP": dcp, f"chain{c.chain}": chain4, "DLC+DCP": dlc}
        times = {k: [] for k in variants}
        names = list(variants)
        for r in range(a.warmup + a.repeats):
            for k in names[r % 3:] + names[:r % 3]:
                sync(dev)
                t0 = time.perf_counter()
                loss = variants[k]()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sync(dev)
                if r >= a.warmup:
                    times[k].append(time.perf_counter() - t0)
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"preset {a.preset}: {c.num_points} points, batch {c.batch_size}, emb {c.emb}, K = {c.n_samples}, "
              f"h = {c.h}, {a.repeats} interleaved steps each (median)")
        for k, v in med.items():
            print(f"  {k:<8} {1000 * v:8.1f} ms/step")
        ch = med[f"chain{c.chain}"]
        print(f"  chain{c.chain}/DCP    = {ch / med['DCP']:.2f}  (cost of the {c.chain} chained copies)")
        print(f"  DLC+DCP/chain{c.chain} = {med['DLC+DCP'] / ch:.2f}  (cost of the hinge terms; target <= 1.10)")
        print(f"  DLC+DCP/DCP    = {med['DLC+DCP'] / med['DCP']:.2f}")


if __name__ == "__main__":
    main()
