"""USEFUL against its baselines, 5 seeds, mean ± std: test accuracy, the gain over GD paired by seed, the discovery
epoch and the slow-learnable fraction.

python -m benchmarks.useful [--seeds 5] [--workers 2]                          # real Fashion-MNIST -> useful.json
python -m benchmarks.useful --data feature_patches [--seeds 5] [--workers 2]   # the two-layer-CNN data model

Fashion-MNIST: the recipes recipes/useful/fashion_mnist{,_upweight,_jtt}.yaml (ConvNet, SGD + momentum, random crop
+ flip, 20 epochs, separation at epoch 2) on a random 1,000-image training subsample per seed (the asset's 48,000
would take hours on 2 shared cores) and the whole 6,000-image test split. feature_patches: the paper's data model
with noise on the hard feature's strength, so that the hard rule alone is not perfect.
"""

import tempfile
import time

import numpy as np

from benchmarks.common import (
    arguments,
    discovery_columns,
    mean_std_text,
    paired_rows,
    peak_rss_mb,
    prepare,
    write_result,
)

FASHION_TRAIN_ROWS = 1000
SAM_RHO = 0.05
PATCHES = dict(
    n_train=400,
    n_validation=10,
    n_test=1000,
    dim=50,
    noise_std=0.2,
    missing_easy_fraction=0.3,
    hard_strength=0.45,
    hard_noise_std=0.2,
)
PATCHES_TRAINING = dict(
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
    use_cpu=True,
)
# arm name -> (recipe of the named configuration, overrides); the recipe None means fashion_mnist.yaml / PATCHES_TRAINING
ARMS = {
    "GD": (None, dict(selection="none")),
    "GD + random upsampling": (None, dict(selection="random")),
    "GD + USEFUL": (None, dict(selection="targeted")),
    f"SAM (rho={SAM_RHO})": (None, dict(selection="none", sam_rho=SAM_RHO)),
    f"SAM (rho={SAM_RHO}) + USEFUL": (None, dict(selection="targeted", sam_rho=SAM_RHO)),
    "GD 1.3x longer": (None, dict(selection="none", longer=1.3)),
    "loss upweighting x2": ("fashion_mnist_upweight", dict(emphasis="upweight", factor=2)),
    "JTT (misclassified, weight x6)": (
        "fashion_mnist_jtt",
        dict(partition="misclassified", emphasis="upweight", factor=6),
    ),
}


def base_config(data_name: str, recipe: str | None) -> dict:
    """Config fields of an arm before its overrides: the named recipe (Fashion-MNIST) or the patch training."""
    if data_name == "feature_patches":
        return dict(PATCHES_TRAINING)
    from hfdc.cli import load_recipe

    return load_recipe(f"recipes/useful/{recipe or 'fashion_mnist'}.yaml")


def load_data(data_name: str, seed: int):
    """The seed's data: a random Fashion-MNIST training subsample + the test split, or a fresh patch draw."""
    import hfdc.data

    if data_name == "feature_patches":
        return hfdc.data.load("feature_patches", **PATCHES, seed=seed)
    from datasets import DatasetDict

    from benchmarks.assets import asset_path

    full = hfdc.data.load(str(asset_path("fashion_mnist")))
    rows = np.random.default_rng(seed).choice(len(full["train"]), FASHION_TRAIN_ROWS, replace=False)
    return DatasetDict(train=full["train"].select(np.sort(rows)), test=full["test"])


def run_arm(data_name: str, name: str, seed: int, data) -> dict:
    from hfdc.useful import UsefulConfig, train_useful

    recipe, overrides = ARMS[name]
    overrides = dict(overrides)
    fields = {**base_config(data_name, recipe), **overrides}
    if data_name == "feature_patches":
        fields["dataset_params"] = {**PATCHES, "seed": seed}
    longer = fields.pop("longer", 1.0)
    fields["num_train_epochs"] = round(fields["num_train_epochs"] * longer)
    with tempfile.TemporaryDirectory() as out:
        fields.update(output_dir=out, seed=seed, data_seed=seed, report_to="none", logging_strategy="no")
        fields.update(disable_tqdm=True, dataset=fields.get("dataset", "feature_patches"))
        start = time.perf_counter()
        result = train_useful(UsefulConfig(**fields), data)
        seconds = time.perf_counter() - start
    row = dict(result.metrics, seconds=seconds)
    if result.slow is not None and "has_easy" in data["train"].column_names:
        hard = ~np.asarray(data["train"]["has_easy"])
        chosen = np.zeros(len(hard), bool)
        chosen[result.selected] = True
        row.update(precision=(hard & chosen).sum() / chosen.sum(), recall=(hard & chosen).sum() / hard.sum())
    return row


def arm_columns(results: list[dict]) -> dict:
    """USEFUL's columns of an arm: accuracy on the rows without the easy feature (feature_patches), the discovery
    epoch and selected fraction, and the discovery's precision / recall against the rows without the easy feature."""
    columns = {}
    if "test_accuracy_without_easy" in results[0]:
        columns["accuracy without easy feature"] = mean_std_text([r["test_accuracy_without_easy"] for r in results])
    columns.update(discovery_columns(results))
    if "precision" in results[0]:
        columns["discovery precision / recall"] = (
            f"{np.mean([r['precision'] for r in results]):.2f} / {np.mean([r['recall'] for r in results]):.2f}"
        )
    return columns


def run_seed(data_name: str, threads: int, seed: int) -> dict[str, dict]:
    """Every arm on the seed's data (in a worker process: threads and quiet logging set again there)."""
    import torch

    from benchmarks.common import quiet

    torch.set_num_threads(threads)
    quiet()
    data = load_data(data_name, seed)
    results = {}
    for name in ARMS:
        results[name] = run_arm(data_name, name, seed, data)
        print(seed, name, {k: round(float(v), 4) for k, v in results[name].items()}, flush=True)
    return results


def main():
    parser = arguments(__doc__, seeds=5)
    parser.add_argument("--data", choices=("fashion_mnist", "feature_patches"), default="fashion_mnist")
    parser.add_argument("--workers", type=int, default=1, help="processes the seeds are spread over")
    args = parser.parse_args()
    seeds = prepare(args)
    from concurrent.futures import ProcessPoolExecutor
    from functools import partial

    with ProcessPoolExecutor(args.workers) as pool:
        per_seed = list(pool.map(partial(run_seed, args.data, args.threads), seeds))
    runs = {name: [results[name] for results in per_seed] for name in ARMS}
    rows = paired_rows(runs, "GD", arm_columns)
    setting = (
        {"data": PATCHES, "training": PATCHES_TRAINING}
        if args.data == "feature_patches"
        else {
            "data": f"fashion_mnist, {FASHION_TRAIN_ROWS} training rows per seed, test split",
            "recipe": "fashion_mnist.yaml",
        }
    )
    rows.append({"method": "setting", **setting, "peak_rss_mb": round(peak_rss_mb(), 1)})
    write_result("useful" if args.data == "fashion_mnist" else "useful_feature_patches", rows)


if __name__ == "__main__":
    main()
