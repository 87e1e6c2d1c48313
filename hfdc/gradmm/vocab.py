"""The z-step vocabulary: which token ids a synthetic position may take.

GRADMM (arXiv 2502.17607) keeps readable words only: a token is dropped when its text holds a special character,
is longer than 17 characters, or, stripped of spaces and surrounding punctuation, is not a lower-case word.
Special tokens (BOS, EOS, pad, ...) and embedding rows past the tokenizer's vocabulary are always dropped.
"""

from __future__ import annotations

import re

import torch

SPECIAL_CHARACTERS = frozenset("*;:_\n-'<>{}[]()/\\|=+%@~`^#$&")
WORD = re.compile(r"[a-z]+")
EDGE_PUNCTUATION = re.compile(r"^\W+|\W+$")


def is_word_token(text: str, max_chars: int = 17) -> bool:
    """True for a token text that is a word: no special character, at most ``max_chars`` long, letters inside."""
    if len(text) > max_chars or any(char in SPECIAL_CHARACTERS for char in text):
        return False
    return WORD.fullmatch(EDGE_PUNCTUATION.sub("", text.lower().strip())) is not None


def allowed_tokens(tokenizer, num_embeddings: int, words_only: bool = True, max_chars: int = 17) -> torch.Tensor:
    """Boolean mask over the ``num_embeddings`` embedding rows: True where the z-step may place the token.

    ``words_only`` applies :func:`is_word_token`; otherwise every ordinary token of the tokenizer is allowed.
    """
    size = min(len(tokenizer), num_embeddings)
    allowed = torch.zeros(num_embeddings, dtype=torch.bool)
    if words_only:
        texts = tokenizer.batch_decode([[i] for i in range(size)])
        allowed[:size] = torch.tensor([is_word_token(text, max_chars) for text in texts])
    else:
        allowed[:size] = True
    special = [i for i in tokenizer.all_special_ids if i < num_embeddings]
    allowed[special] = False
    if not allowed.any():
        raise ValueError(
            "the z-step vocabulary is empty: no token of the tokenizer passes the word filter; set vocab_filter=false"
        )
    return allowed
