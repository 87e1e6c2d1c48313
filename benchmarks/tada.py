"""TADA on digits: ConvNet test accuracy with no augmentation vs SDEdit variants of the slow-learnable rows (TADA)
vs of a random subset of the same size vs of every row (full augmentation); generated images and generation time.

python -m benchmarks.tada [--seeds 5]

The generator is a small class-conditional DDPM trained once (seed 0) on the same training rows, cached
under outputs/benchmarks/tada/ddpm; seeds vary the classifier's initialisation, data order and the SDEdit noise.
"""

import tempfile
import time
from pathlib import Path

from benchmarks.common import arguments, mean_std, peak_rss_mb, prepare, write_result

DATA = dict(n_train=300, n_validation=100, n_test=600, seed=0)
TRAIN = dict(
    dataset="digits",
    model="convnet",
    separation_epoch=2,
    num_train_epochs=20,
    learning_rate=3e-3,
    optim="adamw_torch",
    lr_scheduler_type="cosine",
    per_device_train_batch_size=32,
    per_device_eval_batch_size=600,
    save_strategy="no",
    logging_strategy="no",
    disable_tqdm=True,
    use_cpu=True,
    strength=0.4,
    num_inference_steps=50,
    generation_batch_size=128,
    ddpm_epochs=200,
    ddpm_batch_size=32,
    ddpm_learning_rate=2e-3,
)
ARMS = ("none", "targeted", "random", "full")
CACHE = Path("outputs/benchmarks/tada")


def main():
    seeds = prepare(arguments(__doc__, seeds=5).parse_args())
    import hfdc.data
    from hfdc.tada import TadaConfig, UNetGenerator, train_tada
    from hfdc.tada.train import train_or_load_ddpm

    data = hfdc.data.load("digits", **DATA)
    start = time.perf_counter()
    unet, scheduler = train_or_load_ddpm(TadaConfig(output_dir=str(CACHE), **TRAIN), data["train"])
    ddpm_seconds = time.perf_counter() - start
    generator = UNetGenerator(
        unet, scheduler, strength=TRAIN["strength"], num_inference_steps=TRAIN["num_inference_steps"]
    )
    runs = {arm: [] for arm in ARMS}
    for seed in seeds:
        for arm in ARMS:
            with tempfile.TemporaryDirectory() as out:
                config = TadaConfig(output_dir=out, augment=arm, seed=seed, data_seed=seed, **TRAIN)
                t0 = time.perf_counter()
                result = train_tada(config, data, generator=generator)
                runs[arm].append(dict(result.metrics, seconds=time.perf_counter() - t0))
            print(seed, arm, {k: round(float(v), 4) for k, v in runs[arm][-1].items()}, flush=True)
    rows = []
    for arm, results in runs.items():
        row = {
            "method": {
                "none": "no augmentation",
                "targeted": "TADA (slow-learnable rows)",
                "random": "random rows, same count",
                "full": "full augmentation",
            }[arm],
            "seeds": len(results),
        }
        for key in ("test_accuracy", "generated_images", "generation_seconds", "train_rows", "seconds"):
            mean, std = mean_std([float(r[key]) for r in results])
            row[key], row[f"{key}_std"] = round(mean, 4), round(std, 4)
        rows.append(row)
    base = rows[0]["test_accuracy"]
    full = next(r for r in rows if r["method"] == "full augmentation")
    for row in rows:
        row["accuracy_gain_vs_none"] = round(row["test_accuracy"] - base, 4)
        row["generated_vs_full"] = (
            round(row["generated_images"] / full["generated_images"], 3) if full["generated_images"] else None
        )
    rows.append(
        {
            "method": "all",
            "data": {"name": "digits", **DATA},
            "training": {k: v for k, v in TRAIN.items() if k != "disable_tqdm"},
            "ddpm_seconds_this_run": round(ddpm_seconds, 1),
            "peak_rss_mb": round(peak_rss_mb(), 1),
        }
    )
    write_result("tada", rows)


if __name__ == "__main__":
    main()
