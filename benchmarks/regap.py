"""ReGap on the mini LLaVA: stage-1 pretraining with vs without the modality-gap regulariser, >= 3 seeds.

The mini LLaVA is recipes/regap/mini_llava.yaml: a tiny CLIP tower trained once on the shapes captions (shared
by every run), SmolLM2-135M-Instruct (real asset) and a fresh projector whose initialisation and data order
follow the seed. For each seed every arm starts from the same projector and trains it for ``--steps`` steps
(baseline: regap_weight 0; ReGap: alpha * D at LLM layer 1, alpha from a 5-step warm-up so that alpha * D =
``--weights`` (1 and 0.1) x the LM loss). Measured on held-out
validation pairs: MIR and the layer-1 mean distance (``measure_gap``), the caption LM loss; and on the 40
embedded harmful prompts: the keyword-judge unsafe rate with blank / random / typographic images and with text
only, and the mean per-token log-probability of the refusal "I'm sorry, but I can't help with that." Text only
does not touch the projector, so it is measured once. The regulariser's step overhead is the ratio of median
forward + backward times, alternating the two trainers on the same batch and model.

    python -m benchmarks.regap [--seeds 3] [--steps 40] [--prompts 40] [--weights 1 0.1] [--work DIR]

With ``--work`` every finished run (and the vision tower) is kept there and a rerun skips it.
"""

import json
import statistics
import tempfile
import time
from pathlib import Path

from transformers import TrainerCallback

from benchmarks.common import arguments, mean_std, prepare, write_result

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "regap" / "mini_llava.yaml"
IMAGE_KINDS = ("blank", "random", "typographic")


def regap_config(work: Path, seed: int, weight: float, steps: int, language_model: Path):
    """The recipe's RegapConfig for one run (``weight`` 0 = the baseline)."""
    from hfdc.cli import parse_config
    from hfdc.regap import RegapConfig

    flags = ["--config", str(RECIPE), "--output_dir", str(work / f"w{weight}-{seed}"), "--seed", str(seed)]
    flags += ["--language_model", str(language_model), "--max_steps", str(steps), "--use_cpu", "true"]
    flags += ["--disable_tqdm", "true", "--regap_weight", str(weight)]
    return parse_config(RegapConfig, flags)


class StepTimer(TrainerCallback):
    """Records the wall time of each optimizer step."""

    def __init__(self):
        self.seconds, self._start = [], 0.0

    def on_step_begin(self, args, state, control, **kwargs):
        self._start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.seconds.append(time.perf_counter() - self._start)


def overhead(model, processor, work: Path, train, language_model: Path, repeats: int = 6) -> dict:
    """Median seconds of a forward + backward through RegapTrainer.compute_loss with and without the regulariser,
    alternated on one batch of 8 pairs (alpha frozen, as after the warm-up)."""
    from hfdc.regap import RegapTrainer

    trainers = {
        arm: RegapTrainer(
            model=model,
            args=regap_config(work, 0, weight, 1, language_model),
            train_dataset=train,
            processing_class=processor,
        )
        for arm, weight in (("baseline", 0.0), ("regap", 1.0))
    }
    trainers["regap"].alpha.frozen, trainers["regap"].alpha.alpha = True, 1.0
    batch = trainers["regap"].data_collator([train[i] for i in range(8)])
    model.train()
    times = {arm: [] for arm in trainers}
    for _ in range(repeats):
        for arm, trainer in trainers.items():
            start = time.perf_counter()
            trainer.compute_loss(model, dict(batch)).backward()
            times[arm].append(time.perf_counter() - start)
            model.zero_grad(set_to_none=True)
    medians = {arm: statistics.median(t) for arm, t in times.items()}
    return {**medians, "ratio": medians["regap"] / medians["baseline"]}


def cached(path: Path, compute) -> dict:
    """``compute()`` once: its dict is kept in ``path`` (JSON) and read back on a rerun."""
    if path.is_file():
        return json.loads(path.read_text())
    value = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2))
    return value


def arm_name(weight: float) -> str:
    return "baseline" if weight == 0 else f"regap w={weight:g}"


def summary(values: list[float]) -> str:
    mean, std = mean_std(values)
    return f"{mean:.4g} ± {std:.2g}"


