"""Test settings: offline, caches inside the project, small thread counts; the Hub / OpenAI server fixtures."""

import os
from pathlib import Path

pytest_plugins = ["tests.hub_fixtures", "tests.openai_fixtures"]

ROOT = Path(__file__).resolve().parents[1]
_CACHE = ROOT / ".cache" / "tests"
for key, value in {
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_XET": "1",
    "HF_HOME": str(_CACHE / "huggingface"),
    "XDG_CACHE_HOME": str(_CACHE),
    "MPLCONFIGDIR": str(_CACHE / "matplotlib"),
    "GRADIO_TEMP_DIR": str(_CACHE / "gradio"),
    "GRADIO_ANALYTICS_ENABLED": "False",
    "TOKENIZERS_PARALLELISM": "false",
    "MPLBACKEND": "Agg",
}.items():
    os.environ.setdefault(key, value)
