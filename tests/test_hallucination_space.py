"""The Gradio Space: answers through gradio_client on a local launch; a headless Chromium renders it.

CI must install Chromium (Debian: `apt-get install -y chromium`); the screenshot test is skipped, saying so,
only when /usr/bin/chromium is absent. The screenshot lands in tests/artifacts/hallucination_space.png.
"""

import importlib.util
import math
import socket
import subprocess
from pathlib import Path

import pytest

from hfdc.hallucination import compute_features, scores

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "spaces" / "hallucination-detector" / "app.py"
CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.xdist_group("hallucination_space")


def load_app():
    spec = importlib.util.spec_from_file_location("hallucination_space_app", APP)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def space(monkeypatch_module):
    for name in ("HFDC_TARGET", "HFDC_VERIFIER"):
        monkeypatch_module.delenv(name, raising=False)
    app = load_app()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    _, url, _ = app.demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
    yield app, url
    app.demo.close()


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_space_files_and_header():
    readme = (APP.parent / "README.md").read_text()
    header = readme.split("---")[1]
    assert "sdk: gradio" in header and "app_file: app.py" in header
    assert "gradio" in (APP.parent / "requirements.txt").read_text()


def test_gradio_client_detect_endpoint(space):
    from gradio_client import Client

    app, url = space
    client = Client(url, verbose=False)
    assert {"/detect", "/ask"} <= set(client.view_api(return_format="dict")["named_endpoints"])
    target = ["Paris", "paris.", "Lyon", "the Paris"]
    answer, verdict, called, result, _ = client.predict(
        "Capital of France?", "\n".join(target), "", 0.3, api_name="/detect"
    )
    assert answer == "Paris" and isinstance(called, bool)
    assert result["self_features"]["semantic_entropy"] == pytest.approx(scores.semantic_entropy(target))
    assert result["self_features"]["eccentricity_norm"] == pytest.approx(1.0 / 2)  # Ecc 1 over sqrt(4 answers)
    assert result["answers"] == 4 and result["out_of_fitted_range"] is False
    assert f"{result['final_score']:.3f}" in verdict
    # budget 1: every question is in the band; pasted verifier answers are used and the verifier counts as called
    _, verdict, called, result, _ = client.predict(
        "Capital of France?", "\n".join(target), "Lyon\nLyon.", 1.0, api_name="/detect"
    )
    assert called is True and result["cross_features"]["cross_consistency"] == pytest.approx(2 / 8)
    assert "verifier called" in verdict
    # budget 0: never called, even with verifier answers pasted
    _, _, called, result, _ = client.predict("q", "\n".join(target), "Lyon", 0.0, api_name="/detect")
    assert called is False and result["final_score"] == pytest.approx(result["self_score"])


def test_space_bad_input_and_no_models_configured(space):
    from gradio_client import Client

    app, url = space
    client = Client(url, verbose=False)
    with pytest.raises(Exception, match="Answers: got 1 non-empty line"):
        client.predict("q", "Paris", "", 0.5, api_name="/detect")
    with pytest.raises(Exception, match="Answers: got 0 non-empty line"):
        client.predict("q", "  \n ", "", 0.5, api_name="/detect")
    with pytest.raises(Exception, match="at most 20 answers"):
        client.predict("q", "\n".join(["x"] * 21), "", 0.5, api_name="/detect")
    with pytest.raises(Exception, match="HFDC_TARGET"):
        client.predict("Who wrote Hamlet?", 3, 0.5, api_name="/ask")
    assert "HFDC_TARGET" in app.status_text()
    assert app.model_name("openai:org/secret-model@https://internal.example/v1") == "openai:secret-model"


def test_space_asks_configured_models_and_hides_the_endpoint(space, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)  # port 9 on 127.0.0.1: still offline
    monkeypatch.setattr(space[0], "MAX_RETRIES", 0)
    app, _ = space
    monkeypatch.setenv("HFDC_TARGET", "scripted")
    monkeypatch.setenv("HFDC_VERIFIER", "scripted")
    app.backend.cache_clear()
    try:
        answer, verdict, called, result, _ = app.ask("Who wrote Hamlet?", 4, 1.0)
        assert called is True and result["cross_features"] is not None  # budget 1: the verifier is sampled
        assert len(answer) > 0 and "verifier called" in verdict
        monkeypatch.setenv("HFDC_TARGET", "openai:m@http://127.0.0.1:9/v1")  # nothing listens on port 9
        app.backend.cache_clear()
        import gradio as gr

        with pytest.raises(gr.Error) as info:
            app.ask("Who wrote Hamlet?", 2, 0.5)
        assert "openai:m" in str(info.value) and "127.0.0.1" not in str(info.value)
        assert "connection failed" in str(info.value)
    finally:
        app.backend.cache_clear()


