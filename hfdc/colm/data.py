"""Tokenized causal-LM data sets with a source column, for `hfdc colm`."""

from __future__ import annotations

from datasets import Dataset

IGNORE = -100


def tokenize_mixture(
    dataset: Dataset, tokenizer, template: str, source_column: str, max_length: int, prompt_template: str = ""
) -> Dataset:
    """Columns input_ids, attention_mask, labels and the source column.

    text = prompt_template.format(**row) + template.format(**row) + eos; the prompt's tokens get label -100 (not
    trained), every other token, EOS included, is its own label (so EOS stays trained when pad == eos).
    """
    if source_column not in dataset.column_names:
        raise ValueError(
            f"data set has no {source_column!r} column (columns: {dataset.column_names}); "
            "set source_column to the column naming each example's source"
        )
    for name, value in (("text_template", template), ("prompt_template", prompt_template)):
        try:
            value.format(**dataset[0])
        except KeyError as err:
            raise ValueError(
                f"{name} {value!r} names column {err} that the data set lacks (columns: {dataset.column_names})"
            ) from None
    eos = tokenizer.eos_token or ""

    def encode(batch):
        rows = [dict(zip(batch, values)) for values in zip(*batch.values())]
        prompts = [prompt_template.format(**row) for row in rows]
        texts = [prompt + template.format(**row) + eos for prompt, row in zip(prompts, rows)]
        encoded = tokenizer(texts, truncation=True, max_length=max_length)
        prompt_lengths = [len(ids) for ids in tokenizer(prompts, truncation=True, max_length=max_length)["input_ids"]]
        encoded["labels"] = [
            [IGNORE] * min(n, len(ids)) + ids[n:] if prompt else list(ids)
            for ids, n, prompt in zip(encoded["input_ids"], prompt_lengths, prompts)
        ]
        return encoded

    drop = [c for c in dataset.column_names if c != source_column]
    return dataset.map(encode, batched=True, remove_columns=drop, desc="tokenize")
