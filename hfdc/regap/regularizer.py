"""ReGap's regulariser: a differentiable gap D between a batch's image and text token states, and its weight alpha.

Stage-1 loss = LM loss + alpha * D(image states, text states) at one LLM layer (Yang et al. 2025, arXiv
2505.24208: the first layer; layer 0 = the projector output). The paper's exact surrogate was not published;
the choices here (``DISTANCES``), with s = the batch's mean text-token norm (detached) when rescaling, are

    mean          D = ||mu_I - mu_T||^2 / s^2                                  (default)
    frechet_diag  D = (||mu_I - mu_T||^2 + ||sigma_I - sigma_T||^2) / s^2

the second being the Frechet distance between diagonal Gaussian fits (per-dimension standard deviations
sigma), a cheap stand-in for the full-covariance one that MIR measures. alpha is set during a warm-up so that
alpha * mean(D) = ``weight`` * mean(LM loss) over the warm-up steps, then frozen (:class:`AlphaWarmup`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

DISTANCES = ("mean", "frechet_diag")


def gap_penalty(
    states: torch.Tensor,
    image_mask: torch.Tensor,
    text_mask: torch.Tensor,
    distance: str = "mean",
    rescale: bool = True,
) -> torch.Tensor:
    """D (module docstring) between the ``image_mask`` and ``text_mask`` rows of ``states`` [batch, seq, dim]."""
    if distance not in DISTANCES:
        raise ValueError(f"distance must be one of {DISTANCES}, got {distance!r}")
    image, text = states[image_mask].float(), states[text_mask].float()
    if len(image) < 2 or len(text) < 2:
        raise ValueError(
            f"the batch has {len(image)} image and {len(text)} text token states; the regulariser needs at least 2 "
            "of each (are the captions empty, or the image placeholders missing?)"
        )
    gap = (image.mean(0) - text.mean(0)).square().sum()
    if distance == "frechet_diag":
        gap = gap + (image.std(0) - text.std(0)).square().sum()
    if rescale:
        gap = gap / text.norm(dim=-1).mean().detach().square()
    return gap


@dataclass
class AlphaWarmup:
    """alpha = weight * sum(LM losses) / sum(D) over the micro-batches of the first ``warmup_steps`` optimizer
    steps (recomputed at each one and used at once), then frozen. ``fixed`` > 0 skips the warm-up."""

    weight: float = 1.0
    warmup_steps: int = 10
    fixed: float = 0.0
    alpha: float = 0.0
    frozen: bool = False
    lm_sum: float = 0.0
    gap_sum: float = 0.0
    batches: int = 0

    def __post_init__(self):
        if self.fixed > 0:
            self.alpha, self.frozen = self.fixed, True
        elif self.warmup_steps < 1:
            raise ValueError("regap_warmup_steps must be >= 1 when regap_alpha is 0 (alpha comes from the warm-up)")

    def step(self, lm_loss: float, gap: float, global_step: int) -> float:
        """The alpha of this micro-batch, at optimizer step ``global_step`` (0-based), given its LM loss and D."""
        if not self.frozen and global_step >= self.warmup_steps:
            self.frozen = True
        if self.frozen:
            return self.alpha
        self.lm_sum += lm_loss
        self.gap_sum += gap
        self.batches += 1
        if self.gap_sum > 0:
            self.alpha = self.weight * self.lm_sum / self.gap_sum
        return self.alpha

    def state_dict(self) -> dict:
        return asdict(self)

    def load_state_dict(self, state: dict) -> None:
        for key, value in state.items():
            if not hasattr(self, key):
                raise ValueError(f"unknown AlphaWarmup state key {key!r}")
            setattr(self, key, value)


__all__ = ["DISTANCES", "AlphaWarmup", "gap_penalty"]
