"""Generation backends: scripted, OpenAI-compatible HTTP (local server), transformers (tiny random Llama), cache."""

import traceback

import pytest
from PIL import Image

import hfdc.backends as backends
from hfdc.backends.cache import cache_key
from hfdc.backends.openai import GenerationRequestError, api_key_from_env, is_hugging_face_endpoint
from tests.openai_server import expected_answer


def test_sample_seed_is_deterministic_and_distinct():
    seeds = {backends.sample_seed(0, i, j) for i in range(10) for j in range(10)}
    assert len(seeds) == 100
    assert backends.sample_seed(3, 1, 2) == backends.sample_seed(3, 1, 2) != backends.sample_seed(4, 1, 2)
    assert all(0 <= s < 2**31 for s in seeds)


def test_spec_errors():
    for spec in ["nope", "openai:model-without-url", "transformers:", "scripted:x"]:
        with pytest.raises(ValueError, match="unknown backend spec"):
            backends.get(spec)


def test_scripted_determinism_and_forms():
    prompts = ["a b", [{"role": "system", "content": "s"}, {"role": "user", "content": "c"}]]
    first = backends.get("scripted").generate(prompts, n=3, seed=5)
    assert first == backends.get("scripted").generate(prompts, n=3, seed=5)
    assert first != backends.get("scripted").generate(prompts, n=3, seed=6)
    assert len({text for samples in first for text in samples}) == 6

    listed = backends.get("scripted", responses=["x y z", ["p", "q"]])
    assert listed.generate(["one", "two"], n=3, max_new_tokens=2) == [["x y", "x y", "x y"], ["p", "q", "p"]]
    assert listed.usage.calls == 6 and listed.usage.prompt_tokens == 6 and listed.usage.completion_tokens == 9
    by_text = backends.get("scripted", responses={"c": "yes", "a b": "no"})
    assert by_text.generate(prompts) == [["no"], ["yes"]]
    with pytest.raises(ValueError, match="no entry for prompt 'zzz'"):
        by_text.generate(["zzz"])
    seen = backends.get("scripted", responses=lambda messages, seed: f"{messages[-1]['content']}:{seed}")
    assert seen.generate(["hi"], seed=1) == [[f"hi:{backends.sample_seed(1, 0, 0)}"]]
    with pytest.raises(TypeError, match="wrap a single prompt"):
        seen.generate("hi")
    with pytest.raises(ValueError, match="'role' and 'content'"):
        seen.generate([[{"text": "hi"}]])


def test_cache_hit_costs_no_call_and_resumes_after_error(tmp_path):
    prompts = ["a", "b", "c"]
    backend = backends.get("scripted", cache_dir=tmp_path)
    first = backend.generate(prompts, n=2, seed=1)
    assert backend.usage.calls == 6 and backend.usage.cache_hits == 0
    again = backends.get("scripted", cache_dir=tmp_path)
    assert again.generate(prompts, n=2, seed=1) == first
    assert again.usage.calls == 0 and again.usage.cache_hits == 6 and again.usage.completion_tokens == 0
    again.generate(prompts, n=3, seed=1)  # only the third sample of each prompt is new
    assert again.usage.calls == 3 and again.usage.cache_hits == 12

    def fails_on_c(messages, seed):
        if messages[-1]["content"] == "c":
            raise RuntimeError("backend down")
        return f"ok {seed}"

    with pytest.raises(RuntimeError, match="backend down"):
        backends.get("scripted", responses=fails_on_c, name="resume", cache_dir=tmp_path).generate(prompts)
    resumed = backends.get(
        "scripted", responses=lambda messages, seed: f"ok {seed}", name="resume", cache_dir=tmp_path
    )
    assert resumed.generate(prompts) == [[f"ok {backends.sample_seed(0, i, 0)}"] for i in range(3)]
    assert resumed.usage.calls == 1 and resumed.usage.cache_hits == 2


def test_cache_key_includes_image_bytes():
    red, other = Image.new("RGB", (4, 4), "red"), Image.new("RGB", (4, 4), "red")
    other.putpixel((3, 3), (254, 0, 0))

    def key(image):
        prompt = [{"role": "user", "content": [{"type": "text", "text": "q"}, {"type": "image", "image": image}]}]
        return cache_key(kind="k", model="m", messages=prompt, seed=0)

    assert key(red) == key(red.copy()) != key(other)


