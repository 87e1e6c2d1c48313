"""CLIPCov: cross-covariance-preserving subset selection for CLIP pretraining, with baselines.

Joshi, Jain, Payani, Mirzasoleiman, "Data-Efficient Contrastive Language-Image Pretraining:
Prioritizing Data Quality over Quantity", AISTATS 2024, arXiv 2403.12267.

``select`` works on embedding arrays; ``select_dataset`` on a Dataset of (image, caption) rows or of
precomputed embeddings; ``baselines`` holds random, CLIP-score and SemDeDup behind the same interface.
``image_embeddings`` / ``text_embeddings`` / ``model_fingerprint`` and ``train_clip`` are shared with other
methods (MM-Gen's partition, ReGap's vision tower).
"""

from hfdc.clipcov import baselines
from hfdc.clipcov.dataset import select_dataset
from hfdc.clipcov.embed import clip_embeddings, image_embeddings, model_fingerprint, text_embeddings
from hfdc.clipcov.partition import latent_classes
from hfdc.clipcov.selection import SelectionResult, select
from hfdc.clipcov.train import train_clip

__all__ = [
    "SelectionResult",
    "baselines",
    "clip_embeddings",
    "image_embeddings",
    "latent_classes",
    "model_fingerprint",
    "select",
    "select_dataset",
    "text_embeddings",
    "train_clip",
]
