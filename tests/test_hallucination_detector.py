"""Two-stage detector: budget-exact thresholds, cross-fitted band, routing, prediction, save/load, bad input."""

import numpy as np
import pytest

from hfdc.hallucination import TwoStageDetector, auroc
from hfdc.hallucination.band import best_window, window_aurocs
from hfdc.hallucination.combiner import LogisticCombiner, duplicate_or_constant
from hfdc.hallucination.detector import question_keys
from hfdc.hallucination.features import CROSS_FEATURES, FEATURE_DIRECTIONS, SELF_FEATURES
from tests.hub_fixtures import FAKE_TOKEN, run_online


def make_split(n, seed, discrete=False):
    """Labels; self features weakly informative, cross features strongly informative, each moving with the label
    in its feature's direction (consistency features fall, uncertainty features rise)."""
    rng = np.random.default_rng(seed)
    labels = rng.random(n) < 0.4
    sign_self = np.array([FEATURE_DIRECTIONS[f] or 1 for f in SELF_FEATURES])
    sign_cross = np.array([FEATURE_DIRECTIONS[f] or 1 for f in CROSS_FEATURES])
    x_self = rng.normal(size=(n, len(SELF_FEATURES))) + 0.8 * labels[:, None] * sign_self
    x_cross = rng.normal(size=(n, len(CROSS_FEATURES))) + 2.5 * labels[:, None] * sign_cross
    if discrete:  # many exact ties, like string-match features
        x_self, x_cross = np.round(x_self), np.round(x_cross)
    return x_self, x_cross, labels.astype(int)


def texts(n, prefix="q"):
    return [f"{prefix} question {i}?" for i in range(n)]


@pytest.mark.parametrize("discrete", [False, True])
@pytest.mark.parametrize("budget", [0.0, 0.1, 0.25, 0.5, 0.73, 1.0])
def test_fitted_band_sends_exactly_the_budget_fraction_of_validation_questions(budget, discrete):
    x_self, x_cross, labels = make_split(200, seed=1, discrete=discrete)
    detector = TwoStageDetector(budget=budget, seed=3).fit(x_self, x_cross, labels, texts(200))
    called = detector.predict(x_self, x_cross, texts(200)).called_verifier
    assert called.sum() == round(budget * 200)
    assert detector.validation["verifier_fraction"] == pytest.approx(round(budget * 200) / 200)
    if 0 < budget < 1 and not discrete:
        tau_low, tau_high = detector.thresholds
        s = detector.self_combiner.predict_proba(x_self)
        assert np.all(called == ((s >= tau_low) & (s <= tau_high)))


def test_predict_calls_the_verifier_only_for_the_band_and_mixes_scores():
    x_self, x_cross, labels = make_split(300, seed=2)
    detector = TwoStageDetector(budget=0.4).fit(x_self, x_cross, labels)
    tx_self, tx_cross, t_labels = make_split(400, seed=5)
    asked = []

    def verifier(indices):
        asked.append(indices)
        return tx_cross[indices]

    out = detector.predict(tx_self, verifier)
    assert len(asked) == 1 and np.array_equal(asked[0], np.flatnonzero(out.called_verifier))
    assert out.verifier_calls == len(asked[0]) and 0.2 < out.verifier_calls / 400 < 0.6
    # outside the band the score is the self score; inside it is the self + cross combiner
    np.testing.assert_array_equal(out.scores[~out.called_verifier], out.self_scores[~out.called_verifier])
    full = detector.cross_combiner.predict_proba(np.hstack([tx_self, tx_cross]))
    np.testing.assert_allclose(out.scores[out.called_verifier], full[out.called_verifier])
    # with an informative verifier, spending 40% of the calls beats self-consistency alone
    assert auroc(out.scores, t_labels) > auroc(out.self_scores, t_labels) + 0.05


def test_budget_one_equals_cross_combiner_and_zero_equals_self_combiner():
    x_self, x_cross, labels = make_split(150, seed=4)
    tx_self, tx_cross, _ = make_split(100, seed=6)
    full = TwoStageDetector(budget=1.0).fit(x_self, x_cross, labels)
    all_in = full.predict(tx_self, tx_cross)
    assert all_in.called_verifier.all()
    np.testing.assert_array_equal(all_in.scores, full.cross_combiner.predict_proba(np.hstack([tx_self, tx_cross])))
    assert not np.allclose(all_in.scores, all_in.self_scores)
    self_only = TwoStageDetector(budget=0.0).fit(x_self, x_cross, labels)
    none = self_only.predict(tx_self)  # no verifier needed
    assert not none.called_verifier.any()
    np.testing.assert_array_equal(none.scores, self_only.self_combiner.predict_proba(tx_self))
    # the two detectors share the combiners: budget 0 and 1 differ only in routing
    np.testing.assert_array_equal(none.scores, all_in.self_scores)


