"""CoLM vs plain Trainer with the small batch and with the large batch, on a tiny causal LM and the sentiment mixture.

Every arm trains the same seeded Llama (4 layers, hidden 128) for the same number of optimiser steps in its
own process: "small" (batch 16), "large" (batch 32), "colm" (looks at 32, trains on the 16 it selects) and
"colm_weighted" (the same with medoid-weighted losses) and "colm_8_directions" (8 Gaussian directions per
step instead of 1). Measured: peak RSS growth during training over the RSS before it (Linux VmHWM after
clear_refs; every arm first runs the same throwaway selection so that the library code it loads is resident
in all arms before the baseline), seconds per step, final validation loss, and for CoLM the mean relative
gradient-matching error of its selection vs a random small batch of the same size, (a) on CoLM's own
features (both logged by ColmTrainer) and (b) on the TRUE per-example gradients of all parameters (autograd,
after training, on held-out large batches, random = mean over 20 random halves).

    python -m benchmarks.colm [--steps 40] [--seeds 0 1 2]

Rows give means over seeds (model init, data order, zeroth-order directions; seconds: medians), per-seed eval
losses too. Each (arm, seed) also runs once "cold" (no warm-up) for the peak memory with library code loading.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile

COLM_ARMS = {"colm": {}, "colm_weighted": {"use_medoid_weights": True}, "colm_8_directions": {"zo_directions": 8}}
ARMS = ("small", "large", *COLM_ARMS)
TRUE_GRADIENT_BATCHES = 6
SMALL, LARGE = 16, 32
MODEL = dict(hidden_size=128, intermediate_size=256, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2)


def _rss_mb(field: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def load_library_code() -> None:
    """Run one zeroth-order pass and one selection on throwaway inputs (the same in every arm)."""
    import torch

    from hfdc.colm import find_parameter_block, select_small_batch, zeroth_order_features
    from hfdc.models import tiny

    model = tiny("llama", seed=99, **MODEL)
    ids = torch.randint(3, 200, (4, 8), generator=torch.Generator().manual_seed(0))
    g = zeroth_order_features(model, find_parameter_block(model, "v_proj"), {"input_ids": ids, "labels": ids})
    select_small_batch(g.dense(), torch.tensor([0, 0, 1, 1]), 2)


def true_gradient_matching(trainer, train, seed: int) -> tuple[float, float]:
    """(CoLM's, random's) mean |mean_S grad - mean_B grad| / |mean_B grad| on exact per-example gradients of
    all trainable parameters, for large batches drawn after training (CoLM selects as in a training step)."""
    import torch

    from hfdc.colm.features import per_example_loss
    from hfdc.colm.trainer import SOURCE_KEY, WEIGHT_KEY

    model, large = trainer.model, trainer.args.large_batch_size
    params = [p for p in model.parameters() if p.requires_grad]
    generator = torch.Generator().manual_seed(10_000 + seed)
    colm, random = [], []
    for _ in range(TRUE_GRADIENT_BATCHES):
        rows = [train[int(i)] for i in torch.randperm(len(train), generator=generator)[:large]]
        batch = trainer.data_collator(rows)
        grads = []
        for i in range(large):
            model.zero_grad()
            per_example_loss(model, {k: v[i : i + 1] for k, v in batch.items() if k != SOURCE_KEY}).sum().backward()
            grads.append(torch.cat([p.grad.flatten() for p in params]))
        grads = torch.stack(grads)
        target = grads.mean(0)
        state = trainer.moments.state_dict()
        small = trainer.select(dict(batch))
        trainer.moments.load_state_dict(state)  # evaluation only: every draw sees the trained moments
        chosen = trainer.colm_history[-1]["indices"]
        weights = small.get(WEIGHT_KEY, torch.ones(len(chosen)))
        approx = weights @ grads[chosen] / weights.sum()
        colm.append(float((approx - target).norm() / target.norm()))
        halves = [torch.randperm(large, generator=generator)[: len(chosen)] for _ in range(20)]
        random.append(sum(float((grads[h].mean(0) - target).norm() / target.norm()) for h in halves) / len(halves))
    model.zero_grad()
    return sum(colm) / len(colm), sum(random) / len(random)


def train_arm(arm: str, steps: int, seed: int, cold: bool = False) -> dict:
    """Train one arm in this process and return its measurements; ``cold``: without the shared warm-up, peak
    memory only."""
    import torch
    from transformers import DataCollatorForLanguageModeling, Trainer, TrainingArguments

    from hfdc.colm import ColmConfig, ColmTrainer
    from hfdc.colm.data import tokenize_mixture
    from hfdc.colm.trainer import mean_selection_metrics
    from hfdc.data import load
    from hfdc.models import tiny, tiny_processor

    torch.set_num_threads(1)
    if not cold:
        load_library_code()
    tokenizer = tiny_processor("llama")
    model = tiny("llama", seed=seed, **MODEL)
    data = load("sentiment", seed=seed)
    train = tokenize_mixture(data["train"], tokenizer, "{text}", "source", 64)
    validation = tokenize_mixture(data["validation"], tokenizer, "{text}", "source", 64).remove_columns("source")
    common = dict(
        output_dir=tempfile.mkdtemp(),
        max_steps=steps,
        learning_rate=3e-3,
        logging_steps=5,
        report_to="none",
        use_cpu=True,
        save_strategy="no",
        eval_strategy="no",
        seed=seed,
        per_device_eval_batch_size=64,
        disable_tqdm=True,
    )
    collator = DataCollatorForLanguageModeling(tokenizer, mlm=False)
    if arm.startswith("colm"):
        args = ColmConfig(
            per_device_train_batch_size=SMALL,
            selection_ratio=SMALL / LARGE,
            keep_sources=["support"],
            **COLM_ARMS[arm],
            **common,
        )
        trainer = ColmTrainer(model=model, args=args, train_dataset=train, data_collator=collator)
    else:
        args = TrainingArguments(per_device_train_batch_size=SMALL if arm == "small" else LARGE, **common)
        trainer = Trainer(model=model, args=args, train_dataset=train.remove_columns("source"), data_collator=collator)
    before = _rss_mb("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak RSS (VmHWM) to the current RSS
    output = trainer.train()
    peak = _rss_mb("VmHWM") - before
    if cold:
        return {"peak_rss_growth_cold_mb": round(peak, 1)}
    eval_loss = trainer.evaluate(validation)["eval_loss"]
    row = {
        "arm": arm,
        "trained_batch": SMALL if arm != "large" else LARGE,
        "looked_at_batch": LARGE if arm != "small" else SMALL,
        "steps": steps,
        "peak_rss_growth_mb": round(peak, 1),
        "s_per_step": round(output.metrics["train_runtime"] / steps, 3),
        "final_eval_loss": round(eval_loss, 4),
    }
    if arm.startswith("colm"):
        selection = mean_selection_metrics(trainer.state.log_history)
        row["matching_error"] = round(selection["colm/matching_error"], 4)
        row["random_matching_error"] = round(selection["colm/random_matching_error"], 4)
        row["selection_s"] = round(selection["colm/selection_time_s"], 4)
        colm, random = true_gradient_matching(trainer, train, seed)
        row["true_gradient_matching_error"] = round(colm, 4)
        row["random_true_gradient_matching_error"] = round(random, 4)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--arm", choices=ARMS, help="run one arm with the first seed and print its row (internal)")
    parser.add_argument("--cold", action="store_true", help="with --arm: no shared warm-up, peak memory only")
    args = parser.parse_args()
    if args.arm:
        print(json.dumps(train_arm(args.arm, args.steps, args.seeds[0], args.cold)))
        return
    rows = []
    for arm in ARMS:
        runs = []
        for seed in args.seeds:
            run = {}
            for cold in ([], ["--cold"]):
                out = subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "benchmarks.colm",
                        "--arm",
                        arm,
                        "--steps",
                        str(args.steps),
                        "--seeds",
                        str(seed),
                        *cold,
                    ],
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout
                run.update(json.loads(out.strip().splitlines()[-1]))
            runs.append(run)
            print(run, flush=True)
        row = dict(runs[0], seeds=args.seeds, final_eval_loss_per_seed=[r["final_eval_loss"] for r in runs])
        for key, value in runs[0].items():
            if isinstance(value, float):  # seconds: median over seeds; the rest: mean
                average = statistics.median if key.endswith("_s") or key.startswith("s_") else statistics.mean
                row[key] = round(average(r[key] for r in runs), 4)
        rows.append(row)
    large = next(r for r in rows if r["arm"] == "large")
    for row in rows:
        row["peak_memory_vs_large"] = round(row["peak_rss_growth_mb"] / large["peak_rss_growth_mb"], 3)
        row["peak_memory_vs_large_cold"] = round(row["peak_rss_growth_cold_mb"] / large["peak_rss_growth_cold_mb"], 3)
        if "matching_error" in row:
            row["matching_error_vs_random"] = round(row["matching_error"] / row["random_matching_error"], 3)
            row["true_gradient_matching_error_vs_random"] = round(
                row["true_gradient_matching_error"] / row["random_true_gradient_matching_error"], 3
            )
    from benchmarks.common import write_result

    write_result("colm", rows)


if __name__ == "__main__":
    main()
