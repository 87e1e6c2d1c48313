"""Facility location: hfdc vs apricot-select and submodlib-py on the same data, plus a 200k-point run.

Data: seeded standard-normal features, d = 128, k = 10% of N. Each comparison uses the objective the peer
optimises, end to end from the features (kernel construction included): submodlib's "cosine" is plain
cosine similarity (hfdc metric="cosine"); apricot's "cosine" is the squared cosine, which hfdc gets as a
``similarity=`` matrix built in torch inside the timed call. Exact greedy on both sides, so the objective
ratio should be 1. The 200k run (block-wise, no N x N matrix) runs in a fresh process to measure its peak RSS.

    python -m benchmarks.facility_location [--sizes 5000 20000] [--repeats 3] [--peer-repeats 1]
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

BIG_RUN = """
import json, resource, time, torch
torch.set_num_threads(1)
from hfdc.submodular import facility_location
x = torch.randn({n}, {d}, generator=torch.Generator().manual_seed(0))
start = time.perf_counter()
result = facility_location(x, k={k}, optimizer="stochastic", epsilon={epsilon}, memory_mb={memory_mb})
print(json.dumps({{"time_s": time.perf_counter() - start, "objective": result.objective,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def features(n: int, d: int) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(0))


def squared_cosine(x: torch.Tensor) -> torch.Tensor:
    """apricot's "cosine" kernel: (x_i . x_j / |x_i| |x_j|)^2."""
    xn = torch.nn.functional.normalize(x, dim=1)
    return (xn @ xn.T).square_()


def compare_submodlib(x: torch.Tensor, k: int, repeats: int, peer_repeats: int) -> dict:
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
    )


def compare_apricot(x: torch.Tensor, k: int, repeats: int, peer_repeats: int) -> dict:
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
    )


def _row(peer, x, k, ours_s, peer_s, ours_obj, peer_obj, same, repeats, peer_repeats) -> dict:
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
        "repeats": f"hfdc {repeats}, peer {peer_repeats}",
    }
    print(row, flush=True)
    return row


def big_run(n: int, d: int, k: int, epsilon: float, memory_mb: float) -> dict:
    code = BIG_RUN.format(n=n, d=d, k=k, epsilon=epsilon, memory_mb=memory_mb)
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    measured = json.loads(out.strip().splitlines()[-1])
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
    args = parser.parse_args()
    torch.set_num_threads(1)
    np.random.seed(0)
    rows = []
    if args.big_n:
        rows.append(big_run(args.big_n, args.dim, args.big_k, args.big_epsilon, memory_mb=1024))
        write_result("facility_location", rows)
    for n in args.sizes:
        x = features(n, args.dim)
        for compare in (compare_apricot, compare_submodlib):
            rows.append(compare(x, n // 10, args.repeats, args.peer_repeats))
            write_result("facility_location", rows)  # after every row: a long run keeps what it measured


if __name__ == "__main__":
    main()
