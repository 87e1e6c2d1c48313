"""GRADMM on SmolLM2-135M-Instruct and Rotten Tomatoes: fine-tuning on the synthetic rows vs as many random real
rows vs zero-shot, generation seconds per example, perplexity of synthetic vs real text, synthetic examples.

Each seed runs recipes/gradmm/smollm2_rotten_tomatoes_cpu.yaml (scaled down for 2 shared CPU cores: see the
recipe) on the converted assets through ``hfdc.gradmm.cli.synthesize``; seeds vary the real rows matched, the random
starts, the random real rows of the baseline and the fine-tuning order. The held-out rows (150 of the test split,
drawn once) and hence the zero-shot accuracy are shared by all seeds. Four fine-tuned arms, same LoRA settings:
every generated row, as many random real rows, the rows the few-shot filter kept, and as many random real rows.

    nice -n 10 python -m benchmarks.gradmm [--seeds 3]
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from benchmarks.assets import asset_path
from benchmarks.common import arguments, mean_std, prepare, write_result

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "gradmm" / "smollm2_rotten_tomatoes_cpu.yaml"
EXAMPLES_PER_CLASS = 3
ARMS = (
    "GRADMM synthetic, all generated",
    "random real, as many as generated",
    "GRADMM synthetic, kept by the filter",
    "random real, as many as kept",
)


def summary(arm: str, values: dict[str, list], **extra) -> dict:
    """One table row: mean and std of each measured list, per-seed accuracies, and ``extra`` columns."""
    row = {"arm": arm, **extra}
    for name, series in values.items():
        mean, std = mean_std(series)
        row[name], row[f"{name}_std"] = round(mean, 4), round(std, 4)
    return row


def main() -> None:
    parser = arguments(__doc__)
    seeds = prepare(parser.parse_args())
    from hfdc.cli import parse_config
    from hfdc.data import load
    from hfdc.gradmm import GradmmConfig, build_task, finetuned_accuracy, label_accuracy, perplexity, random_rows
    from hfdc.gradmm.cli import load_model, split, synthesize
    from hfdc.gradmm.evaluate import as_text_label

    base = ["--config", str(RECIPE), "--evaluate", "false"]
    base += ["--model_name_or_path", str(asset_path("smollm2-135m-instruct"))]
    base += ["--dataset", str(asset_path("rotten_tomatoes"))]
    with tempfile.TemporaryDirectory() as tmp:
        config = parse_config(GradmmConfig, [*base, "--output_dir", tmp])
        model, tokenizer = load_model(config)
        data = load(config.dataset)
        held_out = as_text_label(split(data, config.eval_split), config.text_column, config.label_column)
        held_out = held_out.shuffle(seed=0).select(range(config.max_eval_samples))
        train = as_text_label(split(data, config.split), config.text_column, config.label_column)
        task = build_task(tokenizer, config.prompt, config.label_words)
        zero_shot = label_accuracy(model, tokenizer, held_out, task, batch_size=config.eval_batch_size)
        print(f"zero-shot accuracy on {len(held_out)} held-out rows: {zero_shot:.4f}")

        measured = {arm: {} for arm in ARMS}
        examples = {}
        for seed in seeds:
            config = parse_config(GradmmConfig, [*base, "--seed", str(seed), "--output_dir", f"{tmp}/seed{seed}"])
            start = time.perf_counter()
            generated, kept, figures = synthesize(config)
            seconds = time.perf_counter() - start
            generated, kept = generated.select_columns(["text", "label"]), kept.select_columns(["text", "label"])
            sets = dict(zip(ARMS, (generated, random_rows(train, len(generated), seed), kept)))
            sets[ARMS[3]] = random_rows(train, len(kept), seed)
            for arm, rows in sets.items():
                values = measured[arm]
                # no row to train on leaves the model as it is: its accuracy is the zero-shot one
                accuracy = (
                    finetuned_accuracy(model, tokenizer, task, rows, held_out, config, f"{seed}-{arm}")
                    if len(rows)
                    else zero_shot
                )
                values.setdefault("held_out_accuracy", []).append(accuracy)
                values.setdefault("train_rows", []).append(len(rows))
                values.setdefault("great_fraction", []).append(sum(rows["label"]) / max(len(rows), 1))
                values.setdefault("perplexity", []).append(perplexity(model, tokenizer, rows["text"]))
            synthetic = measured[ARMS[0]]
            for name, figure in (
                ("generation_seconds_per_example", "generation seconds per example (this run)"),
                ("final_matching_loss", "final matching loss (mean over groups)"),
                ("perplexity_of_matched_real_rows", "perplexity of the real texts used"),
            ):
                synthetic.setdefault(name, []).append(figures[figure])
            print(
                f"seed {seed} ({seconds:.0f} s): "
                + ", ".join(f"{arm}: {v['held_out_accuracy'][-1]:.4f}" for arm, v in measured.items())
            )
            if not examples:
                for c, word in enumerate(config.label_words):
                    rows = [row for row in generated if row["label"] == c][:EXAMPLES_PER_CLASS]
                    examples[word.strip()] = [
                        {"text": row["text"], "kept_by_filter": row["text"] in kept["text"]} for row in rows
                    ]

    rows = [
        summary(
            arm,
            measured[arm],
            seeds=len(seeds),
            per_seed_accuracy=[round(a, 4) for a in measured[arm]["held_out_accuracy"]],
        )
        for arm in ARMS
    ]
    rows.append({"arm": "zero-shot", "seeds": len(seeds), "held_out_accuracy": round(zero_shot, 4)})
    path = write_result("gradmm", rows)
    result = json.loads(path.read_text())
    result["examples"] = examples  # the first three generated rows per class of seed 0, for the notes
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(examples, indent=2))


if __name__ == "__main__":
    main()
