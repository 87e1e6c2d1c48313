"""Per-example gradient features without backward passes (CoLM, arXiv 2407.19580, Sec. 4.2).

Two-sided zeroth-order estimate on a small parameter block theta_B with seeded Gaussian directions z_k:
s_ik = (L_i(theta + eps z_k) - L_i(theta - eps z_k)) / (2 eps), g_i = sum_k s_ik z_k / d over d directions.
Only the block's layer and what follows it run for each perturbation (``LayerInputCache``). The estimates are
kept factored (``ZerothOrderFeatures``: slopes [B, d] and directions [d, D]); ``hfdc.colm.moments`` normalises
them Adam-style without forming the [B, D] matrix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

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


@dataclass
class ZerothOrderFeatures:
    """Per-example gradient estimates g_i = slopes[i] @ directions / d, kept factored."""

    slopes: torch.Tensor  # [B, d]: s_ik, the directional derivative of L_i along z_k
    directions: torch.Tensor  # [d, D]: the Gaussian directions z_k

    def __len__(self) -> int:
        return self.slopes.shape[0]

    @property
    def dim(self) -> int:
        """D, the size of the parameter block."""
        return self.directions.shape[1]

    def entries(self, rows: torch.Tensor | slice, columns: torch.Tensor | slice) -> torch.Tensor:
        """The g_i of ``rows`` on ``columns``: slopes[rows] @ directions[:, columns] / d."""
        return self.slopes[rows].to(self.directions.dtype) @ self.directions[:, columns] / self.slopes.shape[1]

    def dense(self) -> torch.Tensor:
        """The [B, D] matrix of the g_i."""
        return self.entries(slice(None), slice(None))


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
) -> ZerothOrderFeatures:
    """The estimates g_i of the examples of ``inputs`` (module docstring); D is the block's size.

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
    return ZerothOrderFeatures(torch.cat(slopes).to(dtype), z)


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
    def for_block(cls, model: torch.nn.Module, block: list[tuple[str, torch.nn.Parameter]]) -> LayerInputCache | None:
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
        raise TypeError(
            f"{type(module).__name__} returns {type(output).__name__}, not the hidden-states tensor, so "
            "its output cannot be skipped; set zo_reuse_prefix=False"
        )
