"""Per-example gradient features without backward passes (CoLM, arXiv 2407.19580, Sec. 4.2).

Two-sided zeroth-order estimate on a small parameter block theta_B with a seeded Gaussian direction z:
g_i = (L_i(theta + eps z) - L_i(theta - eps z)) / (2 eps) * z, averaged over ``directions`` draws; then
Adam-style normalisation with running moments (``FeatureMoments``) and per-source sparsification.
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F

_LAYER = re.compile(r"\.(\d+)\.")


def find_parameter_block(model: torch.nn.Module, pattern: str) -> list[tuple[str, torch.nn.Parameter]]:
    """Parameters of the LAST layer whose names match regex ``pattern``; only LoRA weights when there are any."""
    matches = [(name, p) for name, p in model.named_parameters() if re.search(pattern, name)]
    lora = [(name, p) for name, p in matches if "lora_" in name]
    matches = lora or matches
    if not matches:
        names = [name for name, _ in model.named_parameters()][:6]
        raise ValueError(
            f"zo_parameters={pattern!r} matches no parameter of {type(model).__name__} (names look like {names}); "
            "set zo_parameters to a regex of the block to use, e.g. 'v_proj' or 'lm_head'"
        )
    layers = [int(m.group(1)) if (m := _LAYER.search(name)) else -1 for name, _ in matches]
    last = max(layers)
    return [item for item, layer in zip(matches, layers) if layer == last]


def per_example_loss(model: torch.nn.Module, inputs: dict) -> torch.Tensor:
    """Mean next-token cross-entropy of each example over its labelled tokens (labels == -100 ignored)."""
    labels = inputs["labels"]
    logits = model(**{k: v for k, v in inputs.items() if k != "labels"}).logits
    shifted = labels[:, 1:]
    logits = logits[:, :-1].transpose(1, 2).to(torch.promote_types(logits.dtype, torch.float32))
    loss = F.cross_entropy(logits, shifted, ignore_index=-100, reduction="none")
    mask = shifted.ne(-100)
    return (loss * mask).sum(1) / mask.sum(1).clamp(min=1)


@torch.no_grad()
def zeroth_order_features(
    model: torch.nn.Module,
    block: list[tuple[str, torch.nn.Parameter]],
    inputs: dict,
    eps: float = 1e-3,
    seed: int = 0,
    directions: int = 1,
    chunk_size: int | None = None,
) -> torch.Tensor:
    """[B, D] features g_i (see module docstring); D is the block's size. Runs the model in eval mode, on
    ``chunk_size`` examples at a time (all at once when None) so the forward passes of a large batch need no
    more activation memory than the small batch's."""
    params = [p for _, p in block]
    dim = sum(p.numel() for p in params)
    generator = torch.Generator().manual_seed(seed)
    dtype = torch.promote_types(params[0].dtype, torch.float32)
    was_training = model.training
    model.eval()
    features = None
    try:
        for _ in range(directions):
            z = torch.randn(dim, generator=generator).to(params[0].device, dtype)
            _perturb(params, z, eps)
            plus = _chunked_loss(model, inputs, chunk_size)
            _perturb(params, z, -2 * eps)
            minus = _chunked_loss(model, inputs, chunk_size)
            _perturb(params, z, eps)
            g = ((plus - minus) / (2 * eps))[:, None] * z[None, :]
            features = g if features is None else features + g
    finally:
        model.train(was_training)
    return features / directions


def _chunked_loss(model: torch.nn.Module, inputs: dict, chunk_size: int | None) -> torch.Tensor:
    size = len(inputs["labels"])
    step = chunk_size or size
    return torch.cat([per_example_loss(model, {k: v[i : i + step] for k, v in inputs.items()})
                      for i in range(0, size, step)])


def _perturb(params: list[torch.nn.Parameter], z: torch.Tensor, scale: float) -> None:
    offset = 0
    for p in params:
        p.add_(z[offset : offset + p.numel()].view_as(p).to(p.dtype), alpha=scale)
        offset += p.numel()


class FeatureMoments:
    """Adam-style normalisation of gradient features, with moments carried across steps (training state).

    m_i = b1 m + (1 - b1) g_i, v_i = b2 v + (1 - b2) g_i^2, feature_i = m_i/(1-b1^t) / (sqrt(v_i/(1-b2^t)) + eps),
    t = step + 1; after selection, m and v become the means of m_i and v_i over the selected examples.
    """

    def __init__(self, dim: int, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8):
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.m = torch.zeros(dim)
        self.v = torch.zeros(dim)
        self.step = 0

    def normalise(self, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(features, m_i, v_i) for raw features ``g`` [B, D]."""
        m = self.beta1 * self.m.to(g.device) + (1 - self.beta1) * g
        v = self.beta2 * self.v.to(g.device) + (1 - self.beta2) * g * g
        t = self.step + 1
        features = (m / (1 - self.beta1**t)) / ((v / (1 - self.beta2**t)).sqrt() + self.eps)
        return features, m, v

    def update(self, m_selected: torch.Tensor, v_selected: torch.Tensor) -> None:
        """Move the moments to the selected examples' means and count the step."""
        self.m = m_selected.mean(0).cpu()
        self.v = v_selected.mean(0).cpu()
        self.step += 1

    def state_dict(self) -> dict:
        return {"m": self.m, "v": self.v, "step": self.step, "betas": (self.beta1, self.beta2), "eps": self.eps}

    def load_state_dict(self, state: dict) -> None:
        if state["m"].shape != self.m.shape:
            raise ValueError(f"saved CoLM moments have dimension {state['m'].shape[0]}, the parameter block has "
                             f"{self.m.shape[0]}; resume with the same zo_parameters and model")
        self.m, self.v, self.step = state["m"], state["v"], int(state["step"])


def sparsify(features: torch.Tensor, dim: int, how: str = "top", seed: int = 0) -> torch.Tensor:
    """Column indices to keep: the ``dim`` largest (top) or smallest |mean feature|, or a seeded random set."""
    if features.shape[1] <= dim:
        return torch.arange(features.shape[1], device=features.device)
    score = features.mean(0).abs()
    if how == "top":
        return torch.topk(score, dim).indices
    if how == "smallest":
        return torch.topk(score, dim, largest=False).indices
    if how == "random":
        return torch.randperm(features.shape[1], generator=torch.Generator().manual_seed(seed))[:dim].to(features.device)
    raise ValueError(f"sparsify must be top, random or smallest, got {how!r}")
