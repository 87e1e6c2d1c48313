"""Pytest fixtures for the local test Hub (registered in conftest.py: ask for ``hub_server``).

The server runs in this process; talk to it from a subprocess started with :func:`hub_env`, because
huggingface_hub, datasets and transformers read HF_ENDPOINT / HF_HUB_OFFLINE once at import and the suite
runs offline.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.hub_server import HubServer

ROOT = Path(__file__).resolve().parents[1]
FAKE_TOKEN = "hf_hfdcFakeTestToken0123456789abcdef"


@pytest.fixture(scope="session")
def hub_server(tmp_path_factory):
    """URL of a local Hub-protocol server (one per test process), storing its repos in a tmp folder."""
    with HubServer(tmp_path_factory.mktemp("hub")) as server:
        yield server.endpoint


def hub_env(endpoint: str, home: Path, token: str | None = FAKE_TOKEN) -> dict:
    """Environment for a subprocess that uses the test Hub at ``endpoint`` with a fresh HF_HOME cache."""
    env = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")}
    env.update(
        HF_ENDPOINT=endpoint,
        HF_HUB_OFFLINE="0",
        HF_HUB_DISABLE_XET="1",
        HF_HOME=str(home),
        HF_HUB_DISABLE_TELEMETRY="1",
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
    )
    if token is not None:
        env["HF_TOKEN"] = token
    return env


def run_online(args: list[str], endpoint: str, home: Path, token: str | None = FAKE_TOKEN, timeout: float = 300):
    """Run ``python <args>`` against the test Hub; returns the CompletedProcess (stdout/stderr captured as text)."""
    return subprocess.run(
        [sys.executable, *args],
        env=hub_env(endpoint, home, token),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