def test_save_and_load_round_trip(tmp_path):
    from hfdc.hub import push_model

    x_self, x_cross, labels = make_split(120, seed=7)
    detector = TwoStageDetector(budget=0.3, seed=1).fit(x_self, x_cross, labels)
    folder = push_model(
        detector, output_dir=tmp_path / "det", card={"method": "hallucination", "figures": {"auroc": 0.9}}
    )
    assert (folder / "detector.json").is_file() and "hallucination" in (folder / "README.md").read_text()
    loaded = TwoStageDetector.from_pretrained(str(folder))
    assert loaded.thresholds == detector.thresholds and loaded.budget == 0.3
    assert loaded.feature_range == detector.feature_range
    a, b = detector.predict(x_self, x_cross * 3), loaded.predict(x_self, x_cross * 3)
    np.testing.assert_array_equal(a.scores, b.scores)
    np.testing.assert_array_equal(a.called_verifier, b.called_verifier)
    np.testing.assert_array_equal(a.out_of_range, b.out_of_range)


def test_bad_input_raises_clear_errors():
    x_self, x_cross, labels = make_split(50, seed=8)
    with pytest.raises(ValueError, match="budget=1.5"):
        TwoStageDetector(budget=1.5)
    with pytest.raises(ValueError, match="both 0"):
        TwoStageDetector().fit(x_self, x_cross, np.zeros(50))
    with pytest.raises(ValueError, match="x_self must have shape"):
        TwoStageDetector().fit(x_self[:, :2], x_cross, labels)
    with pytest.raises(ValueError, match="differ in length"):
        TwoStageDetector().fit(x_self, x_cross[:10], labels)
    detector = TwoStageDetector(budget=0.5).fit(x_self, x_cross, labels)
    with pytest.raises(ValueError, match="need the verifier"):
        detector.predict(x_self)
    with pytest.raises(RuntimeError, match="not fitted"):
        TwoStageDetector().predict(x_self, x_cross)
    routed = int(detector.predict(x_self, x_cross).verifier_calls)
    with pytest.raises(ValueError, match=f"x_cross returned {routed - 1} rows for {routed} routed questions"):
        detector.predict(x_self, lambda idx: x_cross[idx][1:])
    with pytest.raises(ValueError, match=r"x_cross must have shape \[n_questions, 3\]"):
        detector.predict(x_self, lambda idx: x_cross[idx][:, :2])
    with pytest.raises(ValueError, match=r"x_self must have shape \[n_questions, 6\]"):
        detector.predict(x_self[:, None])
    bad = x_cross.copy()
    bad[:, 0] = np.nan
    with pytest.raises(ValueError, match="x_cross contains NaN"):
        detector.predict(x_self, bad)
    with pytest.raises(ValueError, match="questions has 3 entries for 50"):
        detector.predict(x_self, x_cross, texts(3))
    with pytest.raises(ValueError, match="n_folds=1"):
        TwoStageDetector(n_folds=1)
    one_wrong = np.zeros(50, dtype=int)
    one_wrong[0] = 1
    with pytest.raises(ValueError, match="only 1 example"):
        TwoStageDetector().fit(x_self, x_cross, one_wrong)


PUSH_AND_LOAD = """
import json, sys
from huggingface_hub import ModelCard
from hfdc.cli import run_command
from hfdc.hallucination import TwoStageDetector
run_command("hallucination", ["--config", "recipes/hallucination/demo.yaml", "--output_dir", sys.argv[1], "--n_validation", "120",
                              "--n_test", "120", "--budgets", "0.5", "--budget", "0.3", "--repo_id", "hfdc-tester/hal-detector"])
loaded = TwoStageDetector.from_pretrained("hfdc-tester/hal-detector")
card = ModelCard.load("hfdc-tester/hal-detector")
print(json.dumps({"budget": loaded.budget, "thresholds": loaded.thresholds, "tags": card.data.tags, "text": card.text}))
"""


@pytest.mark.slow  # a second Python process talks to the local test Hub
def test_cli_pushes_the_fitted_detector_to_the_hub_and_it_loads_back(hub_server, tmp_path):
    import json

    proc = run_online(["-c", PUSH_AND_LOAD, str(tmp_path / "run")], hub_server, tmp_path / "hf_home")
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    local = TwoStageDetector.from_pretrained(str(tmp_path / "run" / "detector"))
    assert seen["budget"] == 0.3 and tuple(seen["thresholds"]) == local.thresholds
    assert "hallucination" in seen["tags"] and "2502.15845" in seen["text"]
    assert FAKE_TOKEN not in seen["text"]


def brute_force_aurocs(s, c, labels, order, k):
    """Rescore every window from scratch: O(n^2 log n), the reference for the sliding Fenwick count."""
    out = []
    for start in range(len(s) - k + 1):
        mixed = s.copy()
        mixed[order[start : start + k]] = c[order[start : start + k]]
        out.append(auroc(mixed, labels))
    return np.array(out)


