"""A small synthetic Experiment used only by the tests of the training loop, CLI and DDP.

Regression of ω* ∈ R² from x ∈ R⁴ with a two-layer MLP (with dropout, so the
global torch RNG matters) and h(ω) = ‖f(x) − ω‖² / d; a MultiStepLR scheduler,
so that resuming must restore scheduler state too.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import TensorDataset

from dlc_teach.neighborhoods import GaussianNeighborhood
from dlc_teach.tasks.base import Experiment, ExperimentConfig


@dataclass(frozen=True)
class SynthConfig(ExperimentConfig):
    n_train: int = 96
    n_test: int = 32
    hidden: int = 16
    sigma: float = 0.5
    milestones: tuple = (1,)


class SynthRegression(Experiment):
    name = "synth"
    presets = {
        "tiny": SynthConfig(preset="tiny", epochs=2, batch_size=16, lr=1e-2, eval_train_size=40),
        "ci": SynthConfig(preset="ci", epochs=3, batch_size=16, lr=1e-2, n_train=192),
        "full": SynthConfig(preset="full", epochs=10, batch_size=32, lr=1e-2, n_train=2048, n_test=512),
    }
    main_metric = "test_mae"

    def datasets(self):
        c = self.config
        g = torch.Generator().manual_seed(1234)
        w = torch.randn(4, 2, generator=g)
        x = torch.randn(c.n_train + c.n_test, 4, generator=g)
        y = torch.tanh(x @ w) + 0.05 * torch.randn(len(x), 2, generator=g)
        return TensorDataset(x[:c.n_train], y[:c.n_train]), TensorDataset(x[c.n_train:], y[c.n_train:])

    def build_model(self):
        h = self.config.hidden
        return nn.Sequential(nn.Linear(4, h), nn.Tanh(), nn.Dropout(0.1), nn.Linear(h, 2))

    def neighborhood(self):
        return GaussianNeighborhood(self.config.sigma)

    def loss_fn(self, model, batch):
        x, y = batch
        pred = model(x)  # [B, 2]

        def h(omega):  # [..., B, 2] -> [..., B]
            return (pred - omega).pow(2).mean(-1)

        return h, y

    def evaluate(self, model, loader):
        se, ae, n = 0.0, 0.0, 0
        for x, y in loader:
            err = model(x) - y
            se += float(err.pow(2).sum())
            ae += float(err.abs().sum())
            n += err.numel()
        return {"loss": se / n, "mae": ae / n}

    def make_scheduler(self, optimizer):
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(self.config.milestones), gamma=0.5)
