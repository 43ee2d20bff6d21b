"""One module per experiment; each defines an :class:`~dlc_teach.tasks.base.Experiment` subclass.

``EXPERIMENTS`` maps the CLI name of each experiment to ``"module:Class"`` so that importing
this package stays cheap; :func:`get_experiment` imports on demand.
"""
from __future__ import annotations

import importlib

from .base import Experiment, ExperimentConfig

EXPERIMENTS: dict[str, str] = {
    "homography": "dlc_teach.tasks.homography:DeepLKHomography",
    "pixel-mnist": "dlc_teach.tasks.pixel_mnist:PixelMNIST",
    "toy-alignment": "dlc_teach.tasks.toy_alignment:ToyAlignment1D",
    "toy-alignment-2d": "dlc_teach.tasks.toy_alignment2d:ToyAlignment2D",
    "registration": "dlc_teach.tasks.registration:Registration",
    "registration-dcploss": "dlc_teach.tasks.registration:RegistrationDCPLoss",
}


def get_experiment(name: str) -> type[Experiment]:
    """The Experiment class registered under ``name`` (e.g. ``"pixel-mnist"``)."""
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; expected one of {sorted(EXPERIMENTS)}")
    module, cls = EXPERIMENTS[name].split(":")
    return getattr(importlib.import_module(module), cls)


__all__ = ["EXPERIMENTS", "Experiment", "ExperimentConfig", "get_experiment"]
