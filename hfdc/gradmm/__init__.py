"""GRADMM: readable synthetic text by ADMM gradient matching (Nguyen et al., ICML 2025, arXiv 2502.17607).

:func:`generate` turns a labelled Dataset and any causal LM into synthetic labelled text whose LM-head gradient
matches that of a few real examples per class; :func:`filter_synthetic` keeps the rows the LM's few-shot
prediction agrees with; :mod:`hfdc.gradmm.evaluate` fine-tunes on them and measures held-out accuracy.
"""

from hfdc.gradmm.admm import AdmmSettings, AdmmState, Problem, cosine_topk, decode_in_topk, dual_step, z_step
from hfdc.gradmm.config import GradmmConfig
from hfdc.gradmm.evaluate import finetune, finetuned_accuracy, label_accuracy, perplexity, random_rows
from hfdc.gradmm.filtering import filter_synthetic, label_probabilities
from hfdc.gradmm.generate import generate
from hfdc.gradmm.gradients import label_gradient, matching_loss, parameter_block, target_gradient
from hfdc.gradmm.privacy import add_dp_noise, clip_to_norm, dp_noise_std
from hfdc.gradmm.task import Task, build_task
from hfdc.gradmm.vocab import allowed_tokens, is_word_token

__all__ = [
    "AdmmSettings",
    "AdmmState",
    "GradmmConfig",
    "Problem",
    "Task",
    "add_dp_noise",
    "allowed_tokens",
    "build_task",
    "clip_to_norm",
    "cosine_topk",
    "decode_in_topk",
    "dp_noise_std",
    "dual_step",
    "filter_synthetic",
    "finetune",
    "finetuned_accuracy",
    "generate",
    "is_word_token",
    "label_accuracy",
    "label_gradient",
    "label_probabilities",
    "matching_loss",
    "parameter_block",
    "perplexity",
    "random_rows",
    "target_gradient",
    "z_step",
]
