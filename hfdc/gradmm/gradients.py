"""Gradients GRADMM matches: of the label-token loss w.r.t. a parameter block (default the LM head), and the losses.

For a batch of sequences with embeddings ``x`` and label token ``y`` the gradient is
``g(x) = d/dW mean_b CE(logits_b[-1], y)``; the class target is the mean per-example gradient of a few real
examples, ``g_real = (1/n) sum_i g(e_i)`` (GRADMM, arXiv 2502.17607).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from hfdc.gradmm.privacy import clip_to_norm

LM_HEAD = "lm_head"


def output_layer(model):
    """The LM head of ``model`` (``get_output_embeddings()``); a model without one is an error."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is None:
        raise ValueError(
            f"{type(model).__name__} has no LM head (get_output_embeddings() is None): GRADMM needs a causal LM; "
            "load it with AutoModelForCausalLM"
        )
    return head


def parameter_block(model, spec: str = LM_HEAD) -> list[torch.nn.Parameter]:
    """The parameters whose gradient is matched: ``lm_head`` = the output embeddings (and bias), tied or not;
    otherwise every parameter whose name matches the regex ``spec``."""
    head = output_layer(model)
    if spec == LM_HEAD:
        return [p for p in (head.weight, getattr(head, "bias", None)) if p is not None]
    pattern = re.compile(spec)
    block = [p for name, p in model.named_parameters() if pattern.search(name)]
    if not block:
        raise ValueError(f"gradient_parameters={spec!r} matches no parameter name of {type(model).__name__}")
    return block


def label_gradient(model, block, inputs_embeds: torch.Tensor, label_id: int, create_graph: bool = False):
    """Gradient w.r.t. ``block`` of the mean cross-entropy of ``label_id`` at the last position of each sequence.

    ``inputs_embeds`` is [B, L, d] (all sequences of length L). With ``create_graph`` the result stays
    differentiable w.r.t. ``inputs_embeds`` (the x-step's double backward).
    """
    logits = model(inputs_embeds=inputs_embeds, logits_to_keep=1).logits[:, -1]
    labels = torch.full((logits.shape[0],), label_id, device=logits.device)
    loss = F.cross_entropy(logits.float(), labels)
    return torch.autograd.grad(loss, block, create_graph=create_graph)


@dataclass
class HeadGradient:
    """The LM head's gradient in factored form: ``dW = delta^T hidden`` and ``db = sum_b delta_b``, where
    ``delta`` [B, V] is the loss's gradient w.r.t. the head's output and ``hidden`` [B, d] the head's input.

    Matching losses against it cost O(B V d) and never form the [V, d] matrix; ``dense()`` forms it.
    """

    delta: torch.Tensor
    hidden: torch.Tensor
    has_bias: bool

    def dense(self) -> list[torch.Tensor]:
        weight = self.delta.T @ self.hidden
        return [weight, self.delta.sum(0)] if self.has_bias else [weight]


def head_gradient(model, inputs_embeds: torch.Tensor, label_id: int, create_graph: bool = False) -> HeadGradient:
    """The LM head's gradient of the mean label-token cross-entropy, factored (see :class:`HeadGradient`).

    The head's input and output are read with a forward hook, so logit scaling or soft-capping after the head
    (Gemma, Cohere) is part of ``delta``. With ``create_graph`` it stays differentiable w.r.t. ``inputs_embeds``.
    """
    head, seen = output_layer(model), {}
    hook = head.register_forward_hook(lambda module, args, output: seen.update(hidden=args[0], output=output))
    try:
        logits = model(inputs_embeds=inputs_embeds, logits_to_keep=1).logits[:, -1]
    finally:
        hook.remove()
    labels = torch.full((logits.shape[0],), label_id, device=logits.device)
    loss = F.cross_entropy(logits.float(), labels)
    (delta,) = torch.autograd.grad(loss, seen["output"], create_graph=create_graph)
    return HeadGradient(delta[:, -1], seen["hidden"][:, -1], getattr(head, "bias", None) is not None)


def head_matching_loss(target, grad: HeadGradient, kind: str = "cos", l1_weight: float = 1e-3) -> torch.Tensor:
    """:func:`matching_loss` of a factored head gradient against the dense ``target`` ([W] or [W, b]).

    ``<T, delta^T H> = sum(delta * (H T^T))`` and ``||delta^T H||^2 = sum((delta delta^T) * (H H^T))``; the
    elementwise ``l2_l1`` needs the dense gradient.
    """
    if kind == "l2_l1":
        return matching_loss(target, grad.dense(), kind, l1_weight)
    delta, hidden = grad.delta.float(), grad.hidden.float()
    dots = [(delta * (hidden @ target[0].T)).sum()]
    squares = [((delta @ delta.T) * (hidden @ hidden.T)).sum()]
    if grad.has_bias:
        bias = delta.sum(0)
        dots.append(bias @ target[1])
        squares.append(bias @ bias)
    target_squares = [t.square().sum() for t in target]
    if kind == "cos":
        terms = [1 - d / (t * s).clamp_min(1e-24).sqrt() for d, s, t in zip(dots, squares, target_squares)]
        return torch.stack(terms).mean()
    if kind == "l2":
        return sum(t - 2 * d + s for d, s, t in zip(dots, squares, target_squares))
    raise ValueError(f"matching_loss={kind!r} is not one of cos, l2, l2_l1")


def embed(model, ids) -> torch.Tensor:
    """Input embeddings of token ids ([B, L] -> [B, L, d]), outside the autograd graph."""
    with torch.no_grad():
        return model.get_input_embeddings()(ids)


def target_gradient(model, block, sequences, label_id: int, clip_norm: float | None = None) -> list[torch.Tensor]:
    """Mean per-example gradient of ``sequences`` (lists of token ids), each clipped to ``clip_norm`` when given."""
    device = block[0].device
    total = [torch.zeros_like(p) for p in block]
    for ids in sequences:
        grads = label_gradient(model, block, embed(model, torch.tensor([ids], device=device)), label_id)
        grads = clip_to_norm(grads, clip_norm) if clip_norm is not None else grads
        for acc, grad in zip(total, grads):
            acc.add_(grad.detach())
    return [acc / len(sequences) for acc in total]


def matching_loss(target, current, kind: str = "cos", l1_weight: float = 1e-3) -> torch.Tensor:
    """Distance between gradient lists: ``cos`` = mean over tensors of 1 - cos(t, c); ``l2`` = sum ||t - c||^2;
    ``l2_l1`` = l2 + l1_weight * sum |t - c|."""
    if kind == "cos":
        terms = [1 - F.cosine_similarity(t.flatten(), c.flatten(), dim=0, eps=1e-12) for t, c in zip(target, current)]
        return torch.stack(terms).mean()
    squared = sum((t - c).square().sum() for t, c in zip(target, current))
    if kind == "l2":
        return squared
    if kind == "l2_l1":
        return squared + l1_weight * sum((t - c).abs().sum() for t, c in zip(target, current))
    raise ValueError(f"matching_loss={kind!r} is not one of cos, l2, l2_l1")
