"""USEFUL on feature_patches: test accuracy of GD vs GD+USEFUL vs random upsampling vs SAM (mean ± std over seeds).

python -m benchmarks.useful [--seeds 5]
"""

import tempfile
import time

import numpy as np

from benchmarks.common import arguments, mean_std, peak_rss_mb, prepare, write_result

DATA = dict(n_train=400, n_validation=10, n_test=1000, dim=50, noise_std=0.2, missing_easy_fraction=0.3)
TRAIN = dict(
    num_train_epochs=40,
    separation_epoch=2,
    learning_rate=0.5,
    optim="sgd",
    lr_scheduler_type="constant",
    weight_decay=0.0,
    max_grad_norm=0.0,
    per_device_train_batch_size=50,
    per_device_eval_batch_size=1000,
    save_strategy="no",
    logging_strategy="no",
    disable_tqdm=True,
    use_cpu=True,
)
ARMS = {
    "GD": dict(selection="none"),
    "GD + random upsampling": dict(selection="random"),
    "GD + USEFUL": dict(selection="targeted"),
    "SAM (rho=0.05)": dict(selection="none", sam_rho=0.05),
    "SAM (rho=0.5)": dict(selection="none", sam_rho=0.5),
    "SAM (rho=0.05) + USEFUL": dict(selection="targeted", sam_rho=0.05),
}


def run_arm(arm: dict, seed: int, data) -> dict:
    from hfdc.useful import UsefulConfig, train_useful

    with tempfile.TemporaryDirectory() as out:
        config = UsefulConfig(
            output_dir=out, dataset_params={**DATA, "seed": seed}, seed=seed, data_seed=seed, **TRAIN, **arm
        )
        start = time.perf_counter()
        result = train_useful(config, data)
        seconds = time.perf_counter() - start
    row = dict(result.metrics, seconds=seconds)
    if result.slow is not None and arm["selection"] == "targeted":
        hard = ~np.asarray(data["train"]["has_easy"])
        chosen = np.zeros(len(hard), bool)
        chosen[result.selected] = True
        row.update(precision=(hard & chosen).sum() / chosen.sum(), recall=(hard & chosen).sum() / hard.sum())
    return row


def main():
    seeds = prepare(arguments(__doc__, seeds=5).parse_args())
    import hfdc.data

    runs = {name: [] for name in ARMS}
    for seed in seeds:
        data = hfdc.data.load("feature_patches", **DATA, seed=seed)
        for name, arm in ARMS.items():
            runs[name].append(run_arm(arm, seed, data))
            print(seed, name, {k: round(float(v), 4) for k, v in runs[name][-1].items()}, flush=True)
    rows = []
    for name, results in runs.items():
        row = {"method": name, "seeds": len(results)}
        for key in (
            "test_accuracy",
            "test_accuracy_without_easy",
            "precision",
            "recall",
            "num_selected",
            "train_rows",
            "seconds",
        ):
            if key in results[0]:
                mean, std = mean_std([float(r[key]) for r in results])
                row[key] = round(mean, 4)
                row[f"{key}_std"] = round(std, 4)
        rows.append(row)
    base = next(r for r in rows if r["method"] == "GD")["test_accuracy"]
    for row in rows:
        row["accuracy_gain_vs_GD"] = round(row["test_accuracy"] - base, 4)
    rows.append(
        {
            "method": "all",
            "data": DATA,
            "training": {k: v for k, v in TRAIN.items() if k != "disable_tqdm"},
            "peak_rss_mb": round(peak_rss_mb(), 1),
        }
    )
    write_result("useful", rows)


if __name__ == "__main__":
    main()
