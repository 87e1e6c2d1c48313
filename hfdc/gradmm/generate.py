"""``generate``: a labelled Dataset + a causal LM -> a synthetic labelled Dataset of readable text (GRADMM).

Work is split into units, one per (class, group of ``generation_batch_size`` sequences), spread round-robin over
the processes of an ``accelerate launch``. Each unit checkpoints its ADMM state after every outer iteration
(``generation/unit-c<class>-g<group>.pt``) and writes its rows when done (``.json``); a rerun skips finished units
and continues unfinished ones from their last iteration, so a killed run ends with the same rows. Every random
choice is seeded by (seed, class[, group]), so the rows do not depend on the number of processes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
from datasets import ClassLabel, Dataset, Features, Value
from tqdm.auto import tqdm

from hfdc.distributed import process_state
from hfdc.gradmm import admm
from hfdc.gradmm.config import GradmmConfig
from hfdc.gradmm.gradients import LM_HEAD, embed, parameter_block, target_gradient
from hfdc.gradmm.privacy import add_dp_noise, dp_noise_std
from hfdc.gradmm.task import Task, build_task, check_fits
from hfdc.gradmm.vocab import allowed_tokens
from hfdc.runs import atomic_write, check_run_settings

logger = logging.getLogger(__name__)

WORK_DIR = "generation"
MANIFEST = "manifest.json"
# Fields that change the generated rows; a rerun into a folder made with other values is refused.
GENERATION_FIELDS = (
    "dataset",
    "dataset_params",
    "split",
    "text_column",
    "label_column",
    "prompt",
    "label_words",
    "decode_prefix",
    "real_per_class",
    "gradient_parameters",
    "synthetic_per_class",
    "generation_batch_size",
    "sequence_length",
    "admm_steps",
    "admm_inner_steps",
    "rho",
    "topk",
    "learning_rate",
    "lr_step_size",
    "lr_gamma",
    "grad_clip",
    "matching_loss",
    "l1_weight",
    "perplexity_weight",
    "init_candidates",
    "vocab_filter",
    "max_token_chars",
    "dp",
    "dp_clip_norm",
    "dp_epsilon",
    "dp_delta",
    "seed",
)


def seed_of(*keys: int) -> int:
    """A 63-bit seed derived from integer keys (the same keys give the same seed on every process)."""
    return int(np.random.SeedSequence(list(keys)).generate_state(1, dtype=np.uint64)[0] >> 1)


def admm_settings(config: GradmmConfig) -> admm.AdmmSettings:
    """The ADMM knobs of ``config``."""
    return admm.AdmmSettings(
        rho=config.rho,
        topk=config.topk,
        inner_steps=config.admm_inner_steps,
        learning_rate=config.learning_rate,
        lr_step_size=config.lr_step_size,
        lr_gamma=config.lr_gamma,
        grad_clip=config.grad_clip,
        matching_loss=config.matching_loss,
        l1_weight=config.l1_weight,
        perplexity_weight=config.perplexity_weight,
    )


def real_subsets(dataset: Dataset, config: GradmmConfig, num_classes: int) -> dict[int, list[str]]:
    """Up to ``real_per_class`` texts per class, drawn without replacement with seed (seed, class)."""
    labels = np.asarray(dataset[config.label_column])
    outside = sorted(set(labels.tolist()) - set(range(num_classes)))
    if outside:
        raise ValueError(
            f"column {config.label_column!r} holds class ids {outside[:5]} outside 0..{num_classes - 1}; label_words "
            f"names {num_classes} classes"
        )
    subsets = {}
    for c in range(num_classes):
        rows = np.flatnonzero(labels == c)
        if len(rows) == 0:
            raise ValueError(
                f"class {c} (label word {config.label_words[c]!r}) has no rows in the data set: GRADMM needs real "
                f"examples of every class; drop the class from label_words or use a split that has it"
            )
        if len(rows) < config.real_per_class:
            logger.warning("class %d has %d rows, fewer than real_per_class=%d", c, len(rows), config.real_per_class)
        chosen = np.random.default_rng([config.seed, 0, c]).choice(rows, min(len(rows), config.real_per_class), False)
        subsets[c] = [dataset[int(i)][config.text_column] for i in sorted(chosen)]
    return subsets


def check_columns(dataset, config: GradmmConfig) -> None:
    """Raise ValueError unless ``dataset`` is one split with the text and label columns."""
    if not isinstance(dataset, Dataset):
        raise TypeError(f"generate takes one split (a datasets.Dataset), got {type(dataset).__name__}")
    missing = [c for c in (config.text_column, config.label_column) if c not in dataset.column_names]
    if missing:
        raise ValueError(
            f"data set has no column(s) {missing} (columns: {dataset.column_names}); set text_column / label_column"
        )
    label = dataset.features[config.label_column]
    if isinstance(label, ClassLabel) and label.num_classes != len(config.label_words):
        raise ValueError(
            f"{config.label_column!r} has {label.num_classes} classes {label.names} but label_words has "
            f"{len(config.label_words)} words; give one label word per class"
        )


class ClassProblems:
    """Builds (once per class, lazily) the :class:`~hfdc.gradmm.admm.Problem` of every class."""

    def __init__(self, model, tokenizer, task: Task, subsets: dict[int, list[str]], config: GradmmConfig):
        self.model, self.tokenizer, self.task, self.config = model, tokenizer, task, config
        self.subsets = subsets
        self.block = parameter_block(model, config.gradient_parameters)
        device = self.block[0].device
        self.embeddings = embed(
            model, torch.arange(model.get_input_embeddings().num_embeddings, device=device)
        ).float()
        self.allowed = allowed_tokens(tokenizer, len(self.embeddings), config.vocab_filter, config.max_token_chars).to(
            device
        )
        self.init_norm = self.embeddings[self.allowed].norm(dim=-1).mean().item()
        self.encoded = {c: [task.encode(tokenizer, text) for text in texts] for c, texts in subsets.items()}
        for c, sequences in self.encoded.items():
            for text, ids in zip(subsets[c], sequences):
                check_fits(len(ids), model, f"real example {text[:40]!r}... of class {c} with the prompt")
        self._problems: dict[int, admm.Problem] = {}

    def sequence_length(self, c: int) -> int:
        """Tokens of class ``c``'s synthetic sequences: ``sequence_length`` or the mean real length."""
        if self.config.sequence_length:
            return self.config.sequence_length
        return int(round(np.mean([len(ids) for ids in self.encoded[c]])))

    def target(self, c: int) -> list[torch.Tensor]:
        """Class ``c``'s target gradient; with dp, clipped per example and noised (seed (seed, class))."""
        config = self.config
        clip = config.dp_clip_norm if config.dp else None
        target = target_gradient(self.model, self.block, self.encoded[c], self.task.label_ids[c], clip)
        if config.dp:
            std = dp_noise_std(config.dp_clip_norm, len(self.encoded[c]), config.dp_epsilon, config.dp_delta)
            target = add_dp_noise(target, std, torch.Generator().manual_seed(seed_of(config.seed, 2, c)))
        return target

    def __getitem__(self, c: int) -> admm.Problem:
        if c not in self._problems:
            config, task, device = self.config, self.task, self.embeddings.device
            length = self.sequence_length(c)
            free = length - task.pinned_length
            if free < 1:
                raise ValueError(
                    f"sequence_length={length} leaves no free position after the {task.pinned_length} pinned tokens "
                    "(special tokens + prompt); raise sequence_length"
                )
            check_fits(length, self.model, f"sequence_length ({'set' if config.sequence_length else 'mean real'})")
            context = self.tokenizer(config.decode_prefix.format(label=config.label_words[c]))["input_ids"]
            if not context:
                raise ValueError("decode_prefix is empty and the tokenizer adds no BOS token: give decode_prefix text")
            check_fits(len(context) + free, self.model, "decode_prefix plus the free positions")
            self._problems[c] = admm.Problem(
                model=self.model,
                block=self.block,
                target=self.target(c),
                label_id=task.label_ids[c],
                front_ids=torch.tensor(task.special_ids, dtype=torch.long, device=device),
                prompt_ids=torch.tensor(task.prompt_ids, dtype=torch.long, device=device),
                free_length=free,
                batch_size=config.generation_batch_size,
                embeddings=self.embeddings,
                allowed=self.allowed,
                context_ids=torch.tensor([context], device=device),
                settings=admm_settings(config),
                lm_head=config.gradient_parameters == LM_HEAD,
            )
        return self._problems[c]


