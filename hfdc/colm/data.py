"""Tokenized causal-LM data sets with a source column, for `hfdc colm`."""

from __future__ import annotations

from datasets import Dataset


def tokenize_mixture(dataset: Dataset, tokenizer, template: str, source_column: str, max_length: int) -> Dataset:
    """Columns input_ids, attention_mask and the source column; text = template.format(**row) + eos."""
    if source_column not in dataset.column_names:
        raise ValueError(
            f"data set has no {source_column!r} column (columns: {dataset.column_names}); "
            "set source_column to the column naming each example's source"
        )
    try:
        template.format(**dataset[0])
    except KeyError as err:
        raise ValueError(
            f"text_template {template!r} names column {err} that the data set lacks (columns: {dataset.column_names})"
        ) from None

    def encode(batch):
        rows = [dict(zip(batch, values)) for values in zip(*batch.values())]
        texts = [template.format(**row) + (tokenizer.eos_token or "") for row in rows]
        return tokenizer(texts, truncation=True, max_length=max_length)

    drop = [c for c in dataset.column_names if c != source_column]
    return dataset.map(encode, batched=True, remove_columns=drop, desc="tokenize")
