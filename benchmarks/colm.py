"""CoLM on SmolLM2-135M-Instruct + LoRA, on a real mixture with a rare source (IMDB / Rotten Tomatoes / sentiment).

Train mixture 80 / 15 / 5: IMDB and Rotten Tomatoes reviews (real assets) and the embedded templated sentiment set
(the rare source, kept whole by the selection arms). Causal-LM fine-tuning of every token (texts cut to --length
tokens). Arms, each (arm, seed) in its own process, the same optimizer steps: "small" (Trainer, batch S), "large"
(Trainer, batch L = 2S), "stratified" (looks at L, keeps the rare source, proportional budgets per source, random
rows within a source: CoLM without facility location), "colm", "colm_weighted" (medoid-weighted loss) and
"colm_8_directions" (zo_directions=8). Measured: peak RSS growth during train() over the RSS before it, vs large;
seconds per optimizer step (median over steps); eval loss on the held-out mixture and on the rare source; for the
selection arms, the matching error |mean_S g - mean_B g| / |mean_B g| against the TRUE per-example gradients of
every LoRA parameter (autograd, after training, on fresh large batches), next to stratified and uniform random
subsets of the same batches (means over 20 draws). The error on CoLM's own features is a diagnostic only.
``--probe`` measures the memory of the feature passes (no KV cache) against a KV-cached forward and the training
steps, each in a fresh process.

    python -m benchmarks.colm [--seeds 3] [--steps 30] [--length 32] [--small 4] [--jobs 2]
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ARMS = ("small", "large", "stratified", "colm", "colm_weighted", "colm_8_directions")
COLM_ARMS = {"colm": {}, "colm_weighted": {"use_medoid_weights": True}, "colm_8_directions": {"zo_directions": 8}}
PROBES = ("features", "forward_kv_cache", "forward_no_cache", "train_small", "train_large")
MIXTURE = {"imdb": 0.80, "rotten_tomatoes": 0.15, "sentiment": 0.05}
RARE = "sentiment"
N_TRAIN, N_EVAL, N_RARE_EVAL = 2000, 64, 32
LORA = dict(r=8, lora_alpha=16, lora_dropout=0.05, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])
LEARNING_RATE = 1e-3
MATCHING_BATCHES, RANDOM_DRAWS = 2, 20


def _rss_mb(field: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def reset_peak() -> float:
    """Reset the peak RSS (VmHWM) to the current RSS and return the current RSS in MiB."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _rss_mb("VmRSS")


