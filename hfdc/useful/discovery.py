"""Find the slow-learnable training examples early in training (USEFUL step 1-3; reused by TADA).

USEFUL (Nguyen et al., NeurIPS 2024, arXiv 2404.17768): after t epochs, per class, k-means with k = 2
on the network's output vectors; the cluster with the higher mean loss is slow-learnable. The
baselines compared in the paper partition by loss quantile or by misclassification instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

METHODS = ("kmeans", "quantile", "misclassified")


@dataclass
class SlowLearnable:
    """The slow-learnable training indices and how they were found (per-class sizes and mean losses)."""

    indices: list[int]
    method: str
    epoch: float | None = None
    stats: dict = field(default_factory=dict)


def cross_entropy_per_example(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of every example, [n]."""
    return torch.nn.functional.cross_entropy(logits.float(), labels.long(), reduction="none")


def _kmeans_two(points: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=2, n_init=10, random_state=seed).fit_predict(points)


def find_slow_learnable(
    logits: torch.Tensor,
    labels: torch.Tensor,
    method: str = "kmeans",
    quantile: float = 0.5,
    seed: int = 0,
    epoch: float | None = None,
) -> SlowLearnable:
    """Slow-learnable indices from the training outputs ``logits`` [n, classes] and ``labels`` [n].

    kmeans: per class, k-means (k=2) on the output vectors, keep the cluster with the higher mean loss.
    quantile: per class, keep examples whose loss is above the class's ``quantile`` of the loss.
    misclassified: keep examples whose argmax output is not the label.
    """
    if method not in METHODS:
        raise ValueError(f"partition method must be one of {METHODS}, got {method!r}")
    if logits.ndim != 2 or labels.ndim != 1 or len(logits) != len(labels):
        raise ValueError(
            f"logits must be [n, classes] and labels [n]; got {tuple(logits.shape)} and {tuple(labels.shape)}"
        )
    if not torch.isfinite(logits).all():
        raise ValueError("logits contain NaN or inf: training diverged before discovery; lower the learning rate")
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"quantile must be in (0, 1), got {quantile}")
    losses = cross_entropy_per_example(logits, labels).numpy()
    outputs, labels_np = logits.float().numpy(), labels.numpy()
    selected, stats = [], {}
    for c in np.unique(labels_np):
        members = np.flatnonzero(labels_np == c)
        if method == "kmeans":
            if len(members) < 2:
                raise ValueError(
                    f"class {int(c)} has {len(members)} training example(s); k-means with k=2 needs at least 2 per class "
                    "(use more training data or method='quantile')"
                )
            assign = _kmeans_two(outputs[members], seed)
            slow_cluster = int(
                np.argmax([losses[members[assign == k]].mean() if (assign == k).any() else -np.inf for k in (0, 1)])
            )
            keep = assign == slow_cluster
        elif method == "quantile":
            keep = losses[members] > np.quantile(losses[members], quantile)
        else:
            keep = outputs[members].argmax(1) != c
        selected.append(members[keep])
        stats[int(c)] = {
            "size": int(len(members)),
            "slow": int(keep.sum()),
            "mean_loss_slow": float(losses[members[keep]].mean()) if keep.any() else None,
            "mean_loss_rest": float(losses[members[~keep]].mean()) if (~keep).any() else None,
        }
    indices = sorted(int(i) for i in np.concatenate(selected))
    stats = {
        "per_class": stats,
        "fraction": len(indices) / len(labels_np),
        "mean_loss": float(losses.mean()),
        "train_error": float((outputs.argmax(1) != labels_np).mean()),
    }
    return SlowLearnable(indices=indices, method=method, epoch=epoch, stats=stats)


@torch.no_grad()
def training_outputs(model, dataset, data_collator, batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Outputs (logits) and labels of ``model`` on every row of ``dataset``, in row order, in eval mode."""
    from torch.utils.data import DataLoader

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=data_collator)
    all_logits, all_labels = [], []
    for batch in tqdm(loader, desc="model outputs", leave=False):
        labels = batch.pop("labels")
        batch = {k: v.to(device) for k, v in batch.items()}
        all_logits.append(model(**batch).logits.float().cpu())
        all_labels.append(labels)
    model.train(was_training)
    return torch.cat(all_logits), torch.cat(all_labels)
