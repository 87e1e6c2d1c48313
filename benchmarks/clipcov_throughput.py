"""CLIPCov selection throughput: 1,000,000 synthetic embedding pairs in 1,000 classes on a 2-core CPU.

Target (issues 6, 14): under 2 minutes, peak memory under 4 GB, with the global allocation. Default 1 torch
thread: on the shared 2-core machine, 2 intra-op threads made the many small per-class ops ~8x slower
(thread sync with a busy core); scale out with processes (class sharding) instead. Embeddings are stored
in float16 (512-d, as a ViT-B/32 proxy would write them: 2 x 1 GB), in memory or, with ``--memmap``,
as .npy files opened with ``np.load(mmap_mode="r")``; each class block is scored in float32.
Run: ``python -m benchmarks.clipcov_throughput [--rows N --classes C --dim D --memmap DIR]``.
"""

import argparse
import os
import resource
import time
from functools import partial

import numpy as np
import torch

from benchmarks.common import machine, peak_rss_mb, write_result


def synthetic_pairs(rows: int, classes: int, dim: int, seed: int = 0, chunk: int = 65536):
    """Image/caption embeddings around per-class centres (caption = image direction + noise), float16."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((classes, dim), dtype=np.float32)
    labels = rng.integers(0, classes, rows)
    image = np.empty((rows, dim), dtype=np.float16)
    text = np.empty((rows, dim), dtype=np.float16)
    for start in range(0, rows, chunk):
        c = centres[labels[start : start + chunk]]
        img = c + 1.5 * rng.standard_normal(c.shape, dtype=np.float32)
        image[start : start + chunk] = img
        text[start : start + chunk] = img + 1.5 * rng.standard_normal(c.shape, dtype=np.float32)
    return image, text, labels, centres


def cpu_seconds() -> float:
    """User + system CPU time of this process so far (all threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(fn):
    """(result, wall seconds, CPU seconds, 1-min load average after) of ``fn()``."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    result = fn()
    return result, time.perf_counter() - wall, cpu_seconds() - cpu, os.getloadavg()[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--fraction", type=float, default=0.1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--memmap", default=None, help="folder: write the pairs there as .npy and memory-map them")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from hfdc.clipcov import baselines, select

    image, text, labels, centres = synthetic_pairs(args.rows, args.classes, args.dim)
    if args.memmap:
        for name, array in (("image", image), ("text", text)):
            np.save(f"{args.memmap}/{name}.npy", array)
        del array
        image, text = (np.load(f"{args.memmap}/{name}.npy", mmap_mode="r") for name in ("image", "text"))
    rss_data = peak_rss_mb()
    rows = []
    configs = [
        ("clipcov (global, threshold 0, penalty max)", {}),
        ("clipcov (proportional, threshold 0, penalty max)", {"allocation": "proportional"}),
        ("clipcov (global, threshold off, penalty mean)", {"threshold": None, "penalty": "mean"}),
        ("clip_score baseline", None),
    ]
    for name, kwargs in configs:
        if kwargs is None:
            result, wall, cpu, load = timed(
                lambda: baselines.clip_score(image, text, args.fraction, labels=labels, seed=0)
            )
        else:
            result, wall, cpu, load = timed(
                partial(select, image, text, args.fraction, labels=labels, class_text_embeds=centres, **kwargs)
            )
        rows.append(
            {
                "method": name,
                "rows": args.rows,
                "classes": args.classes,
                "dim": args.dim,
                "dtype": "float16",
                "storage": "memmap" if args.memmap else "memory",
                "fraction": args.fraction,
                "threads": args.threads,
                "selected": len(result),
                "classes_with_picks": sum(1 for n in result.per_class.values() if n),
                "largest_class_share": round(max(result.per_class.values()) / len(result), 4),
                "cross_covariance_error": round(result.cross_covariance_error, 5),
                "wall_seconds": round(wall, 1),
                "cpu_seconds": round(cpu, 1),
                "cpu_seconds_per_thread": round(cpu / args.threads, 1),
                "load_average_1min_after": round(load, 1),
                "peak_rss_mb": round(peak_rss_mb()),
                "data_rss_mb": round(rss_data),
                "meets_2min_wall": wall < 120,
                "meets_4gb": peak_rss_mb() < 4096,
            }
        )
        print(rows[-1], flush=True)
    print(machine())
    write_result("clipcov_throughput", rows)


if __name__ == "__main__":
    main()
