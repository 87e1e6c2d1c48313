"""Facility location: hfdc vs apricot-select and submodlib-py on the same data, sparse k-NN vs dense, a 200k run.

Data: seeded standard-normal features, d = 128, k = 10% of N. Each comparison uses the objective the peer
optimises, end to end from the features (kernel construction included): submodlib's "cosine" is plain
cosine similarity (hfdc metric="cosine"); apricot's "cosine" is the squared cosine, which hfdc gets as a
``similarity=`` matrix built in torch inside the timed call. Exact greedy on both sides, so the objective
ratio should be 1. Every library first runs once untimed on a small problem (apricot's numba JIT compiles
there, as hfdc's first call loads its code). Sparse vs dense (N = 50k by default): hfdc with ``n_neighbors``
against hfdc dense (block-wise, the N x N matrix does not fit 2 GB), both scored on the dense objective. The
200k run and the sparse / dense runs each run in a fresh process to measure their peak RSS.

    python -m benchmarks.facility_location [--sizes 5000 20000] [--repeats 3] [--peer-repeats 1] [--sparse-n 50000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import numpy as np
import torch

from benchmarks.common import median_time, write_result
from hfdc.submodular import facility_location, facility_location_objective

FRESH_RUN = """
import json, resource, sys, time, torch
torch.set_num_threads(1)
from hfdc.submodular import facility_location, facility_location_objective
n, d, k, options, score = json.loads(sys.argv[1])
x = torch.randn(n, d, generator=torch.Generator().manual_seed(0))
start = time.perf_counter()
result = facility_location(x, k=k, **options)
seconds = time.perf_counter() - start
dense = facility_location_objective(result.indices, x, metric=options.get("metric", "cosine")) if score else None
print(json.dumps({"time_s": seconds, "objective": result.objective, "dense_objective": dense,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def features(n: int, d: int) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(0))


def squared_cosine(x: torch.Tensor) -> torch.Tensor:
    """apricot's "cosine" kernel: (x_i . x_j / |x_i| |x_j|)^2."""
    xn = torch.nn.functional.normalize(x, dim=1)
    return (xn @ xn.T).square_()


def compare_submodlib(x: torch.Tensor, k: int, repeats: int, peer_repeats: int, quiet: bool = False) -> dict:
    from submodlib import FacilityLocationFunction

    data = x.numpy()

    def peer():
        f = FacilityLocationFunction(n=len(data), mode="dense", data=data, metric="cosine")
        picks = f.maximize(
            budget=k,
            optimizer="LazyGreedy",
            stopIfZeroGain=False,
            stopIfNegativeGain=False,
            verbose=False,
            show_progress=False,
        )
        return [i for i, _ in picks]

    ours_s, ours = median_time(lambda: facility_location(x, k=k, metric="cosine"), repeats)
    peer_s, theirs = median_time(peer, peer_repeats)
    ours_obj = facility_location_objective(ours.indices, x, metric="cosine")
    peer_obj = facility_location_objective(torch.tensor(theirs), x, metric="cosine")
    return _row(
        "submodlib-py",
        x,
        k,
        ours_s,
        peer_s,
        ours_obj,
        peer_obj,
        ours.indices.tolist() == theirs,
        repeats,
        peer_repeats,
        quiet,
    )


def compare_apricot(x: torch.Tensor, k: int, repeats: int, peer_repeats: int, quiet: bool = False) -> dict:
    from apricot import FacilityLocationSelection

    data = x.numpy()

    def peer():
        return FacilityLocationSelection(k, metric="cosine", optimizer="lazy").fit(data).ranking.tolist()

    ours_s, ours = median_time(lambda: facility_location(similarity=squared_cosine(x), k=k), repeats)
    peer_s, theirs = median_time(peer, peer_repeats)
    sim = squared_cosine(x)
    ours_obj = facility_location_objective(ours.indices, similarity=sim)
    peer_obj = facility_location_objective(torch.tensor(theirs), similarity=sim)
    return _row(
        "apricot-select",
        x,
        k,
        ours_s,
        peer_s,
        ours_obj,
        peer_obj,
        ours.indices.tolist() == theirs,
        repeats,
        peer_repeats,
        quiet,
    )


def _row(peer, x, k, ours_s, peer_s, ours_obj, peer_obj, same, repeats, peer_repeats, quiet=False) -> dict:
    row = {
        "peer": peer,
        "n": x.shape[0],
        "d": x.shape[1],
        "k": k,
        "hfdc_s": round(ours_s, 3),
        "peer_s": round(peer_s, 3),
        "speedup": round(peer_s / ours_s, 2),
        "objective_ratio": round(ours_obj / peer_obj, 6),
        "same_selection_order": same,
        "repeats": f"hfdc {repeats}, peer {peer_repeats} (after a warm-up run of each)",
    }
    if not quiet:
        print(row, flush=True)
    return row


def fresh_run(n: int, d: int, k: int, options: dict, score: bool = False) -> dict:
    """``facility_location(features, k, **options)`` in a fresh process: seconds, objective, peak RSS; with ``score``
    also the objective of the selection on the dense similarity."""
    argument = json.dumps([n, d, k, options, score])
    out = subprocess.run([sys.executable, "-c", FRESH_RUN, argument], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def sparse_vs_dense(n: int, d: int, k: int, neighbours: list[int]) -> list[dict]:
    """hfdc with n_neighbors vs hfdc dense (block-wise), scored on the dense cosine objective."""
    dense = fresh_run(n, d, k, {"metric": "cosine"})
    rows = []
    for label, options in [("dense (block-wise, memory_mb=2048)", {})] + [
        (f"sparse, n_neighbors={m}", {"n_neighbors": m}) for m in neighbours
    ]:
        measured = dense if not options else fresh_run(n, d, k, {"metric": "cosine", **options}, score=True)
        objective = measured["dense_objective"] or measured["objective"]
        row = {
            "peer": f"none (hfdc {label})",
            "n": n,
            "d": d,
            "k": k,
            "hfdc_s": round(measured["time_s"], 1),
            "speedup": round(dense["time_s"] / measured["time_s"], 2),
            "objective_ratio": round(objective / dense["objective"], 6),
            "peak_rss_mb": round(measured["peak_rss_mb"]),
        }
        print(row, flush=True)
        rows.append(row)
    return rows


def warm_up(d: int) -> None:
    """One untimed run of every library on a small problem (numba compiles apricot's kernels here)."""
    x = features(300, d)
    facility_location(x, k=30, metric="cosine")
    facility_location(similarity=squared_cosine(x), k=30)
    compare_apricot(x, 30, 1, 1, quiet=True)
    compare_submodlib(x, 30, 1, 1, quiet=True)


def big_run(n: int, d: int, k: int, epsilon: float, memory_mb: float) -> dict:
    measured = fresh_run(n, d, k, {"optimizer": "stochastic", "epsilon": epsilon, "memory_mb": memory_mb})
    row = {
        "peer": "none (memory-bounded run)",
        "n": n,
        "d": d,
        "k": k,
        "optimizer": f"stochastic eps={epsilon}",
        "hfdc_s": round(measured["time_s"], 1),
        "peak_rss_mb": round(measured["peak_rss_mb"]),
        "objective": round(measured["objective"], 1),
        "memory_mb": memory_mb,
    }
    print(row, flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000])
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--peer-repeats", type=int, default=1)
    parser.add_argument("--big-n", type=int, default=200_000, help="0 skips the memory-bounded run")
    parser.add_argument("--big-k", type=int, default=2000)
    parser.add_argument("--big-epsilon", type=float, default=0.5)
    parser.add_argument("--sparse-n", type=int, default=50_000, help="0 skips sparse vs dense")
    parser.add_argument("--sparse-k", type=int, default=1000)
    parser.add_argument("--neighbours", type=int, nargs="+", default=[10, 100])
    args = parser.parse_args()
    torch.set_num_threads(1)
    np.random.seed(0)
    rows = []
    if args.big_n:
        rows.append(big_run(args.big_n, args.dim, args.big_k, args.big_epsilon, memory_mb=1024))
        write_result("facility_location", rows)
    if args.sparse_n:
        rows += sparse_vs_dense(args.sparse_n, args.dim, args.sparse_k, args.neighbours)
        write_result("facility_location", rows)
    warm_up(args.dim)
    for n in args.sizes:
        x = features(n, args.dim)
        for compare in (compare_apricot, compare_submodlib):
            rows.append(compare(x, n // 10, args.repeats, args.peer_repeats))
            write_result("facility_location", rows)  # after every row: a long run keeps what it measured


if __name__ == "__main__":
    main()
