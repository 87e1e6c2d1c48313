"""CLIPCov selection core: hand-computed scores and penalties, the greedy and the global allocation against
notebook-style reference loops, sharding, the cross-covariance error, baselines, errors."""

import math
import threading
from collections import defaultdict

import numpy as np
import pytest
import torch

from hfdc.clipcov import baselines, select
from hfdc.clipcov import partition as partition_module
from hfdc.clipcov import selection as selection_module
from hfdc.clipcov.greedy import ClassGreedy
from hfdc.clipcov.scores import ClassScores


def two_class_example():
    """Four unit-norm 2-D pairs, two per class, with class-name embeddings e1 and e2."""
    image = np.array([[1, 0], [0.6, 0.8], [0, 1], [-0.6, 0.8]], dtype=np.float32)
    text = np.array([[1, 0], [0.8, 0.6], [0, 1], [0.6, 0.8]], dtype=np.float32)
    class_text = np.array([[1, 0], [0, 1]], dtype=np.float32)
    return image, text, np.array([0, 0, 1, 1]), class_text


def unit(rows):
    rows = np.asarray(rows, dtype=np.float64)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


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


def test_mean_penalty_averages_over_the_other_present_classes():
    # three latent classes of sizes 2, 1, 2 from the prompts e1, e2, e3; a fourth prompt (-e1) wins no image,
    # so each penalty averages over the 2 other present classes, never over the own class or the empty one
    image = np.array([[3.0, 0.5, 0.2], [0.9, 0.1, 0.4], [0.2, 2.0, 0.1], [0.1, 0.3, 1.0], [0.3, 0.2, 0.8]])
    text = np.array([[1.0, 0.4, 0.0], [0.7, 0.0, 0.6], [0.3, 1.0, 0.3], [0.0, 0.4, 1.0], [0.5, 0.1, 0.9]])
    prompts = np.array([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [-1.0, 0, 0]])
    labels = np.array([0, 0, 1, 2, 2])
    x, y = unit(image), unit(text)
    image_centroid = {c: unit([x[labels == c].sum(0)])[0] for c in range(3)}
    text_centroid = {c: unit([y[labels == c].sum(0)])[0] for c in range(3)}
    penalty = np.array(
        [
            sum(x[i] @ text_centroid[o] + y[i] @ image_centroid[o] for o in range(3) if o != labels[i]) / 2
            for i in range(5)
        ]
    )
    sims = np.clip(x @ y.T, 0, None)
    cross = np.array([(sims[i, labels == labels[i]].sum() + sims[labels == labels[i], i].sum()) for i in range(5)])
    cross /= np.bincount(labels)[labels]
    expected = cross + 2 * (x * y).sum(1) + (y * prompts[labels]).sum(1) / 2 - penalty
    result = select(
        image.astype(np.float32), text.astype(np.float32), 0.4, class_text_embeds=prompts, penalty="mean",
        show_progress=False,
    )  # fmt: skip
    assert result.labels.tolist() == labels.tolist()
    np.testing.assert_allclose(result.scores, expected, atol=1e-5)
    # a plain value from the formula: row 2 is alone in class 1, so its cross term is 2 * easiness
    assert abs(result.scores[2] - (4 * (x[2] @ y[2]) + y[2, 1] / 2 - penalty[2])) < 1e-5


def test_no_threshold_fast_path_equals_threshold_below_all_similarities():
    rng = np.random.default_rng(0)
    image, text = rng.normal(size=(40, 8)).astype(np.float32), rng.normal(size=(40, 8)).astype(np.float32)
    labels = rng.integers(0, 3, 40)
    fast = select(image, text, 0.3, labels=labels, threshold=None, block_size=2, show_progress=False)
    slow = select(image, text, 0.3, labels=labels, threshold=-2.0, block_size=2, show_progress=False)
    np.testing.assert_allclose(fast.scores, slow.scores, atol=1e-5)
    assert fast.indices.tolist() == slow.indices.tolist()


def thresholded(x, y, threshold):
    sim = x @ y.T
    return np.where(sim >= threshold, sim, 0.0)


