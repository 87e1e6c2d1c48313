"""The TADA recipe from one config: discover slow-learnable rows, add SDEdit variants (or copies) of them, retrain
from scratch."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from datasets import Dataset, DatasetDict
from transformers import Trainer

from hfdc.data import card_name
from hfdc.distributed import process_state
from hfdc.tada.augment import augment, copies, with_synthetic
from hfdc.tada.config import TadaConfig
from hfdc.tada.generators import PipelineGenerator, UNetGenerator
from hfdc.useful import SlowLearnable, accuracy, choose_rows, load_splits, make_trainer, new_model

logger = logging.getLogger(__name__)

TADA_PAPER = "Do We Need All the Synthetic Data? Towards Targeted Synthetic Image Augmentation via Diffusion Models"
DDPM_PAPER = "Denoising Diffusion Probabilistic Models"


def train_or_load_ddpm(config: TadaConfig, train: Dataset):
    """The DDPM of ``output_dir/ddpm`` if it is there, else train one (resumable; every process joins) and save/push it
    with a card (main process)."""
    from diffusers import DDPMScheduler, UNet2DModel

    from hfdc.hub import push_model
    from hfdc.tada.ddpm import build_unet, train_ddpm

    folder = Path(config.output_dir) / "ddpm"
    if (folder / "config.json").exists() and (folder / "scheduler_config.json").exists():
        logger.info("using the DDPM already trained in %s", folder)
        return UNet2DModel.from_pretrained(str(folder)), DDPMScheduler.from_pretrained(str(folder))
    start = time.perf_counter()
    unet, scheduler, losses = train_ddpm(
        build_unet(train, conditional=config.ddpm_conditional, seed=config.seed, **config.ddpm_params),
        train,
        epochs=config.ddpm_epochs,
        batch_size=config.ddpm_batch_size,
        learning_rate=config.ddpm_learning_rate,
        seed=config.seed,
        checkpoint_dir=Path(config.output_dir) / "ddpm_checkpoints",
        cpu=config.use_cpu,
    )
    if not process_state().is_main_process:
        return unet, scheduler
    folder.mkdir(parents=True, exist_ok=True)
    scheduler.save_pretrained(str(folder))
    card = {
        "method": "tada",
        "paper": DDPM_PAPER,
        "arxiv": "2006.11239",
        "datasets": [card_name(config.dataset)],
        "tags": [
            "diffusers",
            "ddpm",
            "unconditional-image-generation" if not config.ddpm_conditional else "class-conditional",
        ],
        "description": f"Small {'class-conditional ' if config.ddpm_conditional else ''}UNet2DModel DDPM trained on {config.dataset} "
        "as the SDEdit generator of TADA (arXiv 2505.21574).",
        "config": config,
        "figures": {
            "final_train_loss": round(losses[-1], 4) if losses else "resumed",
            "training_seconds": round(time.perf_counter() - start, 1),
        },
    }
    push_model(unet, repo_id=config.ddpm_repo_id, output_dir=folder, card=card)
    return unet, scheduler


def build_generator(config: TadaConfig, train: Dataset):
    """The generator named by ``config.generator`` (see TadaConfig.generator), on this process's device; a loaded
    one in ``config.torch_dtype``."""
    import torch

    dtype = getattr(torch, config.torch_dtype)
    settings = dict(
        strength=config.strength,
        num_inference_steps=config.num_inference_steps,
        images_per_example=config.images_per_example,
    )
    if config.generator == "ddpm":
        return UNetGenerator(*train_or_load_ddpm(config, train), **settings)
    path = Path(config.generator)
    if (
        (path / "config.json").exists()
        and (path / "scheduler_config.json").exists()
        and not (path / "model_index.json").exists()
    ):
        from diffusers import DDPMScheduler, UNet2DModel

        unet = UNet2DModel.from_pretrained(str(path), torch_dtype=dtype).to(config.device)
        return UNetGenerator(unet, DDPMScheduler.from_pretrained(str(path)), **settings)
    if config.generator == "tiny-img2img":
        from hfdc.models import tiny

        pipeline = tiny("img2img", seed=config.seed).to(dtype=dtype)
    else:
        from diffusers import AutoPipelineForImage2Image

        pipeline = AutoPipelineForImage2Image.from_pretrained(config.generator, torch_dtype=dtype)
    pipeline = pipeline.to(config.device)  # each process generates its own shards on its own device
    return PipelineGenerator(
        pipeline,
        prompt_template=config.prompt_template,
        guidance_scale=config.guidance_scale,
        image_size=config.generation_image_size or None,
        **settings,
    )


@dataclass
class TadaResult:
    """The retrained trainer, the augmented rows, the added rows (SDEdit variants, or copies with
    ``addition="duplicate"``), the training set and test / generation figures."""

    trainer: Trainer
    slow: SlowLearnable | None
    augmented: list[int]
    added: Dataset
    train_dataset: Dataset
    metrics: dict


def train_tada(config: TadaConfig, data: DatasetDict | None = None, generator=None) -> TadaResult:
    """Run the whole recipe on ``data`` (default: :func:`hfdc.useful.load_splits`) with ``generator`` (an object
    with ``generate``; default: :func:`build_generator`)."""
    _ = config.device  # builds the (distributed) process state from the training arguments before anything uses it
    data = load_splits(config) if data is None else data
    train = data["train"]
    slow, indices = choose_rows(config, train, config.augment)
    start = time.perf_counter()
    if config.addition == "duplicate":
        added = copies(train, indices, config.images_per_example)
    else:
        added = generate(config, train, indices, generator)
    generation_seconds = time.perf_counter() - start
    augmented = with_synthetic(train, added)
    trainer = make_trainer(config, new_model(config, train), augmented, config.output_dir)
    trainer.train()
    metrics = {f"test_{k}": v for k, v in accuracy(trainer, data["test"]).items()}
    generated = sum(added["synthetic"])
    metrics.update(
        augmented_examples=len(indices),
        generated_images=generated,
        dropped_unsafe=len(indices) * config.images_per_example - generated if config.addition == "sdedit" else 0,
        generation_seconds=round(generation_seconds, 2),
        train_rows=len(augmented),
        processes=trainer.args.world_size,
    )
    if slow is not None:
        metrics.update(discovery_epoch=slow.epoch, slow_fraction=slow.stats["fraction"])
    logger.info("TADA (%s, %s): %s", config.augment, config.addition, metrics)
    return TadaResult(trainer, slow, indices, added, augmented, metrics)


def generate(config: TadaConfig, train: Dataset, indices: list[int], generator=None) -> Dataset:
    """SDEdit variants of the rows at ``indices`` under ``output_dir/synthetic/<augment>`` (every process generates
    its own shards; see :func:`hfdc.tada.augment`) with ``generator`` (default: :func:`build_generator`)."""
    if indices and generator is None:
        generator = build_generator(config, train)
    if indices and getattr(generator, "images_per_example", 1) != config.images_per_example:
        raise ValueError(
            f"the generator makes {getattr(generator, 'images_per_example', 1)} variant(s) per example but "
            f"images_per_example={config.images_per_example}; build it with the config's images_per_example"
        )
    settings = {
        k: getattr(config, k)
        for k in (
            "generator",
            "strength",
            "num_inference_steps",
            "guidance_scale",
            "prompt_template",
            "images_per_example",
            "torch_dtype",
        )
    }
    return augment(
        train,
        indices,
        generator,
        Path(config.output_dir) / "synthetic" / config.augment,
        batch_size=config.generation_batch_size,
        shard_size=config.shard_size,
        seed=config.seed,
        settings=settings,
    )
