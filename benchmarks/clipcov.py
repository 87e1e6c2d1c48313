"""CLIPCov (global and proportional allocation) vs random / CLIP-score / SemDeDup subsets for CLIP training on
shapes with noisy captions.

A tiny proxy CLIP is trained on the validation split (disjoint from the pool), embeds the 2,000-pair
train pool, and each method picks 5% / 10% / 20% of it; a fresh tiny CLIP is trained on each subset with
the same recipe, and its zero-shot accuracy on the labelled test split (prompt ensemble of caption-like
templates) is reported as mean +- std over seeds (the seed drives selection ties, k-means, model init
and the training data order), with each subset's cross-covariance error ||Sigma_xy(S) - Sigma_xy(V)||_F
on the proxy embeddings. Run: ``python -m benchmarks.clipcov [--seeds 5 --epochs 30]``.
"""

import dataclasses
import statistics
import time
from pathlib import Path

import numpy as np

from benchmarks.common import arguments, machine, mean_std, peak_rss_mb, prepare, write_result

# (row name, method, its keyword arguments)
METHODS = (
    ("clipcov (global)", "clipcov", {"block_size": 20, "allocation": "global"}),
    ("clipcov (proportional)", "clipcov", {"block_size": 20, "allocation": "proportional"}),
    ("random", "random", {}),
    ("clip_score", "clip_score", {}),
    ("semdedup", "semdedup", {}),
)


def templates(count: int = 48, seed: int = 0) -> list[str]:
    """Caption-like prompt templates "a <color> {} <relation> a small <color> <shape>" from the shapes vocabulary."""
    from hfdc.data.shapes import COLORS, RELATIONS, SHAPES

    every = [
        f"a {c} {{}} {r} a small {c2} {s}"
        for c in COLORS
        for r in RELATIONS
        for c2 in COLORS
        for s in SHAPES
        if c2 != c
    ]
    return [every[i] for i in np.random.default_rng(seed).choice(len(every), count, replace=False)]


