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


LABEL_METHODS = ("exact_match", "containment", "judge")
JUDGE_PROMPT = (
    "Question: {question}\nReference answer(s): {golds}\nProposed answer: {answer}\n"
    "Is the proposed answer correct? Reply with yes or no.\nReply:"
)


def is_correct(answer: str, golds: list[str], method: str = "exact_match") -> bool:
    """Whether ``answer`` is right: "exact_match" (default) = its SQuAD-normalised text equals a normalised gold
    alias; "containment" = a normalised gold alias occurs in it as whole words (lenient: "Not Paris, it is Lyon"
    counts as "Paris")."""
    text = normalize_answer(answer)
    aliases = [g for g in map(normalize_answer, golds) if g]
    if method == "exact_match":
        return text in aliases
    if method == "containment":
        return any(f" {g} " in f" {text} " for g in aliases)
    raise ValueError(f"label method {method!r}: is_correct takes 'exact_match' or 'containment' (judge: judge_labels)")


def judge_labels(questions: list[str], answers: list[str], golds: list[list[str]], judge, seed: int = 0) -> list[int]:
    """Hallucination labels from an LLM judge (an ``hfdc.backends`` backend, greedy): 1 unless its reply starts
    with "yes" to JUDGE_PROMPT."""
    prompts = [
        JUDGE_PROMPT.format(question=q, golds="; ".join(g), answer=a) for q, a, g in zip(questions, answers, golds)
    ]
    replies = judge.generate(prompts, n=1, temperature=0.0, max_new_tokens=4, seed=seed)
    return [int(not normalize_answer(r[0]).startswith("yes")) for r in replies]


def hallucination_labels(
    answers: list[str],
    golds: list[list[str]],
    method: str = "exact_match",
    questions: list[str] | None = None,
    judge=None,
) -> list[int]:
    """1 where the answer is wrong (a hallucination) by ``method`` (one of LABEL_METHODS), else 0; "judge"
    needs ``questions`` and a ``judge`` backend."""
    if len(answers) != len(golds):
        raise ValueError(f"{len(answers)} answers for {len(golds)} gold lists; give one gold list per answer")
    if method == "judge":
        if judge is None or questions is None:
            raise ValueError("label_method='judge' needs questions and a judge backend (set judge to a backend spec)")
        return judge_labels(questions, answers, golds, judge)
    return [int(not is_correct(a, g, method)) for a, g in zip(answers, golds)]


def load_split(
    dataset: str,
    split: str,
    question_column: str = "question",
    answers_column: str = "answers",
    dataset_params: dict | None = None,
    max_questions: int | None = None,
    seed: int = 0,
) -> tuple[list[str], list[list[str]]]:
    """(questions, gold answer lists) of one split of a data set read by ``hfdc.data.load`` (embedded name such as
    "factual_qa", ``save_to_disk`` folder or Hub id); ``max_questions`` keeps a seeded random subset."""
    from hfdc import data as hfdc_data

    params = dict(dataset_params or {})
    if not hfdc_data.is_embedded(dataset) and not Path(dataset).is_dir():
        params.setdefault("split", split)
    data = hfdc_data.load(dataset, **params)
    if isinstance(data, datasets.DatasetDict):
        if split not in data:
            raise ValueError(
                f"split {split!r} not in {dataset} (splits: {list(data)}); set validation_split/test_split"
            )
        data = data[split]
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
