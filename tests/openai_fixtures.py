"""pytest fixture for the local OpenAI-compatible server (registered in conftest.py: ask for ``openai_server``)."""

import huggingface_hub.constants
import pytest

from tests.openai_server import OpenAIServer


@pytest.fixture
def openai_server(monkeypatch):
    """A running ``OpenAIServer`` (``.spec(model)``, ``.base_url``, ``.requests``, ``.fail_next(k, status)``).

    huggingface_hub blocks every request under HF_HUB_OFFLINE=1, even to 127.0.0.1, so the flag is
    lifted for the test's duration (the server is local: the test stays offline).
    """
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    with OpenAIServer() as server:
        yield server
