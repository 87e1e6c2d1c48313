"""Adam-style normalisation of zeroth-order gradient features, read in column blocks (CoLM, arXiv 2407.19580).

feature_i = m_hat_i / (sqrt(v_hat_i) + eps) with m_i = b1 m + (1 - b1) g_i, v_i = b2 v + (1 - b2) g_i^2,
m_hat = m / (1 - b1^t), v_hat = v / (1 - b2^t), t = step + 1 (HF Adam betas and eps). The moments m, v are
training state; after each selection they move to the means of m_i and v_i over the selected examples of the
large sources (the paper; kept sources are not selected, so they do not steer the normalisation).

The [B, D] feature matrix is never stored: the features come from the factored estimates g_i = s_i Z / d
(``ZerothOrderFeatures``) one column block at a time, so the selection needs O(B * block + d * D) memory
rather than several B x D buffers (D is the size of the parameter block, 655,360 for Phi-2's LoRA r=128 V).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from hfdc.colm.features import ZerothOrderFeatures

BLOCK_ELEMENTS = 2**20  # entries of one column block of the feature matrix (4 MB in float32)


class FeatureMatrix:
    """A [B, D] matrix whose entries ``block(rows, columns)`` computes on demand, read in column blocks of at
    most ``block_elements`` entries; ``FeatureMatrix.of(tensor)`` wraps a stored matrix."""

    def __init__(
        self,
        shape: tuple[int, int],
        block: Callable[[torch.Tensor, slice | torch.Tensor], torch.Tensor],
        device: torch.device,
        block_elements: int = BLOCK_ELEMENTS,
    ):
        self.shape, self.block, self.device, self.block_elements = shape, block, device, block_elements

    @classmethod
    def of(cls, features: torch.Tensor | FeatureMatrix) -> FeatureMatrix:
        """``features`` itself, or a stored [B, D] tensor as a FeatureMatrix."""
        if isinstance(features, FeatureMatrix):
            return features
        if not isinstance(features, torch.Tensor) or features.ndim != 2:
            raise TypeError(f"features must be a [B, D] tensor or a FeatureMatrix, got {type(features).__name__}")
        return cls(tuple(features.shape), lambda rows, columns: features[rows][:, columns].float(), features.device)

    def __len__(self) -> int:
        return self.shape[0]

    def take(self, rows: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
        """The [len(rows), len(columns)] sub-matrix."""
        return self.block(rows, columns)

    def means(self, subsets: Sequence[tuple[torch.Tensor, torch.Tensor | None]]) -> torch.Tensor:
        """[K, D]: row k is the mean of rows ``subsets[k][0]``, weighted by ``subsets[k][1]`` when not None."""
        rows = torch.arange(self.shape[0], device=self.device)
        out = None
        width = max(1, self.block_elements // max(1, self.shape[0]))
        for start in range(0, self.shape[1], width):
            columns = slice(start, start + width)
            x = self.block(rows, columns)
            if out is None:
                out = torch.empty(len(subsets), self.shape[1], device=self.device, dtype=x.dtype)
            for k, (members, weights) in enumerate(subsets):
                picked = x[members]
                out[k, columns] = picked.mean(0) if weights is None else weights.to(x.dtype) @ picked / weights.sum()
        return out


def raw_features(g: ZerothOrderFeatures) -> FeatureMatrix:
    """The zeroth-order estimates g_i themselves (feature_optimizer="sgd")."""
    return FeatureMatrix((len(g), g.dim), g.entries, g.slopes.device)


class FeatureMoments:
    """Running Adam moments m, v of the gradient features and the normalised features (module docstring)."""

    def __init__(self, dim: int, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8):
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.m = torch.zeros(dim)
        self.v = torch.zeros(dim)
        self.step = 0

    def features(self, g: ZerothOrderFeatures) -> FeatureMatrix:
        """The normalised features of ``g`` as a FeatureMatrix (two block-sized buffers per block read)."""
        b1, b2, eps, t = self.beta1, self.beta2, self.eps, self.step + 1
        m, v = self.m.to(g.slopes.device), self.v.to(g.slopes.device)

        def block(rows, columns):
            out = g.entries(rows, columns)
            root = out.square().mul_(1 - b2).add_(v[columns], alpha=b2).div_(1 - b2**t).sqrt_().add_(eps)
            return out.mul_(1 - b1).add_(m[columns], alpha=b1).div_(1 - b1**t).div_(root)

        return FeatureMatrix((len(g), g.dim), block, g.slopes.device)

    def update(self, g: ZerothOrderFeatures, selected: torch.Tensor) -> None:
        """m <- b1 m + (1 - b1) mean_S g_i, v <- b2 v + (1 - b2) mean_S g_i^2 (the means of m_i, v_i over the
        rows S = ``selected``, from the factored g without a |S| x D matrix), and count the step (only that when S
        is empty)."""
        self.step += 1
        if len(selected) == 0:
            return
        s = g.slopes[selected].to(g.directions.dtype)
        d = s.shape[1]
        mean = s.mean(0) @ g.directions / d
        gram = s.T @ s / len(s)
        mean_square = ((gram @ g.directions) * g.directions).sum(0) / d**2
        self.m = self.beta1 * self.m + (1 - self.beta1) * mean.cpu().to(self.m.dtype)
        self.v = self.beta2 * self.v + (1 - self.beta2) * mean_square.cpu().to(self.v.dtype)

    def state_dict(self) -> dict:
        return {"m": self.m, "v": self.v, "step": self.step, "betas": (self.beta1, self.beta2), "eps": self.eps}

    def load_state_dict(self, state: dict) -> None:
        if state["m"].shape != self.m.shape:
            raise ValueError(
                f"saved CoLM moments have dimension {state['m'].shape[0]}, the parameter block has "
                f"{self.m.shape[0]}; resume with the same zo_parameters and model"
            )
        self.m, self.v, self.step = state["m"], state["v"], int(state["step"])


def sparsify(mean: torch.Tensor, dim: int, how: str = "top", seed: int = 0) -> torch.Tensor:
    """Columns to keep given the [D] mean feature: the ``dim`` largest (top) or smallest |mean|, or a seeded
    random set; all columns when D <= dim."""
    if len(mean) <= dim:
        return torch.arange(len(mean), device=mean.device)
    score = mean.abs()
    if how == "top":
        return torch.topk(score, dim).indices
    if how == "smallest":
        return torch.topk(score, dim, largest=False).indices
    if how == "random":
        return torch.randperm(len(mean), generator=torch.Generator().manual_seed(seed))[:dim].to(mean.device)
    raise ValueError(f"sparsify must be top, random or smallest, got {how!r}")
