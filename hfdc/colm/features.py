"""Per-example gradient features without backward passes (CoLM, arXiv 2407.19580, Sec. 4.2).

Two-sided zeroth-order estimate on a small parameter block theta_B with seeded Gaussian directions z_k:
s_ik = (L_i(theta + eps z_k) - L_i(theta - eps z_k)) / (2 eps), g_i = sum_k s_ik u_k / d over d directions,
where u_k = (theta_+ - theta_-) / (2 eps) is the perturbation actually applied (= z_k up to rounding).
With one direction every g_i is a multiple of the same u, so facility location on the features is a 1-D
k-medoids problem on the slopes; ``directions > 1`` spans a d-dimensional subspace.

The layers before the block's layer run once per chunk (``LayerInputCache``) and only the rest runs for each
perturbation, with autocast off and (``float32``) in float32: a 1e-3 perturbation of bf16 weights is not
representable, and bf16 losses are too coarse for a difference of 1e-3. No KV cache is built. The estimates are
kept factored (``ZerothOrderFeatures``: slopes [B, d] and directions [d, D]); ``hfdc.colm.moments`` normalises
them Adam-style without forming the [B, D] matrix.
"""

from __future__ import annotations

import contextlib
import itertools
import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F

_LAYER = re.compile(r"\.(\d+)\.")
LORA_MATRICES = ("B", "AB")


def find_parameter_block(
    model: torch.nn.Module, pattern: str, lora_matrices: str = "B"
) -> list[tuple[str, torch.nn.Parameter]]:
    """Parameters of the LAST layer whose names match regex ``pattern``; on a PEFT model only its LoRA weights:
    the B matrix (``lora_matrices="B"``, CoLM's reference code) or A and B (``"AB"``)."""
    if lora_matrices not in LORA_MATRICES:
        raise ValueError(f"zo_lora_matrices must be one of {LORA_MATRICES}, got {lora_matrices!r}")
    matches = [(name, p) for name, p in model.named_parameters() if re.search(pattern, name)]
    lora = [(name, p) for name, p in matches if any(f"lora_{m}" in name for m in lora_matrices)]
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
    """Mean next-token cross-entropy of each example over its labelled tokens (labels == -100 ignored), from one
    forward pass without a KV cache."""
    labels = inputs["labels"]
    logits = model(**{k: v for k, v in inputs.items() if k != "labels"}, use_cache=False).logits
    shifted = labels[:, 1:]
    logits = logits[:, :-1].transpose(1, 2).to(torch.promote_types(logits.dtype, torch.float32))
    loss = F.cross_entropy(logits, shifted, ignore_index=-100, reduction="none")
    mask = shifted.ne(-100)
    return (loss * mask).sum(1) / mask.sum(1).clamp(min=1)


@dataclass
class ZerothOrderFeatures:
    """Per-example gradient estimates g_i = slopes[i] @ directions / d, kept factored."""

    slopes: torch.Tensor  # [B, d]: s_ik, the directional derivative of L_i along u_k
    directions: torch.Tensor  # [d, D]: the directions u_k actually applied

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
    float32: bool = True,
) -> ZerothOrderFeatures:
    """The estimates g_i of the examples of ``inputs`` (module docstring); D is the block's size.

    Runs the model in eval mode on ``chunk_size`` examples at a time (all at once when None), so the forward
    passes of a large batch need no more activation memory than the small batch's. With ``reuse_prefix`` the
    layers before the block's layer run once per chunk and each perturbed pass runs only the rest
    (``LayerInputCache``; the paper's efficient variant, same result). The perturbed passes run with autocast off
    and, with ``float32``, the parameters they use in float32 (cast back afterwards; without the prefix cache that
    is the whole model). The block's weights are restored exactly afterwards. Raises when every slope is 0.
    """
    params = [p for _, p in block]
    dim = sum(p.numel() for p in params)
    device, dtype = params[0].device, torch.promote_types(params[0].dtype, torch.float32)
    z = torch.randn(directions, dim, generator=torch.Generator().manual_seed(seed)).to(device, dtype)
    original = [p.detach().clone() for p in params]
    cache = LayerInputCache.for_block(model, block) if reuse_prefix else None
    size = len(inputs["labels"])
    step = chunk_size or size
    slopes = []
    was_training = model.training
    model.eval()
    torch.clear_autocast_cache()  # weights cast by an enclosing autocast before this call may be stale
    try:
        with _float32_suffix(model, cache) if float32 else contextlib.nullcontext():
            applied = torch.stack([_applied_direction(params, original, z[k], eps) for k in range(directions)])
            for start in range(0, size, step):
                chunk = {k: v[start : start + step] for k, v in inputs.items()}
                if cache:
                    cache.record(model, chunk)
                rows = []
                for k in range(directions):
                    losses = []
                    for sign in (1.0, -1.0):
                        _apply(params, original, z[k], sign * eps)
                        with _suffix_precision(model, device, float32):
                            losses.append(cache.loss(model, chunk) if cache else per_example_loss(model, chunk))
                    rows.append((losses[0] - losses[1]).to(dtype) / (2 * eps))
                slopes.append(torch.stack(rows, 1))
    finally:
        for p, value in zip(params, original):
            p.copy_(value)
        torch.clear_autocast_cache()
        model.train(was_training)
    slopes = torch.cat(slopes)
    if not slopes.any():
        raise ValueError(
            "every zeroth-order slope is exactly 0: the parameter block does not change the loss (e.g. zo_parameters "
            "names LoRA A while B is still 0, or a layer the output ignores), or zo_eps is below the weights' "
            "precision; pick another zo_parameters or a larger zo_eps"
        )
    return ZerothOrderFeatures(slopes, applied)


