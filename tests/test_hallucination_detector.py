"""Two-stage detector: budget-exact thresholds, routing, prediction, save/load, bad input."""

import numpy as np
import pytest

from hfdc.hallucination import TwoStageDetector, auroc
from hfdc.hallucination.features import CROSS_FEATURES, SELF_FEATURES
from tests.hub_fixtures import FAKE_TOKEN, run_online


def make_split(n, seed, discrete=False):
    """Labels; self features weakly informative, cross features strongly informative."""
    rng = np.random.default_rng(seed)
    labels = rng.random(n) < 0.4
    x_self = rng.normal(size=(n, len(SELF_FEATURES))) + 0.8 * labels[:, None]
    x_cross = rng.normal(size=(n, len(CROSS_FEATURES))) + 2.5 * labels[:, None]
    if discrete:  # many exact ties, like string-match features
        x_self, x_cross = np.round(x_self), np.round(x_cross)
    return x_self, x_cross, labels.astype(int)


@pytest.mark.parametrize("discrete", [False, True])
@pytest.mark.parametrize("budget", [0.0, 0.1, 0.25, 0.5, 0.73, 1.0])
def test_fitted_band_sends_exactly_the_budget_fraction_of_validation_questions(budget, discrete):
    x_self, x_cross, labels = make_split(200, seed=1, discrete=discrete)
    detector = TwoStageDetector(budget=budget, seed=3).fit(x_self, x_cross, labels)
    called = detector.predict(x_self, x_cross).called_verifier
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
    all_in = TwoStageDetector(budget=1.0).fit(x_self, x_cross, labels).predict(tx_self, tx_cross)
    assert all_in.called_verifier.all()
    none = TwoStageDetector(budget=0.0).fit(x_self, x_cross, labels).predict(tx_self)  # no verifier needed
    assert not none.called_verifier.any()
    np.testing.assert_array_equal(none.scores, none.self_scores)


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
    a, b = detector.predict(x_self, x_cross), loaded.predict(x_self, x_cross)
    np.testing.assert_array_equal(a.scores, b.scores)
    np.testing.assert_array_equal(a.called_verifier, b.called_verifier)


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
