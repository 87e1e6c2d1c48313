"""Targeted augmentation as a datasets operation: synthetic variants of chosen rows, written in resumable shards.

TADA (Nguyen et al., ICLR 2026, arXiv 2505.21574) augments only the slow-learnable rows; ``indices``
= every row gives the full-data augmentation baseline, and :func:`copies` of the same rows (no generation)
the arm that separates "which rows" from "what is added". Under several processes every process generates
its own shards (shard k on process k mod n) and all of them then read every shard.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
from datasets import ClassLabel, Dataset, Features, Image, Value, concatenate_datasets, load_from_disk
from tqdm.auto import tqdm

from hfdc.distributed import process_state
from hfdc.runs import check_run_settings

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"


def synthetic_features(label: ClassLabel) -> Features:
    """Features of the augmented training set: image, label, synthetic flag, source row index."""
    return Features({"image": Image(), "label": label, "synthetic": Value("bool"), "source_index": Value("int64")})


def augment(
    dataset: Dataset,
    indices: list[int],
    generator,
    output_dir: str | Path,
    batch_size: int = 32,
    shard_size: int = 256,
    seed: int = 0,
    settings: dict | None = None,
) -> Dataset:
    """Synthetic variants (``generator.generate``) of the rows at ``indices``, as a Dataset with ``synthetic_features``.

    Shard k covers ``indices[k * shard_size : (k + 1) * shard_size]`` and is saved to
    ``output_dir/shard-0000k`` once complete (written to a temporary folder, then renamed), so a rerun
    skips finished shards. Batch b of shard k uses seed ``(seed, k, b)``: a resumed run, or one with another
    number of processes, makes the same images. Process p of n generates shards k with k mod n = p; after a
    barrier every process returns all shards. ``generator.generate`` may return ``None`` for an image it
    refuses (a Stable Diffusion safety-checker flag): that row is dropped and counted, never trained on;
    the number dropped is ``len(indices) * images_per_example - len(result)``.
    ``settings`` (e.g. the generator's parameters) goes into the manifest; a mismatch with an existing folder is an error.
    """
    if "image" not in dataset.column_names or not isinstance(dataset.features["image"], Image):
        raise ValueError(f"augment needs an Image column 'image'; columns are {dataset.column_names}")
    if not isinstance(dataset.features.get("label"), ClassLabel):
        raise ValueError("augment needs a ClassLabel column 'label' (its names become the prompts)")
    if batch_size < 1 or shard_size < 1:
        raise ValueError(f"batch_size and shard_size must be >= 1, got {batch_size} and {shard_size}")
    indices = [int(i) for i in indices]
    bad = [i for i in indices if not 0 <= i < len(dataset)]
    if bad:
        raise ValueError(f"indices {bad[:5]} are outside the dataset of {len(dataset)} rows")
    label = dataset.features["label"]
    features = synthetic_features(label)
    if not indices:
        return Dataset.from_dict({k: [] for k in features}, features=features)
    folder = Path(output_dir)
    state = process_state()
    with state.main_process_first():  # the main process writes the manifest, the others then check it
        check_run_settings(
            folder,
            {
                "indices": indices,
                "shard_size": shard_size,
                "batch_size": batch_size,
                "seed": seed,
                "settings": settings or {},
            },
            "shards of another augmentation",
            MANIFEST,
        )
    shards = [indices[i : i + shard_size] for i in range(0, len(indices), shard_size)]
    mine = range(state.process_index, len(shards), state.num_processes)
    todo = [k for k in mine if not (folder / f"shard-{k:05d}").exists()]
    if len(todo) < len(mine):
        logger.info(
            "resuming augmentation: %d of this process's %d shards already done in %s",
            len(mine) - len(todo),
            len(mine),
            folder,
        )
    images_per_example = getattr(generator, "images_per_example", 1)
    source = dataset.select_columns(["image", "label"])
    progress = tqdm(
        total=sum(len(shards[k]) for k in todo),
        desc=f"synthetic variants (examples, process {state.process_index})",
        unit="ex",
    )
    for k in todo:
        rows = {"image": [], "label": [], "synthetic": [], "source_index": []}
        for b, start in enumerate(range(0, len(shards[k]), batch_size)):
            batch_indices = shards[k][start : start + batch_size]
            batch = source[batch_indices]
            batch_seed = int(np.random.SeedSequence([seed, k, b]).generate_state(1)[0])
            images = generator.generate(batch["image"], batch["label"], label.names, batch_seed)
            if len(images) != len(batch_indices) * images_per_example:
                raise ValueError(
                    f"generator returned {len(images)} images for {len(batch_indices)} examples x {images_per_example}"
                )
            labels = [y for y in batch["label"] for _ in range(images_per_example)]
            sources = [i for i in batch_indices for _ in range(images_per_example)]
            for image, y, i in zip(images, labels, sources, strict=True):
                if image is not None:
                    rows["image"].append(image)
                    rows["label"].append(y)
                    rows["source_index"].append(i)
                    rows["synthetic"].append(True)
            progress.update(len(batch_indices))
        dropped = len(shards[k]) * images_per_example - len(rows["image"])
        if dropped:
            logger.warning(
                "shard %d: %d generated image(s) refused by the generator (safety checker), dropped", k, dropped
            )
        tmp = folder / f"tmp-shard-{k:05d}"
        shutil.rmtree(tmp, ignore_errors=True)
        Dataset.from_dict(rows, features=features).save_to_disk(str(tmp))
        tmp.rename(folder / f"shard-{k:05d}")
    progress.close()
    state.wait_for_everyone()
    missing = [k for k in range(len(shards)) if not (folder / f"shard-{k:05d}").exists()]
    if missing:
        raise RuntimeError(f"shards {missing[:5]} of {folder} were not written by their process; rerun to resume")
    return concatenate_datasets([load_from_disk(str(folder / f"shard-{k:05d}")) for k in range(len(shards))])


def copies(dataset: Dataset, indices: list[int], copies_per_example: int = 1) -> Dataset:
    """``copies_per_example`` unchanged copies of the rows at ``indices`` with ``synthetic_features``
    (synthetic=False): USEFUL-style duplication of exactly the rows TADA would augment."""
    if copies_per_example < 1:
        raise ValueError(f"copies_per_example must be >= 1, got {copies_per_example}")
    bad = [i for i in indices if not 0 <= i < len(dataset)]
    if bad:
        raise ValueError(f"indices {bad[:5]} are outside the dataset of {len(dataset)} rows")
    order = [int(i) for i in indices for _ in range(copies_per_example)]
    rows = dataset.select_columns(["image", "label"]).select(order)
    rows = rows.add_column("synthetic", [False] * len(order)).add_column("source_index", order)
    return rows.cast(synthetic_features(dataset.features["label"]))


def with_synthetic(train: Dataset, synthetic: Dataset) -> Dataset:
    """``train`` (image, label; synthetic=False, source_index=row) followed by the ``synthetic`` rows."""
    real = train.select_columns(["image", "label"])
    real = real.add_column("synthetic", [False] * len(real)).add_column("source_index", list(range(len(real))))
    real = real.cast(synthetic_features(train.features["label"]))
    return concatenate_datasets([real, synthetic.cast(real.features)]) if len(synthetic) else real
