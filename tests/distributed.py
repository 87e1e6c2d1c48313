"""Two-process runs for tests: ``torchrun(*args)`` launches ``python -m torch.distributed.run`` with 2 CPU processes
(gloo) from the repository root and fails the test when a process fails."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TWO_PROCESSES = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]


def torchrun(*args: str, timeout: float = 300) -> None:
    """Run ``args`` (a script and its arguments, or ``-m module ...``) under 2 processes; 1 thread each."""
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    subprocess.run([*TWO_PROCESSES, *args], check=True, timeout=timeout, cwd=str(ROOT), env=env)
