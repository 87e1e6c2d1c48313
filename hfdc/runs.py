"""Resumable run folders: a folder records the settings it was written with and refuses a run with others."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """``write(tmp)`` to a temporary file beside ``path``, then rename it onto ``path``: readers never see half a file."""
    tmp = path.with_name(f"tmp-{os.getpid()}-{path.name}")
    write(tmp)
    os.replace(tmp, path)


def check_run_settings(folder: str | Path, settings: dict, what: str, file_name: str, write: bool = True) -> None:
    """Refuse ``folder`` when its ``file_name`` records settings other than ``settings`` (the changed keys are named);
    record them (atomically) when the folder is new.

    Under several processes every process checks, so that all of them stop on a mismatch; only the one with
    ``write`` creates the file. ``what`` names the folder's content in the error ("a GRADMM run").
    """
    folder = Path(folder)
    path = folder / file_name
    if path.exists():
        old = json.loads(path.read_text())
        changed = sorted(k for k in settings.keys() | old.keys() if old.get(k) != settings.get(k))
        if changed:
            raise ValueError(
                f"{folder} holds {what} with other settings (changed: {', '.join(changed)}); use another folder or "
                "delete it to start over"
            )
    elif write:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda tmp: tmp.write_text(json.dumps(settings, indent=1)))
