"""TADA on real Fashion-MNIST: ConvNet test accuracy with no augmentation, SDEdit variants of every row (full), of a
random subset of TADA's size, plain copies of exactly TADA's rows (duplication), and TADA; 5 seeds, mean ± std.

python -m benchmarks.tada [--seeds 5] [--workers 2]

Recipe recipes/tada/fashion_mnist.yaml on a fixed random 1,000-image training subsample (the DDPM and the 5 x 5 runs
must fit 2 shared cores) and the whole 6,000-image test split. The class-conditional DDPM is trained once by the
recipe's own code (seed 0) on those 1,000 rows and cached under outputs/benchmarks/tada/ddpm; seeds vary the
classifier's initialisation, data order and augmentation, the discovery run and the SDEdit noise.
"""

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import (
    RESULTS,
    arguments,
    discovery_columns,
    paired_rows,
    peak_rss_mb,
    prepare,
    write_result,
)

TRAIN_ROWS = 1000
CACHE = Path("outputs/benchmarks/tada")
ARMS = {  # name -> (augment, addition)
    "no augmentation": ("none", "sdedit"),
    "full augmentation (every row)": ("full", "sdedit"),
    "random rows, TADA's count": ("random", "sdedit"),
    "duplication of TADA's rows": ("targeted", "duplicate"),
    "TADA (slow-learnable rows)": ("targeted", "sdedit"),
}


def benchmark_data():
    """The fixed 1,000-row training subsample (seed 0) and the test split of the Fashion-MNIST asset."""
    from datasets import DatasetDict

    import hfdc.data
    from benchmarks.assets import asset_path

    full = hfdc.data.load(str(asset_path("fashion_mnist")))
    rows = np.sort(np.random.default_rng(0).choice(len(full["train"]), TRAIN_ROWS, replace=False))
    return DatasetDict(train=full["train"].select(rows), test=full["test"])


def recipe() -> dict:
    from hfdc.cli import load_recipe

    return {**load_recipe("recipes/tada/fashion_mnist.yaml"), "report_to": "none", "logging_strategy": "no"}


def cached_generator(data):
    """The SDEdit generator with the recipe's DDPM, trained once (resumable) and cached under CACHE."""
    from hfdc.tada import TadaConfig, UNetGenerator
    from hfdc.tada.train import train_or_load_ddpm

    fields = recipe()
    unet, scheduler = train_or_load_ddpm(TadaConfig(**{**fields, "output_dir": str(CACHE)}), data["train"])
    return UNetGenerator(
        unet, scheduler, strength=fields["strength"], num_inference_steps=fields["num_inference_steps"]
    )


def sdedit_figure(generator, data, path: Path = RESULTS / "tada_sdedit.png", count: int = 12) -> Path:
    """The first ``count`` training images (top) above their SDEdit variants (seed 0), 4x enlarged."""
    from PIL import Image

    rows = data["train"].select(range(count))
    variants = generator.generate(rows["image"], rows["label"], data["train"].features["label"].names, seed=0)
    grid = np.concatenate([np.concatenate([np.asarray(im) for im in line], 1) for line in (rows["image"], variants)])
    Image.fromarray(grid).resize((grid.shape[1] * 4, grid.shape[0] * 4), Image.NEAREST).save(path)
    return path


def arm_columns(results: list[dict]) -> dict:
    """TADA's columns of an arm: rows augmented, images generated, generation seconds (median), discovery."""
    return {
        "augmented rows": round(statistics.mean(r["augmented_examples"] for r in results)),
        "generated images": round(statistics.mean(r["generated_images"] for r in results)),
        "generation seconds (median)": round(statistics.median(r["generation_seconds"] for r in results), 1),
        **discovery_columns(results),
    }


def run_seed(data, generator, threads: int, seed: int) -> dict[str, dict]:
    """Every arm with this seed (in a worker process: threads and quiet logging set again there)."""
    import torch

    from benchmarks.common import quiet
    from hfdc.tada import TadaConfig, train_tada

    torch.set_num_threads(threads)
    quiet()
    results = {}
    for name, (augment, addition) in ARMS.items():
        with tempfile.TemporaryDirectory() as out:
            arm = dict(output_dir=out, augment=augment, addition=addition, seed=seed, data_seed=seed)
            start = time.perf_counter()
            result = train_tada(TadaConfig(**{**recipe(), **arm}), data, generator=generator)
            results[name] = dict(result.metrics, seconds=time.perf_counter() - start)
        print(seed, name, {k: round(float(v), 4) for k, v in results[name].items()}, flush=True)
    return results


def main():
    parser = arguments(__doc__, seeds=5)
    parser.add_argument("--workers", type=int, default=1, help="processes the seeds are spread over")
    args = parser.parse_args()
    seeds = prepare(args)
    from concurrent.futures import ProcessPoolExecutor
    from functools import partial

    data = benchmark_data()
    start = time.perf_counter()
    generator = cached_generator(data)
    ddpm_seconds = time.perf_counter() - start
    sdedit_figure(generator, data)
    with ProcessPoolExecutor(args.workers) as pool:
        per_seed = list(pool.map(partial(run_seed, data, generator, args.threads), seeds))
    runs = {name: [results[name] for results in per_seed] for name in ARMS}
    table = paired_rows(runs, "no augmentation", arm_columns, label="none")
    table.append(
        {
            "method": "setting",
            "data": f"fashion_mnist, {TRAIN_ROWS} fixed training rows, test split",
            "recipe": "recipes/tada/fashion_mnist.yaml",
            "ddpm_seconds_this_run": round(ddpm_seconds, 1),
            "peak_rss_mb": round(peak_rss_mb(), 1),
        }
    )
    write_result("tada", table)


if __name__ == "__main__":
    main()