def test_class_stream_equals_reference_loop():
    """One class: one pick at a time, the deductions written out element by element after every block."""
    rng = np.random.default_rng(1)
    image, text = unit(rng.normal(size=(30, 6))), unit(rng.normal(size=(30, 6)))
    scores, cross, label = 0.05 * rng.normal(size=30), rng.uniform(0, 0.3, 30), rng.uniform(-0.2, 0.4, 30)
    k = thresholded(image, text, 0.1)
    current, picked, values = scores.copy(), [], []
    for t in range(13):
        best = max((j for j in range(30) if j not in picked), key=lambda j: current[j])
        picked.append(best)
        values.append(current[best])
        if (t + 1) % 4 == 0:
            block = picked[-4:]
            for j in range(30):
                current[j] -= sum(k[j, b] + k[b, j] for b in block) / 30
                current[j] -= (sum(cross[picked]) + sum(label[block]) / 2) / 30
    stream = ClassGreedy(
        ClassScores(*(torch.from_numpy(a) for a in (scores, cross, label))), np.arange(30), block_size=4
    )
    stream.extend(torch.from_numpy(image).float(), torch.from_numpy(text).float(), 13, threshold=0.1)
    assert len(stream) == 16  # whole blocks
    assert stream.positions[:13].tolist() == picked
    np.testing.assert_allclose(stream.values[:13], values, atol=1e-6)
    assert set(picked) != set(np.argsort(-scores)[:13].tolist())  # the deductions change the picks


def notebook_global_greedy(image, text, labels, scores, cross, label, total, block, threshold):
    """The authors' notebook loop: one list over all pairs, a class's scores lowered after each of its blocks."""
    current, subset = scores.astype(np.float64).copy(), []
    picked, new = defaultdict(list), defaultdict(list)
    while len(subset) < total:
        best = max((j for j in range(len(scores)) if j not in subset), key=lambda j: current[j])
        subset.append(best)
        c = labels[best]
        picked[c].append(best)
        new[c].append(best)
        if len(picked[c]) % block == 0:
            members = np.flatnonzero(labels == c)
            k_in = thresholded(image[members], text[new[c]], threshold).sum(1)
            k_out = thresholded(image[new[c]], text[members], threshold).sum(0)
            current[members] -= (k_in + k_out) / len(members)
            current[members] -= sum(cross[picked[c]]) / len(members)
            current[members] -= sum(label[new[c]]) / 2 / len(members)
            new[c] = []
    return sorted(subset)


def class_terms(image, text, labels, prompts, threshold):
    """cross_i and label_i of every pair (the terms the class-wide deductions use)."""
    cross, label = np.zeros(len(labels)), np.zeros(len(labels))
    for c in np.unique(labels):
        m = np.flatnonzero(labels == c)
        k = thresholded(image[m], text[m], threshold)
        cross[m] = (k.sum(1) + k.sum(0)) / len(m)
        label[m] = text[m] @ prompts[c]
    return cross, label


def pools(kind):
    """(image, text, prompts, labels) of 90 unit pairs in 4 classes of unequal sizes."""
    labels = np.repeat([0, 1, 2, 3], [40, 25, 15, 10])
    if kind == "unstructured":  # with no threshold, deductions of both signs: streams that rise after a block
        rng = np.random.default_rng(13)
        return unit(rng.normal(size=(90, 8))), unit(rng.normal(size=(90, 8))), unit(rng.normal(size=(4, 8))), labels
    rng = np.random.default_rng(11)
    centres = rng.normal(size=(4, 8))
    image = unit(centres[labels] + 0.9 * rng.normal(size=(90, 8)))
    return image, unit(image + 0.8 * rng.normal(size=(90, 8))), unit(centres + 0.3 * rng.normal(size=(4, 8))), labels


@pytest.mark.parametrize(("kind", "threshold"), [("clustered", 0.0), ("unstructured", None)])
def test_global_allocation_equals_the_notebook_loop(kind, threshold):
    image, text, prompts, labels = pools(kind)
    args = (image.astype(np.float32), text.astype(np.float32), 0.3)
    kwargs = {"labels": labels, "class_text_embeds": prompts.astype(np.float32), "block_size": 3}
    result = select(*args, **kwargs, threshold=threshold, show_progress=False)
    reference_threshold = -np.inf if threshold is None else threshold
    cross, label = class_terms(image, text, labels, prompts, reference_threshold)
    expected = notebook_global_greedy(image, text, labels, result.scores, cross, label, 27, 3, reference_threshold)
    assert result.indices.tolist() == expected


def test_classes_compete_under_global_allocation():
    image, text, prompts, labels = pools("clustered")
    args = (image.astype(np.float32), text.astype(np.float32), 0.3)
    kwargs = {"labels": labels, "class_text_embeds": prompts.astype(np.float32), "block_size": 3}
    result = select(*args, **kwargs, show_progress=False)
    proportional = select(*args, **kwargs, allocation="proportional", show_progress=False)
    # group_budgets: quotas 12, 7.5, 4.5, 3; the equal remainders 0.5 go to the larger class
    assert proportional.per_class == {0: 12, 1: 8, 2: 4, 3: 3}
    assert result.per_class != proportional.per_class  # the classes competed


