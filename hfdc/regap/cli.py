"""``hfdc regap train|measure|safety --config recipe.yaml``: gap-regularised stage 1, the gap, the unsafe rate.

- ``train``: measure the gap, pretrain the projector with RegapTrainer, evaluate the caption loss, measure the
  gap again, run the safety sweep, and save (push) the model with a card recording all of it;
- ``measure``: print the per-layer gap table and MIR of a model, write gap.json and gap.png;
- ``safety``: the unsafe rate with each image kind, one JSON per kind (a rerun skips finished kinds).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from hfdc.data import card_name, load
from hfdc.hub import push_model
from hfdc.regap.config import GapConfig, RegapConfig, SafetyConfig
from hfdc.regap.data import caption_pairs, split_of
from hfdc.regap.measure import measure_gap, plot_gaps
from hfdc.regap.model import build_model, load_llava
from hfdc.regap.prompts import load_safety_prompts
from hfdc.regap.safety import safety_sweep

logger = logging.getLogger(__name__)

PAPER = "Bootstrapping LLM Robustness for VLM Safety via Reducing the Pretraining Modality Gap"
ARXIV = "2505.24208"


def _first(dataset, limit: int):
    return dataset.select(range(min(limit, len(dataset)))) if limit else dataset


def _measure(model, processor, dataset, config, batch_size: int):
    pairs = caption_pairs(dataset, config.gap_pairs, config.image_column, config.caption_column, config.image_folder)
    return measure_gap(
        model, processor, pairs, batch_size, config.prompt_format, config.instruction, config.max_length
    )


def _safety(model, processor, config, output_dir: Path) -> dict:
    """{kind: SafetyReport} for the config's prompts, image kinds and judge (per-kind JSON under output_dir)."""
    prompts, images = load_safety_prompts(
        config.safety_prompts,
        config.safety_split,
        prompt_column=config.safety_prompt_column or None,
        limit=config.safety_max_prompts,
        **config.safety_prompts_params,
    )
    return safety_sweep(
        model,
        processor,
        prompts,
        config.safety_image_kinds,
        config.safety_judge,
        dataset_images=images,
        max_new_tokens=config.safety_max_new_tokens,
        batch_size=config.safety_batch_size,
        seed=config.seed,
        output_dir=output_dir,
    )


def _rates_table(reports: dict) -> str:
    lines = [f"{'images':>12} {'unsafe rate':>11} {'n':>4} {'undecided':>9}"]
    lines += [f"{k:>12} {r.unsafe_rate:>11.3f} {len(r.flags):>4} {r.n_undecided:>9}" for k, r in reports.items()]
    return "\n".join(lines)


def run_measure(config: GapConfig):
    """Print the per-layer gap table; write gap.json and gap.png under output_dir; return the GapReport."""
    model, processor = load_llava(config.model_name_or_path, seed=config.seed)
    dataset = split_of(load(config.dataset, **config.dataset_params), config.gap_split)
    report = _measure(model, processor, dataset, config, config.batch_size)
    out = Path(config.output_dir)
    report.save(out / "gap.json")
    report.plot(out / "gap.png", label=Path(config.model_name_or_path).name)
    print(report.table())
    print(f"wrote {out / 'gap.json'} and {out / 'gap.png'}")
    return report


def run_safety(config: SafetyConfig) -> dict:
    """Unsafe rate per image kind; prints the table and writes <output_dir>/safety/<kind>.json and safety.json."""
    model, processor = load_llava(config.model_name_or_path, seed=config.seed)
    out = Path(config.output_dir)
    reports = _safety(model, processor, config, out / "safety")
    summary = {kind: {"unsafe_rate": r.unsafe_rate, "n": len(r.flags)} for kind, r in reports.items()}
    (out / "safety.json").write_text(json.dumps({"judge": config.safety_judge, "rates": summary}, indent=2) + "\n")
    print(_rates_table(reports))
    return reports


def run_train(config: RegapConfig):
    """Gap before, stage-1 pretraining, caption loss, gap after, safety; save the model with its card."""
    from hfdc.regap.trainer import RegapTrainer

    data = load(config.dataset, **config.dataset_params)
    train = _first(split_of(data, "train"), config.max_train_samples)
    held_out = split_of(data, config.gap_split)
    model, processor = build_model(config, train)
    before = _measure(model, processor, held_out, config, config.per_device_eval_batch_size)
    trainer = RegapTrainer(
        model=model,
        args=config,
        train_dataset=train,
        eval_dataset=_first(held_out, config.max_eval_samples),
        processing_class=processor,
    )
    trainer.train(resume_from_checkpoint=config.resume_from_checkpoint)
    caption_loss = trainer.evaluate()["eval_loss"]
    after = _measure(trainer.model, processor, held_out, config, config.per_device_eval_batch_size)
    if not trainer.is_world_process_zero():
        return None
    folder = Path(config.output_dir) / "model"
    figures = {
        "MIR before": round(before.mir, 4),
        "MIR after": round(after.mir, 4),
        "layer-1 distance before": round(before.layers[1].distance, 4),
        "layer-1 distance after": round(after.layers[1].distance, 4),
        "caption LM loss (held out)": round(caption_loss, 4),
        "alpha": round(trainer.alpha.alpha, 6) if config.regularise else 0.0,
    }
    if config.safety_judge != "none":
        reports = _safety(trainer.model, processor, config, Path(config.output_dir) / "safety")
        figures.update({f"unsafe rate ({kind})": round(r.unsafe_rate, 4) for kind, r in reports.items()})
        print(_rates_table(reports))
    folder.mkdir(parents=True, exist_ok=True)
    processor.save_pretrained(folder)
    before.save(folder / "gap_before.json")
    after.save(folder / "gap_after.json")
    plot_gaps({"before": before, "after": after}, folder / "gap.png")
    base = f"{config.vision_tower} + {config.language_model}" if config.vision_tower else config.model_name_or_path
    regulariser = (
        f"alpha * D ({config.regap_distance} distance at LLM hidden state {config.regap_layer}, alpha "
        f"{trainer.alpha.alpha:.4g})"
        if config.regularise
        else "no gap regulariser (baseline)"
    )
    card = {
        "method": "regap",
        "paper": PAPER,
        "arxiv": ARXIV,
        "base_model": base,
        "datasets": [card_name(config.dataset)],
        "tags": ["llava", "modality-gap", "safety", "vision-language"],
        "description": (
            f"LLaVA stage-1 pretraining (projector only) with {regulariser}. The modality gap (MIR, the sum over "
            "LLM layers of the Frechet distance between image- and text-token states) was measured on "
            f"{after.n_pairs} held-out pairs before and after; gap.png plots it per layer."
        ),
        "config": config,
        "figures": figures,
    }
    path = push_model(trainer.model, repo_id=config.repo_id, output_dir=folder, card=card)
    print(after.table())
    print(json.dumps(figures, indent=2))
    return path


__all__ = ["run_measure", "run_safety", "run_train"]
