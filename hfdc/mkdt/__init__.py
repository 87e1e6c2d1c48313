"""MKDT: dataset distillation for self-supervised pre-training via knowledge distillation.

Joshi, Ni, Mirzasoleiman, "Dataset Distillation via Knowledge Distillation: Towards Efficient Self-Supervised
Pre-Training of Deep Networks", ICLR 2025, arXiv 2410.02116.

Stages: :func:`teacher_representations` (any encoder; :func:`train_barlow_twins` trains one on CPUs) ->
:func:`train_experts` (KD trajectories of a ConvNet student) -> :func:`distill` (trajectory matching with
learnable images, targets and step size) -> :func:`evaluate_arms` (pre-train, then linear probes).
"""

from hfdc.mkdt.config import MkdtConfig
from hfdc.mkdt.distill import distill, learned_step_size
from hfdc.mkdt.evaluate import evaluate_arms, linear_probe, pretrain
from hfdc.mkdt.experts import train_experts
from hfdc.mkdt.matching import matching_loss, student_steps
from hfdc.mkdt.ssl import barlow_twins_loss, train_barlow_twins
from hfdc.mkdt.teacher import teacher_representations

__all__ = [
    "MkdtConfig",
    "barlow_twins_loss",
    "distill",
    "evaluate_arms",
    "learned_step_size",
    "linear_probe",
    "matching_loss",
    "pretrain",
    "student_steps",
    "teacher_representations",
    "train_barlow_twins",
    "train_experts",
]