def test_space_p_rises_with_disagreement_at_6_11_and_21_answers(space):
    """With the Space's own fit, 11 all-different answers scored 0.09 and 21 scored 0.000 before the fix."""
    app, _ = space

    def p_hallucination(answers):  # what app.score shows as the final score at budget 0, without the plot
        x_self, _ = compute_features([answers[0]], [answers[1:]], questions=["Which city?"])
        return float(app.detector(0.0, len(answers)).predict(x_self, None, ["Which city?"]).scores[0])

    for m in (6, 11, 21):
        p = [p_hallucination(["Lyon"] * (m - k + 1) + [f"city {j}" for j in range(1, k)]) for k in range(1, m + 1)]
        assert all(b >= a - 1e-12 for a, b in zip(p, p[1:])), (m, p)
        assert p[-1] > 0.5 > p[0], (m, p)
    six, eleven = p_hallucination(["Lyon"] * 3 + ["Paris"] * 3), p_hallucination(["Lyon"] * 6 + ["Paris"] * 5)
    assert abs(six - eleven) < 0.1
    _, _, _, result, _ = app.score("Which city?", ["Lyon"] * 6 + ["Paris"] * 5, None, 0.0, lambda q: None)
    assert result["final_score"] == pytest.approx(eleven)


def test_space_caps_verifier_samples_and_bounds_request_time(space, monkeypatch):
    app, _ = space
    monkeypatch.setenv("HFDC_VERIFIER", "scripted")
    app.backend.cache_clear()
    try:
        pasted = "\n".join(f"answer {i}" for i in range(app.MAX_ANSWERS))  # 20 lines, all different
        _, _, called, result, _ = app.detect("Which city?", pasted, "", 1.0)
        assert called is True and result["cross_features"] is not None
        assert app.backend("verifier").usage.calls == app.MAX_MODEL_SAMPLES  # not 20
        monkeypatch.setenv("HFDC_VERIFIER", "openai:org/m@http://127.0.0.1:9/v1")
        app.backend.cache_clear()
        verifier = app.backend("verifier")
        assert (verifier.timeout, verifier.max_retries, verifier.total_timeout) == (
            app.REQUEST_TIMEOUT_S,
            app.MAX_RETRIES,
            app.REQUEST_BUDGET_S,
        )
    finally:
        app.backend.cache_clear()


@pytest.mark.parametrize(
    ("status", "says"), [(401, "HTTP 401: the endpoint refused the API key"), (429, "HTTP 429: rate limited")]
)
def test_space_errors_say_401_or_429_and_never_show_the_key_or_url(space, openai_server, monkeypatch, status, says):
    import gradio as gr

    app, _ = space
    monkeypatch.setenv("HFDC_TARGET", openai_server.spec("org/target-model"))
    monkeypatch.delenv("HFDC_VERIFIER", raising=False)
    monkeypatch.setenv("HFDC_API_KEY", "sk-space-secret")
    monkeypatch.setattr(app, "MAX_RETRIES", 0)
    app.backend.cache_clear()
    try:
        openai_server.fail_next(1, status=status)
        with pytest.raises(gr.Error) as info:
            app.ask("Who wrote Hamlet?", 2, 0.5)
        message = str(info.value)
        assert says in message and "target-model" in message
        assert "sk-space-secret" not in message and "127.0.0.1" not in message
    finally:
        app.backend.cache_clear()


def _chromium(url, *args, tmp_path):
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--virtual-time-budget=8000",
        "--window-size=1280,2200",
    ]
    return subprocess.run([str(CHROMIUM), *flags, *args, url], capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(
    not CHROMIUM.exists(), reason="/usr/bin/chromium is absent: install it (apt-get install -y chromium)"
)
def test_headless_chromium_renders_inputs_and_results(space, tmp_path):
    from PIL import Image, ImageStat

    _, url = space
    dom = _chromium(url, "--dump-dom", tmp_path=tmp_path).stdout
    for text in (
        "Paste answers",
        "Ask the models",
        "Verifier budget",
        "Question",
        "Detect",
        "Verifier called",
        "Scores",
        "Answer",
        "HFDC_TARGET",
    ):
        assert text in dom, f"{text!r} missing from the rendered page"
    assert "P(hallucination) =" in dom  # the worked example ran on load and its verdict rendered
    artifact = ROOT / "tests" / "artifacts" / "hallucination_space.png"
    artifact.parent.mkdir(parents=True, exist_ok=True)
    artifact.unlink(missing_ok=True)
    _chromium(url, f"--screenshot={artifact}", tmp_path=tmp_path)
    image = Image.open(artifact).convert("L")
    assert image.size == (1280, 2200)
    assert math.sqrt(ImageStat.Stat(image).var[0]) > 10  # not a blank page or a lone spinner
