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


def mean_std_text(values, digits: int = 4, signed: bool = False) -> str:
    """``mean ± std`` of repeated measurements as text; ``signed`` writes the sign of a gain."""
    mean, std = mean_std([float(v) for v in values])
    return f"{mean:+.{digits}f} ± {std:.{digits}f}" if signed else f"{mean:.{digits}f} ± {std:.{digits}f}"


def paired_rows(runs: dict[str, list[dict]], baseline: str, columns, label: str | None = None) -> list[dict]:
    """One table row per arm of ``runs`` (arm -> one metrics dict per seed, in seed order): test accuracy
    mean ± std, its gain over the ``baseline`` arm (named ``label`` in the column) paired by seed (the arms of a seed
    share data, initialisation and order), the arm's own ``columns(results)``, train rows, median seconds and the
    per-seed accuracy."""
    reference = [r["test_accuracy"] for r in runs[baseline]]
    rows = []
    for name, results in runs.items():
        accuracy = [r["test_accuracy"] for r in results]
        gain = [a - b for a, b in zip(accuracy, reference, strict=True)]
        row = {"method": name, "seeds": len(results), "test accuracy": mean_std_text(accuracy)}
        row[f"gain vs {label or baseline} (paired by seed)"] = mean_std_text(gain, signed=True)
        row.update(columns(results))
        row["train rows"] = round(statistics.mean(r["train_rows"] for r in results))
        row["seconds (median)"] = round(statistics.median(r["seconds"] for r in results), 1)
        row["per-seed accuracy"] = [round(a, 4) for a in accuracy]
        rows.append(row)
    return rows


def discovery_columns(results: list[dict]) -> dict:
    """The discovery epoch (median) and the selected (slow-learnable) fraction of runs that separated rows."""
    if "slow_fraction" not in results[0]:
        return {}
    return {
        "discovery epoch": statistics.median(r["discovery_epoch"] for r in results),
        "selected fraction": mean_std_text([r["slow_fraction"] for r in results], 3),
    }