def group_sizes(config: GradmmConfig) -> list[int]:
    """Sequences per group: ``generation_batch_size`` each, the last group takes the remainder."""
    full, rest = divmod(config.synthetic_per_class, config.generation_batch_size)
    return [config.generation_batch_size] * full + ([rest] if rest else [])


def run_unit(problems: ClassProblems, c: int, g: int, size: int, folder: Path, progress) -> None:
    """Run (or continue) the ADMM of class ``c``, group ``g`` and write its rows to ``unit-c<c>-g<g>.json``."""
    config, stem = problems.config, f"unit-c{c}-g{g}"
    problem = problems[c]
    if size != problem.batch_size:
        problem = dataclasses.replace(problem, batch_size=size)
    checkpoint = folder / f"{stem}.pt"
    start = time.perf_counter()
    if checkpoint.exists():
        saved = torch.load(checkpoint, map_location=problem.embeddings.device, weights_only=False)
        state = admm.AdmmState.from_state_dict(saved, problem.settings)
        start -= saved["seconds"]
        progress.update(state.step)
    else:
        generator = torch.Generator().manual_seed(seed_of(config.seed, 1, c, g))
        state = admm.AdmmState.start(
            admm.initial_x(problem, generator, config.init_candidates, problems.init_norm), problem.settings
        )

    def save(state: admm.AdmmState) -> None:
        saved = {**state.state_dict(), "seconds": time.perf_counter() - start}
        atomic_write(checkpoint, lambda p: torch.save(saved, p))
        progress.update(1)
        progress.set_postfix(cls=c, group=g, match=f"{state.history[-1]['matching_loss']:.4f}")

    admm.run_admm(problem, state, config.admm_steps, on_step=save)
    free_ids, losses, group_loss = admm.decode_result(problem, state)
    rows = {
        "class": c,
        "group": g,
        "texts": problems.tokenizer.batch_decode(free_ids.tolist()),
        "token_ids": free_ids.tolist(),
        "matching_loss": losses,
        "group_matching_loss": group_loss,
        "history": state.history,
        "seconds": time.perf_counter() - start,
    }
    atomic_write(folder / f"{stem}.json", lambda p: p.write_text(json.dumps(rows)))
    checkpoint.unlink(missing_ok=True)


