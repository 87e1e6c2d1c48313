"""MM-Gen on shapes spatial Q/A: a tiny Llava before vs after fine-tuning on MM-Gen / generic-caption /
unfiltered MM-Gen data / the reference examples alone; generator parse-failure and format-fix counts; backend
throughput against the local OpenAI-compatible test server at several concurrency limits.

Scaled down for 2 shared CPU cores (see benchmarks/notes/mmgen.md): the task is
recipes/mmgen/tasks/shapes_spatial_bench.yaml (512 candidates, 24 references, 200 test questions); the base
VLM is hfdc's tiny random Llava pretrained here on generic shapes captions of a disjoint draw (a stand-in
for LLaVA's generic pretraining); the main generator is the scripted shapes oracle (20% malformed replies,
10% wrong answers); SmolLM2-135M-Instruct, shown each scene as text, generates a small MM-Gen set when the
asset is converted. Every arm fine-tunes the same base for the same number of steps; arms run in ``--jobs``
processes; each finished arm leaves ``result.json`` in its checkpoint folder, which a rerun with the same
settings reads instead of training again. Run: ``python -m benchmarks.mmgen``.
"""

import argparse
import json
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

from benchmarks.common import arguments, machine, mean_std, prepare, quiet, write_result

TASK = Path(__file__).resolve().parents[1] / "recipes" / "mmgen" / "tasks" / "shapes_spatial_bench.yaml"
OPTIONS = ["left", "right", "above", "below"]


def sft_args(output_dir, steps: int, batch_size: int, lr: float, seed: int):
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=str(output_dir),
        max_steps=steps,
        per_device_train_batch_size=batch_size,
        learning_rate=lr,
        lr_scheduler_type="constant_with_warmup",
        warmup_steps=0.03,
        save_strategy="no",
        logging_steps=10_000,
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
        seed=seed,
    )


def pretrained_base(out: Path, steps: int, captions: int) -> Path:
    """The tiny Llava after ``steps`` of SFT on generic captions of a disjoint shapes draw (saved once)."""
    from datasets import Dataset

    import hfdc.data
    import hfdc.models
    from hfdc.mmgen import train_sft
    from hfdc.mmgen.task import qa_conversation

    folder = out / f"base-{steps}-{captions}"
    if not (folder / "config.json").is_file():
        draw = hfdc.data.load("shapes", n_train=captions, n_validation=2, n_test=2, seed=1)["train"]
        records = Dataset.from_dict(
            {
                "image": list(draw["image"]),
                "conversations": [qa_conversation("Describe the image.", c) for c in draw["caption"]],
            }
        )
        model, processor = hfdc.models.tiny("llava", seed=0), hfdc.models.tiny_processor("llava")
        start = time.perf_counter()
        train_sft(model, processor, records, sft_args(out / "ckpt-base", steps, 128, 3e-3, 0))
        print(f"base: {steps} caption-pretraining steps in {time.perf_counter() - start:.0f} s", flush=True)
        model.save_pretrained(folder)
        processor.save_pretrained(folder)
    return folder


def spatial_label_errors(records, task) -> tuple[int, int]:
    """(wrong, total) over the records whose answer is one of the four relations, against the scene's truth."""
    from hfdc.data.shapes import RELATIONS

    truth = [RELATIONS[next(r for r in RELATIONS if f" {r} " in f" {text} ")][1] for text in task.candidates["text"]]
    wrong = total = 0
    for conversations, index in zip(records["conversations"], records["candidate_index"]):
        answer = conversations[1]["value"].strip().lower().rstrip(".")
        if answer in OPTIONS:
            total += 1
            wrong += answer != truth[index]
    return wrong, total


def finished(job: dict) -> dict | None:
    """The result a previous run of the same job left in its output folder, if any."""
    path = Path(job["output"]) / "result.json"
    if path.is_file():
        saved = json.loads(path.read_text())
        if saved["job"] == job:
            return saved["result"]
    return None


