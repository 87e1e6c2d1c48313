"""CLIPCov: cross-covariance-preserving subset selection for CLIP pretraining, with baselines.

Joshi, Jain, Payani, Mirzasoleiman, "Data-Efficient Contrastive Language-Image Pretraining:
Prioritizing Data Quality over Quantity", AISTATS 2024, arXiv 2403.12267.
"""

from hfdc.clipcov import baselines
from hfdc.clipcov.selection import SelectionResult, latent_classes, select

__all__ = ["SelectionResult", "baselines", "latent_classes", "select"]
