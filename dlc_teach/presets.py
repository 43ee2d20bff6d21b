"""Scale presets: ``tiny`` (unit tests, seconds), ``ci`` (notebooks on 2 CPU cores), ``full`` (the paper, GPU).

Introduced in chapter 5. Every experiment defines one frozen config dataclass
per preset (``Experiment.presets``); this module picks the preset (argument,
else the ``DLC_PRESET`` environment variable, else ``"ci"``), looks up an
experiment's config, and prints a config as the block that opens every run.
"""
from __future__ import annotations

import os
from dataclasses import fields, is_dataclass

from .tasks import get_experiment
from .tasks.base import ExperimentConfig

__all__ = ["PRESETS", "DEFAULT_PRESET", "ENV_VAR", "resolve_preset", "get_config", "format_config"]

#: the scale presets every experiment provides, smallest first
PRESETS = ("tiny", "ci", "full")
#: the preset used when neither an argument nor the environment names one
DEFAULT_PRESET = "ci"
#: the environment variable that chooses the preset (e.g. ``DLC_PRESET=full``)
ENV_VAR = "DLC_PRESET"


def resolve_preset(name: str | None = None) -> str:
    """The preset to use: ``name`` if given, else ``$DLC_PRESET``, else ``"ci"``.

    Raises:
        ValueError: the name (from either source) is not one of :data:`PRESETS`.
    """
    source = "argument"
    if name is None:
        name, source = os.environ.get(ENV_VAR) or None, f"environment variable {ENV_VAR}"
    if name is None:
        return DEFAULT_PRESET
    if not isinstance(name, str):
        raise TypeError(f"preset must be a string, one of {list(PRESETS)}; got {type(name).__name__}")
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r} (from the {source}); expected one of {list(PRESETS)}")
    return name


def get_config(experiment_name: str, preset: str | None = None) -> ExperimentConfig:
    """The frozen config of ``experiment_name`` (e.g. ``"pixel-mnist"``) at ``preset`` (see :func:`resolve_preset`)."""
    preset = resolve_preset(preset)
    cls = get_experiment(experiment_name)
    missing = [p for p in PRESETS if p not in cls.presets]
    if missing:
        raise ValueError(f"experiment {experiment_name!r} defines no preset(s) {missing}; every experiment needs "
                         f"{list(PRESETS)}")
    return cls.presets[preset]


def format_config(cfg: ExperimentConfig, title: str | None = None) -> str:
    """A readable block: the config's class, then one ``field = value`` line per field.

    Printed at the start of every training run (and stored, as a dict, in its results JSON).
    """
    if not is_dataclass(cfg) or isinstance(cfg, type):
        raise TypeError(f"cfg must be a dataclass instance (an experiment's preset), got {type(cfg).__name__}")
    names = [f.name for f in fields(cfg)]
    width = max(len(n) for n in names) if names else 0
    head = title or f"{type(cfg).__name__} (preset {getattr(cfg, 'preset', '?')!r})"
    lines = [head, "-" * len(head)]
    lines += [f"  {n:<{width}} = {getattr(cfg, n)!r}" for n in names]
    return "\n".join(lines)
