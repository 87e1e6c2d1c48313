"""MM-Gen: targeted synthetic question-answer data for fine-tuning a vision-language model on one task.

Joshi, Yin, Mirzasoleiman et al., "MM-GEN: Enhancing Task Performance Through Targeted Multimodal Data
Curation", arXiv 2501.04155. Stages, each a datasets operation: :class:`TaskSpec` (the task file) ->
:func:`partition` (CLIP zero-shot subgroups) -> :func:`generate` (subgroup-proportional prompts with
same-subgroup examples through ``hfdc.backends``, in resumable shards) -> :func:`filter_by_loss` (+
:func:`deduplicate`) -> :func:`train_sft` (trl ``SFTTrainer``) -> :func:`evaluate`.
"""

from hfdc.mmgen.evaluate import evaluate
from hfdc.mmgen.filter import deduplicate, filter_by_loss, loss_band, score_losses
from hfdc.mmgen.generate import GenerationError, GenerationReport, generate, generation_report
from hfdc.mmgen.oracle import shapes_oracle
from hfdc.mmgen.parsing import ParseError, parse_items
from hfdc.mmgen.partition import partition, partition_task, subgroup_counts
from hfdc.mmgen.prompts import MODES, PromptPlan, plan_prompts, prompt_counts, prompt_messages
from hfdc.mmgen.task import TaskFileError, TaskSpec
from hfdc.mmgen.train import train_sft
from hfdc.mmgen.vlm import completion_nll, sft_rows

__all__ = [
    "MODES",
    "GenerationError",
    "GenerationReport",
    "ParseError",
    "PromptPlan",
    "TaskFileError",
    "TaskSpec",
    "completion_nll",
    "deduplicate",
    "evaluate",
    "filter_by_loss",
    "generate",
    "generation_report",
    "loss_band",
    "parse_items",
    "partition",
    "partition_task",
    "plan_prompts",
    "prompt_counts",
    "prompt_messages",
    "score_losses",
    "sft_rows",
    "shapes_oracle",
    "subgroup_counts",
    "train_sft",
]
