"""TADA (Nguyen et al., ICLR 2026, arXiv 2505.21574): augment only the slow-learnable examples with SDEdit variants.

Pieces: :class:`UNetGenerator` / :class:`PipelineGenerator` (SDEdit generators), :func:`augment` (resumable
sharded datasets operation, spread over processes), :func:`copies` (the duplication arm), :func:`with_synthetic`,
:func:`train_ddpm` (the small CPU generator), :func:`train_tada` (the recipe). Discovery comes from
:mod:`hfdc.useful`.
"""

from hfdc.tada.augment import augment, copies, with_synthetic
from hfdc.tada.config import ADDITIONS, TadaConfig
from hfdc.tada.ddpm import build_unet, train_ddpm
from hfdc.tada.generators import PipelineGenerator, UNetGenerator, check_img2img
from hfdc.tada.train import build_generator, generate, train_tada

__all__ = [
    "ADDITIONS",
    "PipelineGenerator",
    "TadaConfig",
    "UNetGenerator",
    "augment",
    "build_generator",
    "build_unet",
    "check_img2img",
    "copies",
    "generate",
    "train_ddpm",
    "train_tada",
    "with_synthetic",
]
