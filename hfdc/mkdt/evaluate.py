"""MKDT evaluation: pre-train a fresh student on (images, target vectors), then linear probes on a few labels.

Pre-training is SGD on MSE(f(x), y) (momentum and weight decay as the experts); the probe is an L2-regularised
multinomial logistic regression (L-BFGS, ``probe_steps`` steps, ``probe_l2 * ||W||^2``) on the student's backbone
features of a stratified ``fraction`` of the labelled training rows, tested on the test rows (Joshi et al., ICLR
2025, arXiv 2410.02116). Arms: the distilled set, a random real subset of the same size with teacher targets,
and no pre-training; each over ``eval_seeds`` seeds.
"""

from __future__ import annotations

import math
import time

import torch
from tqdm.auto import tqdm

from hfdc.mkdt.student import fit, new_student


def pretrain(config, images: torch.Tensor, targets: torch.Tensor, lr: float, seed: int):
    """A fresh student (seed ``seed``) fitted to (images, targets) for ``pretrain_epochs`` epochs at ``lr``."""
    if len(images) == 0:
        raise ValueError("the pre-training set is empty: the distilled set has no rows")
    model = new_student(config, images, targets.shape[1], seed=seed)
    return fit(
        model,
        images,
        targets,
        lr=lr,
        epochs=config.pretrain_epochs,
        batch_size=config.pretrain_batch_size,
        momentum=config.expert_momentum,
        weight_decay=config.expert_weight_decay,
        generator=torch.Generator().manual_seed(seed),
        desc="pre-training",
    )


@torch.no_grad()
def features(model, images: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """The student's backbone features (``embed``, the input of its head) of every image."""
    model.eval()
    return torch.cat([model.embed(images[start : start + batch_size]) for start in range(0, len(images), batch_size)])


def labelled_rows(labels: torch.Tensor, fraction: float, seed: int) -> torch.Tensor:
    """A stratified random ``fraction`` of the rows: ceil(fraction * class count) rows of every class."""
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for label in labels.unique():
        members = (labels == label).nonzero().flatten()
        count = math.ceil(fraction * len(members))
        rows.append(members[torch.randperm(len(members), generator=generator)[:count]])
    return torch.cat(rows).sort().values


def linear_probe(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
    steps: int,
    l2: float,
) -> float:
    """Test accuracy of a logistic regression (L-BFGS, strong Wolfe line search) on features standardised with
    the labelled rows' mean and standard deviation; loss = cross-entropy + l2 * ||W||^2."""
    mean, std = train_features.mean(0), train_features.std(0, unbiased=False).clamp_min(1e-6)
    x, x_test = (train_features - mean) / std, (test_features - mean) / std
    classes = int(max(train_labels.max(), test_labels.max())) + 1
    probe = torch.nn.Linear(x.shape[1], classes).to(x.device)
    optimizer = torch.optim.LBFGS(probe.parameters(), line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(probe(x), train_labels) + l2 * probe.weight.pow(2).sum()
        loss.backward()
        return loss

    for _ in range(steps):
        optimizer.step(closure)
    with torch.no_grad():
        return (probe(x_test).argmax(1) == test_labels).float().mean().item()


def evaluate_arms(
    config,
    arms: dict[str, tuple[torch.Tensor, torch.Tensor, float] | None],
    train_images: torch.Tensor,
    train_labels: torch.Tensor,
    test_images: torch.Tensor,
    test_labels: torch.Tensor,
    target_dim: int,
) -> dict[str, dict]:
    """Probe accuracies of every arm: name -> (images, targets, learning rate) to pre-train on, or None for a
    fresh student. Returns name -> {"probe_<fraction>": [accuracy per seed], "pretrain_seconds": [...]}."""
    results = {name: {"pretrain_seconds": []} for name in arms}
    for seed in tqdm(range(config.seed, config.seed + config.eval_seeds), desc="evaluation seeds"):
        pools = {fraction: labelled_rows(train_labels, fraction, seed) for fraction in config.label_fractions}
        for name, arm in arms.items():
            start = time.perf_counter()
            if arm is None:
                model = new_student(config, train_images, target_dim, seed=seed)
            else:
                model = pretrain(config, *arm, seed=seed)
            results[name]["pretrain_seconds"].append(time.perf_counter() - start)
            test = features(model, test_images)
            for fraction, rows in pools.items():
                accuracy = linear_probe(
                    features(model, train_images[rows]),
                    train_labels[rows],
                    test,
                    test_labels,
                    config.probe_steps,
                    config.probe_l2,
                )
                results[name].setdefault(f"probe_{fraction:g}", []).append(accuracy)
    return results
