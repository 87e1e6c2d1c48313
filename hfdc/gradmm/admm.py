"""ADMM over continuous embeddings x and readable tokens z (GRADMM, Nguyen et al., ICML 2025, arXiv 2502.17607).

Per class, a batch of B sequences: special tokens and the prompt are pinned, the F free positions are optimised.
One outer iteration:

1. z-step: per free position, the ``topk`` allowed tokens by cosine to ``x + lambda / rho``; the LM then decodes
   left to right after a class-specific context and keeps, at each position, its most probable token of that set.
2. x-step: ``inner_steps`` Adam steps (grad-norm clipping, StepLR per outer iteration) on
   ``match(x) + rho / 2 ||x - z + lambda / rho||^2`` (+ ``perplexity_weight`` * the LM's loss of z under x).
3. dual step: ``lambda <- lambda + rho (x - z)``.

The x with the lowest objective is kept and decoded (z-step without lambda) at the end.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from transformers import DynamicCache

from hfdc.gradmm.gradients import head_gradient, head_matching_loss, label_gradient, matching_loss


@dataclass(frozen=True)
class AdmmSettings:
    """The optimisation knobs, built from GradmmConfig (``admm_settings``; the defaults live there only)."""

    rho: float
    topk: int
    inner_steps: int
    learning_rate: float
    lr_step_size: int
    lr_gamma: float
    grad_clip: float
    matching_loss: str
    l1_weight: float
    perplexity_weight: float


@dataclass(frozen=True)
class Problem:
    """One class's matching problem: the model, the target gradient and what pins and constrains the sequences.

    ``front_ids`` ([P]) and ``prompt_ids`` ([Q]) are the pinned token ids before and after the ``free_length``
    free positions; ``embeddings`` ([V, d], float32) what the input embedding layer outputs for each token id,
    ``allowed`` ([V] bool) the z-step vocabulary, ``context_ids`` the z-step decoding context. ``lm_head``: the
    block is the LM head, whose gradient is matched in factored form (same loss, no [V, d] tensor per step).
    """

    model: torch.nn.Module
    block: list
    target: list
    label_id: int
    front_ids: torch.Tensor
    prompt_ids: torch.Tensor
    free_length: int
    batch_size: int
    embeddings: torch.Tensor
    allowed: torch.Tensor
    context_ids: torch.Tensor
    settings: AdmmSettings
    lm_head: bool = True

    def full_sequence(self, free: torch.Tensor) -> torch.Tensor:
        """[B, P + F + Q, d]: the pinned embeddings around the free ones, in the model's dtype."""
        batch = free.shape[0]
        front, prompt = self.embeddings[self.front_ids], self.embeddings[self.prompt_ids]
        parts = (front.expand(batch, -1, -1), free, prompt.expand(batch, -1, -1))
        return torch.cat(parts, dim=1).to(self.model.dtype)

    def full_ids(self, free_ids: torch.Tensor) -> torch.Tensor:
        """[B, P + F + Q] token ids: the pinned ids around ``free_ids``."""
        batch = free_ids.shape[0]
        return torch.cat((self.front_ids.expand(batch, -1), free_ids, self.prompt_ids.expand(batch, -1)), dim=1)

    def matching(self, inputs_embeds: torch.Tensor, create_graph: bool = False) -> torch.Tensor:
        """Matching loss between the target and the gradient of the batch ``inputs_embeds``."""
        kind, l1_weight = self.settings.matching_loss, self.settings.l1_weight
        if self.lm_head:
            grad = head_gradient(self.model, inputs_embeds, self.label_id, create_graph=create_graph)
            return head_matching_loss(self.target, grad, kind, l1_weight)
        grads = label_gradient(self.model, self.block, inputs_embeds, self.label_id, create_graph=create_graph)
        return matching_loss(self.target, grads, kind, l1_weight)


@dataclass
class AdmmState:
    """What an interrupted run needs to continue exactly: x, lambda, Adam and StepLR state, the best x so far."""

    x: torch.Tensor
    lam: torch.Tensor
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    best_x: torch.Tensor
    best_objective: float = math.inf
    step: int = 0
    history: list[dict] = field(default_factory=list)

    @classmethod
    def start(cls, x: torch.Tensor, settings: AdmmSettings) -> AdmmState:
        """A fresh state at ``x`` (lambda = 0)."""
        x = x.detach().clone().requires_grad_(True)
        optimizer = torch.optim.Adam([x], lr=settings.learning_rate)
        scheduler = torch.optim.lr_scheduler.StepLR(
            optimizer, step_size=settings.lr_step_size, gamma=settings.lr_gamma
        )
        return cls(x=x, lam=torch.zeros_like(x), optimizer=optimizer, scheduler=scheduler, best_x=x.detach().clone())

    def state_dict(self) -> dict:
        return {
            "x": self.x.detach(),
            "lam": self.lam,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "best_x": self.best_x,
            "best_objective": self.best_objective,
            "step": self.step,
            "history": self.history,
        }

    @classmethod
    def from_state_dict(cls, saved: dict, settings: AdmmSettings) -> AdmmState:
        """The state saved by :meth:`state_dict`, optimiser and scheduler included."""
        state = cls.start(saved["x"], settings)
        state.lam = saved["lam"].clone()
        state.optimizer.load_state_dict(saved["optimizer"])
        state.scheduler.load_state_dict(saved["scheduler"])
        state.best_x = saved["best_x"].clone()
        state.best_objective = saved["best_objective"]
        state.step = saved["step"]
        state.history = list(saved["history"])
        return state


