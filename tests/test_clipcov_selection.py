"""CLIPCov selection core: hand-computed scores, greedy vs a reference loop, sharding, budgets, errors."""

import math

import numpy as np
import pytest
import torch

from hfdc.clipcov import baselines, select
from hfdc.clipcov import selection as selection_module
from hfdc.clipcov.budgets import class_budgets
from hfdc.clipcov.greedy import diminishing_returns_greedy
from hfdc.clipcov.scores import normalize


def two_class_example():
    """Four unit-norm 2-D pairs, two per class, with class-name embeddings e1 and e2."""
    image = np.array([[1, 0], [0.6, 0.8], [0, 1], [-0.6, 0.8]], dtype=np.float32)
    text = np.array([[1, 0], [0.8, 0.6], [0, 1], [0.6, 0.8]], dtype=np.float32)
    class_text = np.array([[1, 0], [0, 1]], dtype=np.float32)
    return image, text, np.array([0, 0, 1, 1]), class_text


def test_scores_match_hand_computed_values():
    image, text, labels, class_text = two_class_example()
    result = select(image, text, 0.5, labels=labels, class_text_embeds=class_text, show_progress=False)
    r = 1 / math.sqrt(10)  # centroids: img0 (2, 1)/sqrt5, txt0 (3, 1)/sqrt10, img1 (-1, 3)/sqrt10, txt1 (1, 3)/sqrt10
    s5 = 1 / math.sqrt(5)
    # score = cross + 2 easiness + label/2 - [img . other caption centroid + cap . other image centroid]
    expected = [
        (1 + 0.8 + 1 + 0.6) / 2 + 2 * 1 + 1 / 2 - (1 * r + 1 * -r),
        (0.6 + 0.96 + 0.8 + 0.96) / 2 + 2 * 0.96 + 0.8 / 2 - ((0.6 * r + 0.8 * 3 * r) + (0.8 * -r + 0.6 * 3 * r)),
        (1 + 0.8 + 1 + 0.8) / 2 + 2 * 1 + 1 / 2 - (1 * r + 1 * s5),
        (0.8 + 0.28 + 0.8 + 0.28) / 2 + 2 * 0.28 + 0.8 / 2 - ((-0.6 * 3 * r + 0.8 * r) + (0.6 * 2 * s5 + 0.8 * s5)),
    ]
    np.testing.assert_allclose(result.scores, expected, atol=1e-5)
    assert result.indices.tolist() == [0, 2]  # the better pair of each class
    assert result.per_class == {0: 1, 1: 1}


def test_threshold_zeroes_small_similarities():
    image, text, labels, class_text = two_class_example()
    result = select(image, text, 0.5, labels=labels, class_text_embeds=class_text, threshold=0.9, show_progress=False)
    r = 1 / math.sqrt(10)
    # image-text similarities below 0.9 (0.8 and 0.6 in class 0) count as 0 in cross
    expected0 = (1 + 0 + 1 + 0) / 2 + 2 + 0.5 - 0
    expected1 = (0 + 0.96 + 0 + 0.96) / 2 + 2 * 0.96 + 0.4 - ((0.6 * r + 2.4 * r) + (-0.8 * r + 1.8 * r))
    np.testing.assert_allclose(result.scores[:2], [expected0, expected1], atol=1e-5)


def test_no_threshold_fast_path_equals_threshold_below_all_similarities():
    rng = np.random.default_rng(0)
    image, text = rng.normal(size=(40, 8)).astype(np.float32), rng.normal(size=(40, 8)).astype(np.float32)
    labels = rng.integers(0, 3, 40)
    fast = select(image, text, 0.3, labels=labels, threshold=None, block_size=2, show_progress=False)
    slow = select(image, text, 0.3, labels=labels, threshold=-2.0, block_size=2, show_progress=False)
    np.testing.assert_allclose(fast.scores, slow.scores, atol=1e-5)
    assert fast.indices.tolist() == slow.indices.tolist()


