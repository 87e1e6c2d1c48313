"""Train a small class-conditional DDPM (``UNet2DModel`` + ``DDPMScheduler``) on a labelled image set, with Accelerate.

Follows diffusers' ``train_unconditional.py`` conventions (Ho et al., "Denoising Diffusion Probabilistic
Models", NeurIPS 2020, arXiv 2006.11239): for x_0 in [-1, 1], t ~ U{0..T-1}, eps ~ N(0, I),

    loss = || eps - eps_theta(sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, t, y) ||^2,

AdamW with cosine schedule and warm-up. The class y enters through ``num_class_embeds``. With
``checkpoint_dir`` the Accelerate state is saved every epoch and a rerun resumes from the last one (only with
the same settings: they are recorded in ``settings.json`` there, and a different run is refused).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from datasets import Dataset
from tqdm.auto import tqdm

from hfdc.models.images import image_mode, pixel_values
from hfdc.runs import check_run_settings

logger = logging.getLogger(__name__)


def build_unet(train: Dataset, conditional: bool = True, seed: int = 0, **overrides):
    """A fresh small ``UNet2DModel`` sized for ``train``'s images (class-conditional over its labels by default)."""
    from hfdc.models import tiny

    size = train.with_format(None)[0]["image"].size[0]
    channels = 1 if image_mode(train) == "L" else 3
    num_classes = train.features["label"].num_classes if conditional else None
    return tiny(
        "unet",
        seed=seed,
        sample_size=size,
        in_channels=channels,
        out_channels=channels,
        num_class_embeds=num_classes,
        **overrides,
    )


def train_ddpm(
    unet,
    train: Dataset,
    epochs: int = 50,
    batch_size: int = 64,
    learning_rate: float = 1e-3,
    warmup_steps: int = 50,
    num_train_timesteps: int = 1000,
    seed: int = 0,
    checkpoint_dir: str | Path | None = None,
    cpu: bool = False,
):
    """Train ``unet`` as a DDPM noise predictor on ``train``'s images (and labels).

    Returns (unet, DDPMScheduler, mean training loss of every epoch run now).
    """
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from diffusers import DDPMScheduler
    from diffusers.optimization import get_cosine_schedule_with_warmup
    from torch.utils.data import DataLoader

    if epochs < 1:
        raise ValueError(f"ddpm epochs must be >= 1, got {epochs}")
    set_seed(seed)
    accelerator = Accelerator(cpu=cpu)
    scheduler = DDPMScheduler(num_train_timesteps=num_train_timesteps)
    mode = image_mode(train)
    conditional = unet.config.num_class_embeds is not None

    def transform(batch):
        return {"x": pixel_values(batch["image"], mode), "y": torch.tensor(batch["label"])}

    loader = DataLoader(
        train.with_transform(transform), batch_size=batch_size, shuffle=True, drop_last=len(train) > batch_size
    )
    optimizer = torch.optim.AdamW(unet.parameters(), lr=learning_rate)
    lr_schedule = get_cosine_schedule_with_warmup(optimizer, warmup_steps, epochs * len(loader))
    unet.train()
    unet, optimizer, loader, lr_schedule = accelerator.prepare(unet, optimizer, loader, lr_schedule)
    first_epoch = 0
    checkpoints = Path(checkpoint_dir) if checkpoint_dir else None
    if checkpoints is not None:
        settings = dict(
            rows=len(train),
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            warmup_steps=warmup_steps,
            num_train_timesteps=num_train_timesteps,
            seed=seed,
            # the public fields: ``_use_default_values`` lists names from a set, in each process's own hash order
            unet={k: v for k, v in accelerator.unwrap_model(unet).config.items() if not k.startswith("_")},
        )
        with accelerator.main_process_first():  # the main process records them, the others then compare
            recorded = json.loads(json.dumps(settings, default=str))
            check_run_settings(
                checkpoints, recorded, "DDPM checkpoints of a run", "settings.json", accelerator.is_main_process
            )
    if checkpoints is not None and (checkpoints / "epoch.txt").exists():
        accelerator.load_state(str(checkpoints))
        first_epoch = int((checkpoints / "epoch.txt").read_text())
        logger.info("resuming DDPM training at epoch %d from %s", first_epoch, checkpoints)
    progress = tqdm(range(first_epoch, epochs), desc="DDPM epochs", disable=not accelerator.is_local_main_process)
    epoch_losses = []
    for epoch in progress:
        total = 0.0
        for batch in loader:
            x0 = batch["x"]
            noise = torch.randn_like(x0)
            t = torch.randint(0, num_train_timesteps, (len(x0),), device=x0.device)
            noisy = scheduler.add_noise(x0, noise, t)
            with accelerator.accumulate(unet):
                pred = unet(noisy, t, class_labels=batch["y"] if conditional else None).sample
                loss = torch.nn.functional.mse_loss(pred.float(), noise.float())
                accelerator.backward(loss)
                accelerator.clip_grad_norm_(unet.parameters(), 1.0)
                optimizer.step()
                lr_schedule.step()
                optimizer.zero_grad()
            total += loss.item()
        epoch_losses.append(total / len(loader))
        progress.set_postfix(loss=epoch_losses[-1])
        if checkpoints is not None:
            accelerator.save_state(str(checkpoints))
            if accelerator.is_main_process:
                (checkpoints / "epoch.txt").write_text(str(epoch + 1))
    return accelerator.unwrap_model(unet).eval(), scheduler, epoch_losses
