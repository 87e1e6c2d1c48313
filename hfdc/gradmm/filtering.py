"""Filtering synthetic rows by the LM's few-shot label probability (GRADMM, arXiv 2502.17607, Sec. 4.2).

Each row is scored with ``instruction`` + few-shot ``Input: <text>\\nLabel: <word>`` blocks + ``Input: <row>\\nLabel:``;
the probability of class c is that of its label word's tokens, normalised over the classes. ``remove`` keeps the
rows whose most probable class is their label, ``relabel`` gives every row its most probable class, ``top_score``
keeps the ``top_n`` rows of each class with the highest probability of their label.
"""

from __future__ import annotations

import numpy as np
import torch
from datasets import ClassLabel, Dataset

from hfdc.gradmm.evaluate import padded_batches

DEFAULT_INSTRUCTION = "Given the following text. Only output {labels}."
MODES = ("remove", "relabel", "top_score")


def few_shot_prompt(instruction: str, examples, label_words) -> str:
    """The prompt before a scored row: the instruction ({labels} filled in), then one block per (text, class) example."""
    words = [w.strip() for w in label_words]
    prompt = instruction.format(labels=" or ".join(words)) + "\n\n" if instruction else ""
    return prompt + "".join(f"Input: {text}\nLabel: {words[c]}\n\n" for text, c in examples)


@torch.no_grad()
def continuation_log_probs(model, tokenizer, contexts: list[str], continuations: list[str], batch_size: int = 32):
    """[N, C] summed log-probabilities of each of the C ``continuations`` after each of the N ``contexts``."""
    device = next(model.parameters()).device
    tails = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in continuations]
    pairs = [(tokenizer(context)["input_ids"], tail) for context in contexts for tail in tails]
    batches = padded_batches([head + tail for head, tail in pairs], batch_size, device)
    scores = []
    for start, (ids, mask, _) in zip(range(0, len(pairs), batch_size), batches):
        log_probs = model(input_ids=ids, attention_mask=mask).logits.float().log_softmax(-1)
        for row, (head, tail) in enumerate(pairs[start : start + batch_size]):
            positions = torch.arange(len(head) - 1, len(head) + len(tail) - 1, device=device)
            scores.append(log_probs[row, positions, torch.tensor(tail, device=device)].sum().item())
    return torch.tensor(scores).view(len(contexts), len(continuations))


def label_probabilities(
    model, tokenizer, texts, label_words, instruction=DEFAULT_INSTRUCTION, examples=(), batch_size=32
):
    """[N, C] probability of each class for each text, normalised over the C label words."""
    prompt = few_shot_prompt(instruction, examples, label_words)
    contexts = [f"{prompt}Input: {text}\nLabel:" for text in texts]
    words = [" " + w.strip() for w in label_words]
    return continuation_log_probs(model, tokenizer, contexts, words, batch_size).softmax(dim=-1)


def filter_synthetic(
    dataset: Dataset,
    model,
    tokenizer,
    mode: str = "remove",
    label_words=None,
    instruction: str = DEFAULT_INSTRUCTION,
    examples=(),
    top_n: int | None = None,
    text_column: str = "text",
    batch_size: int = 32,
) -> Dataset:
    """``dataset`` filtered by the LM's few-shot label probability, with a column ``label_probability``.

    ``label_words`` default to the ClassLabel names; ``examples`` are (text, class id) pairs shown before each row.
    ``label_probability`` is the probability of the row's label after filtering (after relabelling for ``relabel``).
    """
    if mode not in MODES:
        raise ValueError(f"mode={mode!r} is not one of {MODES}")
    if label_words is None:
        feature = dataset.features["label"]
        if not isinstance(feature, ClassLabel):
            raise ValueError("give label_words: the data set's label column is not a ClassLabel with names")
        label_words = feature.names
    if mode == "top_score" and (top_n is None or top_n < 1):
        raise ValueError(f"mode='top_score' needs top_n >= 1 rows per class, got {top_n}")
    if len(dataset) == 0:
        return dataset.add_column("label_probability", [])
    probs = label_probabilities(model, tokenizer, dataset[text_column], label_words, instruction, examples, batch_size)
    labels = torch.tensor(dataset["label"])
    predicted = probs.argmax(dim=-1)
    if mode == "relabel":
        out = dataset.map(lambda row, i: {"label": int(predicted[i])}, with_indices=True)
        return out.add_column("label_probability", probs.max(dim=-1).values.tolist())
    own = probs[torch.arange(len(labels)), labels]
    if mode == "remove":
        keep = torch.nonzero(predicted == labels).flatten().tolist()
    else:
        keep = []
        for c in labels.unique().tolist():
            rows = torch.nonzero(labels == c).flatten()
            order = torch.argsort(own[rows], descending=True, stable=True)
            keep += rows[order[:top_n]].tolist()
        keep.sort()
    return dataset.add_column("label_probability", own.tolist()).select(np.asarray(keep, dtype=np.int64))
