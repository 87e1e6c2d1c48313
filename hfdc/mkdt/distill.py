"""MKDT distillation: learnable images X_s, target vectors Y_s and step size eta matched to expert KD trajectories.

Each iteration draws an expert and a start epoch t < max_start_epoch, computes the matching loss of
:mod:`hfdc.mkdt.matching` (N = syn_steps student steps against theta*_{t+M}, M = expert_epochs) and takes one SGD
(momentum) step on X_s, Y_s and eta; with ``max_grad_norm`` their joint gradient is clipped first (instance norm
makes the gradient of a near-blank image spike; the paper does not clip). X_s starts from the real images with the highest KD loss under the trained
experts and Y_s from their teacher representations (Joshi et al., ICLR 2025, arXiv 2410.02116).

Every ``eval_interval`` iterations a checkpoint (``checkpoint-<iteration>/``: the variables, the optimiser
momenta, the random generator and the loss history) is written; a new call resumes from the last one and gives
the same result as an uninterrupted run.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from datasets import Array3D, ClassLabel, Dataset, Features, Image, List, Value
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from hfdc.mkdt.experts import finished_experts, load_parameters
from hfdc.mkdt.matching import matching_loss
from hfdc.mkdt.student import new_student, outputs
from hfdc.models.images import to_pil

logger = logging.getLogger(__name__)


def check_experts(model, expert: Path, dim: int) -> None:
    """A ValueError when the expert's parameters do not fit the student built for ``dim``-d targets (experts
    trained on another teacher's representations, or with other student_params)."""
    saved = load_parameters(expert, 0)
    own = {name: tuple(p.shape) for name, p in model.named_parameters()}
    found = {name: tuple(t.shape) for name, t in saved.items()}
    if own != found:
        diff = {
            name: (found.get(name), own.get(name))
            for name in own.keys() | found.keys()
            if found.get(name) != own.get(name)
        }
        raise ValueError(
            f"the experts under {expert.parent} do not fit a student for the teacher's {dim}-d representations "
            f"(parameter: (saved shape, expected shape) {diff}); the teacher dims or student_params changed since "
            "`hfdc mkdt experts` ran: rerun it into a fresh output_dir"
        )


@torch.no_grad()
def kd_losses(model, experts: list[Path], epoch: int, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-image KD loss mean_d (f(x) - y)^2 under the experts' parameters after ``epoch`` epochs, averaged."""
    total = torch.zeros(len(images), device=images.device)
    for expert in experts:
        params = load_parameters(expert, epoch, images.device)
        for batch in torch.arange(len(images)).split(1024):
            total[batch] += ((outputs(model, images[batch], params) - targets[batch]) ** 2).mean(1)
    return total / len(experts)


def initial_rows(config, model, experts: list[Path], images, targets, generator: torch.Generator) -> torch.Tensor:
    """Rows that initialise X_s: the ``num_synthetic`` highest KD losses (init=high_loss) or a random draw."""
    if config.init == "random":
        return torch.randperm(len(images), generator=generator)[: config.num_synthetic].sort().values
    losses = kd_losses(model, experts[: config.init_experts], config.expert_train_epochs, images, targets)
    return losses.topk(config.num_synthetic).indices.sort().values


@dataclass
class DistillState:
    """What a checkpoint holds: the learnable variables, their optimisers, the generator and the history."""

    images: torch.Tensor
    targets: torch.Tensor
    lr: torch.Tensor
    rows: list[int]
    generator: torch.Generator
    iteration: int = 0
    losses: list[float] = field(default_factory=list)
    grad_norms: list[float] = field(default_factory=list)
    optimizers: list[torch.optim.Optimizer] = field(init=False)

    def make_optimizers(self, config) -> None:
        """SGD (momentum ``distill_momentum``) on the images, the targets and the step size."""
        for tensor in (self.images, self.targets, self.lr):
            tensor.requires_grad_(True)
        self.optimizers = [
            torch.optim.SGD([self.images], lr=config.lr_images, momentum=config.distill_momentum),
            torch.optim.SGD([self.targets], lr=config.lr_targets, momentum=config.distill_momentum),
            torch.optim.SGD([self.lr], lr=config.lr_lr, momentum=config.distill_momentum),
        ]

    def save(self, output_dir: Path) -> Path:
        """Write ``checkpoint-<iteration>`` and remove the older ones (the newest is complete before that)."""
        folder = output_dir / f"checkpoint-{self.iteration:06d}"
        tmp = output_dir / f"tmp-checkpoint-{self.iteration:06d}"
        tmp.mkdir(parents=True, exist_ok=True)
        tensors = {"images": self.images, "targets": self.targets, "lr": self.lr}
        for name, optimizer in zip(("images", "targets", "lr"), self.optimizers):
            buffer = optimizer.state[optimizer.param_groups[0]["params"][0]].get("momentum_buffer")
            if buffer is not None:
                tensors[f"momentum_{name}"] = buffer
        tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
        tensors["generator"] = self.generator.get_state()
        save_file(tensors, str(tmp / "state.safetensors"))
        meta = {
            "iteration": self.iteration,
            "lr": self.lr.item(),
            "rows": self.rows,
            "losses": self.losses,
            "grad_norms": self.grad_norms,
        }
        (tmp / "state.json").write_text(json.dumps(meta))
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)
        for old in output_dir.glob("checkpoint-*"):
            if old != folder:
                shutil.rmtree(old)
        return folder

    @classmethod
    def load(cls, folder: Path, config, device: torch.device) -> DistillState:
        """The state saved in ``folder``, its tensors on ``device``."""
        tensors = load_file(str(folder / "state.safetensors"))
        generator_state = tensors.pop("generator")
        tensors = {name: tensor.to(device) for name, tensor in tensors.items()}
        meta = json.loads((folder / "state.json").read_text())
        generator = torch.Generator()
        generator.set_state(generator_state)
        state = cls(tensors["images"], tensors["targets"], tensors["lr"], meta["rows"], generator, meta["iteration"])
        state.losses, state.grad_norms = meta["losses"], meta["grad_norms"]
        state.make_optimizers(config)
        for name, optimizer in zip(("images", "targets", "lr"), state.optimizers):
            if f"momentum_{name}" in tensors:
                optimizer.state[optimizer.param_groups[0]["params"][0]]["momentum_buffer"] = tensors[
                    f"momentum_{name}"
                ]
        return state


