"""Submodular selection: facility location with naive, lazy and stochastic greedy, per-group budgets.

Used by CoLM (per-step mini-batch coresets), CLIPCov and MMGen.
"""

from hfdc.submodular.budgets import BUDGET_MODES, group_budgets
from hfdc.submodular.facility_location import (
    FacilityLocationResult,
    facility_location,
    facility_location_objective,
)
from hfdc.submodular.greedy import OPTIMIZERS
from hfdc.submodular.kernels import METRICS, pairwise_similarity

__all__ = [
    "BUDGET_MODES",
    "METRICS",
    "OPTIMIZERS",
    "FacilityLocationResult",
    "facility_location",
    "facility_location_objective",
    "group_budgets",
    "pairwise_similarity",
]
