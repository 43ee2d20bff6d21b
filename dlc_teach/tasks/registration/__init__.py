"""Point-cloud registration (paper §4.2): data, DCP, DLC+DCP, ICP and the metrics of Tables 2 and 4.

Introduced in chapter 6. Public names: :func:`kabsch`, :func:`icp`, :func:`registration_errors`,
:func:`load_modelnet40`, :func:`load_cgal_clouds`, :class:`RegistrationPairs`, :class:`DCP`,
:class:`Registration` (CLI ``registration``, h = correspondence cost) and
:class:`RegistrationDCPLoss` (CLI ``registration-dcploss``, h = DCP's loss).
"""
from .data import RegistrationPairs, load_cgal_clouds, load_modelnet40
from .evaluation import evaluate_passes, stack_pairs, trajectory_errors
from .experiment import (Registration, RegistrationConfig, RegistrationDCPLoss, chained_forward,
                         correspondence_h, dcp_loss_h, iteration_map, predict)
from .rigid import apply_rigid, compose, icp, kabsch
from .metrics import registration_errors
from .model import DCP, DGCNN
from .shapes import procedural_clouds

__all__ = ["kabsch", "icp", "apply_rigid", "compose", "registration_errors", "load_modelnet40",
           "load_cgal_clouds", "RegistrationPairs", "procedural_clouds", "DCP", "DGCNN", "Registration",
           "RegistrationConfig", "RegistrationDCPLoss", "dcp_loss_h", "correspondence_h", "chained_forward",
           "predict", "iteration_map", "stack_pairs", "evaluate_passes", "trajectory_errors"]