def test_http_backend_values_retry_usage_and_cache(openai_server, monkeypatch, tmp_path):
    monkeypatch.setenv("HFDC_API_KEY", "sk-hfdc-test-key")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-other")
    assert api_key_from_env(openai_server.base_url) == "sk-hfdc-test-key"
    image = Image.new("RGB", (8, 8), "blue")
    parts = [{"type": "text", "text": "what"}, {"type": "image", "image": image}]
    prompts = ["hello there world", [{"role": "user", "content": parts}]]
    backend = backends.get(openai_server.spec("m1"), cache_dir=tmp_path, backoff=0.01, max_workers=2)
    openai_server.fail_next(2, status=429)
    out = backend.generate(prompts, n=2, temperature=0.7, max_new_tokens=3, seed=4)
    expected = [
        [
            expected_answer([{"role": "user", "content": content}], "m1", 0.7, backends.sample_seed(4, i, j), 3)
            for j in range(2)
        ]
        for i, content in enumerate(["hello there world", [{"type": "text", "text": "what"}, {"type": "image_url"}]])
    ]
    assert out == expected
    assert out[1][0].endswith("[1 image(s)]") and out[0][0] != out[0][1]
    assert len(openai_server.requests) == 4 + 2  # two 429s were retried
    assert {r["authorization"] for r in openai_server.requests} == {"Bearer sk-hfdc-test-key"}
    contents = [r["body"]["messages"][0]["content"] for r in openai_server.requests]
    sent_parts = [content for content in contents if isinstance(content, list)]
    assert sent_parts and all(
        parts[1]["image_url"]["url"].startswith("data:image/png;base64,") for parts in sent_parts
    )
    assert backend.usage.calls == 4
    assert backend.usage.prompt_tokens == 2 * 3 + 2 * 1
    words = sum(len(text.split()) for samples in out for text in samples)
    assert backend.usage.completion_tokens == words == 2 * 3 + 2 * 4

    rerun = backends.get(openai_server.spec("m1"), cache_dir=tmp_path)
    assert rerun.generate(prompts, n=2, temperature=0.7, max_new_tokens=3, seed=4) == out
    assert len(openai_server.requests) == 6 and rerun.usage.calls == 0 and rerun.usage.cache_hits == 4


def test_http_errors_never_show_the_key(openai_server, monkeypatch):
    monkeypatch.delenv("HFDC_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-do-not-leak")
    backend = backends.get(openai_server.spec(), use_cache=False, backoff=0.01, max_retries=2)
    openai_server.fail_next(3, status=500)
    with pytest.raises(GenerationRequestError) as caught:
        backend.generate(["x"])
    assert len(openai_server.requests) == 3  # first try + 2 retries
    assert "Bearer sk-secret-do-not-leak" in openai_server.requests[0]["authorization"]
    shown = "".join(traceback.format_exception(caught.value))
    assert "HTTP 500" in shown and "3 attempt(s)" in shown and "Bearer ***" in shown
    assert "sk-secret-do-not-leak" not in shown and "sk-secret-do-not-leak" not in repr(backend)

    openai_server.fail_next(1, status=400)  # a client error is not retried
    with pytest.raises(GenerationRequestError, match="1 attempt"):
        backend.generate(["x"])
    assert len(openai_server.requests) == 4


def test_http_failure_mid_batch_keeps_finished_samples(openai_server, tmp_path):
    prompts = ["one", "two", "three"]
    backend = backends.get(openai_server.spec(), cache_dir=tmp_path, max_workers=1, max_retries=0, progress=False)
    openai_server.fail_next(1, status=503, after=1)
    with pytest.raises(GenerationRequestError, match="prompt 1 sample 0 failed after 1 attempt"):
        backend.generate(prompts)
    # prompt 2 is either cancelled or already in flight; a finished request is kept either way
    answered = len(openai_server.requests) - 1
    assert answered in (1, 2) and backend.usage.calls == answered
    rerun = backends.get(openai_server.spec(), cache_dir=tmp_path, progress=False)
    out = rerun.generate(prompts)
    assert (rerun.usage.cache_hits, rerun.usage.calls) == (answered, 3 - answered)
    seeds = [backends.sample_seed(0, i, 0) for i in range(3)]
    expected = [
        expected_answer([{"role": "user", "content": p}], "test-model", 1.0, s, 64) for p, s in zip(prompts, seeds)
    ]
    assert out == [[text] for text in expected]