def reference_greedy(image, text, scores, budget, block_size, threshold):
    """One pick at a time, the deduction written out element by element after every block."""
    n = len(scores)
    sim = image @ text.T
    k = np.where(sim >= threshold, sim, 0.0)
    current, picked, block = scores.astype(np.float64).copy(), [], []
    for _ in range(budget):
        best = max((j for j in range(n) if j not in picked), key=lambda j: current[j])
        picked.append(best)
        block.append(best)
        if len(block) == block_size:
            for j in range(n):
                current[j] -= sum(k[j, b] + k[b, j] for b in block) / n
            block = []
    return picked


def test_greedy_equals_reference_loop():
    rng = np.random.default_rng(1)
    image = normalize(torch.from_numpy(rng.normal(size=(30, 6)))).numpy()
    text = normalize(torch.from_numpy(rng.normal(size=(30, 6)))).numpy()
    scores = 0.05 * rng.normal(size=30)  # on the scale of the deductions
    picks = diminishing_returns_greedy(
        torch.from_numpy(image),
        torch.from_numpy(text),
        scores,
        13,
        tiebreak=np.arange(30),
        block_size=4,
        threshold=0.1,
    )
    assert picks.tolist() == reference_greedy(image, text, scores, 13, 4, 0.1)
    # the deduction changes the picks compared with plain top-k
    assert set(picks.tolist()) != set(np.argsort(-scores)[:13].tolist())


def test_sharded_selection_equals_unsharded(monkeypatch):
    rng = np.random.default_rng(2)
    image, text = rng.normal(size=(300, 16)).astype(np.float32), rng.normal(size=(300, 16)).astype(np.float32)
    labels = rng.integers(0, 7, 300)
    full = select(image, text, 0.2, labels=labels, block_size=5, show_progress=False)
    monkeypatch.setattr(selection_module, "gather_shards", lambda rows, scores: (rows, scores))
    parts = []
    for index in range(3):
        monkeypatch.setattr(selection_module, "process_shard", lambda index=index: (index, 3))
        parts.append(select(image, text, 0.2, labels=labels, block_size=5, show_progress=False))
    assert sorted(np.concatenate([p.indices for p in parts]).tolist()) == full.indices.tolist()
    owned = [~np.isnan(p.scores) for p in parts]
    assert (sum(o.astype(int) for o in owned) == 1).all()  # every row scored by exactly one shard
    merged = np.select(owned, [p.scores for p in parts])
    np.testing.assert_array_equal(merged, full.scores)


@pytest.mark.parametrize("seed", range(5))
def test_budgets_sum_exactly_and_fit_classes(seed):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(0, 50, rng.integers(1, 30))
    sizes[0] += 1
    fraction = float(rng.uniform(0.01, 1))
    budgets = class_budgets(sizes, fraction)
    assert budgets.sum() == round(fraction * sizes.sum())
    assert (budgets <= sizes).all() and (budgets >= 0).all()
    assert (np.abs(budgets - sizes * budgets.sum() / sizes.sum()) < 1).all()


def test_selection_size_and_per_class_counts():
    rng = np.random.default_rng(3)
    image, text = rng.normal(size=(101, 8)).astype(np.float32), rng.normal(size=(101, 8)).astype(np.float32)
    labels = np.repeat([0, 1, 2], [50, 30, 21])
    result = select(image, text, 0.1, labels=labels, show_progress=False)
    assert len(result.indices) == 10 and len(set(result.indices.tolist())) == 10
    assert result.per_class == {0: 5, 1: 3, 2: 2}
    assert sum(result.per_class.values()) == len(result.indices)


def test_latent_classes_from_class_prompts():
    image, text, _, class_text = two_class_example()
    with_prompts = select(image, text, 0.5, class_text_embeds=class_text, show_progress=False)
    assert with_prompts.labels.tolist() == [0, 1, 1, 1]  # img1 (0.6, 0.8) is closer to e2 than to e1
    with_labels = select(
        image, text, 0.5, labels=np.array([0, 1, 1, 1]), class_text_embeds=class_text, show_progress=False
    )
    np.testing.assert_array_equal(with_prompts.scores, with_labels.scores)


