"""The process state under ``accelerate launch`` / torchrun, its CPU threads, and its clean end."""

import contextlib
import sys


def process_state():
    """This process's ``accelerate.PartialState``; single-process when not launched.

    Without CUDA the launched processes join one gloo group only when the state is built with
    ``cpu=True`` (otherwise each silently runs as rank 0 of 1), so that is what this does.
    """
    import torch
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


def end_process_group() -> None:
    """Destroy the default process group if one was started, so that no gloo thread is left at exit.

    A process that exits with its gloo group alive can abort ("terminate called without an active
    exception") and take the launcher down with it.
    """
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


@contextlib.contextmanager
def cpu_threads(threads: int):
    """Run the block with ``threads`` torch intra-op threads (0 = leave as is); the previous number is restored.

    On a busy 2-core machine, many small per-class torch ops run far faster with 1 thread per process.
    """
    import torch

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
