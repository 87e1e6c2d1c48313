"""Black-box hallucination detection: self- and cross-model consistency scores and a budget-aware two-stage
detector (Xue et al. 2025, "Verify when Uncertain", arXiv 2502.15845)."""

from hfdc.hallucination import scores, similarity
from hfdc.hallucination.detector import Detection, TwoStageDetector
from hfdc.hallucination.features import CROSS_FEATURES, SELF_FEATURES, compute_features
from hfdc.hallucination.metrics import aurac, auroc
from hfdc.hallucination.sampling import Answers, SamplingError, sample_target, sample_verifier

__all__ = [
    "CROSS_FEATURES",
    "SELF_FEATURES",
    "Answers",
    "Detection",
    "SamplingError",
    "TwoStageDetector",
    "aurac",
    "auroc",
    "compute_features",
    "sample_target",
    "sample_verifier",
    "scores",
    "similarity",
]
