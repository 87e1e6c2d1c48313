"""The LLaVA a ReGap command works on: tiny:llava, a saved LLaVA, or one built from parts (``hfdc.models.mini_llava``).

``vision_tower="tiny:clip"`` first trains a tiny CLIP contrastively on the data set's captions (CLIPCov's
``train_clip``, the symmetric InfoNCE of Radford et al. 2021) and keeps it in ``<output_dir>/vision_tower``, so
a rerun reuses it.
"""

from __future__ import annotations

import logging
from pathlib import Path

logger = logging.getLogger(__name__)

TINY_LLAVA = "tiny:llava"
TINY_CLIP = "tiny:clip"


def load_llava(name: str, seed: int = 0):
    """(model, processor): ``tiny:llava`` (random tiny Llava, seeded) or a LLaVA-style folder / Hub id."""
    from hfdc.regap.llava import check_llava

    if name == TINY_LLAVA:
        from hfdc.models import tiny, tiny_processor

        model, processor = tiny("llava", seed=seed), tiny_processor("llava")
    else:
        from transformers import AutoModelForImageTextToText, AutoProcessor

        model = AutoModelForImageTextToText.from_pretrained(name)
        processor = AutoProcessor.from_pretrained(name)
    check_llava(model)
    return model, processor


def train_vision_tower(
    dataset,
    output_dir: str | Path,
    epochs: float,
    seed: int = 0,
    overrides: dict | None = None,
    image_column: str = "image",
    caption_column: str = "caption",
    use_cpu: bool = False,
) -> Path:
    """Train ``hfdc.models.tiny("clip", **overrides)`` on ``dataset``'s captions; save model + processor under
    ``<output_dir>/vision_tower`` (reused when already there) and return that folder."""
    from transformers import TrainingArguments

    from hfdc.clipcov import train_clip
    from hfdc.distributed import process_state
    from hfdc.models import tiny, tiny_processor

    folder = Path(output_dir) / "vision_tower"
    if (folder / "config.json").is_file():
        logger.info("reusing the vision tower in %s", folder)
        return folder
    overrides = overrides or {}
    clip = tiny("clip", seed=seed, **overrides)
    processor = tiny_processor("clip", image_size=clip.config.vision_config.image_size)
    args = TrainingArguments(
        output_dir=str(folder / "trainer"),
        num_train_epochs=epochs,
        per_device_train_batch_size=64,
        learning_rate=3e-3,
        warmup_steps=0.1,
        weight_decay=0.1,
        save_strategy="no",
        report_to="none",
        remove_unused_columns=False,
        logging_steps=50,
        seed=seed,
        use_cpu=use_cpu,
    )
    train_clip(clip, processor, dataset, args, image_column, caption_column)
    if process_state().is_main_process:
        clip.save_pretrained(folder)
        processor.save_pretrained(folder)
    process_state().wait_for_everyone()
    return folder


def build_model(config, train_data=None):
    """(model, processor) for a RegapConfig: from parts when ``vision_tower`` and ``language_model`` are set
    (a ``tiny:clip`` tower is first trained on ``train_data``), else :func:`load_llava`."""
    from hfdc.models import mini_llava

    if not config.vision_tower:
        return load_llava(config.model_name_or_path, seed=config.seed)
    vision = config.vision_tower
    if vision == TINY_CLIP:
        vision = train_vision_tower(
            train_data,
            config.output_dir,
            config.vision_tower_epochs,
            seed=config.seed,
            overrides=config.vision_tower_config,
            image_column=config.image_column,
            caption_column=config.caption_column,
            use_cpu=config.use_cpu,
        )
    return mini_llava(
        str(vision), config.language_model, vision_feature_layer=config.vision_feature_layer, seed=config.seed
    )


__all__ = ["TINY_CLIP", "TINY_LLAVA", "build_model", "load_llava", "train_vision_tower"]