def read_units(folder: Path, num_classes: int, groups: int) -> list[dict]:
    """The finished units' records, in (class, group) order."""
    return [
        json.loads((folder / f"unit-c{c}-g{g}.json").read_text()) for c in range(num_classes) for g in range(groups)
    ]


@contextlib.contextmanager
def generation_mode(model, block):
    """Eval mode (no dropout) and gradients on for the matched block, both restored afterwards."""
    training, flags = model.training, [p.requires_grad for p in block]
    model.eval()
    for p in block:
        p.requires_grad_(True)
    try:
        yield
    finally:
        model.train(training)
        for p, flag in zip(block, flags):
            p.requires_grad_(flag)


def generate(dataset: Dataset, model, tokenizer, config: GradmmConfig) -> Dataset:
    """Synthetic rows (text, label, matching_loss, group_matching_loss, group) for every class of ``dataset``.

    ``matching_loss`` is the row's own gradient against its class target; ``group_matching_loss`` that of the
    whole group it was optimised with (what ADMM minimised), both on the final token ids. Work folder:
    ``<output_dir>/generation``. Under ``accelerate launch`` each process runs its share of the units; every
    process returns the whole set.
    """
    check_columns(dataset, config)
    task = build_task(tokenizer, config.prompt, config.label_words)
    subsets = real_subsets(dataset, config, task.num_classes)
    problems = ClassProblems(model, tokenizer, task, subsets, config)
    folder = Path(config.output_dir) / WORK_DIR
    state = process_state()
    manifest = {name: getattr(config, name) for name in GENERATION_FIELDS}
    manifest["model"] = getattr(model, "name_or_path", type(model).__name__)
    check_run_settings(folder, manifest, "a GRADMM run", MANIFEST, write=state.is_main_process)
    state.wait_for_everyone()

    sizes = group_sizes(config)
    units = [(c, g) for c in range(task.num_classes) for g in range(len(sizes))]
    assigned = units[state.process_index :: state.num_processes]
    mine = [(c, g) for c, g in assigned if not (folder / f"unit-c{c}-g{g}.json").exists()]
    logger.info("process %d of %d runs units %s", state.process_index, state.num_processes, assigned)
    if len(mine) < len(assigned):
        logger.info(
            "resuming GRADMM in %s: %d of %d units of this process done",
            folder,
            len(assigned) - len(mine),
            len(assigned),
        )
    progress = tqdm(
        total=len(mine) * config.admm_steps,
        desc=f"GRADMM outer steps (process {state.process_index})",
        disable=not state.is_local_main_process,
    )
    with generation_mode(model, problems.block):
        for c, g in mine:
            run_unit(problems, c, g, sizes[g], folder, progress)
    progress.close()
    state.wait_for_everyone()

    records = read_units(folder, task.num_classes, len(sizes))
    label_feature = dataset.features[config.label_column]
    features = Features(
        {
            "text": Value("string"),
            "label": label_feature if isinstance(label_feature, ClassLabel) else Value("int64"),
            "matching_loss": Value("float64"),
            "group_matching_loss": Value("float64"),
            "group": Value("int64"),
        }
    )
    columns = {name: [] for name in features}
    for record in records:
        n = len(record["texts"])
        columns["text"] += record["texts"]
        columns["label"] += [record["class"]] * n
        columns["matching_loss"] += record["matching_loss"]
        columns["group_matching_loss"] += [record["group_matching_loss"]] * n
        columns["group"] += [record["group"]] * n
    return Dataset.from_dict(columns, features=features)