def test_hf_token_goes_only_to_hugging_face_endpoints(openai_server, monkeypatch):
    for url in (
        "https://router.huggingface.co/v1",
        "https://huggingface.co/api",
        "https://my-endpoint.us-east-1.aws.endpoints.huggingface.cloud/v1",
        "https://user-space.hf.space/v1",
    ):
        assert is_hugging_face_endpoint(url), url
    for url in (
        "http://router.huggingface.co/v1",  # not https
        "https://huggingface.co.evil.example/v1",
        "https://api.openai.com/v1",
        openai_server.base_url,
    ):
        assert not is_hugging_face_endpoint(url), url
    for name in ("HFDC_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_TOKEN", "hf_do_not_send_me")
    assert api_key_from_env("https://router.huggingface.co/v1") == "hf_do_not_send_me"
    assert api_key_from_env(openai_server.base_url) is None
    backends.get(openai_server.spec(), use_cache=False).generate(["x"])
    # huggingface_hub would add the local HF token to any host; the backend's own header replaces it
    assert "hf_do_not_send_me" not in str(openai_server.requests[-1]["authorization"])
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai")
    assert api_key_from_env(openai_server.base_url) == "sk-openai"
    assert api_key_from_env("https://router.huggingface.co/v1") == "hf_do_not_send_me"
    backends.get(openai_server.spec(), use_cache=False).generate(["x"])
    assert openai_server.requests[-1]["authorization"] == "Bearer sk-openai"


def test_cache_key_includes_the_endpoint_url(openai_server, tmp_path):
    from tests.openai_server import OpenAIServer

    first = backends.get(openai_server.spec("same-name"), cache_dir=tmp_path)
    first.generate(["q"], n=2)
    with OpenAIServer() as other:
        second = backends.get(other.spec("same-name"), cache_dir=tmp_path)
        second.generate(["q"], n=2)
        assert second.usage.calls == 2 and second.usage.cache_hits == 0 and len(other.requests) == 2
    again = backends.get(openai_server.spec("same-name"), cache_dir=tmp_path)
    again.generate(["q"], n=2)
    assert again.usage.cache_hits == 2 and again.usage.calls == 0


@pytest.mark.parametrize(
    ("status", "attempts", "says"),
    [(401, 1, "HTTP 401: the endpoint refused the API key"), (429, 2, "HTTP 429: rate limited")],
)
def test_errors_say_what_happened(openai_server, monkeypatch, status, attempts, says):
    monkeypatch.setenv("HFDC_API_KEY", "sk-never-shown")
    backend = backends.get(openai_server.spec(), use_cache=False, backoff=0.01, max_retries=1)
    openai_server.fail_next(attempts, status=status)
    with pytest.raises(GenerationRequestError, match=f"{attempts} attempt") as caught:
        backend.generate(["x"])
    assert caught.value.status == status and caught.value.reason.startswith(says)
    assert "sk-never-shown" not in "".join(traceback.format_exception(caught.value))


def test_a_silent_endpoint_times_out_within_the_total_bound():
    import socket
    import time

    with socket.socket() as silent:  # accepts connections (backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/v1"
        import huggingface_hub.constants

        offline = huggingface_hub.constants.HF_HUB_OFFLINE
        huggingface_hub.constants.HF_HUB_OFFLINE = False
        try:
            backend = backends.get(
                f"openai:m@{url}", use_cache=False, timeout=30.0, max_retries=5, backoff=0.05, total_timeout=1.0
            )
            start = time.monotonic()
            with pytest.raises(GenerationRequestError) as caught:
                backend.generate(["x", "y"])
            elapsed = time.monotonic() - start
        finally:
            huggingface_hub.constants.HF_HUB_OFFLINE = offline
    assert caught.value.status is None and caught.value.reason.startswith("timeout")
    assert elapsed < 3.0  # 1 s total bound (+ slack), not 30 s x 6 attempts
