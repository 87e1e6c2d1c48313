"""Helpers every benchmark uses: machine description, medians, peak memory, the JSON result file."""

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> str:
    """One line naming the machine a benchmark ran on."""
    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU only"
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {device}, "
        f"torch {torch.__version__}, python {platform.python_version()}"
    )


def median_time(fn, repeats: int = 3) -> tuple[float, object]:
    """Median wall time of ``fn()`` over ``repeats`` calls, and the last call's result."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (Linux ru_maxrss is KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_result(name: str, rows: list[dict]) -> Path:
    """Write ``benchmarks/results/<name>.json`` with the command that produced it and the machine."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    main = sys.modules["__main__"]
    spec = getattr(main, "__spec__", None)
    program = f"-m {spec.name}" if spec else os.path.relpath(sys.argv[0])
    command = " ".join(["python", program] + sys.argv[1:])
    path.write_text(json.dumps({"command": command, "machine": machine(), "rows": rows}, indent=2) + "\n")
    print(f"wrote {path}")
    return path


def mean_std(values) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value) of repeated measurements."""
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def quiet() -> None:
    """Silence logging and the datasets/transformers progress bars so a benchmark prints only its results."""
    import logging

    import datasets
    from transformers.utils import logging as hf_logging

    logging.disable(logging.WARNING)
    datasets.disable_progress_bars()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def arguments(description: str, seeds: int = 3) -> argparse.ArgumentParser:
    """The arguments every benchmark takes: ``--seeds N`` (repeats, seeds 0..N-1) and ``--threads`` (torch
    intra-op threads per process; 1 is fastest for small models on the shared 2 cores). Add your own, then
    call :func:`prepare` on the parsed result."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--seeds", type=int, default=seeds, help="repeats with seeds 0..N-1 (default %(default)s)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default %(default)s)")
    return parser


def prepare(args: argparse.Namespace) -> list[int]:
    """Apply ``--threads`` and silence progress output; return the seeds to run."""
    import torch

    torch.set_num_threads(args.threads)
    quiet()
    return list(range(args.seeds))
