"""Consistency scores on lists of answers (uncertainty scores: higher = more likely hallucination).

Every function takes answer lists and a ``similarity`` (``hfdc.hallucination.similarity``: a callable
(a, b) -> W[len(a), len(b)] in [0, 1], W[i, j] = how strongly a_i entails b_j; default SQuAD-normalised
string match). To give an NLI similarity the question as context, bind it first
(``functools.partial(similarity, question=q)`` or ``features.cached_similarity``).

- Self-consistency over the target's answers t_1..t_m: semantic entropy and number of clusters over
  equivalence classes of bidirectional entailment (Kuhn et al. 2023, Farquhar et al. 2024); graph degree /
  eccentricity / eigenvalue scores of the symmetrised W (Lin et al. 2023, "Generating with Confidence");
  mean similarity of the answer to the samples.
- Cross-consistency with the verifier's answers v_1..v_M, and the kernel-mean-embedding view
  (Xue et al. 2025, "Verify when Uncertain", arXiv 2502.15845): with the symmetric kernel
  k(x, y) = (W(x, y) + W(y, x)) / 2 and mu_t = (1/m) sum_i k(t_i, .), self-consistency
  ||mu_t||^2 = mean_ij k(t_i, t_j) and cross-consistency <mu_t, mu_v> = mean_ij k(t_i, v_j).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hfdc.hallucination.similarity import Similarity, normalized_match


def check_answers(answers: Sequence[str], name: str, minimum: int) -> None:
    """Raise a clear error when ``answers`` is a bare string or has fewer than ``minimum`` entries."""
    if isinstance(answers, str):
        raise TypeError(f"{name} must be a list of answer strings, got one string")
    if len(answers) < minimum:
        what = "is empty" if not answers else f"has only {len(answers)} answer"
        fix = "the answer plus at least one sample (n_samples >= 1)" if minimum == 2 else "at least one answer"
        raise ValueError(f"{name} {what}; this score needs {fix}")


def kernel(a: Sequence[str], b: Sequence[str], similarity: Similarity = normalized_match) -> np.ndarray:
    """Symmetric kernel K[i, j] = (W(a_i, b_j) + W(b_j, a_i)) / 2."""
    return (np.asarray(similarity(a, b), dtype=np.float64) + np.asarray(similarity(b, a), dtype=np.float64).T) / 2


def similarity_matrix(answers: Sequence[str], similarity: Similarity = normalized_match) -> np.ndarray:
    """Symmetric W[i, j] = (s(t_i, t_j) + s(t_j, t_i)) / 2 over one list of answers."""
    check_answers(answers, "answers", 1)
    return kernel(answers, answers, similarity)


def cluster_answers(
    answers: Sequence[str], similarity: Similarity = normalized_match, threshold: float = 0.5
) -> list[int]:
    """Equivalence-class id per answer by bidirectional entailment (Kuhn et al. 2023): in order, an answer joins
    the first cluster whose first member m has W[i, m] >= threshold AND W[m, i] >= threshold (each direction
    on its own), else it opens a new cluster."""
    check_answers(answers, "answers", 1)
    w = np.asarray(similarity(answers, answers), dtype=np.float64)
    both = np.minimum(w, w.T) >= threshold
    representatives: list[int] = []
    ids = []
    for i in range(len(answers)):
        for cluster, rep in enumerate(representatives):
            if both[i, rep]:
                ids.append(cluster)
                break
        else:
            representatives.append(i)
            ids.append(len(representatives) - 1)
    return ids


def num_clusters(answers: Sequence[str], similarity: Similarity = normalized_match, threshold: float = 0.5) -> int:
    """Number of semantic equivalence classes among the answers."""
    return len(set(cluster_answers(answers, similarity, threshold)))


def semantic_entropy(
    answers: Sequence[str], similarity: Similarity = normalized_match, threshold: float = 0.5
) -> float:
    """Discrete semantic entropy -sum_c p_c log p_c, p_c = |cluster c| / m (Farquhar et al. 2024)."""
    check_answers(answers, "answers", 2)
    counts = np.bincount(cluster_answers(answers, similarity, threshold))
    p = counts[counts > 0] / len(answers)
    return float(-(p * np.log(p)).sum())


def laplacian(w: np.ndarray) -> np.ndarray:
    """Normalised graph Laplacian L = I - D^{-1/2} W D^{-1/2}, D = diag(sum_j W_ij) (isolated nodes: 0)."""
    degree = w.sum(1)
    inv_sqrt = np.where(degree > 0, 1.0 / np.sqrt(np.where(degree > 0, degree, 1.0)), 0.0)
    return np.eye(len(w)) - inv_sqrt[:, None] * w * inv_sqrt[None, :]


def degree_score(answers: Sequence[str], similarity: Similarity = normalized_match) -> float:
    """U_Deg = trace(mI - D) / m^2 = 1 - mean_ij W_ij (Lin et al. 2023)."""
    check_answers(answers, "answers", 2)
    return 1.0 - kernel_mean_inner(answers, answers, similarity)


def eigenvalue_score(answers: Sequence[str], similarity: Similarity = normalized_match) -> float:
    """U_EigV = sum_k max(0, 1 - lambda_k) over the eigenvalues of the Laplacian (Lin et al. 2023)."""
    check_answers(answers, "answers", 2)
    eigenvalues = np.linalg.eigvalsh(laplacian(similarity_matrix(answers, similarity)))
    return float(np.clip(1.0 - eigenvalues, 0.0, None).sum())


def eccentricity_score(
    answers: Sequence[str], similarity: Similarity = normalized_match, eigenvalue_threshold: float = 0.9
) -> float:
    """U_Ecc = || (||v_j - mean_j v_j||_2)_j ||_2, v_j = row j of the Laplacian eigenvectors whose eigenvalue is
    below the threshold (Lin et al. 2023)."""
    check_answers(answers, "answers", 2)
    eigenvalues, eigenvectors = np.linalg.eigh(laplacian(similarity_matrix(answers, similarity)))
    v = eigenvectors[:, eigenvalues < eigenvalue_threshold]
    distances = np.linalg.norm(v - v.mean(0, keepdims=True), axis=1)
    return float(np.linalg.norm(distances))


def answer_similarity(answer: str, samples: Sequence[str], similarity: Similarity = normalized_match) -> float:
    """Mean similarity of the answer to the samples, (1/N) sum_j k(a, t_j)."""
    if not isinstance(answer, str):
        raise TypeError(f"answer must be a string, got {type(answer).__name__}")
    check_answers(samples, "samples", 1)
    return float(np.mean(kernel([answer], samples, similarity)))


def kernel_mean_inner(a: Sequence[str], b: Sequence[str], similarity: Similarity = normalized_match) -> float:
    """<mu_a, mu_b> = (1 / |a||b|) sum_ij k(a_i, b_j); ||mu_t||^2 when b is a (Xue et al. 2025)."""
    check_answers(a, "a", 1), check_answers(b, "b", 1)
    return float(np.mean(kernel(a, b, similarity)))


def cross_consistency(
    answers: Sequence[str], verifier_answers: Sequence[str], similarity: Similarity = normalized_match
) -> float:
    """Mean similarity between the target's and the verifier's answers, <mu_t, mu_v> (Xue et al. 2025)."""
    check_answers(answers, "answers", 1), check_answers(verifier_answers, "verifier_answers", 1)
    return kernel_mean_inner(answers, verifier_answers, similarity)
