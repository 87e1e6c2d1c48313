"""Accuracy of a vision-language model on a labelled task split: multiple choice or exact match.

Multiple choice: the prediction is the option o maximising log p(o | image, question with options inline),
summed over o's tokens. Exact match: the greedy answer equals the gold one after SQuAD normalisation.
"""

from __future__ import annotations

import numpy as np
import torch
from datasets import Dataset
from tqdm.auto import tqdm

from hfdc.hallucination.similarity import normalize_answer
from hfdc.mmgen.task import with_options
from hfdc.mmgen.vlm import completion_nll, sft_row

METRICS = ("auto", "multiple_choice", "exact_match")


def multiple_choice_predictions(model, processor, dataset: Dataset, batch_size: int = 16) -> list[str]:
    """The highest-likelihood option per row (rows need image, question, options)."""
    rows, owners = [], []
    for i, row in enumerate(dataset):
        if not row["options"]:
            raise ValueError(f"evaluation row {i} has no options: use metric='exact_match' or add options")
        question = with_options(row["question"], row["options"])
        rows += [sft_row(row["image"], question, option) for option in row["options"]]
        owners += [i] * len(row["options"])
    log_probs = -completion_nll(model, processor, rows, batch_size, progress=True)[:, 0]
    predictions, owners = [], np.array(owners)
    for i, row in enumerate(dataset):
        predictions.append(row["options"][int(np.argmax(log_probs[owners == i]))])
    return predictions


@torch.no_grad()
def greedy_answers(model, processor, dataset: Dataset, max_new_tokens: int = 16, batch_size: int = 16) -> list[str]:
    """The model's greedy answer per row (question with its options inline, when it has any)."""
    tokenizer = processor.tokenizer
    model.eval()
    answers = []
    for start in tqdm(range(0, len(dataset), batch_size), desc="greedy answers", leave=False):
        batch = dataset.select(range(start, min(start + batch_size, len(dataset))))
        prompts = [
            processor.apply_chat_template(
                [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": with_options(q, o)}]}],
                add_generation_prompt=True,
            )
            for q, o in zip(batch["question"], batch["options"])
        ]
        inputs = processor(
            text=prompts,
            images=batch["image"],
            padding=True,
            padding_side="left",
            add_special_tokens=False,
            return_tensors="pt",
        ).to(model.device)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=pad)
        answers += tokenizer.batch_decode(output[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    return [answer.strip() for answer in answers]


def evaluate(model, processor, dataset: Dataset, metric: str = "auto", batch_size: int = 16) -> dict:
    """``{"accuracy", "n", "metric"}`` on ``dataset`` (image, question, answer, options); "auto" uses multiple
    choice when every row has options, else exact match."""
    if metric not in METRICS:
        raise ValueError(f"metric={metric!r} is unknown; choose one of {METRICS}")
    if len(dataset) == 0:
        raise ValueError("the evaluation split is empty")
    if metric == "auto":
        metric = "multiple_choice" if all(dataset["options"]) else "exact_match"
    if metric == "multiple_choice":
        predictions = multiple_choice_predictions(model, processor, dataset, batch_size)
    else:
        predictions = greedy_answers(model, processor, dataset, batch_size=batch_size)
    gold = [normalize_answer(answer) for answer in dataset["answer"]]
    correct = [normalize_answer(p) == g for p, g in zip(predictions, gold)]
    return {"accuracy": float(np.mean(correct)), "n": len(correct), "metric": metric}
