"""``hfdc mmgen --config recipe.yaml``: partition -> generate -> filter -> SFT -> evaluate, stages selectable.

Outputs under ``output_dir``: ``partition.json`` (subgroup of every reference and candidate row),
``generations/`` (resumable shards), ``generated/`` and ``filtered/`` (data sets with cards, pushed to
``generated_repo_id`` / ``repo_id``), ``model/`` (the fine-tuned VLM with its card), ``metrics.json``.
A stage left out of ``stages`` reads the saved output of an earlier run.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import json
import logging
from pathlib import Path

import numpy as np
from datasets import Dataset, load_from_disk

from hfdc.data import card_name
from hfdc.hub import push_dataset, push_model
from hfdc.mmgen.config import MmgenConfig
from hfdc.mmgen.evaluate import evaluate
from hfdc.mmgen.filter import deduplicate, filter_by_loss
from hfdc.mmgen.generate import generate, generation_report
from hfdc.mmgen.partition import partition_task, subgroup_counts
from hfdc.mmgen.prompts import prompt_messages
from hfdc.mmgen.task import TaskSpec

logger = logging.getLogger(__name__)

PAPER = "MM-GEN: Enhancing Task Performance Through Targeted Multimodal Data Curation"
ARXIV = "2501.04155"


def resolve_task(path: str) -> Path:
    """``path`` when it is a file, else the same path inside the recipes shipped with hfdc."""
    if Path(path).is_file():
        return Path(path)
    shipped = importlib.resources.files("hfdc") / "recipes" / path
    if shipped.is_file():
        return Path(str(shipped))
    raise FileNotFoundError(f"task={path!r} is neither a file nor a task file shipped in hfdc/recipes")


def load_clip(config: MmgenConfig):
    """(model, processor) of ``config.clip_model``."""
    if config.clip_model == "tiny":
        import hfdc.models

        return hfdc.models.tiny("clip", seed=config.seed), hfdc.models.tiny_processor("clip")
    from transformers import AutoModel, AutoProcessor

    return AutoModel.from_pretrained(config.clip_model).eval(), AutoProcessor.from_pretrained(config.clip_model)


def load_vlm(name: str, seed: int = 0):
    """(model, processor): the tiny Llava ("tiny") or a saved / Hub vision-language model."""
    if name == "tiny":
        import hfdc.models

        return hfdc.models.tiny("llava", seed=seed), hfdc.models.tiny_processor("llava")
    from transformers import AutoModelForImageTextToText, AutoProcessor

    return AutoModelForImageTextToText.from_pretrained(name), AutoProcessor.from_pretrained(name)


def load_generator(config: MmgenConfig):
    """The ``hfdc.backends`` backend of ``config.generator`` (the shapes oracle for "scripted")."""
    from hfdc import backends

    kind = config.generator.partition(":")[0]
    kwargs = {"cache_dir": config.generator_cache_dir}
    if kind == "scripted":
        from hfdc.mmgen.oracle import shapes_oracle

        kwargs["responses"] = shapes_oracle(config.oracle_malformed, config.oracle_wrong)
        kwargs["cache_dir"] = config.generator_cache_dir or Path(config.output_dir) / "generator-cache"
    elif kind == "openai":
        kwargs["max_workers"] = config.max_workers
    return backends.get(config.generator, **kwargs)


def prompt_preview(config: MmgenConfig, skill: str) -> str:
    """The generation prompt of this run with placeholders for the images, examples and descriptions."""
    example = (None, [{"from": "human", "value": "<question>"}, {"from": "gpt", "value": "<answer>"}], "<image>")
    messages = prompt_messages(
        config.mode, skill, (None, "<candidate image>"), [example] * config.num_icl, config.per_candidate, False
    )
    return "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in messages)


def save_partition(task: TaskSpec, path: Path) -> None:
    path.write_text(
        json.dumps(
            {
                "task": task.fingerprint,
                "reference": list(task.reference["subgroup"]),
                "candidates": list(task.candidates["subgroup"]),
            }
        )
        + "\n"
    )


def load_partition(task: TaskSpec, path: Path) -> TaskSpec:
    """``task`` with the subgroups of a saved partition, or unchanged (one subgroup) when none was saved."""
    if not path.is_file():
        logger.info("no saved partition in %s: generating without subgroups", path)
        return task
    saved = json.loads(path.read_text())
    if saved["task"] != task.fingerprint:
        raise ValueError(f"{path} was written for another task file; run the partition stage again")
    return dataclasses.replace(
        task,
        reference=task.reference.add_column("subgroup", saved["reference"]),
        candidates=task.candidates.add_column("subgroup", saved["candidates"]),
    )


def saved(path: Path, stage: str) -> Dataset:
    if not path.is_dir():
        raise FileNotFoundError(f"{path} not found: add {stage!r} to stages (it has not run in this output_dir)")
    return load_from_disk(str(path))


def _card(config: MmgenConfig, task: TaskSpec, description: str, figures: dict, base_model: str) -> dict:
    return {
        "method": "mmgen",
        "paper": PAPER,
        "arxiv": ARXIV,
        "base_model": base_model,
        "datasets": [card_name(name) for name in task.sources],
        "tags": ["synthetic", "vision-language", "llava", config.mode],
        "description": description,
        "config": config,
        "figures": figures,
    }


def generated_card(config: MmgenConfig, task: TaskSpec, records: Dataset, backend) -> dict:
    """Card of the generated set: generator, prompt, counts per subgroup, backend calls, tokens, cost, skips."""
    report = generation_report(records)
    figures = {"generator": report.generator, "mode": report.mode, "prompts sent": report.prompts}
    figures.update({f"prompts planned ({g})": n for g, n in report.planned.items()})
    figures["records"] = report.records
    figures.update({f"records ({g})": n for g, n in sorted(report.per_subgroup.items())})
    figures.update(
        {
            "backend calls": report.backend_calls,
            "prompt tokens": report.prompt_tokens,
            "completion tokens": report.completion_tokens,
            "cost (USD)": round(
                report.cost(config.usd_per_million_prompt_tokens, config.usd_per_million_completion_tokens), 4
            ),
            "format-fix requests": report.fix_requests,
            "replies fixed": report.fixed,
            "dropped items": report.dropped_items,
        }
    )
    figures.update({f"prompts skipped ({reason})": n for reason, n in sorted(report.skipped.items())})
    description = (
        f"{report.records} question-answer records generated for the task *{task.name}* ({task.skill}) by "
        f"`{report.generator}` in mode `{config.mode}`, in LLaVA conversation format with subgroup and provenance "
        f"columns. The prompt (images and examples shown as placeholders):\n\n```text\n"
        f"{prompt_preview(config, task.skill)}\n```"
    )
    return _card(config, task, description, figures, backend.model)


def filtered_card(config: MmgenConfig, task: TaskSpec, generated: int, kept: Dataset, base_model: str) -> dict:
    """Card of the kept set: the loss band, rows in and out, kept loss range and rows per subgroup."""
    losses = np.asarray(kept["loss"]) if len(kept) else np.zeros(1)
    figures = {
        "filter band (loss percentiles)": f"[{config.keep_low:g}, {config.keep_high:g})",
        "de-duplication fraction": config.dedup_fraction,
        "generated rows": generated,
        "kept rows": len(kept),
        "kept loss min": round(float(losses.min()), 4),
        "kept loss max": round(float(losses.max()), 4),
    }
    figures.update({f"kept ({g})": n for g, n in subgroup_counts(kept, task.keywords).items()})
    description = (
        f"The MM-Gen records of *{task.name}* whose loss under the base VLM `{base_model}` lies in the "
        f"[{config.keep_low:g}, {config.keep_high:g}) percentile band (column `loss`), "
        + (
            "then de-duplicated by facility location on all-MiniLM-L6-v2 text embeddings."
            if config.dedup_fraction < 1
            else "without de-duplication."
        )
    )
    return _card(config, task, description, figures, base_model)


def peft_config(config: MmgenConfig):
    if config.lora_r == 0:
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=list(config.lora_target_modules),
    )


def data_stages(config: MmgenConfig, stages: set, base, processor, metrics: dict, main: bool):
    """Partition, generation and filter (each run, or read from output_dir); returns (task, generated, kept)."""
    out = Path(config.output_dir)
    task = TaskSpec.from_file(resolve_task(config.task))
    if "partition" in stages:
        clip, clip_processor = load_clip(config)
        task = partition_task(task, clip, clip_processor, templates=config.keyword_templates, cache_dir=out / "cache")
        if main:
            save_partition(task, out / "partition.json")
        metrics["reference per subgroup"] = subgroup_counts(task.reference, task.keywords)
        metrics["candidates per subgroup"] = subgroup_counts(task.candidates, task.keywords)
    else:
        task = load_partition(task, out / "partition.json")
    records = kept = None
    if "generate" in stages:
        backend = load_generator(config)
        records = generate(
            task,
            backend,
            mode=config.mode,
            total=config.total,
            per_candidate=config.per_candidate,
            num_icl=config.num_icl,
            include_images=config.generator_images,
            temperature=config.temperature,
            max_new_tokens=config.max_new_tokens,
            max_fix_attempts=config.max_fix_attempts,
            shard_size=config.shard_size,
            seed=config.seed,
            output_dir=out / "generations",
        )
        card = generated_card(config, task, records, backend)
        metrics.update({f"generated: {k}": v for k, v in card["figures"].items()})
        if main:
            push_dataset(records, repo_id=config.generated_repo_id, output_dir=out / "generated", card=card)
    if records is None and ("filter" in stages or ("train" in stages and config.train_data == "generated")):
        records = saved(out / "generated", "generate")
    if "filter" in stages:
        kept = filter_by_loss(
            records,
            base,
            processor,
            keep=(config.keep_low, config.keep_high),
            batch_size=config.score_batch_size,
            cache_dir=out / "cache",
        )
        if config.dedup_fraction < 1:
            kept = deduplicate(kept, config.dedup_fraction)
        card = filtered_card(config, task, len(records), kept, config.base_model)
        metrics.update({f"filtered: {k}": v for k, v in card["figures"].items()})
        if main:
            push_dataset(kept, repo_id=config.repo_id, output_dir=out / "filtered", card=card)
    if kept is None and "train" in stages and config.train_data == "filtered":
        kept = saved(out / "filtered", "filter")
    return task, records, kept


def accuracy(config: MmgenConfig, task: TaskSpec, model, processor) -> dict:
    if task.evaluation is None:
        raise ValueError(f"stage 'evaluate' needs an 'evaluation' split in the task file {config.task}")
    return evaluate(model, processor, task.evaluation, config.eval_metric, config.score_batch_size)


def run(config: MmgenConfig) -> dict:
    """Run the selected stages; returns the metrics written to metrics.json.

    Under ``accelerate launch`` the data stages run on the main process first; the others then read its
    cached partition, shards and losses (no second backend call). Evaluation and saving happen on the main
    process; SFT runs on all.
    """
    from hfdc.distributed import process_state
    from hfdc.mmgen.train import train_sft

    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    stages, state = set(config.stages), process_state()
    metrics = {"mode": config.mode, "seed": config.seed}
    base, processor = load_vlm(config.base_model, config.seed)
    with state.main_process_first():
        task, records, kept = data_stages(config, stages, base, processor, metrics, state.is_main_process)
    metrics["task"] = task.name
    if "evaluate" in stages and state.is_main_process:
        result = accuracy(config, task, base, processor)
        metrics["accuracy before"] = round(result["accuracy"], 4)
        metrics["eval metric"], metrics["eval rows"] = result["metric"], result["n"]
    model = None
    if "train" in stages:
        data = {"filtered": kept, "generated": records, "reference": task.reference}[config.train_data]
        trainer = train_sft(
            base,
            processor,
            data,
            dataclasses.replace(config, output_dir=str(out / "checkpoints")),
            peft_config(config),
            config.max_seq_length,
        )
        model = trainer.model.merge_and_unload() if config.lora_r else trainer.model
        metrics["train rows"] = len(trainer.train_dataset)
        metrics["train loss"] = round(trainer.state.log_history[-1].get("train_loss", float("nan")), 4)
    elif "evaluate" in stages and (out / "model").is_dir():
        model, processor = load_vlm(str(out / "model"))
    if not state.is_main_process:
        return metrics
    if "evaluate" in stages and model is not None:
        metrics["accuracy after"] = round(accuracy(config, task, model, processor)["accuracy"], 4)
    if "train" in stages:
        figures = {
            k: metrics[k] for k in ("train rows", "train loss", "accuracy before", "accuracy after") if k in metrics
        }
        description = (
            f"`{config.base_model}` fine-tuned on the {config.train_data} MM-Gen data of *{task.name}* "
            f"({f'LoRA r={config.lora_r}, merged' if config.lora_r else 'full fine-tune'})."
        )
        card = _card(config, task, description, figures, config.base_model)
        processor.save_pretrained(out / "model")  # first, so that a push uploads it with the model
        push_model(
            model,
            repo_id=config.model_repo_id,
            output_dir=out / "model",
            card=card | {"tags": ["vision-language", "llava", "sft"]},
        )
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=str) + "\n")
    logger.info("mmgen metrics: %s", metrics)
    return metrics
