"""Feature vectors for the detector: every self-consistency score, then the cross-consistency scores.

Per question the target set is T = [answer] + samples; the verifier set is V. The similarity is
evaluated once on the distinct strings of T and V (``cached_similarity``) and every score reads it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from tqdm.auto import tqdm

from hfdc.hallucination import scores
from hfdc.hallucination.similarity import Similarity, normalized_match

SELF_FEATURES = (
    "semantic_entropy",
    "num_clusters",
    "degree",
    "eccentricity",
    "eigenvalue",
    "answer_similarity",
)
CROSS_FEATURES = ("cross_consistency", "answer_cross_similarity", "verifier_self_consistency")


def cached_similarity(similarity: Similarity, texts: Sequence[str]) -> Similarity:
    """A similarity that reads one precomputed matrix over the distinct ``texts`` instead of recomputing."""
    index = {text: i for i, text in enumerate(dict.fromkeys(texts))}
    unique = list(index)
    w = np.asarray(similarity(unique, unique), dtype=np.float64)

    def lookup(a: Sequence[str], b: Sequence[str]) -> np.ndarray:
        return w[np.ix_([index[x] for x in a], [index[y] for y in b])]

    return lookup


def self_features(answer: str, samples: Sequence[str], similarity: Similarity = normalized_match) -> dict[str, float]:
    """SELF_FEATURES for one question from the target's answer and its samples."""
    target = [answer, *samples]
    scores.check_answers(target, "answer + samples", 2)
    sim = cached_similarity(similarity, target)
    return {
        "semantic_entropy": scores.semantic_entropy(target, sim),
        "num_clusters": float(scores.num_clusters(target, sim)),
        "degree": scores.degree_score(target, sim),
        "eccentricity": scores.eccentricity_score(target, sim),
        "eigenvalue": scores.eigenvalue_score(target, sim),
        "answer_similarity": scores.answer_similarity(answer, samples, sim),
    }


def cross_features(
    answer: str, samples: Sequence[str], verifier_samples: Sequence[str], similarity: Similarity = normalized_match
) -> dict[str, float]:
    """CROSS_FEATURES for one question: <mu_t, mu_v>, mean s(a, v_j), and ||mu_v||^2."""
    target = [answer, *samples]
    scores.check_answers(verifier_samples, "verifier_samples", 1)
    sim = cached_similarity(similarity, [*target, *verifier_samples])
    return {
        "cross_consistency": scores.cross_consistency(target, verifier_samples, sim),
        "answer_cross_similarity": scores.answer_similarity(answer, verifier_samples, sim),
        "verifier_self_consistency": scores.kernel_mean_inner(verifier_samples, verifier_samples, sim),
    }


def feature_matrix(rows: Sequence[dict[str, float]], names: Sequence[str]) -> np.ndarray:
    """Stack feature dicts into an array [len(rows), len(names)]; a missing or NaN feature is an error."""
    x = np.array([[row[name] for name in names] for row in rows], dtype=np.float64).reshape(len(rows), len(names))
    if not np.isfinite(x).all():
        bad = sorted({names[j] for j in np.argwhere(~np.isfinite(x))[:, 1]})
        raise ValueError(f"features {bad} contain NaN/inf; check the similarity function's output")
    return x


def compute_features(
    answers: Sequence[str],
    samples: Sequence[Sequence[str]],
    verifier_samples: Sequence[Sequence[str]] | None = None,
    similarity: Similarity = normalized_match,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Self features [n, len(SELF_FEATURES)] and, when verifier samples are given, cross features
    [n, len(CROSS_FEATURES)]."""
    if len(answers) != len(samples) or (verifier_samples is not None and len(verifier_samples) != len(answers)):
        raise ValueError("answers, samples and verifier_samples must have one entry per question")
    self_rows, cross_rows = [], []
    for i in tqdm(range(len(answers)), desc="consistency features", leave=False):
        verifier = list(verifier_samples[i]) if verifier_samples is not None else []
        sim = cached_similarity(similarity, [answers[i], *samples[i], *verifier])
        self_rows.append(self_features(answers[i], samples[i], sim))
        if verifier_samples is not None:
            cross_rows.append(cross_features(answers[i], samples[i], verifier, sim))
    x_self = feature_matrix(self_rows, SELF_FEATURES)
    x_cross = feature_matrix(cross_rows, CROSS_FEATURES) if verifier_samples is not None else None
    return x_self, x_cross
