"""hfdc.submodular.facility_location: exactness, agreement with apricot, budgets, memory-bounded path, errors."""

import itertools
import math

import pytest
import torch

from hfdc.submodular import facility_location, facility_location_objective, group_budgets, pairwise_similarity
from hfdc.submodular.greedy import greedy
from hfdc.submodular.kernels import Kernel
from hfdc.submodular.store import GainStore


def _features(n=300, d=12, seed=0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def _brute_force(similarity, k):
    best = max(
        itertools.combinations(range(similarity.shape[0]), k),
        key=lambda s: float(similarity[:, list(s)].max(1).values.clamp(min=0).sum()),
    )
    return float(similarity[:, list(best)].max(1).values.clamp(min=0).sum())


def test_greedy_is_optimal_where_provable():
    # k = 1: greedy takes the best singleton
    sim = pairwise_similarity(_features(9, 3), "euclidean")
    assert facility_location(similarity=sim, k=1).objective == pytest.approx(_brute_force(sim, 1), rel=1e-6)
    # three far-apart "stars": each block has a centre similar (0.9) to its members, members 0.2 to each other;
    # the optimum takes the three centres and greedy must find it
    sim = torch.zeros(9, 9)
    for block in range(3):
        members = list(range(3 * block, 3 * block + 3))
        sim[members[0], members] = sim[members, members[0]] = 0.9
        for i, j in itertools.permutations(members[1:], 2):
            sim[i, j] = 0.2
    sim.fill_diagonal_(1.0)
    result = facility_location(similarity=sim, k=3)
    assert sorted(result.indices.tolist()) == [0, 3, 6]
    assert result.objective == pytest.approx(_brute_force(sim, 3)) == pytest.approx(3 * (1 + 0.9 + 0.9))
    assert result.weights.tolist() == [3.0, 3.0, 3.0]


def test_reproduces_apricot_on_digits():
    # apricot's own similarity matrices (float32) on scikit-learn digits: its rankings and gains; for euclidean two
    # of the 100 picks swap inside tied gains
    apricot = pytest.importorskip("apricot")
    from apricot.utils import _calculate_pairwise_distances
    from sklearn.datasets import load_digits

    x = load_digits().data.astype("float64")
    for metric, same in (("cosine", 100), ("euclidean", 98)):
        sim = torch.from_numpy(_calculate_pairwise_distances(x, metric=metric).astype("float32"))
        ours = facility_location(similarity=sim, k=100)
        theirs = apricot.FacilityLocationSelection(100, metric=metric, optimizer="lazy").fit(x)
        assert sum(a == b for a, b in zip(ours.indices.tolist(), theirs.ranking.tolist())) >= same
        assert ours.gains.numpy() == pytest.approx(theirs.gains, rel=1e-5)


@pytest.mark.parametrize("metric", ["cosine", "euclidean", "l1"])
def test_lazy_equals_naive_and_blockwise_equals_dense(metric):
    x = _features(400, 10, seed=1)
    naive = facility_location(x, k=50, metric=metric, optimizer="naive")
    lazy = facility_location(x, k=50, metric=metric, optimizer="lazy")
    blockwise = facility_location(x, k=50, metric=metric, optimizer="lazy", memory_mb=0.1)
    assert lazy.indices.tolist() == naive.indices.tolist() == blockwise.indices.tolist()
    assert torch.allclose(lazy.gains, naive.gains, rtol=1e-4)
    assert torch.allclose(blockwise.gains, naive.gains, rtol=1e-4)
    assert torch.equal(lazy.weights, blockwise.weights)
    assert naive.objective == pytest.approx(facility_location_objective(naive.indices, x, metric=metric), rel=1e-5)
    assert (naive.gains[1:] <= naive.gains[:-1] + 1e-4).all()  # submodular: gains never grow


def test_lazy_uses_live_entries_and_stays_exact():
    x = _features(500, 16, seed=2)
    store = GainStore(Kernel(x, "cosine").dense(), None, None, memory_bytes=2**30)
    run = greedy(store, 120, "lazy")
    assert store.compacted and len(store.val) < 500 * 500 / 8
    naive = facility_location(x, k=120, optimizer="naive")
    assert run.indices.tolist() == naive.indices.tolist()


def test_given_asymmetric_similarity_and_point_weights():
    sim = torch.rand(50, 50, generator=torch.Generator().manual_seed(4))
    w = torch.rand(50, generator=torch.Generator().manual_seed(5))
    naive = facility_location(similarity=sim, k=8, optimizer="naive", point_weights=w)
    lazy = facility_location(similarity=sim, k=8, point_weights=w)
    assert lazy.indices.tolist() == naive.indices.tolist()
    cover = (sim[:, naive.indices] * w[:, None]).max(1).values  # w >= 0: weighting commutes with max
    assert naive.objective == pytest.approx(float(cover.sum()), rel=1e-5)
    assert float(lazy.weights.sum()) == pytest.approx(float(w.sum()), rel=1e-5)


def test_medoid_weights_are_cluster_sizes():
    # s_ij = 11 - |x_i - x_j|: F({2}) = 35 beats F({1}) = 34; then 3 and 4 tie at 16, the lower index wins
    x = torch.tensor([[0.0], [1.0], [2.0], [10.0], [11.0]])
    result = facility_location(x, k=2, metric="euclidean")
    assert result.indices.tolist() == [2, 3]
    assert result.gains.tolist() == [35.0, 16.0]
    assert result.weights.tolist() == [3.0, 2.0]


def _clusters(clusters=20, size=30, d=16, seed=6):
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(clusters, d, generator=gen)
    return (centres[:, None] + 0.1 * torch.randn(clusters, size, d, generator=gen)).reshape(-1, d)


def test_stochastic_greedy_on_clusters_and_its_sample_size(monkeypatch):
    # 20 tight clusters of 30: greedy takes one point per cluster; a random 20 misses about 7 clusters
    x = _clusters()
    lazy = facility_location(x, k=20).objective
    randoms = [
        facility_location_objective(torch.randperm(600, generator=torch.Generator().manual_seed(s))[:20], x)
        for s in range(5)
    ]
    assert max(randoms) < 0.9 * lazy
    sizes = []
    gains = GainStore.gains
    monkeypatch.setattr(GainStore, "gains", lambda self, idx, cur: sizes.append(len(idx)) or gains(self, idx, cur))
    values = [facility_location(x, k=20, optimizer="stochastic", epsilon=0.01, seed=s).objective for s in range(5)]
    assert min(values) >= 0.99 * lazy
    assert sizes == [math.ceil(600 / 20 * math.log(100))] * 100  # (N / k) ln(1 / eps) candidates per pick
    a = facility_location(x, k=20, optimizer="stochastic", seed=3, epsilon=0.3)
    b = facility_location(x, k=20, optimizer="stochastic", seed=3, epsilon=0.3)
    c = facility_location(x, k=20, optimizer="stochastic", seed=4, epsilon=0.3)
    assert a.indices.tolist() == b.indices.tolist() != c.indices.tolist()


def _greedy_by_hand(sim, w, k):
    """Plain-Python greedy facility location on a [N, N] similarity: picks, gains, medoid weights."""
    n, cover, picks, gains = len(sim), [0.0] * len(sim), [], []
    for _ in range(k):
        best = max(
            (j for j in range(n) if j not in picks),
            key=lambda j: sum(w[i] * max(0.0, sim[i][j] - cover[i]) for i in range(n)),
        )
        gains.append(sum(w[i] * max(0.0, sim[i][best] - cover[i]) for i in range(n)))
        picks.append(best)
        cover = [max(cover[i], sim[i][best]) for i in range(n)]
    owner = [
        p if i not in picks else picks.index(i)
        for i, p in enumerate(max(range(k), key=lambda p: (sim[i][picks[p]], -p)) for i in range(n))
    ]
    return picks, gains, [sum(w[i] for i in range(n) if owner[i] == p) for p in range(k)]


@pytest.mark.parametrize("metric", ["euclidean", "l1"])
def test_point_weights_with_distance_features(metric):
    x = torch.tensor([[0.0, 0.5], [1.0, 0.0], [3.0, 1.5], [7.0, 2.0], [7.5, 2.5], [4.0, -1.0]])
    w = torch.tensor([2.0, 0.5, 1.0, 1.5, 0.25, 1.25])
    dist = torch.cdist(x, x, p=1 if metric == "l1" else 2)
    sim = (dist.max() - dist).tolist()
    picks, gains, weights = _greedy_by_hand(sim, w.tolist(), 3)
    for optimizer, memory_mb in (("naive", 2048), ("lazy", 2048), ("lazy", 1e-6)):  # 1e-6: kernel rows on demand
        result = facility_location(x, k=3, metric=metric, point_weights=w, optimizer=optimizer, memory_mb=memory_mb)
        assert result.indices.tolist() == picks
        assert result.gains.tolist() == pytest.approx(gains, rel=1e-5)
        assert result.weights.tolist() == pytest.approx(weights, rel=1e-6)
    assert facility_location_objective(torch.tensor(picks), x, metric=metric, point_weights=w) == pytest.approx(
        sum(gains), rel=1e-5
    )


def test_objective_on_a_given_similarity():
    sim = torch.tensor([[1.0, -0.4, 0.3], [0.2, 0.9, -0.7], [-0.5, -0.1, 0.6], [0.35, 0.25, -0.2]])
    # points 0..3 covered by candidates {1, 2}: max(0, -0.4, 0.3) + max(0, 0.9, -0.7) + max(0, -0.1, 0.6) + max(0.25, -0.2)
    assert facility_location_objective(torch.tensor([1, 2]), similarity=sim) == pytest.approx(0.3 + 0.9 + 0.6 + 0.25)
    w = torch.tensor([0.5, 2.0, 1.0, 4.0])
    assert facility_location_objective(torch.tensor([2]), similarity=sim, point_weights=w) == pytest.approx(
        0.5 * 0.3 + 0 + 0.6 + 0
    )


def test_group_budgets():
    assert group_budgets({"a": 6, "b": 3, "c": 1}, 5) == {"a": 3, "b": 2, "c": 0}
    assert group_budgets({"a": 6, "b": 3, "c": 1}, 6, "balanced") == {"a": 3, "b": 2, "c": 1}
    groups = ["a"] * 60 + ["b"] * 30 + ["c"] * 10
    x = _features(100, 6, seed=8)
    result = facility_location(x, k=20, groups=groups)
    assert result.budgets == {"a": 12, "b": 6, "c": 2}
    picked = [groups[i] for i in result.indices.tolist()]
    assert picked == ["a"] * 12 + ["b"] * 6 + ["c"] * 2
    assert result.weights[:12].sum() == 60 and result.weights[12:18].sum() == 30 and result.weights[18:].sum() == 10
    explicit = facility_location(x, k={"a": 1, "c": 3}, groups=groups)
    assert [groups[i] for i in explicit.indices.tolist()] == ["a", "c", "c", "c"]


def test_bad_input_errors():
    x = _features(20, 4)
    with pytest.raises(ValueError, match="k=21"):
        facility_location(x, k=21)
    bad = x.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        facility_location(bad, k=2)
    with pytest.raises(ValueError, match="empty"):
        facility_location(x, k={"z": 1}, groups=["a"] * 20)
    with pytest.raises(ValueError, match="exceed"):
        facility_location(x, k={"a": 21}, groups=["a"] * 20)
    with pytest.raises(ValueError, match="metric"):
        facility_location(x, k=2, metric="manhattan")
    with pytest.raises(ValueError, match="exactly one"):
        facility_location(x, similarity=torch.eye(20), k=2)
    with pytest.raises(ValueError, match="empty"):
        group_budgets({"a": 3, "b": 0}, 2)
    with pytest.raises(ValueError, match="one label per point: got 19 labels for 20 points"):
        facility_location(x, k=2, groups=["a"] * 19)
    with pytest.raises(TypeError, match="k must be an int"):
        facility_location(x, k=2.5)
    with pytest.raises(ValueError, match="square"):
        facility_location(similarity=torch.rand(4, 5), k=2)


def test_every_pick_weighs_at_least_itself():
    # +-1 features with duplicates (CoLM's step-0 features): many ties between picks; each pick covers itself
    x = torch.sign(torch.randn(16, 3, generator=torch.Generator().manual_seed(0))).repeat(4, 1)
    result = facility_location(x, k=12, metric="l1")
    assert (result.weights >= 1).all() and float(result.weights.sum()) == 64
    w = torch.linspace(0.5, 2.0, 64)
    weighted = facility_location(x, k=12, metric="l1", point_weights=w)
    assert torch.all(weighted.weights >= w[weighted.indices] - 1e-6)
    assert float(weighted.weights.sum()) == pytest.approx(float(w.sum()), rel=1e-6)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_any_float_dtype(dtype):
    x = _features(40, 5, seed=9)
    sim = pairwise_similarity(x, "cosine")
    expected = facility_location(similarity=sim, k=6).indices.tolist()
    for optimizer in ("lazy", "naive"):
        assert facility_location(similarity=sim.to(dtype), k=6, optimizer=optimizer).indices.tolist() == expected
    stochastic = facility_location(similarity=sim.to(dtype), k=6, optimizer="stochastic", epsilon=1e-9)
    assert stochastic.indices.tolist() == expected  # epsilon this small samples every candidate: exact greedy
    assert (
        facility_location(x.to(dtype), k=6).indices.tolist()
        == facility_location(x.to(dtype).float(), k=6).indices.tolist()
    )


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta state")
@pytest.mark.parametrize("metric", ["cosine", "euclidean", "l1"])
def test_nearest_neighbour_similarity(metric):
    x = _features(60, 4, seed=11)
    dense = pairwise_similarity(x, metric)
    everything = facility_location(x, k=8, metric=metric, n_neighbors=59)  # every pair kept: the dense answer
    expected = facility_location(x, k=8, metric=metric)
    assert everything.indices.tolist() == expected.indices.tolist()
    assert torch.allclose(everything.gains, expected.gains, rtol=1e-4)
    assert torch.equal(everything.weights, expected.weights)
    sparse = pairwise_similarity(x, metric, n_neighbors=5)
    assert sparse.is_sparse and sparse._nnz() == 60 * 6
    kept = sparse.to_dense()
    for i in (0, 17, 59):  # point i keeps itself and its 5 most similar others, with the dense values
        nearest = set(torch.topk(dense[i] + 1e9 * (torch.arange(60) == i), 6).indices.tolist())
        assert set(kept[i].nonzero().flatten().tolist()) == nearest
        others = sorted(nearest - {i})
        assert torch.allclose(kept[i, others], dense[i, others], atol=1e-5)
        assert float(kept[i, i]) == pytest.approx(1.0 if metric == "cosine" else float(dense.max()), abs=1e-5)
    truncated = kept.tolist()  # greedy by hand on the kept entries (0 elsewhere)
    picks, gains, _ = _greedy_by_hand(truncated, [1.0] * 60, 8)
    for optimizer in ("lazy", "naive"):
        result = facility_location(x, k=8, metric=metric, n_neighbors=5, optimizer=optimizer)
        assert result.indices.tolist() == picks
        assert result.gains.tolist() == pytest.approx(gains, rel=1e-5)
        assert (result.weights >= 1).all() and result.weights.sum() <= 60
    given = facility_location(similarity=sparse.to_sparse_csr(), k=8)
    assert given.indices.tolist() == picks
    for layout in (sparse, sparse.to_sparse_csr()):
        assert facility_location_objective(given.indices, similarity=layout) == pytest.approx(sum(gains), rel=1e-5)
    groups = [i % 3 for i in range(60)]  # neighbours within each group only
    grouped = facility_location(x, k=9, metric=metric, n_neighbors=4, groups=groups)
    for g in range(3):
        members = torch.arange(g, 60, 3)
        alone = facility_location(x[members], k=3, metric=metric, n_neighbors=4)
        assert grouped.indices[3 * g : 3 * g + 3].tolist() == members[alone.indices].tolist()
    with pytest.raises(ValueError, match="n_neighbors applies to features"):
        facility_location(similarity=sparse, k=2, n_neighbors=3)
