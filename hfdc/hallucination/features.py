"""Feature vectors for the detector: every self-consistency score, then the cross-consistency scores.

Per question the target set is T = [answer] + samples (m = |T| answers); the verifier set is V. The
similarity is evaluated once on the distinct strings of T and V, with the question as context
(``cached_similarity``), and every score reads it. Count-like scores are divided by the number of answers so
that a detector fitted at one sample count reads another: clusters / m, eigenvalue sum / m, and eccentricity /
sqrt(m) (for k equal-weight clusters Ecc = sqrt(k - 1)); all three lie in [0, 1].

``FEATURE_DIRECTIONS`` says how each feature moves with P(hallucination): +1 for uncertainty (more
disagreement = higher), -1 for consistency (more agreement = lower), 0 for no fixed direction. The detector's
combiners keep each weight on the side its direction gives, so more disagreement never lowers the score.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from tqdm.auto import tqdm

from hfdc.hallucination import scores
from hfdc.hallucination.similarity import Similarity, normalized_match

SELF_FEATURES = (
    "semantic_entropy",
    "num_clusters_norm",
    "degree",
    "eccentricity_norm",
    "eigenvalue_norm",
    "answer_similarity",
)
CROSS_FEATURES = ("cross_consistency", "answer_cross_similarity", "verifier_self_consistency")
FEATURE_DIRECTIONS = {
    "semantic_entropy": +1,
    "num_clusters_norm": +1,
    "degree": +1,
    "eccentricity_norm": +1,
    "eigenvalue_norm": +1,
    "answer_similarity": -1,
    "cross_consistency": -1,
    "answer_cross_similarity": -1,
    "verifier_self_consistency": 0,  # a confident verifier makes agreement and disagreement both more telling
}


def cached_similarity(similarity: Similarity, texts: Sequence[str], question: str | None = None) -> Similarity:
    """A similarity that reads one precomputed matrix over the distinct ``texts`` (with ``question`` as context)
    instead of recomputing."""
    index = {text: i for i, text in enumerate(dict.fromkeys(texts))}
    unique = list(index)
    w = np.asarray(similarity(unique, unique, question=question), dtype=np.float64)

    def lookup(a: Sequence[str], b: Sequence[str], question: str | None = None) -> np.ndarray:
        return w[np.ix_([index[x] for x in a], [index[y] for y in b])]

    return lookup


def self_features(answer: str, samples: Sequence[str], similarity: Similarity = normalized_match) -> dict[str, float]:
    """SELF_FEATURES for one question from the target's answer and its samples."""
    target = [answer, *samples]
    scores.check_answers(target, "answer + samples", 2)
    m = len(target)
    sim = cached_similarity(similarity, target)
    return {
        "semantic_entropy": scores.semantic_entropy(target, sim),
        "num_clusters_norm": scores.num_clusters(target, sim) / m,
        "degree": scores.degree_score(target, sim),
        "eccentricity_norm": scores.eccentricity_score(target, sim) / math.sqrt(m),
        "eigenvalue_norm": scores.eigenvalue_score(target, sim) / m,
        "answer_similarity": scores.answer_similarity(answer, samples, sim),
    }


def cross_features(
    answer: str, samples: Sequence[str], verifier_samples: Sequence[str], similarity: Similarity = normalized_match
) -> dict[str, float]:
    """CROSS_FEATURES for one question: <mu_t, mu_v>, mean k(a, v_j), and ||mu_v||^2."""
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
    questions: Sequence[str] | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Self features [n, len(SELF_FEATURES)] and, when verifier samples are given, cross features
    [n, len(CROSS_FEATURES)]; ``questions`` (one per answer) are the similarity's context (NLI premises)."""
    n = len(answers)
    if len(samples) != n or (verifier_samples is not None and len(verifier_samples) != n):
        raise ValueError("answers, samples and verifier_samples must have one entry per question")
    if questions is not None and len(questions) != n:
        raise ValueError(f"questions has {len(questions)} entries for {n} answers; give one question per answer")
    self_rows, cross_rows = [], []
    for i in tqdm(range(n), desc="consistency features", leave=False, disable=n < 50):
        verifier = list(verifier_samples[i]) if verifier_samples is not None else []
        question = questions[i] if questions is not None else None
        sim = cached_similarity(similarity, [answers[i], *samples[i], *verifier], question)
        self_rows.append(self_features(answers[i], samples[i], sim))
        if verifier_samples is not None:
            cross_rows.append(cross_features(answers[i], samples[i], verifier, sim))
    x_self = feature_matrix(self_rows, SELF_FEATURES)
    x_cross = feature_matrix(cross_rows, CROSS_FEATURES) if verifier_samples is not None else None
    return x_self, x_cross
