"""ColmTrainer: train on a per-step mini-batch coreset of a larger batch (CoLM, Nguyen et al. 2025, arXiv 2407.19580).

Each micro-step the dataloader yields a LARGE batch (``ColmConfig.large_batch_size`` per device). The trainer
computes zeroth-order per-example gradient features on a small parameter block (forward passes only),
normalises them Adam-style with moments kept across steps (never forming the [B, D] feature matrix), selects
the small batch per source by facility location (``select_small_batch``) and runs forward + backward on the
small batch only. Under DDP the large batch is the union over ranks: the directional derivatives and inputs
are gathered, rank 0 selects, the choice is broadcast, and each rank trains on its share. The feature moments
are saved in checkpoints (``colm_state.pt``).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import torch
from accelerate.utils import broadcast_object_list
from transformers import DataCollatorForLanguageModeling, Trainer

from hfdc.colm.config import ColmConfig
from hfdc.colm.features import ZerothOrderFeatures, find_parameter_block, per_example_loss, zeroth_order_features
from hfdc.colm.moments import FeatureMoments, raw_features
from hfdc.colm.selection import matching_errors, select_small_batch

STATE_NAME = "colm_state.pt"
SOURCE_KEY = "colm_source"
WEIGHT_KEY = "colm_weights"
HISTORY_SIZE = 1000  # selections kept in ColmTrainer.colm_history, so long runs do not grow it without bound


@dataclass
class SourceCollator:
    """Collate rows with ``base`` and add each row's source as integer ids under ``colm_source``."""

    base: Any
    sources: list[str]
    column: str = "source"

    def __call__(self, rows: list[dict]) -> dict:
        if any(self.column not in row for row in rows):
            return self.base(rows)
        names = [row[self.column] for row in rows]
        unknown = sorted(set(names) - set(self.sources))
        if unknown:
            raise ValueError(
                f"sources {unknown} in column {self.column!r} were not in the training data {self.sources}"
            )
        batch = self.base([{k: v for k, v in row.items() if k != self.column} for row in rows])
        batch[SOURCE_KEY] = torch.tensor([self.sources.index(name) for name in names])
        return batch


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
            data_collator = DataCollatorForLanguageModeling(processing_class, mlm=False)
        super().__init__(
            model=model,
            args=args,
            data_collator=SourceCollator(data_collator, self.sources, args.source_column),
            train_dataset=train_dataset,
            processing_class=processing_class,
            **kwargs,
        )
        self.block = find_parameter_block(self.model, args.zo_parameters)
        dim = sum(p.numel() for _, p in self.block)
        self.moments = FeatureMoments(dim, args.adam_beta1, args.adam_beta2, args.adam_epsilon)
        self.colm_history: list[dict] = []
        self._colm_logs: list[dict] = []

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

    # --- selection + training ---
    def training_step(self, model, inputs, num_items_in_batch=None):
        inputs = self._prepare_inputs(inputs)
        small = self.select(inputs)
        return super().training_step(model, small, None)

    def select(self, inputs: dict) -> dict:
        """Compute features of the (gathered) large batch, select, and return this rank's small batch."""
        args = self.args
        sources = inputs.pop(SOURCE_KEY)
        start = time.perf_counter()
        estimates = zeroth_order_features(
            self.accelerator.unwrap_model(self.model),
            self.block,
            inputs,
            args.zo_eps,
            seed=args.seed * 1_000_003 + self.moments.step,
            directions=args.zo_directions,
            chunk_size=args.per_device_train_batch_size,
            reuse_prefix=args.zo_reuse_prefix,
        )
        world = self.accelerator.num_processes
        if world > 1:  # the directions come from the same seed on every rank: only the slopes travel
            slopes, sources = self.accelerator.gather(estimates.slopes), self.accelerator.gather(sources)
            estimates = ZerothOrderFeatures(slopes, estimates.directions)
            inputs = self._gather_inputs(inputs)
        features = self.moments.features(estimates) if args.feature_optimizer == "adam" else raw_features(estimates)
        budget = min(args.per_device_train_batch_size * world, len(features))  # a short last batch trains fewer
        keep = tuple(self.sources.index(s) for s in args.keep_sources)
        choice = [None]
        if self.accelerator.is_main_process:
            chosen = select_small_batch(
                features,
                sources,
                budget,
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
        self.moments.update(estimates, indices)
        mine = slice(self.accelerator.process_index, None, world)
        small = {k: v[indices[mine]] for k, v in inputs.items()}
        if args.use_medoid_weights:
            small[WEIGHT_KEY] = weights[mine] / weights.mean()
        return small

    def _gather_inputs(self, inputs: dict) -> dict:
        pad = {"labels": -100, "input_ids": getattr(self.processing_class, "pad_token_id", 0) or 0}
        out = {}
        for key, value in inputs.items():
            if value.ndim > 1:
                value = self.accelerator.pad_across_processes(value, dim=1, pad_index=pad.get(key, 0))
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
        weights = inputs.pop(WEIGHT_KEY)
        losses = per_example_loss(model, inputs)
        loss = (weights * losses).sum() / weights.sum()
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


def mean_selection_metrics(history: list[dict]) -> dict:
    """Means over logged training steps of the colm/* entries in ``trainer.state.log_history``."""
    keys = sorted({k for e in history for k in e if k.startswith("colm/")})
    return {k: sum(e[k] for e in history if k in e) / max(1, sum(k in e for e in history)) for k in keys}


__all__ = ["STATE_NAME", "ColmTrainer", "SourceCollator", "mean_selection_metrics"]
