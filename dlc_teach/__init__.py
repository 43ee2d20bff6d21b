"""dlc_teach: the library behind the executable textbook on Deep Loss Convexification.

The most-used names are importable from here; see the book's API page for everything else
(``dlc_teach.toys``, ``dlc_teach.landscape``, ``dlc_teach.widgets``, ``dlc_teach.training``, ...).
"""
from .objective import CONSTRAINTS, DLCLoss, DLCResult, hinge_terms
from .neighborhoods import (
    CornerNeighborhood,
    EulerNeighborhood,
    GaussianNeighborhood,
    Neighborhood,
    SimplexNeighborhood,
)
from .starconvexity import (
    StarConvexityReport,
    check_star_convexity,
    estimate_mu,
    first_order_gap,
    star_gap,
    strong_star_gaps,
)
from .bounds import estimate_lipschitz, lemma2_radius, lemma3_bound
from .iteration import averaged_fixed_point, fixed_point, gradient_descent, running_average

__version__ = "0.1.0"

__all__ = [
    "CONSTRAINTS", "DLCLoss", "DLCResult", "hinge_terms",
    "Neighborhood", "GaussianNeighborhood", "SimplexNeighborhood", "EulerNeighborhood", "CornerNeighborhood",
    "star_gap", "strong_star_gaps", "first_order_gap", "estimate_mu", "check_star_convexity",
    "StarConvexityReport",
    "lemma2_radius", "lemma3_bound", "estimate_lipschitz",
    "fixed_point", "averaged_fixed_point", "gradient_descent", "running_average",
]