def fine_tune(job: dict) -> dict:
    """Fine-tune a fresh copy of the base on the job's records (a save_to_disk folder, or the task's reference
    examples), evaluate it and save the result next to the checkpoints; runs in a worker process."""
    import torch
    from datasets import load_from_disk

    from hfdc.mmgen import TaskSpec, evaluate, train_sft
    from hfdc.mmgen.cli import load_vlm

    torch.set_num_threads(1)
    quiet()
    task = TaskSpec.from_file(TASK)
    records = task.reference if job["records"] == "reference" else load_from_disk(job["records"])
    model, processor = load_vlm(job["base"])
    start = time.perf_counter()
    args = sft_args(job["output"], job["steps"], job["batch_size"], job["lr"], job["seed"])
    trainer = train_sft(model, processor, records, args)
    seconds = time.perf_counter() - start
    accuracy = evaluate(model, processor, task.evaluation, batch_size=64)["accuracy"]
    print(f"  seed {job['seed']} {job['arm']}: {len(trainer.train_dataset)} rows, accuracy {accuracy:.3f}", flush=True)
    result = {"arm": job["arm"], "seed": job["seed"], "rows": len(trainer.train_dataset), "accuracy": accuracy}
    Path(job["output"]).mkdir(parents=True, exist_ok=True)
    (Path(job["output"]) / "result.json").write_text(
        json.dumps({"job": job, "result": {**result, "train_s": seconds}})
    )
    return {**result, "train_s": seconds}


def generation_row(name: str, records, task) -> dict:
    from hfdc.mmgen import generation_report

    report = generation_report(records)
    wrong, total = spatial_label_errors(records, task)
    return {
        "generator": name,
        "prompts": report.prompts,
        "records": report.records,
        "backend calls": report.backend_calls,
        "format-fix requests": report.fix_requests,
        "fixed by a fix request": report.fixed,
        "skipped prompts": dict(report.skipped),
        "dropped items": report.dropped_items,
        "wrong spatial answers": f"{wrong}/{total}",
    }


def throughput(task, prompts: int, latency: float, workers: list[int], repeats: int) -> list[dict]:
    """Prompts per second through OpenAIBackend against the test server answering after ``latency`` s."""
    import huggingface_hub.constants

    from hfdc import backends
    from hfdc.mmgen import generate, shapes_oracle
    from tests.openai_server import OpenAIServer

    huggingface_hub.constants.HF_HUB_OFFLINE = False  # the server is on 127.0.0.1
    rows = []
    with OpenAIServer(respond=shapes_oracle(malformed=0.0), latency=latency) as server:
        for count in workers:
            times = []
            for _ in range(repeats):
                backend = backends.get(server.spec("teacher"), use_cache=False, max_workers=count, progress=False)
                with tempfile.TemporaryDirectory() as folder:
                    start = time.perf_counter()
                    generate(task, backend, total=prompts, include_images=False, shard_size=prompts, output_dir=folder)
                    times.append(time.perf_counter() - start)
            seconds = statistics.median(times)
            rows.append(
                {
                    "max_workers": count,
                    "prompts": prompts,
                    "server latency s": latency,
                    "median_s": round(seconds, 3),
                    "prompts_per_s": round(prompts / seconds, 1),
                }
            )
    for row in rows:
        row["speedup_vs_1_worker"] = round(rows[0]["median_s"] / row["median_s"], 2)
    return rows


