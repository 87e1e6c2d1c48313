"""Targeted generation through ``hfdc.backends`` (MM-Gen stage 2), written in resumable shards.

Prompts (:mod:`hfdc.mmgen.prompts`) go to the backend shard by shard; every reply is parsed
(:mod:`hfdc.mmgen.parsing`); a reply that does not parse is sent back with a format-fix request up to
``max_fix_attempts`` times, then skipped and counted by reason. Each finished shard is saved (``save_to_disk``,
then an atomic rename) with its report, so a rerun skips it; the backend's response cache answers the prompts
of an unfinished shard that were already sent, so a run stopped by a timeout loses nothing it received.
Records are LLaVA conversations, one per question-answer pair, with subgroup and provenance.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from datasets import Dataset, Features, Image, Value, concatenate_datasets, load_from_disk
from tqdm.auto import tqdm

from hfdc.backends import sample_seed
from hfdc.mmgen.parsing import ParseError, parse_items
from hfdc.mmgen.prompts import CAPTION_MODES, MODES, caption_question, fix_messages, plan_prompts, prompt_messages
from hfdc.mmgen.task import CONVERSATION, TaskSpec, decode_image

logger = logging.getLogger(__name__)

RECORD_FEATURES = Features(
    {
        "id": Value("string"),
        "image": Image(),
        "conversations": CONVERSATION,
        "subgroup": Value("string"),
        "candidate_index": Value("int64"),
        "prompt_id": Value("int64"),
        "mode": Value("string"),
        "fix_attempts": Value("int32"),
    }
)
REPORT_FILE = "report.json"


class GenerationError(RuntimeError):
    """The backend failed part way; the finished shards are saved and the received replies cached."""


@dataclass
class GenerationReport:
    """What a generation run produced and cost: prompts, records per subgroup, backend calls and tokens,
    format-fix requests, and prompts skipped per reason (plus dropped items of parsed replies)."""

    mode: str = ""
    generator: str = ""
    planned: dict[str, int] = field(default_factory=dict)
    prompts: int = 0
    records: int = 0
    per_subgroup: dict[str, int] = field(default_factory=dict)
    backend_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cache_hits: int = 0
    fix_requests: int = 0
    fixed: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    dropped_items: int = 0

    def add(self, other: GenerationReport) -> None:
        """Add the counts of ``other`` (a shard's report) to this one."""
        for name in ("prompts", "records", "backend_calls", "prompt_tokens", "completion_tokens", "cache_hits"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.fix_requests += other.fix_requests
        self.fixed += other.fixed
        self.dropped_items += other.dropped_items
        for mine, theirs in ((self.per_subgroup, other.per_subgroup), (self.skipped, other.skipped)):
            for key, value in theirs.items():
                mine[key] = mine.get(key, 0) + value

    def cost(self, usd_per_million_prompt: float = 0.0, usd_per_million_completion: float = 0.0) -> float:
        """Dollars at the given prices per million prompt / completion tokens."""
        return (
            self.prompt_tokens * usd_per_million_prompt + self.completion_tokens * usd_per_million_completion
        ) / 1e6

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(dataclasses.asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> GenerationReport:
        return cls(**json.loads(Path(path).read_text()))


def generation_report(dataset: Dataset) -> GenerationReport:
    """The report saved beside the shards that a :func:`generate` result was loaded from."""
    if not dataset.cache_files:
        raise ValueError("generation_report takes the Dataset returned by hfdc.mmgen.generate (it has no cache files)")
    run_dir = Path(dataset.cache_files[0]["filename"]).parent.parent
    if not (run_dir / REPORT_FILE).is_file():
        raise ValueError(f"{run_dir} holds no {REPORT_FILE}: was this Dataset returned by hfdc.mmgen.generate?")
    return GenerationReport.load(run_dir / REPORT_FILE)


def default_output_dir() -> Path:
    """``$HF_HOME/hfdc/mmgen`` (``~/.cache/huggingface/hfdc/mmgen`` when HF_HOME is unset)."""
    hf_home = os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface")
    return Path(hf_home) / "hfdc" / "mmgen"


def _run_key(task: TaskSpec, plan, backend, settings: dict) -> str:
    """Digest of everything a shard's content depends on: task, plan, generator and generation settings."""
    digest = hashlib.sha256(
        json.dumps(
            {
                "task": task.fingerprint,
                "reference": task.reference._fingerprint,
                "candidates": task.candidates._fingerprint,
                "plan": plan.prompts._fingerprint,
                "generator": [backend.kind, backend.model],
                **settings,
            },
            sort_keys=True,
        ).encode()
    )
    return digest.hexdigest()[:16]


def _records(mode: str, skill: str, row: dict, image: dict, items: list[dict], fix_attempts: int) -> list[dict]:
    records = []
    for number, item in enumerate(items):
        question = caption_question(mode, skill) if mode in CAPTION_MODES else item["Q"]
        records.append(
            {
                "id": f"{mode}-{row['prompt_id']}-{number}",
                "image": image,
                "conversations": [
                    {"from": "human", "value": f"<image>\n{question}"},
                    {"from": "gpt", "value": item["A"]},
                ],
                "subgroup": row["subgroup"],
                "candidate_index": row["candidate_index"],
                "prompt_id": row["prompt_id"],
                "mode": mode,
                "fix_attempts": fix_attempts,
            }
        )
    return records


def _generate_shard(
    rows: Dataset, task: TaskSpec, backend, settings: dict, seed: int
) -> tuple[list[dict], GenerationReport]:
    """Prompt, parse, fix and record one shard; the report holds its counts and backend usage. The backend
    calls of the shard get seeds sample_seed(seed, 0, 0), then sample_seed(seed, attempt, 0) for format fixes 1, 2, ..."""
    mode, keys = settings["mode"], ("A",) if settings["mode"] in CAPTION_MODES else ("Q", "A")
    report = GenerationReport(skipped={}, per_subgroup={})
    usage_before = dataclasses.replace(backend.usage)
    jobs, messages = [], []
    for row in rows:
        candidate = task.candidates[row["candidate_index"]]
        image = decode_image(candidate["image"])
        if image is None:
            report.skipped["undecodable_image"] = report.skipped.get("undecodable_image", 0) + 1
            continue
        examples = [
            (example["image"], example["conversations"], example["text"])
            for example in (task.reference[i] for i in row["example_indices"])
        ]
        jobs.append((row, candidate["image"]))
        messages.append(
            prompt_messages(
                mode, task.skill, (image, candidate["text"]), examples, settings["per_candidate"], settings["images"]
            )
        )
    sampling = dict(temperature=settings["temperature"], max_new_tokens=settings["max_new_tokens"])
    texts = [s[0] for s in backend.generate(messages, seed=sample_seed(seed, 0, 0), **sampling)] if messages else []
    report.prompts = len(jobs)
    parsed, reasons = {}, {}

    def parse(indices: list[int], attempt: int) -> list[int]:
        """Parse the replies of ``indices``; the ones that fail, with their reason kept."""
        failing = []
        for i in indices:
            try:
                parsed[i] = (parse_items(texts[i], keys), attempt)
            except ParseError as error:
                reasons[i] = error.reason
                failing.append(i)
        return failing

    failing = parse(list(range(len(jobs))), 0)
    for attempt in range(1, settings["max_fix_attempts"] + 1):
        if not failing:
            break
        report.fix_requests += len(failing)
        replies = backend.generate(
            [fix_messages(texts[i], mode) for i in failing], seed=sample_seed(seed, attempt, 0), **sampling
        )
        for i, reply in zip(failing, replies):
            texts[i] = reply[0]
        still = parse(failing, attempt)
        report.fixed += len(failing) - len(still)
        failing = still
    for i in failing:
        report.skipped[reasons[i]] = report.skipped.get(reasons[i], 0) + 1
    records = []
    for i, (result, attempts) in sorted(parsed.items()):
        row, image = jobs[i]
        records += _records(mode, task.skill, row, image, result.items, attempts)
        report.dropped_items += result.dropped
    report.records = len(records)
    report.per_subgroup = dict(Counter(record["subgroup"] for record in records))
    report.backend_calls = backend.usage.calls - usage_before.calls
    report.prompt_tokens = backend.usage.prompt_tokens - usage_before.prompt_tokens
    report.completion_tokens = backend.usage.completion_tokens - usage_before.completion_tokens
    report.cache_hits = backend.usage.cache_hits - usage_before.cache_hits
    return records, report


def generate(
    task: TaskSpec,
    backend,
    mode: str = "mmgen",
    total: int = 100,
    per_candidate: int = 1,
    num_icl: int = 1,
    include_images: bool = True,
    temperature: float = 0.7,
    max_new_tokens: int = 512,
    max_fix_attempts: int = 3,
    shard_size: int = 32,
    seed: int = 0,
    output_dir: str | Path | None = None,
) -> Dataset:
    """Generate about ``total`` LLaVA records for ``task`` with ``backend`` (an ``hfdc.backends`` backend).

    ``task`` is partitioned (:func:`hfdc.mmgen.partition_task`) or not (one subgroup "all"); prompts follow
    :func:`hfdc.mmgen.prompts.plan_prompts` (``per_candidate`` pairs asked per prompt, ``num_icl`` examples).
    Shards of ``shard_size`` prompts land in ``<output_dir>/<mode>-<run key>/`` (default output_dir:
    ``$HF_HOME/hfdc/mmgen``); the run key covers the task, plan, generator and settings, so a rerun with the same
    ones skips finished shards and another run never reuses them. Without ``include_images`` (text-only
    generators) the prompt shows each image's description instead. :func:`generation_report` reads the counts.
    """
    if mode not in MODES:
        raise ValueError(f"mode={mode!r} is unknown; choose one of {MODES}")
    if shard_size < 1 or max_fix_attempts < 0:
        raise ValueError(f"shard_size must be >= 1 and max_fix_attempts >= 0, got {shard_size}, {max_fix_attempts}")
    plan = plan_prompts(task.reference, task.candidates, task.keywords, total, per_candidate, num_icl, seed)
    if len(plan.prompts) == 0:
        raise ValueError(f"no prompt could be made ({plan.skipped}): check the candidates and the partition")
    settings = dict(
        mode=mode,
        per_candidate=per_candidate,
        images=include_images,
        temperature=temperature,
        max_new_tokens=max_new_tokens,
        max_fix_attempts=max_fix_attempts,
        shard_size=shard_size,
        seed=seed,
    )
    run_dir = Path(output_dir or default_output_dir()) / f"{mode}-{_run_key(task, plan, backend, settings)}"
    run_dir.mkdir(parents=True, exist_ok=True)
    report = GenerationReport(mode=mode, generator=repr(backend), planned=plan.planned, skipped=dict(plan.skipped))
    starts = range(0, len(plan.prompts), shard_size)
    shards = []
    for number, start in enumerate(tqdm(starts, desc=f"mmgen generate ({mode})", unit="shard")):
        shard = run_dir / f"shard-{number:05d}"
        if not (shard / REPORT_FILE).is_file():
            rows = plan.prompts.select(range(start, min(start + shard_size, len(plan.prompts))))
            try:
                records, shard_report = _generate_shard(rows, task, backend, settings, sample_seed(seed, start, 0))
            except Exception as error:
                raise GenerationError(
                    f"generation stopped in shard {number + 1} of {len(starts)} ({type(error).__name__}: {error}); "
                    f"the {number} finished shards are saved in {run_dir} and every reply received is cached: "
                    "run again to resume"
                ) from error
            tmp = run_dir / f".{shard.name}.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            columns = {name: [record[name] for record in records] for name in RECORD_FEATURES}
            # num_shards=1: datasets writes no file for an empty set without it, and cannot load that back
            Dataset.from_dict(columns, features=RECORD_FEATURES).save_to_disk(str(tmp), num_shards=1)
            shard_report.save(tmp / REPORT_FILE)
            os.replace(tmp, shard)
        report.add(GenerationReport.load(shard / REPORT_FILE))
        shards.append(load_from_disk(str(shard)))
    report.save(run_dir / REPORT_FILE)
    logger.info(
        "mmgen generate (%s): %d records from %d prompts; %d backend calls, %d format-fix requests (%d fixed), "
        "skipped %s, in %s",
        mode,
        report.records,
        report.prompts,
        report.backend_calls,
        report.fix_requests,
        report.fixed,
        report.skipped,
        run_dir,
    )
    return concatenate_datasets(shards)
