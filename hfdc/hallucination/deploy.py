"""Deploy a fitted two-stage detector on new questions: sample the target, score self-consistency, and sample the
verifier ONLY for the questions routed to it, counting what each model cost (calls, tokens, seconds)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hfdc.backends import Usage
from hfdc.hallucination.detector import Detection, TwoStageDetector
from hfdc.hallucination.features import compute_features
from hfdc.hallucination.sampling import Answers, sample_target, sample_verifier
from hfdc.hallucination.similarity import Similarity, normalized_match


@dataclass
class Cost(Usage):
    """What one model cost during a deployment: backend calls (cache hits apart), tokens, and wall seconds."""

    seconds: float = 0.0


@dataclass
class Deployment:
    """Answers (verifier samples only where routed), the detector's decision, and the cost of each model."""

    questions: list[str]
    answers: list[Answers]
    detection: Detection
    target_cost: Cost
    verifier_cost: Cost


def _measure(backend, cost: Cost, fn):
    """Run ``fn()`` and add the backend's usage and the wall time it took to ``cost``."""
    before = dataclasses.replace(backend.usage)
    start = time.perf_counter()
    try:
        return fn()
    finally:
        cost.seconds += time.perf_counter() - start
        for f in dataclasses.fields(Usage):
            setattr(cost, f.name, getattr(cost, f.name) + getattr(backend.usage, f.name) - getattr(before, f.name))


def deploy(
    detector: TwoStageDetector,
    target,
    verifier,
    questions: Sequence[str],
    n_samples: int = 10,
    n_verifier_samples: int = 10,
    similarity: Similarity = normalized_match,
    **sampling,
) -> Deployment:
    """Score ``questions`` with ``detector``: the target is sampled for all of them, ``verifier`` (a backend, or
    None when the budget is 0) only for those in the uncertain band. ``sampling`` as for ``sample_target``
    (temperature, answer_temperature, max_new_tokens, seed, prompt_template, batch_size, few_shot)."""
    questions = list(questions)
    target_cost, verifier_cost = Cost(), Cost()
    answers = _measure(target, target_cost, lambda: sample_target(target, questions, n_samples, **sampling))
    x_self, _ = compute_features(
        [a.answer for a in answers], [a.samples for a in answers], similarity=similarity, questions=questions
    )
    verifier_sampling = {k: v for k, v in sampling.items() if k != "answer_temperature"}

    def cross_features(indices: np.ndarray) -> np.ndarray:
        if verifier is None:
            raise ValueError(f"{len(indices)} questions are in the verifier band but no verifier backend was given")
        routed = [questions[i] for i in indices]
        samples = _measure(
            verifier,
            verifier_cost,
            lambda: sample_verifier(verifier, routed, n_verifier_samples, **verifier_sampling),
        )
        for i, v in zip(indices, samples):
            answers[i].verifier_samples = v
        _, x_cross = compute_features(
            [answers[i].answer for i in indices], [answers[i].samples for i in indices], samples, similarity, routed
        )
        return x_cross

    detection = detector.predict(x_self, cross_features, questions)
    return Deployment(questions, answers, detection, target_cost, verifier_cost)