def test_proportional_allocation_is_per_class_top_of_the_stream():
    rng = np.random.default_rng(3)
    image, text = rng.normal(size=(101, 8)).astype(np.float32), rng.normal(size=(101, 8)).astype(np.float32)
    labels = np.repeat([0, 1, 2], [50, 30, 21])
    result = select(image, text, 0.1, labels=labels, allocation="proportional", show_progress=False)
    assert len(result.indices) == 10 and len(set(result.indices.tolist())) == 10
    assert result.per_class == {0: 5, 1: 3, 2: 2}
    for c, n in result.per_class.items():  # one block per class: the class's n best scores
        members = np.flatnonzero(labels == c)
        best = members[np.argsort(-result.scores[members], kind="stable")[:n]]
        assert sorted(best.tolist()) == [i for i in result.indices.tolist() if labels[i] == c]


class Recorded:
    """A row-indexable array that records, per fake process, which rows were read."""

    def __init__(self, array, group):
        self.array, self.group = array, group
        self.shape, self.dtype = array.shape, array.dtype
        self.reads = defaultdict(set)

    def __len__(self):
        return len(self.array)

    def __getitem__(self, key):
        rows = np.arange(len(self.array))[key]
        self.reads[self.group.local.rank].update(np.atleast_1d(rows).tolist())
        return self.array[key]

    def __array__(self, dtype=None, copy=None):  # read whole
        return self[:].astype(dtype or self.dtype)