def last_checkpoint(output_dir) -> Path | None:
    """The newest ``checkpoint-*`` folder under ``output_dir`` (None when there is none)."""
    folders = sorted(Path(output_dir).glob("checkpoint-*")) if Path(output_dir).is_dir() else []
    return folders[-1] if folders else None


def learned_step_size(output_dir) -> float:
    """The step size eta learned by the distillation run under ``output_dir`` (its newest checkpoint)."""
    folder = last_checkpoint(output_dir)
    if folder is None:
        raise FileNotFoundError(f"no distillation checkpoint under {output_dir}: run `hfdc mkdt distill` first")
    return json.loads((folder / "state.json").read_text())["lr"]


def distill(
    config,
    images: torch.Tensor,
    targets: torch.Tensor,
    experts_dir,
    output_dir,
    labels: torch.Tensor | None = None,
    label_names: list[str] | None = None,
    mode: str = "L",
) -> Dataset:
    """Distil (images, teacher targets) into ``config.num_synthetic`` rows by trajectory matching against the
    experts under ``experts_dir``; checkpoints (and resumes) under ``output_dir``.

    Returns a Dataset with ``pixel_values`` (the learned images, float32, exactly as trained), ``image`` (their
    8-bit rendering for viewers), ``target`` (the learned target vectors), ``source_row`` (the real row each image
    started from) and, given ``labels``, that row's ``label``. The learned step size is
    :func:`learned_step_size` of ``output_dir``.
    """
    if len(images) == 0:
        raise ValueError("no training images to distil")
    if len(images) != len(targets):
        raise ValueError(
            f"{len(images)} images but {len(targets)} teacher representations: rerun `hfdc mkdt teacher` for this data"
        )
    if config.num_synthetic > len(images):
        raise ValueError(f"num_synthetic={config.num_synthetic} exceeds the {len(images)} training rows")
    output_dir = Path(output_dir)
    experts = finished_experts(experts_dir, config.expert_train_epochs)
    model = new_student(config, images, targets.shape[1], seed=config.seed)
    check_experts(model, experts[0], targets.shape[1])
    checkpoint = last_checkpoint(output_dir)
    if checkpoint is not None:
        state = DistillState.load(checkpoint, config, images.device)
        logger.info("resuming distillation from %s", checkpoint)
    else:
        generator = torch.Generator().manual_seed(config.seed)
        rows = initial_rows(config, model, experts, images, targets, generator)
        state = DistillState(
            images[rows].clone(),
            targets[rows].clone(),
            torch.tensor(config.lr_init, device=images.device),
            rows.tolist(),
            generator,
        )
        state.make_optimizers(config)
    bar = tqdm(
        range(state.iteration, config.iterations),
        desc="MKDT distillation",
        initial=state.iteration,
        total=config.iterations,
    )
    for _ in bar:
        expert = experts[int(torch.randint(len(experts), (1,), generator=state.generator))]
        start = int(torch.randint(config.max_start_epoch, (1,), generator=state.generator))
        loss = matching_loss(
            model,
            load_parameters(expert, start, images.device),
            load_parameters(expert, start + config.expert_epochs, images.device),
            state.images,
            state.targets,
            state.lr,
            config.syn_steps,
            config.syn_batch_size,
            state.generator,
        )
        for optimizer in state.optimizers:
            optimizer.zero_grad()
        loss.backward()
        variables = [state.images, state.targets, state.lr]
        norm = torch.nn.utils.clip_grad_norm_(variables, config.max_grad_norm or float("inf"))
        for optimizer in state.optimizers:
            optimizer.step()
        state.iteration += 1
        state.losses.append(loss.item())
        state.grad_norms.append(norm.item())
        bar.set_postfix(loss=f"{loss.item():.4f}", lr=f"{state.lr.item():.4g}")
        if state.iteration % config.eval_interval == 0 or state.iteration == config.iterations:
            state.save(output_dir)
    return distilled_dataset(state, labels, label_names, mode)


def distilled_dataset(state: DistillState, labels, label_names, mode: str) -> Dataset:
    """The distilled rows as a Dataset (see :func:`distill`)."""
    images = state.images.detach().cpu()
    columns = {
        "pixel_values": images.numpy(),
        "image": [to_pil(image, mode) for image in images],
        "target": state.targets.detach().cpu().numpy(),
        "source_row": state.rows,
    }
    features = {
        "pixel_values": Array3D(shape=tuple(images.shape[1:]), dtype="float32"),
        "image": Image(mode=mode),
        "target": List(Value("float32"), length=state.targets.shape[1]),
        "source_row": Value("int64"),
    }
    if labels is not None:
        columns["label"] = np.asarray(labels)[state.rows].tolist()
        features["label"] = ClassLabel(names=label_names) if label_names else Value("int64")
    return Dataset.from_dict(columns, features=Features(features))
