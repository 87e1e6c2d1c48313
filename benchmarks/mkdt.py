"""MKDT on real Fashion-MNIST: linear-probe accuracy (1% / 5% labels) after pre-training on the MKDT set vs a random
subset of the same size with teacher targets vs no pre-training (mean ± std over seeds), the wall time of each stage,
and DD-Ranking LRS / ARS of the MKDT set and of the random subset.

python -m benchmarks.mkdt [--seeds 3] [--work .cache/bench_mkdt]

Settings: recipes/mkdt/fashion_mnist.yaml (scaled down for 2 shared CPU cores; see benchmarks/notes/mkdt.md). The
teacher and the experts are trained once (seed 0); distillation, the random subset and every evaluation use each
seed. ``--work`` keeps finished stages (the BarlowTwins teacher, the experts) and the times measured when they ran.
"""

import dataclasses
import json
import shutil
import time
from pathlib import Path

import torch

from benchmarks.assets import asset_path
from benchmarks.common import arguments, mean_std, peak_rss_mb, prepare, write_result

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "mkdt" / "fashion_mnist.yaml"
# DD-Ranking protocol, scaled down: ConvNet (the student's architecture), a 3-rate grid, 100 epochs tested every 20,
# 3 runs, DSA, soft labels from a teacher labelling every augmented batch (the full-data model).
PROTOCOL = dict(
    model="convnet",
    model_params={"width": 16, "depth": 2},
    soft_label_mode="teacher",
    augmentation="dsa",
    learning_rates=[0.005, 0.02, 0.05],
    epochs=100,
    eval_every=20,
    num_eval=3,
    batch_size=256,
    full_epochs=15,
    full_learning_rate=0.05,
)


def timed(times: dict, name: str, fn):
    """Run ``fn()``; store its wall time under ``name`` in ``times`` unless an earlier run measured it."""
    start = time.perf_counter()
    result = fn()
    times.setdefault(name, time.perf_counter() - start)
    return result


def reference_probes(config, features_of, train_images, train_labels, test_images, test_labels, seed):
    """Probe accuracies of fixed features (teacher, full-data KD student) on the seed's labelled rows."""
    from hfdc.mkdt import linear_probe
    from hfdc.mkdt.evaluate import labelled_rows

    train_features, test_features = features_of(train_images), features_of(test_images)
    return {
        f"probe_{fraction:g}": linear_probe(
            train_features[rows],
            train_labels[rows],
            test_features,
            test_labels,
            config.probe_steps,
            config.probe_l2,
        )
        for fraction in config.label_fractions
        for rows in [labelled_rows(train_labels, fraction, seed)]
    }