class FakeProcesses:
    """``count`` threads standing in for accelerate processes: a rank each, and an all-gather on a barrier."""

    def __init__(self, count, monkeypatch):
        self.count, self.local = count, threading.local()
        self.barrier, self.slots = threading.Barrier(count, timeout=60), [None] * count
        for module in (partition_module, selection_module):
            monkeypatch.setattr(module, "process_shard", lambda: (self.local.rank, count))
            monkeypatch.setattr(module, "gather", self.gather)

    def gather(self, obj):
        self.slots[self.local.rank] = obj
        self.barrier.wait()
        out = list(self.slots)
        self.barrier.wait()
        return out

    def run(self, fn):
        results, errors = [None] * self.count, []

        def target(rank):
            self.local.rank = rank
            try:
                results[rank] = fn()
            except Exception as err:  # surfaced below, after every thread stopped
                errors.append(err)
                self.barrier.abort()

        threads = [threading.Thread(target=target, args=(r,)) for r in range(self.count)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        return results


@pytest.mark.parametrize("allocation", ["global", "proportional"])
def test_sharded_selection_equals_unsharded_and_reads_only_own_rows(monkeypatch, allocation):
    rng = np.random.default_rng(2)
    image, text = rng.normal(size=(300, 16)).astype(np.float32), rng.normal(size=(300, 16)).astype(np.float32)
    prompts = rng.normal(size=(7, 16)).astype(np.float32)
    kwargs = {"class_text_embeds": prompts, "block_size": 5, "allocation": allocation, "show_progress": False}
    full = select(image, text, 0.2, **kwargs)
    group = FakeProcesses(3, monkeypatch)
    recorded = Recorded(image, group), Recorded(text, group)
    parts = group.run(lambda: select(*recorded, 0.2, **kwargs))
    for part in parts:
        np.testing.assert_array_equal(part.indices, full.indices)
        np.testing.assert_array_equal(part.scores, full.scores)
        assert part.cross_covariance_error == pytest.approx(full.cross_covariance_error, rel=1e-6)
    sizes = np.bincount(full.labels, minlength=7)
    for rank in range(3):  # its contiguous third of the rows, then the rows of the classes it owns
        owned = [c for c in np.lexsort((np.arange(7), -sizes)) if sizes[c]][rank::3]
        allowed = set(range(100 * rank, 100 * rank + 100)) | set(np.flatnonzero(np.isin(full.labels, owned)).tolist())
        for array in recorded:
            assert array.reads[rank] <= allowed
            assert len(array.reads[rank]) < 300 * 0.8


def test_cross_covariance_error_matches_hand_computation():
    # unit rows x = (1, 0), (0.6, 0.8), (0, 1); y = (0.8, 0.6), (1, 0), (0, 1), given at other lengths
    image = np.array([[2, 0], [0.3, 0.4], [0, 5]], dtype=np.float32)
    text = np.array([[0.4, 0.3], [3, 0], [0, 1]], dtype=np.float32)
    # Sigma(V) = [[1.4, 0.6], [0.8, 1]] / 3; CLIP-score keeps rows 0 and 2 (cosines 0.8, 0.6, 1):
    # Sigma(S) = [[0.8, 0.6], [0, 1]] / 2; difference [[-1/15, 0.1], [-4/15, 1/6]]
    expected = math.sqrt((1 / 15) ** 2 + 0.1**2 + (4 / 15) ** 2 + (1 / 6) ** 2)
    result = baselines.clip_score(image, text, 2 / 3)
    assert result.indices.tolist() == [0, 2]
    assert result.cross_covariance_error == pytest.approx(expected, abs=1e-6)
    assert expected == pytest.approx(0.336650, abs=1e-6)
    everything = baselines.random_subset(image, text, 1.0)
    assert everything.cross_covariance_error == pytest.approx(0.0, abs=1e-7)
    labels = np.array([0, 1, 1])
    clipcov = select(image, text, 2 / 3, labels=labels, show_progress=False)
    x, y = unit(image), unit(text)
    picked = clipcov.indices
    by_hand = np.einsum("ni,nj->ij", x[picked], y[picked]) / 2 - np.einsum("ni,nj->ij", x, y) / 3
    assert clipcov.cross_covariance_error == pytest.approx(np.linalg.norm(by_hand), abs=1e-6)


def test_latent_classes_from_class_prompts():
    image, text, _, class_text = two_class_example()
    with_prompts = select(image, text, 0.5, class_text_embeds=class_text, show_progress=False)
    assert with_prompts.labels.tolist() == [0, 1, 1, 1]  # img1 (0.6, 0.8) is closer to e2 than to e1
    with_labels = select(
        image, text, 0.5, labels=np.array([0, 1, 1, 1]), class_text_embeds=class_text, show_progress=False
    )
    np.testing.assert_array_equal(with_prompts.scores, with_labels.scores)


@pytest.mark.parametrize("allocation", ["global", "proportional"])
def test_deterministic_for_a_seed_and_seed_breaks_ties(allocation):
    image = np.tile(np.array([[1.0, 0.0]], dtype=np.float32), (20, 1))
    labels = np.repeat([0, 1], 10)
    runs = [
        select(image, image, 0.25, labels=labels, seed=seed, allocation=allocation, show_progress=False)
        for seed in (0, 0, 1)
    ]
    assert runs[0].indices.tolist() == runs[1].indices.tolist()
    assert runs[0].indices.tolist() != runs[2].indices.tolist()


@pytest.mark.parametrize("method", ["random", "clip_score", "semdedup"])
def test_baselines_share_the_interface(method):
    rng = np.random.default_rng(4)
    image, text = rng.normal(size=(60, 8)).astype(np.float32), rng.normal(size=(60, 8)).astype(np.float32)
    labels = rng.integers(0, 3, 60)
    fn = baselines.BASELINES[method]
    a = fn(image, text, 0.25, labels=labels, seed=0)
    assert len(a.indices) == 15 and len(set(a.indices.tolist())) == 15 and a.method == method
    assert sum(a.per_class.values()) == 15
    assert a.cross_covariance_error > 0
    np.testing.assert_array_equal(a.indices, fn(image, text, 0.25, labels=labels, seed=0).indices)


def test_clip_score_keeps_most_aligned_pairs():
    image, text, labels, _ = two_class_example()
    result = baselines.clip_score(image, text, 0.5)
    np.testing.assert_allclose(result.scores, [1, 0.96, 1, 0.28], atol=1e-6)
    assert result.indices.tolist() == [0, 2]


def test_semdedup_keeps_the_copy_farther_from_the_centroid():
    """One cluster: rows ordered farthest-first from the centroid; a row's score is -max cos to earlier rows."""
    rng = np.random.default_rng(5)
    base = unit(rng.normal(size=(8, 6)) + 2.0)  # one cluster around (1, ..., 1)
    centroid = unit([base.sum(0)])[0]
    copies = unit(base + 0.05 * (base - centroid))  # each copy a little farther from the centroid
    image = np.concatenate([base, copies]).astype(np.float32)
    result = baselines.semdedup(image, image, 0.5, seed=0, num_clusters=1)
    x = unit(image)
    mean = unit([x.sum(0)])[0]
    order = np.argsort(x @ mean, kind="stable")  # farthest first
    expected = np.empty(16)
    for t, i in enumerate(order):
        expected[i] = -max((x[j] @ x[i] for j in order[:t]), default=-1.0)
    np.testing.assert_allclose(result.scores, expected, atol=1e-5)
    assert result.indices.tolist() == list(range(8, 16))  # the farther copy of every pair


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
    with pytest.raises(ValueError, match="allocation"):
        select(image, text, 0.5, labels=labels, allocation="quota")
