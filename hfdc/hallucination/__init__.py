"""Black-box hallucination detection: self- and cross-model consistency scores and a budget-aware two-stage
detector (Xue et al. 2025, "Verify when Uncertain", arXiv 2502.15845)."""

from hfdc.hallucination import scores, similarity
from hfdc.hallucination.deploy import Deployment, deploy
from hfdc.hallucination.detector import Detection, TwoStageDetector
from hfdc.hallucination.features import CROSS_FEATURES, FEATURE_DIRECTIONS, SELF_FEATURES, compute_features
from hfdc.hallucination.metrics import aurac, auroc
from hfdc.hallucination.sampling import Answers, SamplingError, sample_answers, sample_target, sample_verifier

__all__ = [
    "CROSS_FEATURES",
    "FEATURE_DIRECTIONS",
    "SELF_FEATURES",
    "Answers",
    "Deployment",
    "Detection",
    "SamplingError",
    "TwoStageDetector",
    "aurac",
    "auroc",
    "compute_features",
    "deploy",
    "sample_answers",
    "sample_target",
    "sample_verifier",
    "scores",
    "similarity",
]
