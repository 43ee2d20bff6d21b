"""Checkpoints that survive interruption and load with ``torch.load(..., weights_only=True)``.

Introduced in chapter 8 ("Reproducing at full scale"). A checkpoint holds only
tensors and plain Python containers (dicts, lists, numbers, strings, None), so
it can be loaded safely without executing pickled code. It is written to a
temporary file in the same directory and moved into place with
:func:`os.replace`, so an interrupted write never leaves a half-written
``checkpoint.pt``. The random-number states (Python, NumPy, torch CPU and CUDA,
and the generator of the DLC neighbour draws) are part of it, so that a resumed
run continues exactly as an uninterrupted one would. It also records which code
(git commit), which data (source and sizes) and which command line wrote it, and
:func:`dlc_teach.training.train` refuses to resume when code or data differ
(unless told ``allow_mismatch=True``, CLI ``--allow-mismatch``).
"""
from __future__ import annotations

import os
import pickle
import random
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

__all__ = ["FORMAT_VERSION", "READABLE_FORMATS", "capture_rng", "restore_rng", "save_atomic", "load_checkpoint",
           "json_atomic"]

#: bumped when the layout of a checkpoint changes (2: adds ``git_commit``, ``data`` and ``command``)
FORMAT_VERSION = 2
#: formats :func:`load_checkpoint` reads (a format-1 checkpoint evaluates fine; resuming from it needs
#: ``allow_mismatch`` since it cannot say which code and data wrote it)
READABLE_FORMATS = (1, 2)


def capture_rng(generator: torch.Generator | None = None) -> dict[str, Any]:
    """The state of every random-number generator training uses, as tensors and plain values."""
    version, mt_state, gauss_next = random.getstate()
    kind, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state = {
        "python": {"version": version, "state": torch.tensor(mt_state, dtype=torch.int64), "gauss_next": gauss_next},
        "numpy": {"kind": kind, "keys": torch.from_numpy(np_keys.astype(np.int64)), "pos": int(np_pos),
                  "has_gauss": int(np_has_gauss), "cached_gaussian": float(np_gauss)},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "generator": generator.get_state() if generator is not None else None,
    }
    return state


def restore_rng(state: dict[str, Any], generator: torch.Generator | None = None) -> None:
    """Undo :func:`capture_rng`: put every generator back where it was."""
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss_next"]))
    npst = state["numpy"]
    np.random.set_state((npst["kind"], npst["keys"].numpy().astype(np.uint32), npst["pos"],
                         npst["has_gauss"], npst["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        if len(state["cuda"]) != torch.cuda.device_count():
            raise ValueError(f"checkpoint was written with {len(state['cuda'])} CUDA devices visible, "
                             f"now {torch.cuda.device_count()} are; resume with the same CUDA_VISIBLE_DEVICES")
        torch.cuda.set_rng_state_all(state["cuda"])
    if generator is not None and state["generator"] is not None:
        generator.set_state(state["generator"])


def _write_atomic(path: str | os.PathLike, mode: str, write: Callable[[Any], None]) -> Path:
    """Call ``write(f)`` on a temporary file next to ``path``, fsync, then ``os.replace`` it onto ``path``:
    an interrupted write leaves the previous file (or none), never a partial one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def save_atomic(obj: dict[str, Any], path: str | os.PathLike) -> Path:
    """``torch.save`` to ``path`` through a temporary file in the same directory and ``os.replace``."""
    return _write_atomic(path, "wb", lambda f: torch.save(obj, f))


def json_atomic(text: str, path: str | os.PathLike) -> Path:
    """Write ``text`` to ``path`` atomically (temporary file + ``os.replace``)."""
    return _write_atomic(path, "w", lambda f: f.write(text))


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`dlc_teach.training.train` (safely: ``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as err:
        first = next((line for line in str(err).splitlines() if line.strip()), type(err).__name__)
        raise ValueError(f"{path} cannot be loaded as a checkpoint with weights_only=True: {first}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") not in READABLE_FORMATS:
        got = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise ValueError(f"{path} is not a dlc-teach checkpoint of a format this version reads "
                         f"{list(READABLE_FORMATS)} (got format {got!r})")
    return ckpt
