"""Registration errors as DCP's code and the DLC authors' evaluation compute them (Tables 2, 4).

Introduced in chapter 6. Every error is a mean over all entries of the batch:
``mse_R`` over the B × 9 entries of R̂ − R; the Euler errors over the B × 3 angles
(degrees, in the chart of :func:`dlc_teach.geometry.matrix_to_euler`, R = Rx·Ry·Rz,
no wrap-around: angles here stay within ±90°); the translation errors over the
B × 3 coordinates; ``rmse_*`` = √``mse_*``.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ...geometry import matrix_to_euler

__all__ = ["registration_errors", "METRICS"]

#: the keys of :func:`registration_errors`
METRICS = ("mse_R", "mse_euler", "rmse_euler", "mae_euler", "mse_t", "rmse_t", "mae_t")


def registration_errors(R_pred: Tensor, t_pred: Tensor, R_true: Tensor, t_true: Tensor) -> dict[str, float]:
    """Errors of predicted rigid motions ``R_pred`` ``[B, 3, 3]``, ``t_pred`` ``[B, 3]`` against the truth.

    Returns ``{"mse_R", "mse_euler", "rmse_euler", "mae_euler", "mse_t", "rmse_t", "mae_t"}`` as floats
    (Euler errors in degrees / degrees², translation errors in the clouds' units).
    """
    for name, x, shape in (("R_pred", R_pred, (3, 3)), ("R_true", R_true, (3, 3)), ("t_pred", t_pred, (3,)),
                           ("t_true", t_true, (3,))):
        if not isinstance(x, Tensor) or x.dim() != 1 + len(shape) or tuple(x.shape[1:]) != shape:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"{name} must have shape [B, {', '.join(map(str, shape))}], got {got}")
    B = R_pred.shape[0]
    if not (R_true.shape[0] == t_pred.shape[0] == t_true.shape[0] == B) or B == 0:
        raise ValueError(f"R_pred, t_pred, R_true, t_true must share one batch size B >= 1, got "
                         f"{R_pred.shape[0]}, {t_pred.shape[0]}, {R_true.shape[0]}, {t_true.shape[0]}")
    Rp, Rt, tp, tt = (x.detach().double() for x in (R_pred, R_true, t_pred, t_true))
    de = matrix_to_euler(Rp) - matrix_to_euler(Rt)  # [B, 3] degrees
    dt = tp - tt
    out = {"mse_R": float(((Rp - Rt) ** 2).mean()),
           "mse_euler": float((de ** 2).mean()), "mae_euler": float(de.abs().mean()),
           "mse_t": float((dt ** 2).mean()), "mae_t": float(dt.abs().mean())}
    out["rmse_euler"], out["rmse_t"] = math.sqrt(out["mse_euler"]), math.sqrt(out["mse_t"])
    return {k: out[k] for k in METRICS}
