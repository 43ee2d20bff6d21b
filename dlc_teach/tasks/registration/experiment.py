"""DCP and DLC+DCP on point-cloud registration (paper §4.2, Tables 2 and 4, Figs. 4 and 6).

Introduced in chapter 6. ω = (α_x, α_y, α_z in degrees, t_x, t_y, t_z), the chart of
:func:`dlc_teach.geometry.se3_to_matrix`; neighbours ω ~ N(ω*) from :class:`EulerNeighborhood`
(σ in degrees for the angles, in cloud units for t). Two definitions of h (both in chapter 6):

* ``h="dcp"`` (:func:`dcp_loss_h`, as the paper's text and the authors' demo read): DCP's loss with ω
  in the label slot, h(ω) = mean((R̂ᵀR(ω) − I)²) + mean((t̂ − t(ω))²). The network's output (R̂, t̂)
  does not depend on ω, so h is a fixed analytic bowl centred on the prediction.
* ``h="corr"`` (:func:`correspondence_h`): h(ω) = mean_i ‖R(ω)x_i + t(ω) − m_i‖² with the soft matches
  m_i of the last pass; with m fixed its unique minimum on SE(3) is the Kabsch estimate DCP outputs.

DLC+DCP chains ``chain`` (4, §4.2) applications of the same weights, each composing its motion with
the previous ones; the loss is applied to the **last** link (the composed prediction), gradients
flow through every link. The baseline (``train(..., dlc=False)``, Eq. 1) is plain DCP: ``baseline_chain``
(1) pass and ``baseline_h`` ("dcp", DCP's own loss).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn

from ...geometry import euler_to_matrix, matrix_to_euler
from ...neighborhoods import EulerNeighborhood
from ..base import Experiment, ExperimentConfig
from ..pixel_mnist import ClipGradMixin
from .data import RegistrationPairs, load_cgal_clouds, load_modelnet40
from .rigid import apply_rigid, compose
from .metrics import registration_errors
from .model import DCP
from .shapes import procedural_clouds

__all__ = ["RegistrationConfig", "Registration", "RegistrationDCPLoss", "dcp_loss_h", "correspondence_h",
           "chained_forward", "predict", "iteration_map"]

_H = ("dcp", "corr")
_DATA = ("auto", "cgal", "procedural", "modelnet40")


@dataclass(frozen=True)
class RegistrationConfig(ExperimentConfig):
    """A registration preset. Model: ``emb``, ``widths`` (edge convs), ``k``, ``heads``, ``ff``;
    DLC: ``chain`` copies, ``h`` ("dcp" | "corr"), neighbourhood σ's ``sigma_deg``/``sigma_t``;
    data: ``data`` ("auto": CGAL meshes when the archive is present, else procedural), ``num_points``
    per cloud, ``n_train`` pairs per epoch, ``n_test`` test pairs per group, ``independent_target``,
    ``jitter``, ``unseen`` (ModelNet40's category split); ``max_grad_norm`` clips gradients."""

    num_points: int = 128
    emb: int = 64
    widths: tuple = (32, 32, 64, 64)
    k: int = 10
    heads: int = 4
    ff: int = 128
    chain: int = 4
    baseline_chain: int = 1
    h: str = "corr"
    baseline_h: str = "dcp"
    sigma_deg: float = 5.0
    sigma_t: float = 0.05
    data: str = "auto"
    n_train: int = 400
    n_test: int = 120
    independent_target: bool = True
    jitter: float = 0.0
    unseen: bool = False
    max_grad_norm: float | None = 10.0
    lr_milestones: tuple = ()

    def __post_init__(self):
        if self.h not in _H or self.baseline_h not in _H:
            raise ValueError(f"h and baseline_h must be one of {_H}, got {self.h!r}, {self.baseline_h!r}")
        if self.data not in _DATA:
            raise ValueError(f"data must be one of {_DATA}, got {self.data!r}")
        for name in ("num_points", "emb", "k", "heads", "ff", "chain", "baseline_chain", "n_train", "n_test"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if self.emb % self.heads:
            raise ValueError(f"emb ({self.emb}) must be divisible by heads ({self.heads})")
        if not (self.sigma_deg > 0 and self.sigma_t > 0):
            raise ValueError(f"sigma_deg and sigma_t must be > 0, got {self.sigma_deg!r}, {self.sigma_t!r}")


def dcp_loss_h(R_hat: Tensor, t_hat: Tensor) -> Callable[[Tensor], Tensor]:
    """h(ω) = mean((R̂ᵀR(ω) − I)²) + mean((t̂ − t(ω))²), DCP's loss with ω in the label slot.

    ``R_hat`` ``[B, 3, 3]``, ``t_hat`` ``[B, 3]``; h maps ω ``[..., B, 6]`` -> ``[..., B]``.
    """
    eye = torch.eye(3, dtype=R_hat.dtype, device=R_hat.device)

    def h(omega: Tensor) -> Tensor:
        R = euler_to_matrix(omega[..., :3].to(R_hat.dtype))  # [..., B, 3, 3]
        rot = ((R_hat.transpose(-1, -2) @ R - eye) ** 2).mean((-1, -2))
        return rot + ((t_hat - omega[..., 3:].to(t_hat.dtype)) ** 2).mean(-1)

    return h


def correspondence_h(src: Tensor, matches: Tensor) -> Callable[[Tensor], Tensor]:
    """h(ω) = mean_i ‖R(ω) x_i + t(ω) − m_i‖², the Procrustes cost of the soft matches.

    ``src`` ``[B, N, 3]`` (x_i), ``matches`` ``[B, N, 3]`` (m_i);
    h maps ω ``[..., B, 6]`` -> ``[..., B]``.
    """

    def h(omega: Tensor) -> Tensor:
        R = euler_to_matrix(omega[..., :3].to(src.dtype))  # [..., B, 3, 3]
        moved = apply_rigid(R, omega[..., 3:].to(src.dtype), src)  # [..., B, N, 3]
        return ((moved - matches) ** 2).sum(-1).mean(-1)

    return h


def chained_forward(model: nn.Module, src: Tensor, tgt: Tensor, passes: int,
                    R0: Tensor | None = None, t0: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Apply the network ``passes`` times, each to the source moved by the motion so far, and compose.

    Returns the composed ``(R [B, 3, 3], t [B, 3])`` and the last pass's soft matches ``[B, N, 3]``
    (row i is the match of source point i).
    """
    B = src.shape[0]
    R = torch.eye(3, dtype=src.dtype, device=src.device).expand(B, 3, 3) if R0 is None else R0
    t = src.new_zeros(B, 3) if t0 is None else t0
    matches = None
    for _ in range(passes):
        R_i, t_i, matches = model(apply_rigid(R, t, src), tgt)
        R, t = compose(R_i, t_i, R, t)
    return R, t, matches


@torch.no_grad()
def predict(model: nn.Module, src: Tensor, tgt: Tensor, passes: int = 1) -> tuple[Tensor, Tensor]:
    """(R, t) after ``passes`` chained passes, model in eval mode, no grad."""
    was = model.training
    model.eval()
    R, t, _ = chained_forward(model, src, tgt, passes)
    model.train(was)
    return R, t


def iteration_map(model: nn.Module, src: Tensor, tgt: Tensor) -> Callable[[Tensor], Tensor]:
    """g(ω) of Eq. 3 in the chart: move the source by ω, run the network once, compose, back to ω.

    For :func:`dlc_teach.iteration.fixed_point` and :func:`~dlc_teach.iteration.averaged_fixed_point`:
    g maps ω ``[B, 6]`` -> ``[B, 6]`` (call with the model in eval mode).
    """

    @torch.no_grad()
    def g(omega: Tensor) -> Tensor:
        R0, t0 = euler_to_matrix(omega[..., :3]), omega[..., 3:]
        R, t, _ = chained_forward(model, src, tgt, 1, R0, t0)
        return torch.cat([matrix_to_euler(R), t], dim=-1)

    return g


class _ClippedAdam(ClipGradMixin, torch.optim.Adam):
    pass


_DLC = dict(rho=0.6, lam=0.5, mu=2e-4, n_samples=3, learn_lam=True, learn_mu=True)
_PAPER_MODEL = dict(emb=512, widths=(64, 64, 128, 256), k=20, heads=4, ff=1024)


class Registration(Experiment):
    """Point-cloud registration with DCP / DLC+DCP, h = correspondence cost (``h="corr"``).

    Presets (all: Adam 1e-3, weight decay 1e-4, K = 3, ρ = 0.6, λ = sigmoid(a), μ = exp(b) trainable, §4.2):

    * ``tiny`` — tests: 32 points, emb 16, 2 epochs of 16 pairs.
    * ``ci`` — stored models: 128 points, DGCNN k = 10 (32/32/64/64 → 64), ff 128, batch 8,
      5 epochs × 320 pairs (200 steps), CGAL meshes.
    * ``gpu`` — the paper's model (k = 20, 64/64/128/256 → 512, ff 1024) on 1024 CGAL points, batch 32.
    * ``full`` — the paper: ModelNet40, 1024 points, batch 32, 250 epochs, LR × 0.1 at 75/150/200.
    """

    name = "registration"
    main_metric = "test_mse_euler"
    presets: dict = {}

    def __init__(self, config: RegistrationConfig, data_dir: str | None = None):
        if not isinstance(config, RegistrationConfig):
            raise TypeError(f"config must be a RegistrationConfig, got {type(config).__name__}")
        super().__init__(config, data_dir)
        self.source: str | None = None
        self._cache = None

    @classmethod
    def _presets(cls, h: str) -> dict[str, RegistrationConfig]:
        common = dict(optimizer="adam", lr=1e-3, weight_decay=1e-4, h=h, **_DLC)
        return {
            "tiny": RegistrationConfig(preset="tiny", epochs=2, batch_size=4, num_points=32, emb=16,
                                       widths=(8, 8, 16, 16), k=4, ff=32, n_train=16, n_test=8,
                                       eval_train_size=8, **common),
            "ci": RegistrationConfig(preset="ci", epochs=5, batch_size=8, num_points=128, n_train=320, n_test=120,
                                     eval_train_size=32, **common),
            "gpu": RegistrationConfig(preset="gpu", epochs=10, batch_size=32, num_points=1024, n_train=640,
                                      n_test=256, eval_train_size=128, **_PAPER_MODEL, **common),
            "full": RegistrationConfig(preset="full", epochs=250, batch_size=32, num_points=1024, data="modelnet40",
                                       independent_target=False, n_test=2468, eval_train_size=1000,
                                       lr_milestones=(75, 150, 200), checkpoint_every=5, **_PAPER_MODEL,
                                       **common),
        }

    # --- data ---------------------------------------------------------------------------------
    def clouds(self) -> dict[str, tuple]:
        """``{"train": clouds, "seen": clouds, "unseen": clouds}`` as numpy ``[M, P, 3]`` (sets ``source``)."""
        c = self.config
        if c.data == "modelnet40":
            tr, _ = load_modelnet40(self.data_dir, "train", unseen=c.unseen, num_points=c.num_points)
            te, y = load_modelnet40(self.data_dir, "test", num_points=c.num_points)
            self.source = f"ModelNet40 modelnet40_ply_hdf5_2048 ({'unseen split' if c.unseen else 'all classes'})"
            return {"train": tr, "seen": te[y < 20] if c.unseen else te, "unseen": te[y >= 20]}
        shapes = None if c.data == "procedural" else load_cgal_clouds(self.data_dir)
        if shapes is None and c.data == "cgal":
            raise FileNotFoundError("CGAL's archive (cgal/data.tar.gz under $DLC_DATA_DIR or ~/.cache/dlc-teach) "
                                    "is missing; run scripts/fetch_offline_data.sh or use data='procedural'")
        if shapes is None:
            shapes = {"seen": procedural_clouds("organic", 30, 4096), "unseen": procedural_clouds("cad", 14, 4096)}
            self.source = "procedural shapes (CGAL archive not found): 30 ellipsoid unions seen, 14 box unions unseen"
        else:
            self.source = ("CGAL 5.5.1 meshes (Debian libcgal-demo data.tar.gz): 30 scans/animals/organic seen, "
                           "14 CAD parts unseen")
        half = shapes["seen"].shape[1] // 2  # train and test pairs sample disjoint surface points
        return {"train": shapes["seen"][:, :half], "seen": shapes["seen"][:, half:], "unseen": shapes["unseen"]}

    def pair_sets(self) -> dict[str, RegistrationPairs]:
        """``{"train", "seen", "unseen"}`` pair data sets (test groups fixed: the same pairs every call)."""
        if self._cache is None:
            c = self.config
            cl = self.clouds()
            kw = dict(independent_target=c.independent_target, jitter=c.jitter)
            self._cache = {
                "train": RegistrationPairs(cl["train"], c.num_points, c.n_train, **kw),
                "seen": RegistrationPairs(cl["seen"], c.num_points, min(c.n_test, 20 * len(cl["seen"])),
                                          fixed=True, seed=1000 + c.seed, **kw),
                "unseen": RegistrationPairs(cl["unseen"], c.num_points, min(c.n_test, 20 * len(cl["unseen"])),
                                            fixed=True, seed=2000 + c.seed, **kw)}
        return self._cache

    def data_source(self) -> dict:
        """``name`` ("cgal" | "procedural" | "modelnet40": what ``data="auto"`` resolved to), sizes, description."""
        s = self.pair_sets()
        name = "modelnet40" if self.source.startswith("ModelNet") else \
            "procedural" if self.source.startswith("procedural") else "cgal"
        return {"name": name, "n_train": len(s["train"]), "n_test": len(s["seen"]), "description": self.source}

    def datasets(self):
        """(train pairs, seen-group test pairs). Training reports the last epoch; nothing selects on test."""
        s = self.pair_sets()
        return s["train"], s["seen"]

    # --- model and losses ---------------------------------------------------------------------
    def build_model(self) -> DCP:
        c = self.config
        return DCP(emb=c.emb, widths=tuple(c.widths), k=c.k, heads=c.heads, ff=c.ff)

    def neighborhood(self) -> EulerNeighborhood:
        return EulerNeighborhood(sigma_deg=self.config.sigma_deg, sigma_t=self.config.sigma_t)

    def _h_of(self, model, batch, passes: int, kind: str):
        src, tgt, omega_star = batch
        p = next(model.parameters())
        src, tgt = src.to(device=p.device, dtype=p.dtype), tgt.to(device=p.device, dtype=p.dtype)
        R, t, matches = chained_forward(model, src, tgt, passes)
        h = dcp_loss_h(R, t) if kind == "dcp" else correspondence_h(src, matches)
        return h, omega_star.to(device=p.device, dtype=p.dtype)

    def loss_fn(self, model: nn.Module, batch):
        """DLC+DCP: ``chain`` passes; h on the composed prediction (``config.h``); ω* ``[B, 6]``."""
        return self._h_of(model, batch, self.config.chain, self.config.h)

    def base_loss(self, model: nn.Module, batch) -> Tensor:
        """Plain DCP (Eq. 1): ``baseline_chain`` passes, mean of ``baseline_h`` at ω*."""
        h, omega_star = self._h_of(model, batch, self.config.baseline_chain, self.config.baseline_h)
        return h(omega_star.unsqueeze(0))[0].mean()

    def evaluate(self, model: nn.Module, loader) -> dict[str, float]:
        """DCP's loss and the errors of :func:`registration_errors` after 1 pass, and (``*_xK``) after K =
        ``chain`` passes."""
        model.eval()
        p = next(model.parameters())
        out = {1: [], self.config.chain: []}
        truth, loss = [], 0.0
        with torch.no_grad():
            for src, tgt, omega in loader:
                src, tgt, omega = (x.to(device=p.device, dtype=p.dtype) for x in (src, tgt, omega))
                for passes in out:
                    R, t, _ = chained_forward(model, src, tgt, passes)
                    out[passes].append((R, t))
                truth.append((euler_to_matrix(omega[:, :3]), omega[:, 3:]))
                R1, t1 = out[1][-1]
                loss += float(dcp_loss_h(R1, t1)(omega.unsqueeze(0)).sum())
        if not truth:
            raise ValueError("evaluate got an empty loader")
        Rt, tt = (torch.cat(z) for z in zip(*truth))
        res = {"loss": loss / len(Rt)}
        for passes, preds in out.items():
            Rp, tp = (torch.cat(z) for z in zip(*preds))
            suffix = "" if passes == 1 else f"_x{passes}"
            res.update({k + suffix: v for k, v in registration_errors(Rp, tp, Rt, tt).items()
                        if k in ("mse_R", "mse_euler", "mse_t")})
        return res

    def make_optimizer(self, params):
        c = self.config
        if c.max_grad_norm is None or c.optimizer != "adam":
            return super().make_optimizer(params)
        opt = _ClippedAdam(params, lr=c.lr, weight_decay=c.weight_decay)
        opt.max_grad_norm = c.max_grad_norm
        return opt

    def make_scheduler(self, optimizer):
        m = self.config.lr_milestones
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, list(m), 0.1) if m else None


class RegistrationDCPLoss(Registration):
    """The same experiment with h = DCP's loss, ω in the label slot (``h="dcp"``, variant (a))."""

    name = "registration-dcploss"


Registration.presets = Registration._presets("corr")
RegistrationDCPLoss.presets = RegistrationDCPLoss._presets("dcp")
