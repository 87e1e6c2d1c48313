"""ColmTrainer: train on a per-step mini-batch coreset of a larger batch (CoLM, Nguyen et al. 2025, arXiv 2407.19580).

The dataloader yields LARGE batches (``ColmConfig.large_batch_size`` per device). Once per optimizer step
(``get_batch_samples``, the Trainer's seam for the micro-batches of one step) the trainer takes the large batches
of every gradient-accumulation micro-step, computes zeroth-order per-example gradient features on a small
parameter block (forward passes only), pools them over micro-steps and ranks, normalises them Adam-style with
moments kept across steps (never forming the [B, D] feature matrix), selects ``selection_ratio`` of the pool
per source by facility location (``select_small_batch``; rank 0 selects and broadcasts) and hands the Trainer
the selected rows as small micro-batches: forward + backward run on those only. This is the reference code's
step: all micro-batches of an optimizer step are gathered and selected from once. The feature moments are saved
in checkpoints (``colm_state.pt``).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from typing import Any

import torch
from accelerate.utils import broadcast_object_list
from transformers import DataCollatorForLanguageModeling, DataCollatorForSeq2Seq, Trainer

from hfdc.colm.config import ColmConfig
from hfdc.colm.features import ZerothOrderFeatures, find_parameter_block, per_example_loss, zeroth_order_features
from hfdc.colm.moments import FeatureMoments, raw_features
from hfdc.colm.selection import matching_errors, select_small_batch

STATE_NAME = "colm_state.pt"
SOURCE_KEY = "colm_source"
WEIGHT_KEY = "colm_weights"
UNKNOWN_SOURCE = -1  # id of an evaluation source that training never saw (never selected from)
HISTORY_SIZE = 1000  # selections kept in ColmTrainer.colm_history, so long runs do not grow it without bound
PAD_LABEL = -100


@dataclass
class SourceCollator:
    """Collate rows with ``base`` and add each row's source as integer ids under ``colm_source`` (the position in
    ``sources``; ``UNKNOWN_SOURCE`` for a source training never saw, e.g. in an evaluation set)."""

    base: Any
    sources: list[str]
    column: str = "source"

    def __call__(self, rows: list[dict]) -> dict:
        if any(self.column not in row for row in rows):
            return self.base(rows)
        ids = {name: i for i, name in enumerate(self.sources)}
        batch = self.base([{k: v for k, v in row.items() if k != self.column} for row in rows])
        batch[SOURCE_KEY] = torch.tensor([ids.get(row[self.column], UNKNOWN_SOURCE) for row in rows])
        return batch


def check_sharding(trainer: Trainer) -> None:
    """Raise unless every rank holds the whole parameter block the features perturb (not under FSDP or ZeRO-3)."""
    zero_stage = trainer.accelerator.state.deepspeed_plugin.zero_stage if trainer.is_deepspeed_enabled else 0
    if trainer.is_fsdp_enabled or zero_stage == 3:
        mode = "FSDP" if trainer.is_fsdp_enabled else "DeepSpeed ZeRO-3"
        raise ValueError(
            f"ColmTrainer does not support {mode}: it shards the parameter block that the zeroth-order features "
            "perturb. Launch single-process, with DDP (recipes/accelerate/multi_gpu.yaml) or DeepSpeed ZeRO-1/2"
        )


class ColmTrainer(Trainer):
    """A Trainer whose every step trains on a facility-location coreset of a larger batch (module docstring).

    ``train_dataset`` needs the ``args.source_column`` column next to the tokenized inputs with ``labels``
    (the default collator, DataCollatorForLanguageModeling(mlm=False), makes them). ``colm_history`` records
    the last ``HISTORY_SIZE`` selections (step, positions in the gathered large batch, weights, sources).
    """

    def __init__(
        self,
        model=None,
        args: ColmConfig | None = None,
        data_collator=None,
        train_dataset=None,
        processing_class=None,
        **kwargs,
    ):
        if not isinstance(args, ColmConfig):
            raise TypeError(f"ColmTrainer needs args=ColmConfig(...), got {type(args).__name__}")
        if train_dataset is None or args.source_column not in train_dataset.column_names:
            raise ValueError(
                f"train_dataset needs a {args.source_column!r} column (set source_column to the column "
                "naming each example's data source)"
            )
        self.sources = sorted(set(train_dataset[args.source_column]))
        missing = sorted(set(args.keep_sources) - set(self.sources))
        if missing:
            raise ValueError(
                f"keep_sources {missing} have no examples (empty source) in column "
                f"{args.source_column!r}; sources are {self.sources}"
            )
        if data_collator is None:
            if processing_class is None:
                raise ValueError("pass data_collator= or processing_class= (a tokenizer) to ColmTrainer")
            data_collator = (
                DataCollatorForSeq2Seq(processing_class, label_pad_token_id=PAD_LABEL)
                if "labels" in train_dataset.column_names
                else DataCollatorForLanguageModeling(processing_class, mlm=False)
            )
        super().__init__(
            model=model,
            args=args,
            data_collator=SourceCollator(data_collator, self.sources, args.source_column),
            train_dataset=train_dataset,
            processing_class=processing_class,
            **kwargs,
        )
        check_sharding(self)
        self.block = find_parameter_block(self.model, args.zo_parameters, args.zo_lora_matrices)
        dim = sum(p.numel() for _, p in self.block)
        self.moments = FeatureMoments(dim, args.adam_beta1, args.adam_beta2, args.adam_epsilon)
        self.colm_history: list[dict] = []
        self._colm_logs: list[dict] = []
        if args.use_medoid_weights:  # compute_loss normalises over the whole pooled, accumulated batch
            self.loss_is_scaled_for_ga = True

    # --- data ---
    def _set_signature_columns_if_needed(self) -> None:
        super()._set_signature_columns_if_needed()
        if self.args.source_column not in self._signature_columns:
            self._signature_columns.append(self.args.source_column)

    def get_train_dataloader(self):
        """Batches of ``args.large_batch_size`` per device: the pool each step selects from."""
        return self._get_dataloader(
            dataset=self.train_dataset,
            description="Training",
            batch_size=self.args.large_batch_size,
            sampler_fn=self._get_train_sampler,
            is_training=True,
        )

    # --- selection ---
    def get_batch_samples(self, epoch_iterator, num_batches: int, device: torch.device) -> tuple[list, Any]:
        """The small micro-batches of one optimizer step, selected once from its ``num_batches`` large batches."""
        large = []
        for _ in range(num_batches):
            try:
                large.append(self._prepare_inputs(next(epoch_iterator)))
            except StopIteration:
                break
        if not large:
            return [], None
        small = self.select(large)
        return small, self._get_num_items_in_batch(small, device)

    def select(self, batches: list[dict]) -> list[dict]:
        """Select from the large ``batches`` of one optimizer step (pooled over ranks) and return this rank's share
        of the selected rows as ``len(batches)`` small micro-batches."""
        world, rank = self.accelerator.num_processes, self.accelerator.process_index
        sources = torch.cat([batch.pop(SOURCE_KEY) for batch in batches])
        indices, weights = self.choose(batches, sources)
        pool = self._pad_cat(batches)
        if world > 1:
            pool = self._gather_inputs(pool)
        mine = torch.arange(rank, len(indices), world, device=indices.device)  # interleaved: kept rows spread out
        small = []
        for part in torch.tensor_split(mine, len(batches)):
            batch = _trim_padding({k: v[indices[part]] for k, v in pool.items()})
            if self.args.use_medoid_weights:  # c_i = w_i W / sum(w): DDP's mean over ranks gives sum(w L) / sum(w)
                batch[WEIGHT_KEY] = weights[part] * world / weights.sum()
            small.append(batch)
        return small

    def budget(self, pooled: int, micro_batches: int) -> int:
        """Rows to select from a pool of ``pooled`` rows: selection_ratio of it (the small batches of every rank and
        micro-step when the pool is full), at least one per micro-batch and rank."""
        args, world = self.args, self.accelerator.num_processes
        ratio = args.per_device_train_batch_size / args.large_batch_size
        return min(pooled, max(math.ceil(pooled * ratio), micro_batches * world))

    def choose(self, batches: list[dict], sources: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(positions in the batch pooled over ranks, medoid weights) of the selected rows: zeroth-order features of
        this rank's ``batches``, pooled over ranks, normalised, facility location per source on rank 0."""
        args = self.args
        world = self.accelerator.num_processes
        start = time.perf_counter()
        model = self.accelerator.unwrap_model(self.model)
        seed = args.seed * 1_000_003 + (self.moments.step if args.zo_direction == "per_step" else 0)
        estimates = [
            zeroth_order_features(
                model,
                self.block,
                batch,
                args.zo_eps,
                seed=seed,
                directions=args.zo_directions,
                chunk_size=args.per_device_train_batch_size,
                reuse_prefix=args.zo_reuse_prefix,
                float32=args.zo_float32,
            )
            for batch in batches
        ]
        estimates = ZerothOrderFeatures(torch.cat([e.slopes for e in estimates]), estimates[0].directions)
        if world > 1:  # the directions come from the same seed on every rank: only the slopes travel
            estimates = ZerothOrderFeatures(self.accelerator.gather(estimates.slopes), estimates.directions)
            sources = self.accelerator.gather(sources)
        features = self.moments.features(estimates) if args.feature_optimizer == "adam" else raw_features(estimates)
        keep = tuple(self.sources.index(s) for s in args.keep_sources)
        choice = [None]
        if self.accelerator.is_main_process:
            chosen = select_small_batch(
                features,
                sources,
                self.budget(len(features), len(batches)),
                keep,
                args.budget_mode,
                args.similarity,
                args.zo_dim,
                args.sparsify,
                seed=args.seed + self.moments.step,
            )
            choice = [(chosen.indices.cpu(), chosen.weights.cpu())]
        if world > 1:
            broadcast_object_list(choice, from_process=0)
        indices, weights = (t.to(sources.device) for t in choice[0])
        self._record(features, sources, indices, weights, time.perf_counter() - start)
        large_source = ~torch.isin(sources[indices], torch.tensor(keep, dtype=sources.dtype, device=sources.device))
        self.moments.update(estimates, indices[large_source] if args.moments_from == "large_sources" else indices)
        return indices, weights

    def _pad_values(self) -> dict:
        return {
            "labels": PAD_LABEL,
            "attention_mask": 0,
            "input_ids": getattr(self.processing_class, "pad_token_id", 0) or 0,
        }

    def _pad_cat(self, batches: list[dict]) -> dict:
        """The rows of ``batches`` in one batch, padded to the longest (on the tokenizer's padding side)."""
        left = getattr(self.processing_class, "padding_side", "right") == "left"
        pad = self._pad_values()
        out = {}
        for key in batches[0]:
            values = [batch[key] for batch in batches]
            length = max(v.shape[1] for v in values) if values[0].ndim > 1 else 0
            padded = []
            for v in values:
                if v.ndim > 1 and v.shape[1] < length:
                    width = (length - v.shape[1], 0) if left else (0, length - v.shape[1])
                    v = torch.nn.functional.pad(v, width, value=pad.get(key, 0))
                padded.append(v)
            out[key] = torch.cat(padded)
        return out

    def _gather_inputs(self, inputs: dict) -> dict:
        left = getattr(self.processing_class, "padding_side", "right") == "left"
        pad = self._pad_values()
        out = {}
        for key, value in inputs.items():
            if value.ndim > 1:
                value = self.accelerator.pad_across_processes(value, dim=1, pad_index=pad.get(key, 0), pad_first=left)
            out[key] = self.accelerator.gather(value)
        return out

    def _record(self, features, sources, indices, weights, seconds) -> None:
        generator = torch.Generator().manual_seed(self.args.seed + self.moments.step)
        random = torch.randperm(len(features), generator=generator)[: len(indices)].to(features.device)
        use_w = weights if self.args.use_medoid_weights else None
        picked = sources[indices].tolist()
        selected_error, random_error = matching_errors(features, [(indices, use_w), (random, None)])
        entry = {
            "colm/selection_time_s": seconds,
            "colm/matching_error": selected_error,
            "colm/random_matching_error": random_error,
            **{f"colm/selected_{name}": picked.count(i) for i, name in enumerate(self.sources)},
        }
        self._colm_logs.append(entry)
        self.colm_history.append(
            {
                "step": self.moments.step,
                "indices": indices.tolist(),
                "weights": weights.tolist(),
                "sources": [self.sources[i] for i in picked],
            }
        )
        del self.colm_history[:-HISTORY_SIZE]

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = {k: v for k, v in inputs.items() if k != SOURCE_KEY}
        if WEIGHT_KEY not in inputs:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        weights = inputs.pop(WEIGHT_KEY)  # already normalised over the pooled batch: sum_i c_i L_i
        loss = (weights * per_example_loss(model, inputs)).sum()
        return (loss, None) if return_outputs else loss

    # --- logging and checkpoints ---
    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if self._colm_logs and "loss" in logs:
            for key in self._colm_logs[0]:
                logs[key] = round(sum(e[key] for e in self._colm_logs) / len(self._colm_logs), 6)
            self._colm_logs = []
        super().log(logs, start_time)

    def _save_checkpoint(self, model, trial) -> None:
        super()._save_checkpoint(model, trial)
        if self.args.should_save:
            folder = os.path.join(self._get_output_dir(trial=trial), f"checkpoint-{self.state.global_step}")
            torch.save(self.moments.state_dict(), os.path.join(folder, STATE_NAME))

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        super()._load_from_checkpoint(resume_from_checkpoint, model)
        path = os.path.join(resume_from_checkpoint, STATE_NAME)
        if not os.path.isfile(path):
            raise ValueError(f"{resume_from_checkpoint} has no {STATE_NAME}: it was not written by ColmTrainer")
        self.moments.load_state_dict(torch.load(path, weights_only=True))


def _trim_padding(batch: dict) -> dict:
    """Drop the columns that are padding in every row (selected rows may be shorter than the pool's longest)."""
    if "attention_mask" not in batch:
        return batch
    used = batch["attention_mask"].any(0).nonzero().flatten()
    if len(used) == 0:
        return batch
    columns = slice(int(used[0]), int(used[-1]) + 1)
    return {k: v[:, columns] if v.ndim > 1 else v for k, v in batch.items()}


def mean_selection_metrics(history: list[dict]) -> dict:
    """Means over logged training steps of the colm/* entries in ``trainer.state.log_history``."""
    keys = sorted({k for e in history for k in e if k.startswith("colm/")})
    return {k: sum(e[k] for e in history if k in e) / max(1, sum(k in e for e in history)) for k in keys}


__all__ = ["STATE_NAME", "ColmTrainer", "SourceCollator", "mean_selection_metrics"]
