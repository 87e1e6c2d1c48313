"""ReGap: measure the modality gap of a LLaVA-style model and regularise it in stage-1 pretraining for safety.

Yang, Stice, Payani, Mirzasoleiman, "Bootstrapping LLM Robustness for VLM Safety via Reducing the Pretraining
Modality Gap", arXiv 2505.24208. ``measure_gap`` gives the per-layer gap and MIR; ``RegapTrainer`` +
``RegapConfig`` pretrain the projector with LM loss + alpha * D; ``unsafe_rate`` judges replies to harmful
instructions paired with blank / random / typographic images or none.
"""

from hfdc.regap.config import GapConfig, RegapConfig, SafetyConfig
from hfdc.regap.gap import LayerGap, RunningMoments, frechet_distance, layer_gap
from hfdc.regap.judges import ClassifierJudge, KeywordJudge, LLMJudge, get_judge
from hfdc.regap.measure import GapReport, measure_gap, plot_gaps
from hfdc.regap.probe_images import IMAGE_KINDS, probe_images
from hfdc.regap.prompts import HARMFUL_PROMPTS, load_safety_prompts
from hfdc.regap.regularizer import AlphaWarmup, gap_penalty
from hfdc.regap.safety import SafetyReport, generate_responses, refusal_logprob, safety_sweep, unsafe_rate
from hfdc.regap.trainer import RegapTrainer

__all__ = [
    "HARMFUL_PROMPTS",
    "IMAGE_KINDS",
    "AlphaWarmup",
    "ClassifierJudge",
    "GapConfig",
    "GapReport",
    "KeywordJudge",
    "LLMJudge",
    "LayerGap",
    "RegapConfig",
    "RegapTrainer",
    "RunningMoments",
    "SafetyConfig",
    "SafetyReport",
    "frechet_distance",
    "gap_penalty",
    "generate_responses",
    "get_judge",
    "layer_gap",
    "load_safety_prompts",
    "measure_gap",
    "plot_gaps",
    "probe_images",
    "refusal_logprob",
    "safety_sweep",
    "unsafe_rate",
]
