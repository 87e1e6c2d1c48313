"""Targeted prompts (MM-Gen stage 2): subgroup-proportional prompt counts, same-subgroup in-context examples.

For subgroup g with |ref_g| of the |ref| reference examples, n_g = ceil(total * |ref_g| / |ref| / m) prompts are
made, each asking for m question-answer pairs about one candidate image of g, shown after ``num_icl`` reference
examples of g. Joshi et al., "MM-GEN", arXiv 2501.04155, section 3.2. Baseline modes change the prompt only:
``task_qa`` (no examples), ``task_caption`` (skill-aware descriptions), ``generic_caption`` (plain descriptions).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from datasets import Dataset, Features, List, Value

from hfdc.mmgen.task import conversation_pairs

MODES = ("mmgen", "task_qa", "task_caption", "generic_caption")
CAPTION_MODES = ("task_caption", "generic_caption")
ALL = "all"  # the one subgroup of data sets that were not partitioned

PLAN_FEATURES = Features(
    {
        "prompt_id": Value("int64"),
        "subgroup": Value("string"),
        "candidate_index": Value("int64"),
        "example_indices": List(Value("int64")),
    }
)

QA_SYSTEM = (
    "You are an expert in {skill} {task} If a question is multiple-choice, write its options inside the question. "
    'Reply with only a JSON list of objects with the keys "Q" (the question) and "A" (the answer), like '
    '[{{"Q": "...", "A": "..."}}].'
)
QA_TASK_WITH_EXAMPLES = (
    "Study the example images with their question-answer pairs, then write diverse, high-quality question-answer "
    "pairs about the new image that test the same skill in the same style."
)
QA_TASK_WITHOUT_EXAMPLES = (
    "Write diverse, high-quality question-answer pairs about the new image that test this skill."
)
CAPTION_SYSTEM = {
    "task_caption": "You are an expert in {skill} Describe images in detail, bringing out what matters for this skill.",
    "generic_caption": "You write detailed, accurate descriptions of images.",
}
CAPTION_REPLY = 'Reply with only a JSON list of objects with the key "A" (the description), like [{"A": "..."}].'
QA_INSTRUCTION = (
    'Write exactly {m} diverse question-answer pairs about the new image, as a JSON list of {{"Q", "A"}} objects.'
)
CAPTION_INSTRUCTION = 'Write exactly {m} detailed descriptions of the new image, as a JSON list of {{"A"}} objects.'
FIX_SYSTEM = (
    "You repair malformed JSON. Rewrite the user's text as a valid JSON list of objects with the string keys {keys}, "
    "keeping its content. Reply with only the JSON."
)


def caption_question(mode: str, skill: str) -> str:
    """The human turn of a caption record: ``"Describe the image."`` or the skill-aware instruction."""
    if mode == "generic_caption":
        return "Describe the image."
    return f"Describe the image as an expert in {skill[0].lower() + skill[1:]}"


def prompt_counts(reference_counts: Mapping[str, int], total: int, per_candidate: int) -> dict[str, int]:
    """n_g = ceil(total * |ref_g| / |ref| / per_candidate) for each subgroup g (exact integer arithmetic)."""
    if total < 1 or per_candidate < 1:
        raise ValueError(f"total ({total}) and per_candidate ({per_candidate}) must be >= 1")
    size = sum(reference_counts.values())
    if size == 0:
        raise ValueError("no reference examples in any subgroup: the task needs reference examples")
    return {g: -(-total * count // (size * per_candidate)) for g, count in reference_counts.items()}


@dataclass
class PromptPlan:
    """The prompts to send (one row each) and what the plan could not make, per reason."""

    prompts: Dataset
    planned: dict[str, int]
    skipped: dict[str, int] = field(default_factory=dict)


def _subgroups(dataset: Dataset) -> list:
    return list(dataset["subgroup"]) if "subgroup" in dataset.column_names else [ALL] * len(dataset)


def plan_prompts(
    reference: Dataset,
    candidates: Dataset,
    keywords: Sequence[str],
    total: int,
    per_candidate: int = 1,
    num_icl: int = 1,
    seed: int = 0,
) -> PromptPlan:
    """Subgroup-proportional prompts: candidate images of g in seeded shuffled rounds (each is used once before
    any is used again), ``num_icl`` distinct reference examples of g per prompt (seeded draw).

    Data sets without a ``subgroup`` column form the single subgroup "all". Candidates whose image failed to
    decode (``subgroup`` None) are counted as ``undecodable_image``; the prompts of a subgroup without
    candidates as ``no_candidates``.
    """
    if num_icl < 0:
        raise ValueError(f"num_icl must be >= 0, got {num_icl}")
    ref_groups = np.array(_subgroups(reference), dtype=object)
    cand_groups = np.array(_subgroups(candidates), dtype=object)
    groups = list(keywords) if "subgroup" in reference.column_names else [ALL]
    planned = prompt_counts({g: int((ref_groups == g).sum()) for g in groups}, total, per_candidate)
    skipped = {}
    undecodable = int(sum(g is None for g in cand_groups))
    if undecodable:
        skipped["undecodable_image"] = undecodable
    rows = {name: [] for name in PLAN_FEATURES}
    for position, group in enumerate(groups):
        pool = np.flatnonzero(cand_groups == group)
        refs = np.flatnonzero(ref_groups == group)
        if planned[group] == 0:
            continue
        if not len(pool):
            skipped["no_candidates"] = skipped.get("no_candidates", 0) + planned[group]
            continue
        rng = np.random.default_rng([seed, position])
        order = np.concatenate([rng.permutation(pool) for _ in range(-(-planned[group] // len(pool)))])
        for candidate in order[: planned[group]]:
            rows["prompt_id"].append(len(rows["prompt_id"]))
            rows["subgroup"].append(group)
            rows["candidate_index"].append(int(candidate))
            rows["example_indices"].append(rng.choice(refs, size=min(num_icl, len(refs)), replace=False).tolist())
    return PromptPlan(Dataset.from_dict(rows, features=PLAN_FEATURES), planned, skipped)


def _image_block(image, text: str, include_images: bool) -> list[dict]:
    parts = [{"type": "image", "image": image}] if include_images else []
    if text:
        parts.append({"type": "text", "text": f"Image description: {text}"})
    return parts


def _as_content(parts: list[dict]):
    """Parts as message content; text-only parts join into one string (what text-only models take)."""
    if any(part["type"] == "image" for part in parts):
        return parts
    return "\n".join(part["text"] for part in parts)


def prompt_messages(
    mode: str,
    skill: str,
    candidate: tuple,
    examples: Sequence[tuple] = (),
    per_candidate: int = 1,
    include_images: bool = True,
) -> list[dict]:
    """The chat messages of one generation prompt.

    ``candidate`` = (image, description); ``examples`` = (image, LLaVA conversations, description) of the same
    subgroup (used by mode "mmgen" only). Without ``include_images`` (text-only generators) images are left out
    and only their descriptions are shown.
    """
    if mode not in MODES:
        raise ValueError(f"mode={mode!r} is unknown; choose one of {MODES}")
    if not include_images and not candidate[1]:
        raise ValueError(
            "the generator gets no images (include_images=False) and the candidate has no description: set "
            "candidates.text_column in the task file or use a vision-language generator"
        )
    parts = []
    if mode in CAPTION_MODES:
        system = CAPTION_SYSTEM[mode].format(skill=skill) + " " + CAPTION_REPLY
        instruction = CAPTION_INSTRUCTION.format(m=per_candidate)
    else:
        task = QA_TASK_WITH_EXAMPLES if mode == "mmgen" else QA_TASK_WITHOUT_EXAMPLES
        system = QA_SYSTEM.format(skill=skill, task=task)
        instruction = QA_INSTRUCTION.format(m=per_candidate)
        for number, (image, conversations, text) in enumerate(examples if mode == "mmgen" else (), start=1):
            pairs = [{"Q": q, "A": a} for q, a in conversation_pairs(conversations)]
            parts.append({"type": "text", "text": f"Example {number}:"})
            parts += _image_block(image, text, include_images)
            parts.append({"type": "text", "text": json.dumps(pairs, ensure_ascii=False)})
    parts.append({"type": "text", "text": "New image:"})
    parts += _image_block(candidate[0], candidate[1], include_images)
    parts.append({"type": "text", "text": instruction})
    return [{"role": "system", "content": system}, {"role": "user", "content": _as_content(parts)}]


def fix_messages(text: str, mode: str) -> list[dict]:
    """A format-fix request: rewrite ``text`` as the JSON list the mode expects."""
    keys = '"A"' if mode in CAPTION_MODES else '"Q" and "A"'
    return [{"role": "system", "content": FIX_SYSTEM.format(keys=keys)}, {"role": "user", "content": text}]
