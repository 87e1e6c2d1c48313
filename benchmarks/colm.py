"""CoLM vs plain Trainer with the small batch and with the large batch, on a tiny causal LM and the sentiment mixture.

Every arm trains the same seeded Llama (4 layers, hidden 128) for the same number of optimiser steps in its
own process: "small" (batch 16), "large" (batch 32), "colm" (looks at 32, trains on the 16 it selects) and
"colm_weighted" (the same with medoid-weighted losses). Measured: peak RSS growth during training over the
RSS before it (Linux VmHWM after clear_refs), seconds per step, final validation loss, and for CoLM the mean
relative gradient-matching error of its selection vs a random small batch of the same size (both logged by
ColmTrainer on the same features).

    python -m benchmarks.colm [--steps 40] [--seeds 0 1 2]

Rows give means over seeds (model init, data order, zeroth-order directions), per-seed eval losses too.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile

ARMS = ("small", "large", "colm", "colm_weighted")
SMALL, LARGE = 16, 32
MODEL = dict(hidden_size=128, intermediate_size=256, num_hidden_layers=4, num_attention_heads=4,
             num_key_value_heads=2)


def _rss_mb(field: str) -> float:
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def train_arm(arm: str, steps: int, seed: int) -> dict:
    """Train one arm in this process and return its measurements."""
    import torch
    from transformers import DataCollatorForLanguageModeling, Trainer, TrainingArguments

    from hfdc.colm import ColmConfig, ColmTrainer
    from hfdc.colm.data import load_mixture, tokenize_mixture
    from hfdc.colm.trainer import mean_selection_metrics
    from hfdc.models import tiny, tiny_processor

    torch.set_num_threads(1)
    tokenizer = tiny_processor("llama")
    model = tiny("llama", seed=seed, **MODEL)
    data = load_mixture("sentiment", seed=seed)
    train = tokenize_mixture(data["train"], tokenizer, "{text}", "source", 64)
    validation = tokenize_mixture(data["validation"], tokenizer, "{text}", "source", 64).remove_columns("source")
    common = dict(output_dir=tempfile.mkdtemp(), max_steps=steps, learning_rate=3e-3, logging_steps=5,
                  report_to="none", use_cpu=True, save_strategy="no", eval_strategy="no", seed=seed,
                  per_device_eval_batch_size=64, disable_tqdm=True)
    collator = DataCollatorForLanguageModeling(tokenizer, mlm=False)
    if arm.startswith("colm"):
        args = ColmConfig(per_device_train_batch_size=SMALL, selection_ratio=SMALL / LARGE, keep_sources=["support"],
                          use_medoid_weights=arm == "colm_weighted", **common)
        trainer = ColmTrainer(model=model, args=args, train_dataset=train, data_collator=collator)
    else:
        args = TrainingArguments(per_device_train_batch_size=SMALL if arm == "small" else LARGE, **common)
        trainer = Trainer(model=model, args=args, train_dataset=train.remove_columns("source"), data_collator=collator)
    before = _rss_mb("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak RSS (VmHWM) to the current RSS
    output = trainer.train()
    peak = _rss_mb("VmHWM") - before
    eval_loss = trainer.evaluate(validation)["eval_loss"]
    row = {"arm": arm, "trained_batch": SMALL if arm != "large" else LARGE,
           "looked_at_batch": LARGE if arm != "small" else SMALL, "steps": steps,
           "peak_rss_growth_mb": round(peak, 1), "s_per_step": round(output.metrics["train_runtime"] / steps, 3),
           "final_eval_loss": round(eval_loss, 4)}
    if arm.startswith("colm"):
        selection = mean_selection_metrics(trainer.state.log_history)
        row["matching_error"] = round(selection["colm/matching_error"], 4)
        row["random_matching_error"] = round(selection["colm/random_matching_error"], 4)
        row["selection_s"] = round(selection["colm/selection_time_s"], 4)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--arm", choices=ARMS, help="run one arm with the first seed and print its row (internal)")
    args = parser.parse_args()
    if args.arm:
        print(json.dumps(train_arm(args.arm, args.steps, args.seeds[0])))
        return
    rows = []
    for arm in ARMS:
        runs = []
        for seed in args.seeds:
            out = subprocess.run([sys.executable, "-m", "benchmarks.colm", "--arm", arm, "--steps", str(args.steps),
                                  "--seeds", str(seed)], check=True, capture_output=True, text=True).stdout
            runs.append(json.loads(out.strip().splitlines()[-1]))
            print(runs[-1], flush=True)
        row = dict(runs[0], seeds=args.seeds, final_eval_loss_per_seed=[r["final_eval_loss"] for r in runs])
        for key, value in runs[0].items():
            if isinstance(value, float):
                row[key] = round(statistics.mean(r[key] for r in runs), 4)
        rows.append(row)
    large = next(r for r in rows if r["arm"] == "large")
    for row in rows:
        row["peak_memory_vs_large"] = round(row["peak_rss_growth_mb"] / large["peak_rss_growth_mb"], 3)
        if "matching_error" in row:
            row["matching_error_vs_random"] = round(row["matching_error"] / row["random_matching_error"], 3)
    from benchmarks.common import write_result

    write_result("colm", rows)


if __name__ == "__main__":
    main()
