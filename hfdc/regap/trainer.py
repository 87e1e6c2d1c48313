"""RegapTrainer: LLaVA stage-1 pretraining (projector only) with ReGap's modality-gap regulariser.

loss = LM loss on the captions + alpha * D(image-token states, text-token states) at hidden-state index
``regap_layer`` (1 = first LLM layer, the paper's choice; 0 = projector output), D and the alpha warm-up from
``hfdc.regap.regularizer`` (Yang et al. 2025, arXiv 2505.24208). The vision tower and the language model are
frozen; evaluation reports the caption LM loss alone. alpha and its warm-up state are saved in every checkpoint
(``regap_state.json``) and restored on resume, and so are the projector's weights: transformers 5's Trainer
reloads a LLaVA checkpoint without renaming its keys back (huggingface/transformers#43701; it logs missing /
unexpected keys and keeps the weights it has), so the projector is read from the checkpoint by name here. With ``regap_weight=0`` and ``regap_alpha=0`` this is plain
stage-1 pretraining, the baseline.
"""

from __future__ import annotations

import json
import os

import torch
from safetensors import safe_open
from transformers import Trainer

from hfdc.regap.config import RegapConfig
from hfdc.regap.data import Stage1Collator
from hfdc.regap.llava import PROJECTOR, check_image_tokens, check_llava, freeze_for_stage1, modality_masks, projector
from hfdc.regap.regularizer import AlphaWarmup, gap_penalty

STATE_NAME = "regap_state.json"


class RegapTrainer(Trainer):
    """A Trainer for LLaVA stage 1 with the gap regulariser (module docstring).

    ``train_dataset`` rows hold ``args.image_column`` and ``args.caption_column``; without a ``data_collator``
    the :class:`~hfdc.regap.data.Stage1Collator` of ``processing_class`` (the model's processor) builds the
    batches. ``trainable_parameters`` lists what trains (the projector's weights).
    """

    def __init__(
        self, model=None, args: RegapConfig | None = None, data_collator=None, processing_class=None, **kwargs
    ):
        if not isinstance(args, RegapConfig):
            raise TypeError(f"RegapTrainer needs args=RegapConfig(...), got {type(args).__name__}")
        check_llava(model)
        layers = model.config.text_config.num_hidden_layers
        if args.regap_layer > layers:
            raise ValueError(f"regap_layer={args.regap_layer} but the language model has {layers} layers")
        self.trainable_parameters = freeze_for_stage1(model)
        if data_collator is None:
            if processing_class is None:
                raise ValueError("pass data_collator= or processing_class= (the model's LlavaProcessor)")
            data_collator = Stage1Collator(
                processing_class,
                args.image_column,
                args.caption_column,
                args.prompt_format,
                args.instruction,
                args.max_length,
                args.image_folder,
            )
        super().__init__(
            model=model, args=args, data_collator=data_collator, processing_class=processing_class, **kwargs
        )
        self.loss_is_scaled_for_ga = False  # LM loss + alpha * D is a per-micro-batch mean
        self.alpha = AlphaWarmup(args.regap_weight, args.regap_warmup_steps, args.regap_alpha)
        self._regap_logs: list[dict] = []

    def _set_signature_columns_if_needed(self) -> None:
        super()._set_signature_columns_if_needed()
        for column in (self.args.image_column, self.args.caption_column):
            if column not in self._signature_columns:
                self._signature_columns.append(column)

    # --- loss ---
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        config = self.accelerator.unwrap_model(model).config
        check_image_tokens(config, inputs["input_ids"], inputs.get("pixel_values"))
        regularise = self.args.regularise and model.training
        outputs = model(**inputs, output_hidden_states=regularise)
        loss = outputs.loss
        if regularise:
            image_mask, text_mask = modality_masks(
                inputs["input_ids"], inputs.get("attention_mask"), config.image_token_id
            )
            gap = gap_penalty(
                outputs.hidden_states[self.args.regap_layer],
                image_mask,
                text_mask,
                self.args.regap_distance,
                self.args.regap_rescale,
            )
            lm_value, gap_value = self._mean_across_processes(loss.detach(), gap.detach())
            alpha = self.alpha.step(lm_value, gap_value, self.state.global_step)
            self._regap_logs.append({"regap/lm_loss": lm_value, "regap/gap": gap_value, "regap/alpha": alpha})
            loss = loss + alpha * gap
        return (loss, outputs) if return_outputs else loss

    def _mean_across_processes(self, lm_loss: torch.Tensor, gap: torch.Tensor) -> tuple[float, float]:
        """(LM loss, D) of this micro-batch, averaged over processes while alpha is still being set."""
        values = torch.stack([lm_loss.float(), gap.float()])
        if self.accelerator.num_processes > 1 and not self.alpha.frozen:
            values = self.accelerator.reduce(values, reduction="mean")
        return float(values[0]), float(values[1])

    # --- logging and checkpoints ---
    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if self._regap_logs and "loss" in logs:
            for key in self._regap_logs[0]:
                logs[key] = round(sum(e[key] for e in self._regap_logs) / len(self._regap_logs), 6)
            self._regap_logs = []
        super().log(logs, start_time)

    def _save_checkpoint(self, model, trial) -> None:
        super()._save_checkpoint(model, trial)
        if self.args.should_save:
            folder = os.path.join(self._get_output_dir(trial=trial), f"checkpoint-{self.state.global_step}")
            with open(os.path.join(folder, STATE_NAME), "w") as f:
                json.dump(self.alpha.state_dict(), f, indent=2)

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        super()._load_from_checkpoint(resume_from_checkpoint, model)
        load_projector(self.accelerator.unwrap_model(model or self.model), resume_from_checkpoint)
        path = os.path.join(resume_from_checkpoint, STATE_NAME)
        if not os.path.isfile(path):
            raise ValueError(f"{resume_from_checkpoint} has no {STATE_NAME}: it was not written by RegapTrainer")
        with open(path) as f:
            self.alpha.load_state_dict(json.load(f))


def load_projector(model, checkpoint: str) -> None:
    """Copy the ``multi_modal_projector`` weights of the safetensors files in ``checkpoint`` into ``model``,
    matching names from the projector on (the saved prefix may differ from the model's)."""
    module = projector(model)
    wanted = set(module.state_dict())
    found = {}
    files = sorted(f for f in os.listdir(checkpoint) if f.endswith(".safetensors"))
    for file in files:
        with safe_open(os.path.join(checkpoint, file), framework="pt") as f:
            names = f.keys()
            for key in names:
                _, marker, rest = key.partition(f"{PROJECTOR}.")
                if marker and rest in wanted:
                    found[rest] = f.get_tensor(key)
    missing = sorted(set(wanted) - set(found))
    if missing:
        raise ValueError(f"{checkpoint} has no {PROJECTOR} weights {missing} in its safetensors files {files}")
    module.load_state_dict(found)


__all__ = ["STATE_NAME", "RegapTrainer", "load_projector"]