def _apply(params: list[torch.nn.Parameter], original: list[torch.Tensor], z: torch.Tensor, scale: float) -> None:
    """theta_B = theta_B(original) + scale * z, rounded to the parameters' dtype. Clears autocast's cache of
    low-precision weight copies, which would otherwise keep serving the previous block."""
    offset = 0
    for p, value in zip(params, original):
        p.copy_(value.to(p.dtype) + scale * z[offset : offset + p.numel()].view_as(p).to(p.dtype))
        offset += p.numel()
    torch.clear_autocast_cache()


def _applied_direction(
    params: list[torch.nn.Parameter], original: list[torch.Tensor], z: torch.Tensor, eps: float
) -> torch.Tensor:
    """u = (theta_+ - theta_-) / (2 eps) as the parameters actually store theta_+-, in z's dtype (z up to rounding)."""
    _apply(params, original, z, eps)
    plus = torch.cat([p.detach().to(z.dtype).flatten() for p in params])
    _apply(params, original, z, -eps)
    return (plus - torch.cat([p.detach().to(z.dtype).flatten() for p in params])) / (2 * eps)


@contextlib.contextmanager
def _suffix_precision(model: torch.nn.Module, device: torch.device, float32: bool):
    """Autocast off for the perturbed passes when they run in float32, also inside a forward that accelerate wrapped
    in autocast for mixed precision (its original forward runs instead); the caller's precision otherwise."""
    if not float32:
        yield
        return
    wrapped, original = model.__dict__.get("forward"), model.__dict__.get("_original_forward")
    if original is not None:
        model.forward = original
    try:
        with torch.autocast(device.type, enabled=False):
            yield
    finally:
        if original is not None:
            model.forward = wrapped


@contextlib.contextmanager
def _float32_suffix(model: torch.nn.Module, cache: LayerInputCache | None):
    """Cast, for the block, the low-precision floating parameters and buffers that the perturbed passes use to
    float32 (all but the cached earlier layers and the input embeddings), and back afterwards (exactly: every
    bf16 / fp16 value is a float32 value). Parameters keep their identity (optimizer state stays valid)."""
    skip = {
        id(t)
        for layer in (cache.earlier if cache else ())
        for t in itertools.chain(layer.parameters(), layer.buffers())
    }
    embeddings = getattr(model, "get_input_embeddings", lambda: None)()
    head = getattr(model, "get_output_embeddings", lambda: None)()
    if cache and embeddings is not None and (head is None or head.weight is not embeddings.weight):
        skip.add(id(embeddings.weight))
    tensors = {
        id(t): t
        for t in itertools.chain(model.parameters(), model.buffers())
        if id(t) not in skip and t.is_floating_point() and t.element_size() < 4
    }
    dtypes = {key: t.dtype for key, t in tensors.items()}
    for t in tensors.values():
        t.data = t.data.float()
    try:
        yield
    finally:
        for key, t in tensors.items():
            t.data = t.data.to(dtypes[key])


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

    def record(self, model: torch.nn.Module, inputs: dict) -> None:
        """Run the layers before the block's layer and keep the input of the block's layer (nothing after it runs)."""
        hooks = [self.layer.register_forward_pre_hook(self._record, with_kwargs=True)]
        hooks += [layer.register_forward_hook(_check_tensor_output) for layer in self.earlier]
        try:
            model(**{k: v for k, v in inputs.items() if k != "labels"}, use_cache=False)
        except _PrefixDone:
            pass
        finally:
            for hook in hooks:
                hook.remove()

    def loss(self, model: torch.nn.Module, inputs: dict) -> torch.Tensor:
        """per_example_loss(model, inputs), starting from the recorded input of the block's layer."""
        if self.hidden is None:
            raise RuntimeError("LayerInputCache.loss before LayerInputCache.record")
        hook = self.layer.register_forward_pre_hook(self._replay, with_kwargs=True)
        patched = {layer: layer.__dict__.get("forward") for layer in self.earlier}
        for layer in patched:
            layer.forward = _identity
        try:
            return per_example_loss(model, inputs)
        finally:
            hook.remove()
            for layer, forward in patched.items():  # put back what was there (e.g. accelerate's device hooks)
                if forward is None:
                    del layer.forward
                else:
                    layer.forward = forward

    def _record(self, module, args, kwargs):
        self.hidden = args[0] if args else kwargs["hidden_states"]
        raise _PrefixDone

    def _replay(self, module, args, kwargs):
        dtype = next(module.parameters()).dtype  # the layer's own precision (float32 in float32 passes)
        hidden = self.hidden.to(dtype) if self.hidden.is_floating_point() else self.hidden
        if args:
            return (hidden, *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": hidden}


class _PrefixDone(Exception):
    """Raised by LayerInputCache.record once the block's layer input is kept: the rest of the pass is not needed."""


def _identity(hidden_states, *args, **kwargs):
    return hidden_states


def _check_tensor_output(module, args, output):
    if not isinstance(output, torch.Tensor):
        raise TypeError(
            f"{type(module).__name__} returns {type(output).__name__}, not the hidden-states tensor, so "
            "its output cannot be skipped; set zo_reuse_prefix=False"
        )
