"""CLIPCov selection throughput: 1,000,000 synthetic embedding pairs in 1,000 classes on 2 CPU threads.

Target (issue 6): under 2 minutes, peak memory under 4 GB. Embeddings are stored in float16
(512-d, as a ViT-B/32 proxy would write them: 2 x 1 GB); each class block is scored in float32.
Run: ``python -m benchmarks.clipcov_throughput [--rows N --classes C --dim D]``.
"""

import argparse
import time

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
        c = centres[labels[start:start + chunk]]
        img = c + 1.5 * rng.standard_normal(c.shape, dtype=np.float32)
        image[start:start + chunk] = img
        text[start:start + chunk] = img + 1.5 * rng.standard_normal(c.shape, dtype=np.float32)
    return image, text, labels, centres


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--fraction", type=float, default=0.1)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from hfdc.clipcov import baselines, select

    image, text, labels, centres = synthetic_pairs(args.rows, args.classes, args.dim)
    rss_data = peak_rss_mb()
    rows = []
    for name, kwargs in [("clipcov (threshold 0, penalty max)", {}),
                         ("clipcov (threshold None, penalty mean)", {"threshold": None, "penalty": "mean"})]:
        start = time.perf_counter()
        result = select(image, text, args.fraction, labels=labels, class_text_embeds=centres, **kwargs)
        seconds = time.perf_counter() - start
        rows.append({"method": name, "rows": args.rows, "classes": args.classes, "dim": args.dim,
                     "dtype": "float16", "fraction": args.fraction, "threads": args.threads,
                     "selected": len(result), "seconds": round(seconds, 1),
                     "peak_rss_mb": round(peak_rss_mb()), "data_rss_mb": round(rss_data),
                     "meets_target": seconds < 120 and peak_rss_mb() < 4096})
        print(rows[-1], flush=True)
    start = time.perf_counter()
    baselines.clip_score(image, text, args.fraction, seed=0)
    rows.append({"method": "clip_score baseline", "rows": args.rows, "classes": args.classes, "dim": args.dim,
                 "dtype": "float16", "fraction": args.fraction, "threads": args.threads,
                 "seconds": round(time.perf_counter() - start, 1), "peak_rss_mb": round(peak_rss_mb())})
    print(rows[-1], flush=True)
    print(machine())
    write_result("clipcov_throughput", rows)


if __name__ == "__main__":
    main()