@pytest.mark.parametrize("k", [1, 7, 19])
def test_sliding_band_auroc_equals_rescoring_every_window(k):
    rng = np.random.default_rng(k)
    s, c = np.round(rng.random(20), 1), np.round(rng.random(20), 1)  # many ties within and across s and c
    labels = (rng.random(20) < 0.45).astype(int)
    order = np.lexsort((rng.random(20), s))
    np.testing.assert_allclose(window_aurocs(s, c, labels, order, k), brute_force_aurocs(s, c, labels, order, k))
    start, value = best_window(s, c, labels, order, k)
    assert value == pytest.approx(brute_force_aurocs(s, c, labels, order, k).max())
    assert start == int(np.argmax(brute_force_aurocs(s, c, labels, order, k)))


def test_band_is_placed_on_out_of_fold_scores_and_validation_figures_are_out_of_fold():
    x_self, x_cross, labels = make_split(240, seed=11)
    detector = TwoStageDetector(budget=0.3, seed=2, n_folds=4).fit(x_self, x_cross, labels)
    in_sample = auroc(detector.self_combiner.predict_proba(x_self), labels)
    # out-of-fold AUROC of the self combiner is a held-out figure: below the in-sample one on noisy data
    assert detector.validation["auroc_self_out_of_fold"] < in_sample
    assert detector.validation["n_folds"] == 4 and detector.validation["verifier_fraction"] == pytest.approx(0.3)
    assert detector.validation["auroc_two_stage_out_of_fold"] >= detector.validation["auroc_self_out_of_fold"] - 1e-12


def test_routing_depends_on_the_question_text_not_its_position_in_the_batch():
    x_self, x_cross, labels = make_split(200, seed=9, discrete=True)  # ties: the keys decide at the band's edges
    questions = texts(200)
    detector = TwoStageDetector(budget=0.5).fit(x_self, x_cross, labels, questions)
    batch = detector.predict(x_self, x_cross, questions).called_verifier
    alone = [detector.predict(x_self[i : i + 1], x_cross[i : i + 1], questions[i : i + 1]) for i in range(200)]
    np.testing.assert_array_equal(batch, [a.called_verifier[0] for a in alone])
    flipped = detector.predict(x_self[::-1], x_cross[::-1], questions[::-1]).called_verifier[::-1]
    np.testing.assert_array_equal(batch, flipped)
    # the key is a hash of (seed, text): same text, same key; another seed, other keys
    keys = question_keys(["a?", "b?", "a?"], x_self[:3], seed=0)
    assert keys[0] == keys[2] != keys[1] and keys.min() >= 0 and keys.max() < 1
    assert not np.array_equal(keys, question_keys(["a?", "b?", "a?"], x_self[:3], seed=1))


def test_out_of_range_flags_features_outside_the_fitted_range():
    x_self, x_cross, labels = make_split(120, seed=12)
    detector = TwoStageDetector(budget=1.0).fit(x_self, x_cross, labels)
    probe_self, probe_cross = x_self[:3].copy(), x_cross[:3].copy()
    probe_self[1, 2] = x_self[:, 2].max() + 0.5  # a self feature above the fitted maximum
    probe_cross[2, 0] = x_cross[:, 0].min() - 0.5  # a cross feature below the fitted minimum
    assert detector.predict(probe_self, probe_cross).out_of_range.tolist() == [False, True, True]


def test_monotone_combiner_matches_unconstrained_logistic_regression_and_clamps_wrong_signs():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3)) * [1.0, 2.0, 0.5]
    labels = (x @ [1.5, -0.7, 0.0] + rng.normal(size=400) > 0).astype(int)
    free = LogisticCombiner().fit(x, labels, [0, 0, 0])
    reference = LogisticRegression(C=1.0, tol=1e-10, max_iter=10_000).fit((x - x.mean(0)) / x.std(0), labels)
    np.testing.assert_allclose(free.coef, reference.coef_[0], atol=1e-4)
    assert free.intercept == pytest.approx(reference.intercept_[0], abs=1e-4)
    # the signs the data want already agree with (+, -, free): the constraint changes nothing
    np.testing.assert_allclose(LogisticCombiner().fit(x, labels, [1, -1, 0]).coef, free.coef, atol=1e-4)
    # asked to read feature 0 as a consistency feature (weight <= 0), its weight is clamped at 0
    clamped = LogisticCombiner().fit(x, labels, [-1, -1, 0])
    assert clamped.coef[0] == 0.0 and clamped.coef[1] < 0
    # a duplicated column and a constant column get weight 0
    with_copies = np.hstack([x, x[:, :1], np.ones((400, 1))])
    assert duplicate_or_constant(with_copies).tolist() == [False, False, False, True, True]
    fitted = LogisticCombiner().fit(with_copies, labels, [1, -1, 0, 1, 1])
    assert fitted.coef[3] == 0.0 and fitted.coef[4] == 0.0
    np.testing.assert_allclose(fitted.coef[:3], free.coef, atol=1e-4)
