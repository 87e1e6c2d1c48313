"""Per-example gradient features without backward passes (CoLM, arXiv 2407.19580, Sec. 4.2).

Two-sided zeroth-order estimate on a small parameter block theta_B with a seeded Gaussian direction z:
g_i = (L_i(theta + eps z) - L_i(theta - eps z)) / (2 eps) * z, averaged over ``directions`` draws (only the
block's layer and what follows it run for each perturbation, ``LayerInputCache``); then Adam-style normalisation
with running moments (``FeatureMoments``) and per-source sparsification.
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
    reuse_prefix: bool = True,
) -> torch.Tensor:
    """[B, D] features g_i (see module docstring); D is the block's size.

    Runs the model in eval mode on ``chunk_size`` examples at a time (all at once when None), so the forward
    passes of a large batch need no more activation memory than the small batch's. With ``reuse_prefix`` the
    layers before the block's layer run once per chunk and each perturbed pass runs only the rest
    (``LayerInputCache``; the paper's efficient variant, same result). The block's weights are restored
    exactly afterwards.
    """
    params = [p for _, p in block]
    dim = sum(p.numel() for p in params)
    dtype = torch.promote_types(params[0].dtype, torch.float32)
    z = torch.randn(directions, dim, generator=torch.Generator().manual_seed(seed)).to(params[0].device, dtype)
    original = [p.detach().clone() for p in params]
    cache = LayerInputCache.for_block(model, block) if reuse_prefix else None
    size = len(inputs["labels"])
    step = chunk_size or size
    slopes = []
    was_training = model.training
    model.eval()
    try:
        for start in range(0, size, step):
            chunk = {k: v[start : start + step] for k, v in inputs.items()}
            rows = []
            for k in range(directions):
                _set_block(params, original, z[k], eps)
                plus = cache.loss(model, chunk, record=k == 0) if cache else per_example_loss(model, chunk)
                _set_block(params, original, z[k], -eps)
                minus = cache.loss(model, chunk) if cache else per_example_loss(model, chunk)
                rows.append((plus - minus) / (2 * eps))
            slopes.append(torch.stack(rows, 1))
    finally:
        for p, value in zip(params, original):
            p.copy_(value)
        model.train(was_training)
    return torch.cat(slopes).to(dtype) @ z / directions


def _set_block(params: list[torch.nn.Parameter], original: list[torch.Tensor], z: torch.Tensor, scale: float) -> None:
    """theta_B = theta_B(original) + scale * z."""
    offset = 0
    for p, value in zip(params, original):
        p.copy_(value + scale * z[offset : offset + p.numel()].view_as(p).to(p.dtype))
        offset += p.numel()


class LayerInputCache:
    """Skip the unperturbed part of the network in zeroth-order passes (CoLM's efficient variant).

    The block lies in one layer of the model's layer stack, so the layers before it compute the same hidden
    states under every perturbation of the block. ``loss(..., record=True)`` runs the whole model and keeps
    the input of the block's layer; later ``loss`` calls make the earlier layers identities and feed the kept
    input to the block's layer, so only that layer and what follows it run again.
    """

    def __init__(self, earlier: list[torch.nn.Module], layer: torch.nn.Module):
        self.earlier, self.layer = earlier, layer
        self.hidden: torch.Tensor | None = None

    @classmethod
    def for_block(cls, model: torch.nn.Module, block: list[tuple[str, torch.nn.Parameter]]) -> "LayerInputCache | None":
        """The cache for ``block``'s layer, or None when the block is in no numbered layer of a ModuleList
        (e.g. lm_head) or in the first layer (nothing to skip)."""
        match = _LAYER.search(block[0][0])
        if match is None:
            return None
        stack = model.get_submodule(block[0][0][: match.start()])
        index = int(match.group(1))
        if not isinstance(stack, torch.nn.ModuleList) or index == 0:
            return None
        return cls(list(stack[:index]), stack[index])

    def loss(self, model: torch.nn.Module, inputs: dict, record: bool = False) -> torch.Tensor:
        """per_example_loss(model, inputs), recording the layer input (record) or starting from it."""
        if not record and self.hidden is None:
            raise RuntimeError("LayerInputCache.loss(record=False) before a recording pass")
        hooks = [self.layer.register_forward_pre_hook(self._record if record else self._replay, with_kwargs=True)]
        if record:
            hooks += [layer.register_forward_hook(_check_tensor_output) for layer in self.earlier]
        patched = {} if record else {layer: layer.__dict__.get("forward") for layer in self.earlier}
        for layer in patched:
            layer.forward = _identity
        try:
            return per_example_loss(model, inputs)
        finally:
            for hook in hooks:
                hook.remove()
            for layer, forward in patched.items():  # put back what was there (e.g. accelerate's device hooks)
                if forward is None:
                    del layer.forward
                else:
                    layer.forward = forward

    def _record(self, module, args, kwargs):
        self.hidden = args[0] if args else kwargs["hidden_states"]

    def _replay(self, module, args, kwargs):
        if args:
            return (self.hidden, *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": self.hidden}


def _identity(hidden_states, *args, **kwargs):
    return hidden_states


def _check_tensor_output(module, args, output):
    if not isinstance(output, torch.Tensor):
        raise TypeError(f"{type(module).__name__} returns {type(output).__name__}, not the hidden-states tensor, so "
                        "its output cannot be skipped; set zo_reuse_prefix=False")


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
