"""dlc_teach: the library behind the executable textbook on Deep Loss Convexification.

The most-used names are importable from here; see the book's API page.
"""
from .objective import CONSTRAINTS, DLCLoss, DLCResult, hinge_terms
from .neighborhoods import (
    CornerNeighborhood,
    EulerNeighborhood,
    GaussianNeighborhood,
    Neighborhood,
    SimplexNeighborhood,
)

__version__ = "0.1.0"
