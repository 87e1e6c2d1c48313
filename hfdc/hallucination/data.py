"""Labelled QA data (TriviaQA / SQuAD / Natural Questions style) and answer correctness labels."""

from __future__ import annotations

from pathlib import Path

import datasets

from hfdc.hallucination.similarity import normalize_answer


def gold_list(value, column: str) -> list[str]:
    """Gold answers as a list of strings from the common layouts: str, list[str], SQuAD {"text": [...]},
    TriviaQA {"value": str, "aliases": [...]}."""
    if isinstance(value, str):
        golds = [value]
    elif isinstance(value, dict) and "text" in value:
        golds = list(value["text"])
    elif isinstance(value, dict) and "value" in value:
        golds = [value["value"], *value.get("aliases", [])]
    elif isinstance(value, (list, tuple)):
        golds = list(value)
    else:
        raise TypeError(
            f"column {column!r}: cannot read gold answers from {type(value).__name__}; expected str, list[str], "
            "{'text': [...]} (SQuAD) or {'value': ..., 'aliases': [...]} (TriviaQA)"
        )
    golds = [g for g in golds if isinstance(g, str) and g.strip()]
    if not golds:
        raise ValueError(f"column {column!r} has a row without any non-empty gold answer")
    return golds


def is_correct(answer: str, golds: list[str]) -> bool:
    """True when a normalised gold answer occurs in the normalised answer as whole words (or equals it)."""
    text = f" {normalize_answer(answer)} "
    return any(f" {g} " in text for g in map(normalize_answer, golds) if g)


def hallucination_labels(answers: list[str], golds: list[list[str]]) -> list[int]:
    """1 where the answer matches no gold answer (a hallucination), else 0."""
    return [int(not is_correct(a, g)) for a, g in zip(answers, golds)]


def load_split(
    dataset: str,
    split: str,
    question_column: str = "question",
    answers_column: str = "answers",
    dataset_config: str | None = None,
    max_questions: int | None = None,
    seed: int = 0,
) -> tuple[list[str], list[list[str]]]:
    """(questions, gold answer lists) of one split of a Hub data set or a ``save_to_disk`` folder;
    ``max_questions`` keeps a seeded random subset."""
    if Path(dataset).exists():
        data = datasets.load_from_disk(dataset)
        if isinstance(data, datasets.DatasetDict):
            if split not in data:
                raise ValueError(f"split {split!r} not in {dataset} (splits: {list(data)})")
            data = data[split]
    else:
        data = datasets.load_dataset(dataset, dataset_config, split=split)
    for column in (question_column, answers_column):
        if column not in data.column_names:
            raise ValueError(
                f"column {column!r} not in {dataset}:{split} (columns: {data.column_names}); "
                "set question_column / answers_column"
            )
    if max_questions is not None and max_questions < len(data):
        data = data.shuffle(seed=seed).select(range(max_questions))
    questions = [str(q) for q in data[question_column]]
    if not all(q.strip() for q in questions):
        raise ValueError(f"column {question_column!r} has an empty question")
    return questions, [gold_list(v, answers_column) for v in data[answers_column]]