def main():
    parser = arguments(__doc__, seeds=3)
    parser.add_argument("--work", default=".cache/bench_mkdt", help="folder of the stages (reused when finished)")
    args = parser.parse_args()
    seeds = prepare(args)
    from transformers import AutoModelForImageClassification

    from hfdc.cli import parse_config
    from hfdc.ddranking import Evaluator, ProtocolConfig
    from hfdc.mkdt import MkdtConfig, data, distill, evaluate_arms, learned_step_size
    from hfdc.mkdt import cli as stages
    from hfdc.mkdt.evaluate import features
    from hfdc.mkdt.experts import load_parameters
    from hfdc.mkdt.student import new_student
    from hfdc.mkdt.teacher import encode

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    config = parse_config(
        MkdtConfig, ["--config", str(RECIPE), "--dataset", str(asset_path("fashion_mnist")), "--output_dir", str(work)]
    )
    for old in work.glob("distill-seed*"):  # distillation is measured afresh on every run
        shutil.rmtree(old)
    times_file = work / "times.json"
    times = json.loads(times_file.read_text()) if times_file.is_file() else {}

    timed(times, "teacher (BarlowTwins + representations)", lambda: stages.teacher_stage(config))
    timed(times, "experts", lambda: stages.experts_stage(config))
    times_file.write_text(json.dumps(times, indent=2))

    train = data.load_split(config, config.train_split, config.num_train_rows)
    test = data.load_split(config, config.test_split, config.num_test_rows)
    train_images, train_labels = data.pixels(config, train), data.labels(config, train)
    test_images, test_labels = data.pixels(config, test), data.labels(config, test)
    targets = stages.teacher_targets(config, len(train))
    teacher = AutoModelForImageClassification.from_pretrained(str(work / "teacher" / "encoder")).eval()
    expert = new_student(config, train_images, targets.shape[1], seed=0)
    expert.load_state_dict(load_parameters(work / "experts" / "expert_0000", config.expert_train_epochs))

    runs = {name: [] for name in ("mkdt", "random", "none", "teacher", "expert")}
    distill_seconds, distilled_sets, random_sets = [], {}, {}
    for seed in seeds:
        seed_config = dataclasses.replace(config, seed=seed, eval_seeds=1)
        start = time.perf_counter()
        distilled = distill(
            seed_config,
            train_images,
            targets,
            work / "experts",
            work / f"distill-seed{seed}",
            labels=train_labels,
            label_names=train.features["label"].names,
        )
        distill_seconds.append(time.perf_counter() - start)
        lr = learned_step_size(work / f"distill-seed{seed}")
        tensors = distilled.with_format("torch")[:]
        rows = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))[: len(distilled)]
        distilled_sets[seed] = (tensors["pixel_values"], tensors["label"], lr, tensors["source_row"])
        random_sets[seed] = (train_images[rows], train_labels[rows])
        arms = {
            "mkdt": (tensors["pixel_values"], tensors["target"], lr),
            "random": (train_images[rows], targets[rows], config.lr_init),
            "none": None,
        }
        result = evaluate_arms(
            seed_config, arms, train_images, train_labels, test_images, test_labels, targets.shape[1]
        )
        for name, values in result.items():
            runs[name].append({key: value[0] for key, value in values.items()})
        with torch.no_grad():
            runs["teacher"].append(
                reference_probes(
                    config,
                    lambda x: torch.cat([encode(teacher, x[s : s + 1024]) for s in range(0, len(x), 1024)]),
                    train_images,
                    train_labels,
                    test_images,
                    test_labels,
                    seed,
                )
            )
            runs["expert"].append(
                reference_probes(
                    config, lambda x: features(expert, x), train_images, train_labels, test_images, test_labels, seed
                )
            )
        print(seed, {name: runs[name][-1] for name in runs}, f"eta={lr:.4f}", flush=True)

    protocol = ProtocolConfig(**PROTOCOL)
    evaluator = Evaluator(train_images, train_labels, test_images, test_labels, protocol)
    rankings = {}
    for name, (images, labels) in {
        "MKDT set (seed 0)": distilled_sets[seeds[0]][:2],
        "random subset (seed 0)": random_sets[seeds[0]],
    }.items():
        start = time.perf_counter()
        rankings[name] = evaluator.evaluate(images, labels)
        rankings[name]["seconds"] = time.perf_counter() - start
        print(name, {k: v for k, v in rankings[name].items() if k != "runs"}, flush=True)

    labels_of = {
        "mkdt": f"MKDT ({config.num_synthetic} distilled images, {config.num_synthetic / len(train):.1%})",
        "random": f"random subset ({config.num_synthetic} images) + teacher targets",
        "none": "no pre-training (random init)",
        "teacher": "reference: the BarlowTwins teacher's features",
        "expert": f"reference: KD on all {len(train)} rows (expert 0, epoch {config.expert_train_epochs})",
    }
    rows = []
    for name, label in labels_of.items():
        row = {"method": label, "seeds": len(runs[name])}
        for key in [f"probe_{fraction:g}" for fraction in config.label_fractions] + ["pretrain_seconds"]:
            if key in runs[name][0]:
                mean, std = mean_std([run[key] for run in runs[name]])
                row[key.replace("probe_", "probe acc @ ")] = round(mean, 4)
                row[key.replace("probe_", "probe acc @ ") + " std"] = round(std, 4)
        rows.append(row)
    for name, result in rankings.items():
        rows.append(
            {
                "method": f"DD-Ranking: {name}",
                "LRS": round(result["lrs"], 4),
                "LRS std": round(result["lrs_std"], 4),
                "ARS": round(result["ars"], 4),
                "ARS std": round(result["ars_std"], 4),
                "HLR": round(result["hlr"], 4),
                "IOR": round(result["ior"], 4),
                "full-data accuracy": round(result["full_accuracy"], 4),
                "distilled accuracy (teacher labels, DSA)": round(
                    mean_std(result["runs"]["distilled_accuracy"])[0], 4
                ),
                "random accuracy (teacher labels, DSA)": round(mean_std(result["runs"]["random_accuracy"])[0], 4),
                "seconds": round(result["seconds"], 1),
            }
        )
    distill_mean, distill_std = mean_std(distill_seconds)
    rows.append(
        {
            "method": "stage wall times (s)",
            **{name: round(seconds, 1) for name, seconds in times.items()},
            "distill (per seed)": f"{distill_mean:.1f} ± {distill_std:.1f}",
            "learned eta (per seed)": [round(distilled_sets[s][2], 4) for s in seeds],
            "peak_rss_mb": round(peak_rss_mb(), 1),
        }
    )
    write_result("mkdt", rows)


if __name__ == "__main__":
    main()