def main():
    parser = arguments(__doc__, seeds=5)
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.05, 0.1, 0.2])
    parser.add_argument("--epochs", type=float, default=30)
    parser.add_argument("--proxy_epochs", type=float, default=30)
    parser.add_argument("--n_train", type=int, default=2000)
    parser.add_argument("--n_proxy", type=int, default=1000)
    parser.add_argument("--n_test", type=int, default=500)
    args = parser.parse_args()
    seeds = prepare(args)

    from hfdc.clipcov.cli import load_splits, new_clip, proxy_clip
    from hfdc.clipcov.config import ClipCovConfig
    from hfdc.clipcov.dataset import class_names_of, select_dataset
    from hfdc.clipcov.embed import clip_embeddings
    from hfdc.clipcov.train import train_clip, zero_shot_accuracy

    prompts = templates()
    config = ClipCovConfig(
        output_dir="outputs/benchmarks/clipcov",
        dataset_params={"n_train": args.n_train, "n_validation": args.n_proxy, "n_test": args.n_test},
        prompt_templates=prompts,
        proxy_epochs=args.proxy_epochs,
        num_train_epochs=args.epochs,
        per_device_train_batch_size=64,
        learning_rate=3e-3,
        warmup_steps=0.1,
        weight_decay=0.1,
        save_strategy="no",
        logging_steps=10_000,
        disable_tqdm=True,
        seed=0,
    )
    pool, proxy_data, test = load_splits(config)
    names = class_names_of(test, "label")
    start = time.perf_counter()
    proxy, processor, _ = proxy_clip(config, proxy_data, names, test, Path(config.output_dir))
    proxy_accuracy = zero_shot_accuracy(proxy, processor, test, names, prompts)
    embeddings = clip_embeddings(pool, proxy, processor, caption_column="noisy_caption")
    proxy_seconds = time.perf_counter() - start
    print(f"proxy zero-shot accuracy {proxy_accuracy:.3f} ({proxy_seconds:.0f} s incl. embedding)", flush=True)
    noisy, true_labels = np.asarray(pool["is_noisy"]), np.asarray(pool["label"])

    runs = []
    for fraction in args.fractions:
        for name, method, kwargs in METHODS:
            for seed in seeds:
                begin = time.perf_counter()
                result = select_dataset(
                    embeddings,
                    fraction,
                    proxy,
                    processor,
                    method,
                    class_names=names,
                    prompt_templates=prompts,
                    seed=seed,
                    **kwargs,
                )
                select_seconds = time.perf_counter() - begin
                subset = pool.select(result.indices)
                model, model_processor = new_clip("tiny", seed)
                stage = dataclasses.replace(
                    config, output_dir=f"{config.output_dir}/{method}-{fraction}-{seed}", seed=seed
                )
                train_clip(model, model_processor, subset, stage, caption_column="noisy_caption")
                accuracy = zero_shot_accuracy(model, model_processor, test, names, prompts)
                runs.append(
                    {
                        "method": name,
                        "fraction": fraction,
                        "seed": seed,
                        "zero_shot_accuracy": accuracy,
                        "cross_covariance_error": result.cross_covariance_error,
                        "noisy_caption_fraction": float(noisy[result.indices].mean()),
                        "true_class_shares": np.round(
                            np.bincount(true_labels[result.indices], minlength=len(names)) / len(result), 3
                        ).tolist(),
                        "select_seconds": select_seconds,
                        "train_and_eval_seconds": time.perf_counter() - begin - select_seconds,
                    }
                )
                print(runs[-1], flush=True)

    rows = []
    for fraction in args.fractions:
        baseline = None
        for method, _, _ in METHODS:
            mine = [r for r in runs if r["method"] == method and r["fraction"] == fraction]
            accuracy = [r["zero_shot_accuracy"] for r in mine]
            error_mean, error_std = mean_std([r["cross_covariance_error"] for r in mine])
            row = {
                "method": method,
                "fraction": fraction,
                "subset_rows": round(fraction * len(pool)),
                "seeds": len(mine),
                "zero_shot_accuracy_mean": round(mean_std(accuracy)[0], 4),
                "zero_shot_accuracy_std": round(mean_std(accuracy)[1], 4),
                "zero_shot_accuracy_per_seed": [round(a, 4) for a in accuracy],
                "cross_covariance_error_mean": round(error_mean, 4),
                "cross_covariance_error_std": round(error_std, 4),
                "smallest_true_class_share_mean": round(statistics.mean(min(r["true_class_shares"]) for r in mine), 3),
                "noisy_caption_fraction": round(statistics.mean(r["noisy_caption_fraction"] for r in mine), 4),
                "select_seconds_median": round(statistics.median(r["select_seconds"] for r in mine), 3),
                "train_and_eval_seconds_median": round(
                    statistics.median(r["train_and_eval_seconds"] for r in mine), 1
                ),
            }
            if method == "random":
                baseline = row["zero_shot_accuracy_mean"]
            rows.append(row)
        for row in rows:
            if row["fraction"] == fraction and baseline:
                row["accuracy_ratio_vs_random"] = round(row["zero_shot_accuracy_mean"] / baseline, 3)
    rows.append(
        {
            "method": "proxy (trained on the disjoint split)",
            "fraction": None,
            "subset_rows": args.n_proxy,
            "zero_shot_accuracy_mean": round(proxy_accuracy, 4),
            "noisy_caption_fraction": round(float(noisy.mean()), 4),
            "seconds": round(proxy_seconds, 1),
            "chance": round(1 / len(names), 4),
            "epochs": args.epochs,
            "proxy_epochs": args.proxy_epochs,
            "peak_rss_mb": round(peak_rss_mb()),
        }
    )
    print(machine())
    write_result("clipcov", rows)


if __name__ == "__main__":
    main()
