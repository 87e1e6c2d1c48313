"""More disagreement never lowers P(hallucination): the Space's failure (11 all-different answers scored 0.09,
21 scored 0.000) fixed by count features per answer and sign-constrained combiners, fitted at the sample count
used at inference."""

import functools

import numpy as np
import pytest

from hfdc.hallucination import TwoStageDetector, compute_features, sample_answers
from hfdc.hallucination.evaluate import featurize
from hfdc.hallucination.similarity import normalized_match
from hfdc.hallucination.simulate import SimulatedBackend, SimulatedWorld


@functools.cache
def simulated_detector(n_answers: int) -> TwoStageDetector:
    """Fitted as the Space fits it: 300 simulated questions, the answer + n_answers - 1 samples, budget 0.5."""
    world = SimulatedWorld(300, seed=0)
    questions = [world.question(i) for i in range(300)]
    target, verifier = SimulatedBackend(world, "target"), SimulatedBackend(world, "verifier")
    answers = sample_answers(target, questions, n_answers - 1, verifier, 5)
    ref = featurize(questions, answers, [world.gold_answers(i) for i in range(300)], normalized_match)
    return TwoStageDetector(budget=0.5).fit(ref.x_self, ref.x_cross, ref.labels, questions)


def p_hallucination(detector, answers) -> float:
    x_self, _ = compute_features([answers[0]], [answers[1:]])
    return float(detector.self_combiner.predict_proba(x_self)[0])


def with_distinct(m: int, k: int) -> list[str]:
    """m answers, k of them distinct: the answer "Lyon" repeated, then k - 1 different cities."""
    return ["Lyon"] * (m - k + 1) + [f"city {j}" for j in range(1, k)]


@pytest.mark.parametrize("m", [6, 11, 21])
@pytest.mark.parametrize("fitted_at", ["same m", "m = 11"])
def test_p_rises_with_the_number_of_distinct_answers(m, fitted_at):
    detector = simulated_detector(m if fitted_at == "same m" else 11)
    p = np.array([p_hallucination(detector, with_distinct(m, k)) for k in range(1, m + 1)])
    assert np.all(np.diff(p) >= -1e-12), p.round(3)
    assert p[-1] > 0.5 > p[0]  # all different: likely hallucination; all equal: likely correct
    assert p[-1] - p[0] > 0.4


def test_a_50_50_split_scores_about_the_same_at_6_and_11_answers():
    detector = simulated_detector(11)
    six = p_hallucination(detector, ["Lyon"] * 3 + ["Paris"] * 3)
    eleven = p_hallucination(detector, ["Lyon"] * 6 + ["Paris"] * 5)
    assert abs(six - eleven) < 0.1, (six, eleven)


def test_every_weight_has_the_sign_of_its_feature_direction():
    from hfdc.hallucination.detector import ALL_DIRECTIONS, SELF_DIRECTIONS

    detector = simulated_detector(11)
    for coef, directions in (
        (detector.self_combiner.coef, SELF_DIRECTIONS),
        (detector.cross_combiner.coef, ALL_DIRECTIONS),
    ):
        assert all(w * d >= 0 for w, d in zip(coef, directions)), (coef, directions)
    # under string match the cluster count and the eigenvalue sum are the same column: one of them is dropped
    assert detector.self_combiner.coef[1] == 0.0 or detector.self_combiner.coef[4] == 0.0


def test_answers_read_at_another_sample_count_are_flagged_out_of_range():
    detector = simulated_detector(11)
    x_self, _ = compute_features(["Lyon", "Lyon"], [["Lyon"] * 10, ["Lyon"] * 20])
    # all 21 agree: 1 cluster / 21 is below the fitted minimum 1 / 11
    assert detector.predict(x_self, np.zeros((2, 3))).out_of_range.tolist() == [False, True]
