"""Evaluating registration models on fixed test pairs: passes, ICP refinement, test-time iterations.

Introduced in chapter 6. Everything runs without gradients, the network in eval mode, on whole
test groups at once (``[P, N, 3]`` clouds).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ...geometry import euler_to_matrix
from ...iteration import averaged_fixed_point, fixed_point
from .data import RegistrationPairs
from .experiment import iteration_map, predict
from .rigid import icp
from .metrics import registration_errors

__all__ = ["stack_pairs", "evaluate_passes", "trajectory_errors"]


def stack_pairs(pairs: RegistrationPairs) -> dict[str, Tensor]:
    """All items of ``pairs`` as ``src``, ``tgt`` ``[P, N, 3]``, ``omega`` ``[P, 6]``, ``R`` ``[P, 3, 3]``, ``t`` ``[P, 3]``."""
    src, tgt, omega = (torch.stack(z) for z in zip(*(pairs[i] for i in range(len(pairs)))))
    return {"src": src, "tgt": tgt, "omega": omega, "R": euler_to_matrix(omega[:, :3]), "t": omega[:, 3:]}


def evaluate_passes(model: nn.Module | None, pairs: dict[str, Tensor], passes: int = 1,
                    icp_iters: int = 0) -> dict[str, float]:
    """Errors (:func:`registration_errors`) after ``passes`` chained passes of ``model`` (None: the identity,
    i.e. no network), then ``icp_iters`` ICP iterations started there (0: no refinement)."""
    src, tgt = pairs["src"], pairs["tgt"]
    if model is None:
        R = torch.eye(3).expand(len(src), 3, 3)
        t = src.new_zeros(len(src), 3)
    else:
        R, t = predict(model, src, tgt, passes)
    if icp_iters:
        R, t = icp(src, tgt, R, t, iters=icp_iters)
    return registration_errors(R, t, pairs["R"], pairs["t"])


def trajectory_errors(model: nn.Module, pairs: dict[str, Tensor], steps: int = 5,
                      averaged: bool = False) -> list[dict[str, float]]:
    """Errors of ω̂_1..ω̂_T of the fixed-point iteration (Eq. 3) or the averaged one (Eq. 10), from ω̂_0 = 0.

    g is :func:`~.experiment.iteration_map` (one network pass from the pose ω); ω̂_1 is one plain pass.
    """
    was = model.training
    model.eval()
    g = iteration_map(model, pairs["src"], pairs["tgt"])
    omega0 = pairs["src"].new_zeros(len(pairs["src"]), 6)
    traj = (averaged_fixed_point if averaged else fixed_point)(g, omega0, steps)  # [T+1, P, 6]
    model.train(was)
    return [registration_errors(euler_to_matrix(w[:, :3]), w[:, 3:], pairs["R"], pairs["t"]) for w in traj[1:]]