def main():
    parser = arguments(__doc__, seeds=3)
    parser.add_argument("--total", type=int, default=1024, help="MM-Gen pairs asked for (2 per prompt)")
    parser.add_argument("--pretrain_steps", type=int, default=600)
    parser.add_argument("--pretrain_captions", type=int, default=2048)
    parser.add_argument("--steps", type=int, default=250, help="SFT steps of every arm")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--smollm_prompts", type=int, default=16, help="0 skips the SmolLM2 generator")
    parser.add_argument(
        "--smollm_train",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="fine-tune an arm on the SmolLM2 set too (--no-smollm_train: report its generation counts only)",
    )
    parser.add_argument("--throughput_prompts", type=int, default=48)
    parser.add_argument("--jobs", type=int, default=3, help="processes fine-tuning the arms")
    parser.add_argument("--output", default="outputs/benchmarks/mmgen")
    args = parser.parse_args()
    seeds = prepare(args)

    import hfdc.models
    from benchmarks.assets import asset_path, is_converted
    from hfdc import backends
    from hfdc.mmgen import TaskSpec, evaluate, filter_by_loss, generate, partition_task, shapes_oracle
    from hfdc.mmgen.cli import load_vlm

    out = Path(args.output).resolve()
    task = TaskSpec.from_file(TASK)
    task = partition_task(task, hfdc.models.tiny("clip", seed=0), hfdc.models.tiny_processor("clip"))
    base_dir = pretrained_base(out, args.pretrain_steps, args.pretrain_captions)
    base, processor = load_vlm(str(base_dir))
    before = evaluate(base, processor, task.evaluation, batch_size=64)["accuracy"]
    print(f"base accuracy before fine-tuning: {before:.3f}", flush=True)

    oracle = backends.get("scripted", responses=shapes_oracle(malformed=0.2, wrong=0.1), cache_dir=out / "cache")
    common = dict(per_candidate=2, include_images=False, output_dir=out / "generations")
    train = dict(base=str(base_dir), steps=args.steps, batch_size=args.batch_size, lr=args.lr)
    jobs, generation_rows, filter_rows = [], [], []
    for seed in seeds:
        mmgen = generate(task, oracle, mode="mmgen", total=args.total, seed=seed, shard_size=64, **common)
        generic = generate(task, oracle, mode="generic_caption", total=args.total, seed=seed, shard_size=64, **common)
        kept = filter_by_loss(mmgen, base, processor, keep=(25, 75), batch_size=64, cache_dir=out / "cache")
        if seed == seeds[0]:
            generation_rows += [generation_row("scripted oracle: mmgen", mmgen, task)]
            generation_rows += [generation_row("scripted oracle: generic caption", generic, task)]
        wrong_kept, total_kept = spatial_label_errors(kept, task)
        wrong_all, total_all = spatial_label_errors(mmgen, task)
        filter_rows.append(
            {
                "generator": f"filter [25, 75), seed {seed}",
                "records": len(mmgen),
                "kept": len(kept),
                "wrong spatial answers": f"{wrong_all}/{total_all}",
                "wrong spatial answers kept": f"{wrong_kept}/{total_kept}",
            }
        )
        for name, records in (("generic captions", generic), ("MM-Gen unfiltered", mmgen), ("MM-Gen filtered", kept)):
            folder = out / "data" / f"{name.replace(' ', '_')}-{seed}"
            records.save_to_disk(str(folder))
            jobs.append({"arm": name, "records": str(folder), "seed": seed, **train})
        jobs.append({"arm": "reference examples alone", "records": "reference", "seed": seed, **train})
    for number, job in enumerate(jobs):
        job["output"] = str(out / "ckpt" / str(number))

    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=get_context("spawn")) as pool:
        done = [result for result in map(finished, jobs) if result is not None]
        futures = [pool.submit(fine_tune, job) for job in jobs if finished(job) is None]
        if args.smollm_prompts and is_converted("smollm2-135m-instruct"):  # generates while the arms train
            smol = backends.get(f"transformers:{asset_path('smollm2-135m-instruct')}", cache_dir=out / "cache")
            records = generate(
                task,
                smol,
                mode="mmgen",
                total=2 * args.smollm_prompts,
                seed=0,
                temperature=0.0,
                max_new_tokens=96,
                shard_size=8,
                **common,
            )
            generation_rows.append(generation_row("SmolLM2-135M-Instruct: mmgen", records, task))
            folder = out / "data" / "smollm2"
            records.save_to_disk(str(folder), num_shards=1)
            for seed in seeds if len(records) and args.smollm_train else ():
                job = {"arm": "SmolLM2 MM-Gen unfiltered", "records": str(folder), "seed": seed, **train}
                job["output"] = str(out / "ckpt" / f"smol-{seed}")
                result = finished(job)
                if result is None:
                    futures.append(pool.submit(fine_tune, job))
                else:
                    done.append(result)
        results = done + [future.result() for future in futures]

    rows = [{"arm": "base VLM, no fine-tuning", "rows": 0, "accuracy_mean": round(before, 4), "accuracy_std": 0.0}]
    for name in dict.fromkeys(r["arm"] for r in results):
        arm = sorted((r for r in results if r["arm"] == name), key=lambda r: r["seed"])
        times = [r["train_s"] for r in arm if "train_s" in r]  # result files written from a log have none
        mean, std = mean_std([r["accuracy"] for r in arm])
        row = {
            "arm": name,
            "rows": arm[0]["rows"],
            "accuracy_mean": round(mean, 4),
            "accuracy_std": round(std, 4),
            "per_seed": [round(r["accuracy"], 4) for r in arm],
        }
        rows.append({**row, "train_s_median": round(statistics.median(times), 1)} if times else row)
    print(machine())
    write_result("mmgen", rows)
    write_result("mmgen_generation", generation_rows + filter_rows)
    write_result("mmgen_throughput", throughput(task, args.throughput_prompts, 0.05, [1, 4, 16], 3))


if __name__ == "__main__":
    main()
