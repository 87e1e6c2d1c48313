"""Targeted augmentation as a datasets operation: synthetic variants of chosen rows, written in resumable shards.

TADA (Nguyen et al., ICLR 2026, arXiv 2505.21574) augments only the slow-learnable rows; ``indices``
= every row gives the full-data augmentation baseline.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
from datasets import ClassLabel, Dataset, Features, Image, Value, concatenate_datasets, load_from_disk
from tqdm.auto import tqdm

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"


def synthetic_features(label: ClassLabel) -> Features:
    """Features of the augmented training set: image, label, synthetic flag, source row index."""
    return Features({"image": Image(), "label": label, "synthetic": Value("bool"), "source_index": Value("int64")})


def _check_manifest(folder: Path, manifest: dict) -> None:
    path = folder / MANIFEST
    if path.exists():
        old = json.loads(path.read_text())
        if old != manifest:
            changed = sorted(k for k in manifest if old.get(k) != manifest[k])
            raise ValueError(
                f"{folder} holds shards of a different augmentation (changed: {', '.join(changed)}); "
                "use a new output folder or delete it to regenerate"
            )
    else:
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(manifest, indent=1))


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
    skips finished shards. Batch b of shard k uses seed ``(seed, k, b)``: a resumed run makes the same images.
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
    _check_manifest(
        folder,
        {
            "indices": indices,
            "shard_size": shard_size,
            "batch_size": batch_size,
            "seed": seed,
            "settings": settings or {},
        },
    )
    shards = [indices[i : i + shard_size] for i in range(0, len(indices), shard_size)]
    todo = [k for k in range(len(shards)) if not (folder / f"shard-{k:05d}").exists()]
    if len(todo) < len(shards):
        logger.info(
            "resuming augmentation: %d of %d shards already done in %s", len(shards) - len(todo), len(shards), folder
        )
    images_per_example = getattr(generator, "images_per_example", 1)
    source = dataset.select_columns(["image", "label"])
    progress = tqdm(total=sum(len(shards[k]) for k in todo), desc="synthetic variants (examples)", unit="ex")
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
            rows["image"] += images
            rows["label"] += [y for y in batch["label"] for _ in range(images_per_example)]
            rows["source_index"] += [i for i in batch_indices for _ in range(images_per_example)]
            rows["synthetic"] += [True] * len(images)
            progress.update(len(batch_indices))
        tmp = folder / f"tmp-shard-{k:05d}"
        shutil.rmtree(tmp, ignore_errors=True)
        Dataset.from_dict(rows, features=features).save_to_disk(str(tmp))
        tmp.rename(folder / f"shard-{k:05d}")
    progress.close()
    return concatenate_datasets([load_from_disk(str(folder / f"shard-{k:05d}")) for k in range(len(shards))])


def with_synthetic(train: Dataset, synthetic: Dataset) -> Dataset:
    """``train`` (image, label; synthetic=False, source_index=row) followed by the ``synthetic`` rows."""
    real = train.select_columns(["image", "label"])
    real = real.add_column("synthetic", [False] * len(real)).add_column("source_index", list(range(len(real))))
    real = real.cast(synthetic_features(train.features["label"]))
    return concatenate_datasets([real, synthetic.cast(real.features)]) if len(synthetic) else real
