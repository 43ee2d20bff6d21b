"""One run of the CPU recipe search behind Pixel-MNIST's ``gpu`` preset (chapter 8).

Introduced in chapter 8. Trains the paper's model (LSTM 1 -> 128, last-state read-out) on the offline
4,000 / 1,000 digits with the ``ci`` preset's fields overridden by a JSON dict (e.g. ``downsample``,
``batch_size``, ``lr``, ``forget_bias``; ``"dlc": true`` trains with DLC), on one CPU thread, and prints the
test accuracy after every epoch and one ``RESULT {...}`` JSON line at the end. A deliberately small loop (no
checkpoints, no train-subset evaluation) so that a handful of configurations fits in minutes:

    python scripts/pixel_mnist_recipe_search.py A 20 '{"downsample": 2, "batch_size": 32, "lr": 1e-3}'

The results the book shows are in ``data/recipe_search/pixel_mnist.json``.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import replace

import torch

from dlc_teach.tasks.pixel_mnist import PixelMNIST


def run(tag: str, epochs: int, **overrides) -> dict:
    """Train one configuration; returns ``{"tag", "kw", "epochs", "curve" (test acc % per epoch), ...}``."""
    dlc = overrides.pop("dlc", False)
    cfg = replace(PixelMNIST.presets["ci"], preset="gpu", epochs=epochs, **overrides)
    exp = PixelMNIST(cfg)
    train, test = exp.datasets()
    x_train, y_train = train.tensors  # [N, T, 1], [N]
    x_test, y_test = test.tensors
    torch.manual_seed(cfg.seed)
    model = exp.build_model()
    opt = exp.make_optimizer(model.parameters())
    objective = exp.dlc_loss() if dlc else None
    noise = torch.Generator().manual_seed(cfg.seed + 1)
    order = torch.Generator().manual_seed(cfg.seed)
    curve, t0 = [], time.time()
    for epoch in range(epochs):
        perm, total, n = torch.randperm(len(y_train), generator=order), 0.0, 0
        for i in range(0, len(perm) - cfg.batch_size + 1, cfg.batch_size):
            idx = perm[i:i + cfg.batch_size]
            batch = (x_train[idx], y_train[idx])
            if objective is None:
                loss = exp.base_loss(model, batch)
            else:
                h, omega_star = exp.loss_fn(model, batch)
                loss = objective(h, omega_star, generator=noise).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
            total, n = total + float(loss.detach()), n + 1
        model.eval()
        with torch.no_grad():
            acc = 100.0 * float((model(x_test).argmax(-1) == y_test).float().mean())  # [N_test] -> %
        model.train()
        curve.append(round(acc, 1))
        print(f"{tag} ep{epoch + 1} train_loss {total / n:.3f} test_acc {acc:.1f} t {time.time() - t0:.0f}s",
              flush=True)
    return {"tag": tag, "kw": {**overrides, "dlc": dlc}, "epochs": epochs, "curve": curve, "best": max(curve),
            "final": curve[-1], "seconds": round(time.time() - t0)}


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    torch.set_num_threads(1)
    print("RESULT", json.dumps(run(sys.argv[1], int(sys.argv[2]), **json.loads(sys.argv[3]))), flush=True)