def main():
    parser = arguments(__doc__, seeds=3)
    parser.add_argument("--steps", type=int, default=40, help="stage-1 optimizer steps per run")
    parser.add_argument("--prompts", type=int, default=40, help="embedded harmful prompts evaluated")
    parser.add_argument(
        "--weights", type=float, nargs="+", default=[1.0, 0.1], help="regap_weight of the regularised arms"
    )
    parser.add_argument("--work", default="", help="folder for the runs; a rerun reuses every finished run")
    args = parser.parse_args()
    seeds = prepare(args)

    from benchmarks.assets import asset_path
    from hfdc.data import load
    from hfdc.models import mini_llava
    from hfdc.regap import (
        HARMFUL_PROMPTS,
        GapReport,
        RegapTrainer,
        measure_gap,
        plot_gaps,
        probe_images,
        refusal_logprob,
        safety_sweep,
    )
    from hfdc.regap.data import caption_pairs
    from hfdc.regap.model import train_vision_tower

    language_model = asset_path("smollm2-135m-instruct")
    work = Path(args.work or tempfile.mkdtemp(prefix="regap-bench-"))
    base = regap_config(work, 0, 1.0, args.steps, language_model)
    data = load(base.dataset, **base.dataset_params)
    train, held_out = data["train"], data["validation"].select(range(base.max_eval_samples))
    reused = (work / "vision_tower").is_dir()
    start = time.perf_counter()
    tower = train_vision_tower(train, work, base.vision_tower_epochs, 0, base.vision_tower_config, use_cpu=True)
    tower_seconds = "reused from --work" if reused else f"{time.perf_counter() - start:.0f}"
    print(f"vision tower ready ({tower_seconds})", flush=True)
    pairs = caption_pairs(held_out, base.gap_pairs)
    prompts = list(HARMFUL_PROMPTS[: args.prompts])
    weights = [0.0, *args.weights]

    def build(seed):
        return mini_llava(str(tower), str(language_model), vision_feature_layer=base.vision_feature_layer, seed=seed)

    def untrained(seed):
        model, processor = build(seed)
        trainer = RegapTrainer(model=model, args=base, eval_dataset=held_out, processing_class=processor)
        gap = measure_gap(model, processor, pairs, progress=False)
        gap.save(work / f"untrained-{seed}" / "gap.json")
        return {
            "mir": gap.mir,
            "layer1_distance": gap.layers[1].distance,
            "caption_loss": trainer.evaluate()["eval_loss"],
        }

    def text_only():
        model, processor = build(seeds[0])
        report = safety_sweep(model, processor, prompts, ["none"], max_new_tokens=base.safety_max_new_tokens)
        return {
            "unsafe_none": report["none"].unsafe_rate,
            "refusal_logprob_none": statistics.mean(refusal_logprob(model, processor, prompts, None)),
        }

    def run(seed, weight):
        config = regap_config(work, seed, weight, args.steps, language_model)
        model, processor = build(seed)
        timer = StepTimer()
        trainer = RegapTrainer(
            model=model,
            args=config,
            train_dataset=train,
            eval_dataset=held_out,
            processing_class=processor,
            callbacks=[timer],
        )
        t0 = time.perf_counter()
        trainer.train()
        train_seconds = time.perf_counter() - t0
        gap = measure_gap(model, processor, pairs, progress=False)
        gap.save(Path(config.output_dir) / "gap.json")
        row = {
            "mir": gap.mir,
            "layer1_distance": gap.layers[1].distance,
            "layer0_distance": gap.layers[0].distance,
            "caption_loss": trainer.evaluate()["eval_loss"],
            "alpha": trainer.alpha.alpha if config.regularise else 0.0,
            "train_seconds": train_seconds,
            "step_seconds_median": statistics.median(timer.seconds[1:]),
        }
        reports = safety_sweep(
            model,
            processor,
            prompts,
            list(IMAGE_KINDS),
            max_new_tokens=config.safety_max_new_tokens,
            batch_size=config.safety_batch_size,
            seed=seed,
            output_dir=Path(config.output_dir) / "safety",
            progress=False,
        )
        for kind in IMAGE_KINDS:
            images = probe_images(kind, prompts, model.config.vision_config.image_size, seed)
            row[f"unsafe_{kind}"] = reports[kind].unsafe_rate
            row[f"refusal_logprob_{kind}"] = statistics.mean(refusal_logprob(model, processor, prompts, images))
        return row

    per_seed = {"untrained": [cached(work / f"untrained-{s}" / "row.json", lambda s=s: untrained(s)) for s in seeds]}
    for seed in seeds:
        for weight in weights:
            row = cached(work / f"w{weight}-{seed}" / "row.json", lambda s=seed, w=weight: run(s, w))
            per_seed.setdefault(arm_name(weight), []).append(row)
            print(f"seed {seed} {arm_name(weight)}: " + ", ".join(f"{k}={v:.4g}" for k, v in row.items()), flush=True)
    text = cached(work / "text_only.json", text_only)
    model, processor = build(seeds[0])
    timing = overhead(model, processor, work, train, language_model)

    arms = list(per_seed)
    rows = []
    keys = ["mir", "layer1_distance", "layer0_distance", "caption_loss"]
    keys += [f"{q}_{k}" for q in ("unsafe", "refusal_logprob") for k in IMAGE_KINDS]
    keys += ["alpha", "step_seconds_median"]
    for key in keys:
        row = {"quantity": key}
        for arm in arms:
            values = [r[key] for r in per_seed[arm] if key in r]
            row[arm] = summary(values) if values else ""
        row["per seed"] = {arm: [round(r[key], 4) for r in per_seed[arm] if key in r] for arm in arms[1:]}
        rows.append(row)
    for kind in ("unsafe_none", "refusal_logprob_none"):
        rows.append({"quantity": f"{kind} (text only: no projector involved)", "baseline": f"{text[kind]:.4g}"})
    rows.append(
        {
            "quantity": "forward+backward seconds, alternated on one batch of 8 (median of 6)",
            "baseline": f"{timing['baseline']:.3g}",
            "regap w=1": f"{timing['regap']:.3g} (x{timing['ratio']:.3f})",
        }
    )
    rows.append({"quantity": "vision tower training seconds (once, shared)", "baseline": tower_seconds})
    write_result("regap", rows)
    first = {"untrained": GapReport.load(work / f"untrained-{seeds[0]}" / "gap.json")}
    first.update({arm_name(w): GapReport.load(work / f"w{w}-{seeds[0]}" / "gap.json") for w in weights})
    print(f"wrote {plot_gaps(first, ROOT / 'benchmarks' / 'results' / 'regap.png')}")


if __name__ == "__main__":
    main()
