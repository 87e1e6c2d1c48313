"""The task template of GRADMM: classification as next-token prediction of a one-token label word.

A row becomes ``[tokens the tokenizer puts in front] + tokens(text + prompt)``; the loss is the cross-entropy of
the class's label-word token at the last position (GRADMM, arXiv 2502.17607: "<sentence> It was great/bad").
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Task:
    """Token ids of the template: ``special_ids`` (e.g. BOS), ``prompt_ids`` and one ``label_ids`` entry per class."""

    prompt: str
    label_words: tuple[str, ...]
    special_ids: tuple[int, ...]
    prompt_ids: tuple[int, ...]
    label_ids: tuple[int, ...]

    @property
    def num_classes(self) -> int:
        return len(self.label_ids)

    @property
    def pinned_length(self) -> int:
        """Positions of a sequence that are not free text: the special tokens in front and the prompt at the end."""
        return len(self.special_ids) + len(self.prompt_ids)

    def encode(self, tokenizer, text: str) -> list[int]:
        """Ids of ``text`` followed by the prompt (tokenized together, as the LM reads them), special tokens in front."""
        return list(self.special_ids) + tokenizer(text + self.prompt, add_special_tokens=False)["input_ids"]


def build_task(tokenizer, prompt: str, label_words) -> Task:
    """The :class:`Task` of ``prompt`` and ``label_words``; a label word that is not exactly one token is an error."""
    label_ids = []
    for i, word in enumerate(label_words):
        ids = tokenizer(word, add_special_tokens=False)["input_ids"]
        if len(ids) != 1:
            raise ValueError(
                f"label_words[{i}]={word!r} is {len(ids)} tokens for this tokenizer ({ids}); GRADMM matches the "
                "gradient of ONE label token: choose a one-token word (a leading space often makes one, e.g. ' great')"
            )
        label_ids.append(ids[0])
    if len(set(label_ids)) < len(label_ids):
        raise ValueError(
            f"label_words {list(label_words)} map to the same token ids {label_ids}; choose distinct words"
        )
    return Task(
        prompt=prompt,
        label_words=tuple(label_words),
        special_ids=tuple(tokenizer("", add_special_tokens=True)["input_ids"]),
        prompt_ids=tuple(tokenizer(prompt, add_special_tokens=False)["input_ids"]),
        label_ids=tuple(label_ids),
    )


def context_length(model) -> int | None:
    """The longest sequence ``model`` takes (``max_position_embeddings`` or ``n_positions``), None if it has no limit."""
    for name in ("max_position_embeddings", "n_positions"):
        value = getattr(model.config, name, None)
        if value:
            return int(value)
    return None


def check_fits(length: int, model, what: str) -> None:
    """Raise ValueError naming ``what`` when ``length`` tokens exceed the model's context."""
    limit = context_length(model)
    if limit is not None and length > limit:
        raise ValueError(f"{what} is {length} tokens, longer than the model's context of {limit} tokens")
