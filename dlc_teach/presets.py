"""Scale presets: ``tiny`` (unit tests, seconds), ``ci`` (notebooks on 2 CPU cores), ``gpu`` (optional: the
paper's model on offline data, <= 3 minutes on one GPU), ``full`` (the paper's protocol, GPU).

Introduced in chapter 5; the ``gpu`` tier in chapter 8. Every experiment defines one frozen config
dataclass per required preset (``Experiment.presets``: ``tiny``, ``ci``, ``full``) and may define
``gpu``; this module picks the preset (argument, else the ``DLC_PRESET`` environment variable, else
``"ci"``), looks up an experiment's config (with a clear error when an experiment lacks the optional
tier), and prints a config as the block that opens every run.
"""
from __future__ import annotations

import os
from dataclasses import fields, is_dataclass

from .tasks import get_experiment
from .tasks.base import ExperimentConfig

__all__ = ["PRESETS", "REQUIRED_PRESETS", "OPTIONAL_PRESETS", "DEFAULT_PRESET", "ENV_VAR", "resolve_preset",
           "get_config", "available_presets", "format_config"]

#: every scale preset, smallest first
PRESETS = ("tiny", "ci", "gpu", "full")
#: the presets every experiment must define
REQUIRED_PRESETS = ("tiny", "ci", "full")
#: the presets an experiment may leave out (asking for a missing one is a clear error)
OPTIONAL_PRESETS = ("gpu",)
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


def available_presets(experiment_name: str) -> tuple[str, ...]:
    """The presets ``experiment_name`` defines, in the order of :data:`PRESETS`.

    Raises:
        ValueError: the experiment lacks a required preset, or defines one that is not a known tier.
    """
    cls = get_experiment(experiment_name)
    defined = getattr(cls, "presets", None)
    if not isinstance(defined, dict):
        raise ValueError(f"experiment {experiment_name!r} has no presets dict (expected keys {list(PRESETS)})")
    missing = [p for p in REQUIRED_PRESETS if p not in defined]
    if missing:
        raise ValueError(f"experiment {experiment_name!r} defines no preset(s) {missing}; every experiment needs "
                         f"{list(REQUIRED_PRESETS)} (and may add {list(OPTIONAL_PRESETS)})")
    unknown = sorted(set(defined) - set(PRESETS))
    if unknown:
        raise ValueError(f"experiment {experiment_name!r} defines unknown preset(s) {unknown}; the tiers are "
                         f"{list(PRESETS)}")
    return tuple(p for p in PRESETS if p in defined)


def get_config(experiment_name: str, preset: str | None = None) -> ExperimentConfig:
    """The frozen config of ``experiment_name`` (e.g. ``"pixel-mnist"``) at ``preset`` (see :func:`resolve_preset`).

    Raises:
        ValueError: unknown experiment or preset, or an optional tier (``gpu``) the experiment does not define
            (the message says so and lists the presets it has).
    """
    preset = resolve_preset(preset)
    have = available_presets(experiment_name)
    if preset not in have:
        raise ValueError(f"experiment {experiment_name!r} has no {preset!r} preset (an optional tier); "
                         f"it defines {list(have)}")
    cfg = get_experiment(experiment_name).presets[preset]
    if getattr(cfg, "preset", preset) != preset:
        raise ValueError(f"experiment {experiment_name!r}: presets[{preset!r}] is labelled "
                         f"preset={cfg.preset!r}; the key and the config's own name must agree")
    return cfg


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
