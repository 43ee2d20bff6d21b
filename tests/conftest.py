"""Shared pytest set-up and fixtures for dlc-teach.

* matplotlib draws off-screen in the test process (``matplotlib.use("Agg")``; not via MPLBACKEND, which would
  leak into the nbval kernels and change the notebooks' inline figures).
* Hypothesis runs without per-example deadlines: the machines here have 2 shared cores, and a deadline
  there fails tests for timing noise, not for wrong results.
* Every test function starts from ``torch.manual_seed(0)`` (autouse), so a test is reproducible on its own.
* torch uses one intra-op thread in the test process: ``make test`` runs two xdist workers on two cores, and
  two threads per worker oversubscribe them (measured: small ops then stall for tens of milliseconds).

Fixtures: ``repo_root``, ``generator`` (a seeded CPU ``torch.Generator``), ``tiny_preset`` (sets
``DLC_PRESET=tiny`` for one test), ``data_dir`` (a private ``DLC_DATA_DIR`` so no test touches the user's cache),
``in_ci`` (whether the environment variable ``CI`` is ``true``).
"""
from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import pytest
import torch
from hypothesis import settings

matplotlib.use("Agg")
torch.set_num_threads(1)

settings.register_profile("dlc-teach", deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dlc-teach"))

ROOT = Path(__file__).resolve().parents[1]


def running_in_ci() -> bool:
    """True when the environment variable ``CI`` is ``true`` (as CI sets it); tests must not skip there."""
    return os.environ.get("CI", "").strip().lower() == "true"


@pytest.fixture(autouse=True)
def _seed_torch():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository root (which is also the book's root)."""
    return ROOT


@pytest.fixture
def generator() -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with 0."""
    return torch.Generator().manual_seed(0)


@pytest.fixture
def tiny_preset(monkeypatch) -> str:
    """Run one test at preset ``tiny`` (``DLC_PRESET=tiny``); returns the preset name."""
    monkeypatch.setenv("DLC_PRESET", "tiny")
    return "tiny"


@pytest.fixture
def data_dir(tmp_path, monkeypatch) -> Path:
    """A fresh, empty ``DLC_DATA_DIR`` for one test, so that no test reads or writes the user's cache."""
    d = tmp_path / "dlc-data"
    d.mkdir()
    monkeypatch.setenv("DLC_DATA_DIR", str(d))
    return d


@pytest.fixture(scope="session")
def in_ci() -> bool:
    return running_in_ci()
