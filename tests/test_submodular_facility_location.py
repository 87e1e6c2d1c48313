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


def test_matches_apricot_selection_order():
    apricot = pytest.importorskip("apricot")
    x = _features(60, 5, seed=3)
    sim = torch.exp(-(torch.cdist(x, x) ** 2) / 5)  # symmetric, positive
    ours = facility_location(similarity=sim, k=15)
    theirs = apricot.FacilityLocationSelection(15, metric="precomputed", optimizer="lazy").fit(sim.double().numpy())
    assert ours.indices.tolist() == theirs.ranking.tolist()
    assert ours.gains.numpy() == pytest.approx(theirs.gains, rel=1e-4)


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


def test_stochastic_within_its_bound_and_seeded():
    sim = pairwise_similarity(_features(12, 3, seed=6), "l1")
    optimum = _brute_force(sim, 3)
    eps = 0.1
    values = [
        facility_location(similarity=sim, k=3, optimizer="stochastic", seed=s, epsilon=eps).objective
        for s in range(10)
    ]
    assert sum(values) / len(values) >= (1 - 1 / math.e - eps) * optimum
    x = _features(300, 8, seed=7)
    a = facility_location(x, k=30, optimizer="stochastic", seed=3)
    b = facility_location(x, k=30, optimizer="stochastic", seed=3)
    assert a.indices.tolist() == b.indices.tolist()
    assert a.objective >= (1 - 1 / math.e - 0.1) * facility_location(x, k=30).objective


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