def initial_x(problem: Problem, generator: torch.Generator, candidates: int, norm: float) -> torch.Tensor:
    """The best of ``candidates`` Gaussian starts [B, F, d] (each token vector scaled to ``norm``) by matching loss."""
    device = problem.embeddings.device
    shape = (problem.batch_size, problem.free_length, problem.embeddings.shape[1])
    best, best_loss = None, math.inf
    for _ in range(candidates):
        free = torch.randn(shape, generator=generator)
        free = (free * norm / free.norm(dim=-1, keepdim=True)).to(device)
        loss = problem.matching(problem.full_sequence(free)).item()
        if loss < best_loss:
            best, best_loss = free, loss
    return best


def cosine_topk(queries: torch.Tensor, embeddings: torch.Tensor, allowed: torch.Tensor, k: int) -> torch.Tensor:
    """[B, F, k] ids of the ``k`` allowed tokens with the highest cosine similarity to each query vector [B, F, d]."""
    sims = F.normalize(queries.float(), dim=-1) @ F.normalize(embeddings.float(), dim=-1).T
    sims[..., ~allowed] = -math.inf
    return sims.topk(min(k, int(allowed.sum())), dim=-1).indices


@torch.no_grad()
def decode_in_topk(model, context_ids: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """[B, F] ids decoded greedily after ``context_ids`` ([1, c]): position i takes the LM's most probable token
    among ``candidates[:, i]`` given the context and the tokens chosen before it (one cached forward per position)."""
    batch, length, _ = candidates.shape
    # transformers renamed past_key_values to cache (5.2x); the cache object is filled in place under either name
    name = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    cached = {name: DynamicCache(config=model.config), "use_cache": True, "logits_to_keep": 1}
    logits = model(input_ids=context_ids, **cached).logits.expand(batch, -1, -1)  # the context once, then B rows
    cached[name].batch_repeat_interleave(batch)
    chosen = []
    for i in range(length):
        scores = logits[:, -1].gather(1, candidates[:, i])
        token = candidates[:, i].gather(1, scores.argmax(dim=1, keepdim=True))
        chosen.append(token)
        if i + 1 < length:
            logits = model(input_ids=token, **cached).logits
    return torch.cat(chosen, dim=1)


def z_step(problem: Problem, query: torch.Tensor) -> torch.Tensor:
    """[B, F] readable token ids for the query embeddings (``x + lambda / rho``): cosine top-k, then LM decoding."""
    candidates = cosine_topk(query, problem.embeddings, problem.allowed, problem.settings.topk)
    return decode_in_topk(problem.model, problem.context_ids, candidates)


def perplexity_loss(model, inputs_embeds: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy of ``ids`` under the LM reading ``inputs_embeds``."""
    logits = model(inputs_embeds=inputs_embeds).logits[:, :-1]
    return F.cross_entropy(logits.float().flatten(0, 1), ids[:, 1:].flatten())


def x_step(problem: Problem, state: AdmmState, z: torch.Tensor, z_ids: torch.Tensor) -> tuple[float, float]:
    """One Adam step of x on the augmented Lagrangian; returns (objective, matching loss) before the step."""
    settings = problem.settings
    inputs_embeds = problem.full_sequence(state.x)
    match = problem.matching(inputs_embeds, create_graph=True)
    objective = match + settings.rho / 2 * (state.x - z + state.lam / settings.rho).square().sum()
    if settings.perplexity_weight:
        objective = objective + settings.perplexity_weight * perplexity_loss(
            problem.model, inputs_embeds, problem.full_ids(z_ids)
        )
    (grad,) = torch.autograd.grad(objective, state.x)
    if settings.grad_clip:
        grad = grad * torch.clamp(settings.grad_clip / (grad.norm() + 1e-6), max=1.0)
    state.optimizer.zero_grad()
    state.x.grad = grad
    state.optimizer.step()
    return objective.item(), match.item()


def dual_step(lam: torch.Tensor, x: torch.Tensor, z: torch.Tensor, rho: float) -> torch.Tensor:
    """``lambda + rho (x - z)``."""
    return lam + rho * (x - z)


def outer_step(problem: Problem, state: AdmmState) -> None:
    """One ADMM iteration (z-step, ``inner_steps`` x-steps, dual step) applied to ``state``."""
    settings = problem.settings
    z_ids = z_step(problem, state.x.detach() + state.lam / settings.rho)
    z = problem.embeddings[z_ids].to(state.x.dtype)
    for _ in range(settings.inner_steps):
        objective, match = x_step(problem, state, z, z_ids)
    state.lam = dual_step(state.lam, state.x.detach(), z, settings.rho)
    state.scheduler.step()
    state.step += 1
    if objective <= state.best_objective:
        state.best_objective, state.best_x = objective, state.x.detach().clone()
    state.history.append({"objective": objective, "matching_loss": match})


def run_admm(problem: Problem, state: AdmmState, steps: int, on_step=None) -> AdmmState:
    """Outer iterations until ``state.step == steps``; ``on_step(state)`` after each (checkpoints, progress)."""
    while state.step < steps:
        outer_step(problem, state)
        if on_step is not None:
            on_step(state)
    return state


def decode_result(problem: Problem, state: AdmmState) -> tuple[torch.Tensor, list[float], float]:
    """(free token ids [B, F] of the best x, each row's own matching loss, the batch's matching loss) on token ids."""
    free_ids = z_step(problem, state.best_x)
    inputs_embeds = problem.full_sequence(problem.embeddings[free_ids])
    rows = [problem.matching(inputs_embeds[b : b + 1]).item() for b in range(len(free_ids))]
    return free_ids, rows, problem.matching(inputs_embeds).item()
