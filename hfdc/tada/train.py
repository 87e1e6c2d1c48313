"""The TADA recipe from one config: discover slow-learnable rows, add SDEdit variants of them, retrain from scratch."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from datasets import Dataset, DatasetDict
from transformers import Trainer

from hfdc.data import card_name
from hfdc.distributed import process_state
from hfdc.tada.augment import augment, with_synthetic
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
        build_unet(train, conditional=config.ddpm_conditional, seed=config.seed),
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
    """The generator named by ``config.generator`` (see TadaConfig.generator)."""
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

        return UNetGenerator(
            UNet2DModel.from_pretrained(str(path)), DDPMScheduler.from_pretrained(str(path)), **settings
        )
    if config.generator == "tiny-img2img":
        from hfdc.models import tiny

        pipeline = tiny("img2img", seed=config.seed)
    else:
        from diffusers import AutoPipelineForImage2Image

        pipeline = AutoPipelineForImage2Image.from_pretrained(config.generator)
        if not config.use_cpu:
            import torch

            if torch.cuda.is_available():
                pipeline = pipeline.to("cuda")
    return PipelineGenerator(
        pipeline,
        prompt_template=config.prompt_template,
        guidance_scale=config.guidance_scale,
        image_size=config.generation_image_size or None,
        **settings,
    )


@dataclass
class TadaResult:
    """The retrained trainer, the augmented rows, the synthetic images and test / generation figures."""

    trainer: Trainer
    slow: SlowLearnable | None
    augmented: list[int]
    synthetic: Dataset
    train_dataset: Dataset
    metrics: dict


def train_tada(config: TadaConfig, data: DatasetDict | None = None, generator=None) -> TadaResult:
    """Run the whole recipe on ``data`` (default: :func:`hfdc.useful.load_splits`) with ``generator`` (an object
    with ``generate``; default: :func:`build_generator`)."""
    _ = config.device  # builds the (distributed) process state from the training arguments before anything uses it
    data = load_splits(config) if data is None else data
    train = data["train"]
    slow, indices = choose_rows(config, train, config.augment)
    if indices and generator is None:
        generator = build_generator(config, train)
    settings = {
        k: getattr(config, k)
        for k in (
            "generator",
            "strength",
            "num_inference_steps",
            "guidance_scale",
            "prompt_template",
            "images_per_example",
        )
    }
    start = time.perf_counter()
    with process_state().main_process_first():  # the main process generates; the others then find every shard done
        synthetic = augment(
            train,
            indices,
            generator,
            Path(config.output_dir) / "synthetic" / config.augment,
            batch_size=config.generation_batch_size,
            shard_size=config.shard_size,
            seed=config.seed,
            settings=settings,
        )
    generation_seconds = time.perf_counter() - start
    augmented = with_synthetic(train, synthetic)
    trainer = make_trainer(config, new_model(config, train), augmented, config.output_dir)
    trainer.train()
    metrics = {f"test_{k}": v for k, v in accuracy(trainer, data["test"]).items()}
    metrics.update(
        augmented_examples=len(indices),
        generated_images=len(synthetic),
        generation_seconds=round(generation_seconds, 2),
        train_rows=len(augmented),
        processes=trainer.args.world_size,
    )
    logger.info("TADA (%s): %s", config.augment, metrics)
    return TadaResult(trainer, slow, indices, synthetic, augmented, metrics)