def test_deterministic_for_a_seed_and_seed_breaks_ties():
    image = np.tile(np.array([[1.0, 0.0]], dtype=np.float32), (20, 1))
    labels = np.zeros(20, dtype=np.int64)
    runs = {
        seed: select(image, image, 0.25, labels=labels, seed=seed, show_progress=False).indices.tolist()
        for seed in (0, 0, 1)
    }
    again = select(image, image, 0.25, labels=labels, seed=0, show_progress=False).indices.tolist()
    assert runs[0] == again
    assert runs[0] != runs[1]


@pytest.mark.parametrize("method", ["random", "clip_score", "semdedup"])
def test_baselines_share_the_interface(method):
    rng = np.random.default_rng(4)
    image, text = rng.normal(size=(60, 8)).astype(np.float32), rng.normal(size=(60, 8)).astype(np.float32)
    labels = rng.integers(0, 3, 60)
    fn = baselines.BASELINES[method]
    a = fn(image, text, 0.25, labels=labels, seed=0)
    assert len(a.indices) == 15 and len(set(a.indices.tolist())) == 15 and a.method == method
    assert sum(a.per_class.values()) == 15
    np.testing.assert_array_equal(a.indices, fn(image, text, 0.25, labels=labels, seed=0).indices)


def test_clip_score_keeps_most_aligned_pairs():
    image, text, labels, _ = two_class_example()
    result = baselines.clip_score(image, text, 0.5)
    np.testing.assert_allclose(result.scores, [1, 0.96, 1, 0.28], atol=1e-6)
    assert result.indices.tolist() == [0, 2]


def test_semdedup_drops_near_duplicates_first():
    rng = np.random.default_rng(5)
    base = rng.normal(size=(10, 16)).astype(np.float32)
    image = np.concatenate([base, base + 1e-3 * rng.normal(size=(10, 16)).astype(np.float32)])
    result = baselines.semdedup(image, image, 0.5, seed=0, num_clusters=2)
    kept = set(result.indices.tolist())
    assert all((i in kept) != (i + 10 in kept) for i in range(10))  # one copy of each duplicate pair


def test_bad_input_raises_clear_errors():
    image, text, labels, class_text = two_class_example()
    with pytest.raises(ValueError, match="captions missing"):
        select(image, None, 0.5, labels=labels)
    for fraction in (0, -0.1, 1.5):
        with pytest.raises(ValueError, match=r"fraction must be a number in \(0, 1\]"):
            select(image, text, fraction, labels=labels)
    with pytest.raises(ValueError, match=r"classes \[1\] have no examples"):
        select(image, text, 0.5, labels=np.array([0, 0, 2, 2]))
    with pytest.raises(ValueError, match=r"classes \[2\] have no examples"):
        select(image, text, 0.5, labels=labels, class_text_embeds=np.eye(3, 2, dtype=np.float32))
    with pytest.raises(ValueError, match="embedding dims differ"):
        select(image, np.ones((4, 3), dtype=np.float32), 0.5, labels=labels)
    with pytest.raises(ValueError, match="embedding dims differ"):
        select(image, text, 0.5, class_text_embeds=np.ones((2, 5), dtype=np.float32))
    with pytest.raises(ValueError, match="rows"):
        select(image, text[:3], 0.5, labels=labels)
    with pytest.raises(ValueError, match="NaN"):
        select(np.full((4, 2), np.nan, dtype=np.float32), text, 0.5, labels=labels)
    with pytest.raises(ValueError, match="labels= or class_text_embeds="):
        select(image, text, 0.5)
    with pytest.raises(ValueError, match="penalty"):
        select(image, text, 0.5, labels=labels, penalty="sum")
