"""Expert trajectories of MKDT: students trained by knowledge distillation, parameters saved after every epoch.

Expert e trains a fresh student (seed ``config.seed + e``) with SGD on MSE(student(x), teacher(x)) and writes
``expert_<e>/epoch_<k>.safetensors`` for k = 0 (init) .. expert_train_epochs. Under ``accelerate launch`` process p
trains the experts e with e % num_processes == p; an expert whose last epoch is on disk is skipped, an unfinished
one is trained again from its seed (same trajectory).
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from hfdc.distributed import process_state
from hfdc.mkdt.student import fit, new_student
from hfdc.runs import atomic_write


def epoch_file(expert: Path, epoch: int) -> Path:
    """Where expert ``expert`` keeps its parameters after ``epoch`` epochs (0 = initialisation)."""
    return Path(expert) / f"epoch_{epoch:03d}.safetensors"


def save_parameters(model: torch.nn.Module, path: Path) -> None:
    """The model's named parameters as a safetensors file, written atomically (temporary file, then rename)."""
    parameters = {name: p.detach().cpu().contiguous() for name, p in model.named_parameters()}
    atomic_write(path, lambda tmp: save_file(parameters, str(tmp)))


def load_parameters(expert: Path, epoch: int, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """Expert ``expert``'s parameters after ``epoch`` epochs on ``device``; a FileNotFoundError names a missing file."""
    path = epoch_file(expert, epoch)
    if not path.is_file():
        raise FileNotFoundError(
            f"expert trajectory file {path} is missing (epoch {epoch}); run `hfdc mkdt experts` with the same "
            "config (it trains the unfinished experts) or lower max_start_epoch / expert_epochs"
        )
    return load_file(str(path), device=str(device))


def train_experts(config, images: torch.Tensor, targets: torch.Tensor, output_dir) -> list[Path]:
    """Train ``config.num_experts`` KD experts on (images, teacher targets) under ``output_dir``; every process
    trains its share on its device; returns the expert folders once all processes are done."""
    if len(images) != len(targets):
        raise ValueError(
            f"{len(images)} images but {len(targets)} teacher representations: the representations must be "
            "aligned with the training rows (rerun `hfdc mkdt teacher` for this data)"
        )
    root = Path(output_dir)
    state = process_state()
    images, targets = images.to(state.device), targets.to(state.device)
    mine = range(state.process_index, config.num_experts, state.num_processes)
    for index in tqdm(mine, desc=f"experts (process {state.process_index})", disable=not len(mine)):
        folder = root / f"expert_{index:04d}"
        if epoch_file(folder, config.expert_train_epochs).is_file():
            continue
        folder.mkdir(parents=True, exist_ok=True)
        model = new_student(config, images, targets.shape[1], seed=config.seed + index)
        save_parameters(model, epoch_file(folder, 0))
        fit(
            model,
            images,
            targets,
            lr=config.expert_learning_rate,
            epochs=config.expert_train_epochs,
            batch_size=config.expert_batch_size,
            momentum=config.expert_momentum,
            weight_decay=config.expert_weight_decay,
            generator=torch.Generator().manual_seed(config.seed + index),
            on_epoch=lambda epoch, m, folder=folder: save_parameters(m, epoch_file(folder, epoch)),
            desc=f"expert {index}",
        )
    state.wait_for_everyone()
    return [root / f"expert_{index:04d}" for index in range(config.num_experts)]


def finished_experts(output_dir, epochs: int) -> list[Path]:
    """The expert folders under ``output_dir`` that hold every epoch up to ``epochs``; a FileNotFoundError when
    there are none."""
    root = Path(output_dir)
    experts = sorted(p for p in root.glob("expert_*") if p.is_dir() and epoch_file(p, epochs).is_file())
    if not experts:
        raise FileNotFoundError(
            f"no finished expert trajectories (expert_*/epoch_{epochs:03d}.safetensors) under {root}: run "
            "`hfdc mkdt experts` first (same output_dir)"
        )
    return experts