def load_model(seed: int):
    """SmolLM2-135M-Instruct with LoRA (A initialised from ``seed``) and its tokenizer (pad = eos, as shipped)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from benchmarks.assets import asset_path

    path = asset_path("smollm2-135m-instruct")
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    with torch.no_grad():  # read every weight once: memory-mapped weights count in RSS before any measurement
        sum(float(p.sum()) for p in model.parameters())
    torch.manual_seed(seed)
    model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", **LORA))
    return model, AutoTokenizer.from_pretrained(path)


def mixture(tokenizer, length: int) -> dict:
    """Tokenized train mixture (80/15/5), held-out mixture and held-out rare source; fixed draw (seed 0)."""
    from datasets import concatenate_datasets

    from benchmarks.assets import asset_path
    from hfdc.colm.data import tokenize_mixture
    from hfdc.data import load

    parts = {
        "imdb": load(str(asset_path("imdb"))),
        "rotten_tomatoes": load(str(asset_path("rotten_tomatoes"))),
        "sentiment": load("sentiment"),
    }

    def draw(split: str, sizes: dict):
        rows = []
        for name, size in sizes.items():
            data = parts[name][split].shuffle(seed=0).select(range(size)).select_columns(["text"])
            rows.append(data.add_column("source", [name] * size))
        return tokenize_mixture(concatenate_datasets(rows).shuffle(seed=0), tokenizer, "{text}", "source", length)

    return {
        "train": draw("train", {name: round(share * N_TRAIN) for name, share in MIXTURE.items()}),
        "eval": draw("validation", {name: round(share * N_EVAL) for name, share in MIXTURE.items()}),
        "eval_rare": draw("validation", {RARE: N_RARE_EVAL}),
    }


def stratified_random(sources, budget: int, keep: tuple, generator):
    """Kept sources whole, the rest of ``budget`` split proportionally over the other sources, random rows within
    each source (CoLM's budgets without facility location)."""
    import torch

    from hfdc.submodular import group_budgets

    kept = torch.isin(sources, torch.tensor(keep, dtype=sources.dtype)).nonzero().flatten()
    if len(kept) >= budget:
        return kept[torch.randperm(len(kept), generator=generator)[:budget]]
    rest = sources[~torch.isin(sources, torch.tensor(keep, dtype=sources.dtype))]
    sizes = {int(s): int((rest == s).sum()) for s in rest.unique()}
    picks = [kept]
    for source, k in group_budgets(sizes, budget - len(kept)).items():
        rows = (sources == source).nonzero().flatten()
        picks.append(rows[torch.randperm(len(rows), generator=generator)[:k]])
    return torch.cat(picks)


def stratified_trainer_class():
    """A ColmTrainer whose selection is ``stratified_random`` (no feature passes)."""
    import torch

    from hfdc.colm import ColmTrainer

    class StratifiedRandomTrainer(ColmTrainer):
        def choose(self, batches, sources):
            keep = tuple(self.sources.index(s) for s in self.args.keep_sources)
            generator = torch.Generator().manual_seed(self.args.seed * 1_000_003 + self.moments.step)
            self.moments.step += 1
            indices = stratified_random(sources, self.budget(len(sources), len(batches)), keep, generator)
            return indices, torch.ones(len(indices))

    return StratifiedRandomTrainer


def true_gradient_matching(trainer, train, seed: int, weighted: bool) -> dict:
    """Matching errors against exact per-example gradients of the LoRA parameters on fresh large batches: the
    arm's own selection (moments restored after each), stratified random and uniform random (mean of 20 draws)."""
    import torch

    from hfdc.colm.features import per_example_loss
    from hfdc.colm.trainer import SOURCE_KEY

    model, large = trainer.model, trainer.args.large_batch_size
    params = [p for p in model.parameters() if p.requires_grad]
    keep = tuple(trainer.sources.index(s) for s in trainer.args.keep_sources)
    generator = torch.Generator().manual_seed(10_000 + seed)
    errors = {"own": [], "stratified": [], "uniform": []}

    def error(grads, rows, weights=None):
        target = grads.mean(0)
        weights = torch.ones(len(rows)) if weights is None else weights
        return float((weights @ grads[rows] / weights.sum() - target).norm() / target.norm())

    for _ in range(MATCHING_BATCHES):
        rows = [train[int(i)] for i in torch.randperm(len(train), generator=generator)[:large]]
        batch = trainer._prepare_inputs(trainer.data_collator(rows))
        sources = batch.pop(SOURCE_KEY)
        model.eval()
        grads = []
        for i in range(large):
            model.zero_grad()
            per_example_loss(model, {k: v[i : i + 1] for k, v in batch.items()}).sum().backward()
            grads.append(torch.cat([p.grad.flatten() for p in params]))
        model.zero_grad()
        grads = torch.stack(grads)
        budget = trainer.budget(large, 1)
        state = trainer.moments.state_dict()
        indices, weights = trainer.choose([dict(batch)], sources)
        trainer.moments.load_state_dict(state)  # evaluation only: every draw sees the trained moments
        errors["own"].append(error(grads, indices, weights if weighted else None))
        draws = [stratified_random(sources, budget, keep, generator) for _ in range(RANDOM_DRAWS)]
        errors["stratified"].append(statistics.mean(error(grads, d) for d in draws))
        uniform = [torch.randperm(large, generator=generator)[:budget] for _ in range(RANDOM_DRAWS)]
        errors["uniform"].append(statistics.mean(error(grads, d) for d in uniform))
    return {key: statistics.mean(values) for key, values in errors.items()}


def train_arm(arm: str, steps: int, seed: int, length: int, small: int) -> dict:
    """Train one arm in this process and return its measurements."""
    import torch
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainerCallback, TrainingArguments

    from benchmarks.common import quiet
    from hfdc.colm import ColmConfig, ColmTrainer
    from hfdc.colm.trainer import mean_selection_metrics

    torch.set_num_threads(1)
    quiet()
    model, tokenizer = load_model(seed)
    data = mixture(tokenizer, length)
    stamps = []

    class StepTimes(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            stamps.append(time.perf_counter())

    common = dict(
        output_dir=tempfile.mkdtemp(),
        max_steps=steps,
        learning_rate=LEARNING_RATE,
        lr_scheduler_type="constant",
        logging_steps=1,
        report_to="none",
        use_cpu=True,
        save_strategy="no",
        eval_strategy="no",
        seed=seed,
        per_device_eval_batch_size=16,
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    collator = DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100)
    if arm in ("small", "large"):
        args = TrainingArguments(per_device_train_batch_size=small if arm == "small" else 2 * small, **common)
        trainer = Trainer(
            model=model, args=args, train_dataset=data["train"].remove_columns("source"), data_collator=collator
        )
    else:
        args = ColmConfig(
            per_device_train_batch_size=small,
            selection_ratio=0.5,
            keep_sources=[RARE],
            **COLM_ARMS.get(arm, {}),
            **common,
        )
        cls = stratified_trainer_class() if arm == "stratified" else ColmTrainer
        trainer = cls(model=model, args=args, train_dataset=data["train"], data_collator=collator)
    trainer.add_callback(StepTimes())
    before = reset_peak()
    start = time.perf_counter()
    trainer.train()
    peak = _rss_mb("VmHWM") - before
    seconds = [b - a for a, b in zip([start, *stamps], stamps)][1:]  # the first step loads code: dropped
    row = {
        "arm": arm,
        "trained_batch": 2 * small if arm == "large" else small,
        "looked_at_batch": small if arm == "small" else 2 * small,
        "peak_rss_growth_mb": round(peak, 1),
        "s_per_step": round(statistics.median(seconds), 3),
        "eval_loss": round(trainer.evaluate(data["eval"].remove_columns("source"))["eval_loss"], 4),
        "eval_loss_rare": round(trainer.evaluate(data["eval_rare"].remove_columns("source"))["eval_loss"], 4),
    }
    if arm not in ("small", "large"):
        matching = true_gradient_matching(trainer, data["train"], seed, arm == "colm_weighted")
        row["true_grad_error"] = round(matching["own"], 4)
        row["true_grad_error_stratified"] = round(matching["stratified"], 4)
        row["true_grad_error_uniform"] = round(matching["uniform"], 4)
    if arm in COLM_ARMS:
        selection = mean_selection_metrics(trainer.state.log_history)
        row["feature_error_diagnostic"] = round(selection["colm/matching_error"], 4)
        row["feature_error_random_diagnostic"] = round(selection["colm/random_matching_error"], 4)
        row["selection_s"] = round(selection["colm/selection_time_s"], 3)
    return row


def probe(kind: str, length: int, small: int) -> dict:
    """Peak RSS growth of one pass over a large batch (2 * small rows) in this fresh process."""
    import torch

    from benchmarks.common import quiet
    from hfdc.colm import find_parameter_block, zeroth_order_features
    from hfdc.colm.features import per_example_loss

    torch.set_num_threads(1)
    quiet()
    model, tokenizer = load_model(0)
    rows = mixture(tokenizer, length)["train"].filter(lambda row: len(row["input_ids"]) == length)
    ids = torch.tensor(rows[: 2 * small]["input_ids"])
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone()}
    block = find_parameter_block(model, "v_proj")
    before = reset_peak()
    if kind == "features":
        zeroth_order_features(model, block, batch, chunk_size=small)
    elif kind.startswith("forward"):
        with torch.no_grad():
            for start in range(0, 2 * small, small):
                chunk = {k: v[start : start + small] for k, v in batch.items()}
                model(**chunk, use_cache=kind == "forward_kv_cache")
    else:
        rows = small if kind == "train_small" else 2 * small
        per_example_loss(model, {k: v[:rows] for k, v in batch.items()}).mean().backward()
    return {"probe": kind, "peak_rss_growth_mb": round(_rss_mb("VmHWM") - before, 1)}


def _run(*flags: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.colm", *flags], check=True, capture_output=True, text=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def summarise(arm: str, runs: list[dict], steps: int, length: int) -> dict:
    """One table row: means +- std over seeds (seconds: medians), per-seed eval losses."""
    row = {"arm": arm, "seeds": len(runs), "steps": steps, "tokens": length}
    for key, value in runs[0].items():
        values = [r[key] for r in runs]
        if not isinstance(value, float):
            row.setdefault(key, value)
        elif key.startswith("s_") or key.endswith("_s"):
            row[key] = round(statistics.median(values), 3)
        else:
            row[key] = round(statistics.mean(values), 4)
            row[f"{key}_std"] = round(statistics.stdev(values), 4) if len(values) > 1 else 0.0
    row["eval_loss_per_seed"] = [r["eval_loss"] for r in runs]
    row["eval_loss_rare_per_seed"] = [r["eval_loss_rare"] for r in runs]
    return row


def main() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from benchmarks.common import arguments, write_result

    parser = arguments(__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--length", type=int, default=32, help="tokens per example")
    parser.add_argument("--small", type=int, default=4, help="small batch; the large batch is twice it")
    parser.add_argument("--jobs", type=int, default=2, help="(arm, seed) processes at once")
    parser.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS))
    parser.add_argument("--arm", choices=ARMS, help="run one arm with --seed and print its row (internal)")
    parser.add_argument("--probe", choices=PROBES, help="one memory probe (internal)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    size = ["--steps", str(args.steps), "--length", str(args.length), "--small", str(args.small)]
    if args.arm:
        print(json.dumps(train_arm(args.arm, args.steps, args.seed, args.length, args.small)))
        return
    if args.probe:
        print(json.dumps(probe(args.probe, args.length, args.small)))
        return
    probes = [_run("--probe", kind, *size) for kind in PROBES]  # one at a time: peak memory of a lone process
    for row in probes:
        print(row, flush=True)
    runs: dict = {arm: {} for arm in args.arms}
    lock = threading.Lock()

    def run(arm: str, seed: int) -> None:
        result = _run("--arm", arm, "--seed", str(seed), *size)
        with lock:
            runs[arm][seed] = result
            print(result, flush=True)
            write_result("colm", [*table(runs, args), *probes])  # after every run: a long benchmark keeps its results

    with ThreadPoolExecutor(args.jobs) as pool:  # seed by seed, so that partial results cover every arm
        for future in [pool.submit(run, arm, seed) for seed in range(args.seeds) for arm in args.arms]:
            future.result()


def table(runs: dict, args) -> list[dict]:
    """Rows of the arms with results so far, with peak memory relative to the large batch's."""
    rows = [summarise(a, [r[s] for s in sorted(r)], args.steps, args.length) for a, r in runs.items() if r]
    large = next((r for r in rows if r["arm"] == "large"), None)
    for row in rows:
        if large:
            row["peak_memory_vs_large"] = round(row["peak_rss_growth_mb"] / large["peak_rss_growth_mb"], 3)
    return rows


if __name__ == "__main__":
    main()
