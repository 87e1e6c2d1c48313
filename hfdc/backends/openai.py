"""OpenAI-compatible HTTP backend (vLLM, TGI, llama.cpp, OpenAI, HF router) via ``huggingface_hub.InferenceClient``."""

import base64
import io
import logging
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from urllib.parse import urlparse

import httpx2
from huggingface_hub import InferenceClient
from huggingface_hub.errors import HfHubHTTPError, InferenceTimeoutError, OfflineModeIsEnabled

from .base import Backend, Job, Sample

logger = logging.getLogger(__name__)

RETRY_STATUSES = {408, 409, 425, 429, 500, 502, 503, 504}
HF_HOSTS = ("huggingface.co", "hf.space", "huggingface.cloud")  # and their subdomains (router., *.endpoints.)


def is_hugging_face_endpoint(base_url: str) -> bool:
    """True for an https URL on huggingface.co, hf.space or huggingface.cloud (or a subdomain of one)."""
    url = urlparse(base_url)
    host = (url.hostname or "").lower()
    return url.scheme == "https" and any(host == h or host.endswith(f".{h}") for h in HF_HOSTS)


def api_key_variables(base_url: str) -> tuple[str, ...]:
    """Where the key for ``base_url`` may come from: HFDC_API_KEY, then HF_TOKEN for Hugging Face endpoints or
    OPENAI_API_KEY for any other host (a Hugging Face token is never sent elsewhere)."""
    return ("HFDC_API_KEY", "HF_TOKEN") if is_hugging_face_endpoint(base_url) else ("HFDC_API_KEY", "OPENAI_API_KEY")


def api_key_from_env(base_url: str) -> str | None:
    """The first of ``api_key_variables(base_url)`` that is set and non-empty."""
    for name in api_key_variables(base_url):
        if os.environ.get(name):
            return os.environ[name]
    return None


def failure_reason(status: int | None, error: Exception) -> str:
    """What went wrong, in words a user can act on (never the key)."""
    if status in (401, 403):
        return f"HTTP {status}: the endpoint refused the API key (check HFDC_API_KEY / OPENAI_API_KEY / HF_TOKEN)"
    if status == 429:
        return "HTTP 429: rate limited or out of quota; try again later"
    if status is not None:
        return f"HTTP {status}"
    if isinstance(error, (InferenceTimeoutError, httpx2.TimeoutException, TimeoutError)):
        return "timeout: the endpoint did not answer in time"
    return f"connection failed ({type(error).__name__})"


def image_data_url(image) -> str:
    """A PIL image as a ``data:image/png;base64,...`` URL."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def to_openai_messages(messages: list[dict]) -> list[dict]:
    """hfdc chat messages -> OpenAI messages (image parts become ``image_url`` parts with data URLs)."""
    converted = []
    for message in messages:
        content = message["content"]
        if not isinstance(content, str):
            content = [
                {"type": "text", "text": part["text"]}
                if part["type"] == "text"
                else {"type": "image_url", "image_url": {"url": image_data_url(part["image"])}}
                for part in content
            ]
        converted.append({"role": message["role"], "content": content})
    return converted


class GenerationRequestError(RuntimeError):
    """A chat-completion request failed for good (after retries); the message never contains the API key.

    ``status`` is the HTTP status (None for a timeout or a connection failure) and ``reason`` says what happened
    (401/403 key refused, 429 rate limited, timeout, ...), fit to show a user."""

    def __init__(self, message: str, status: int | None = None, reason: str = ""):
        super().__init__(message)
        self.status = status
        self.reason = reason


class OpenAIBackend(Backend):
    """Chat completions against ``base_url`` with one request per sample (``seed`` = sample seed).

    Retries 408/409/425/429/5xx, timeouts and connection errors with exponential backoff
    (``backoff * 2**attempt`` seconds) up to ``max_retries`` times; runs at most ``max_workers`` requests at
    once; ``total_timeout`` (seconds) bounds one ``generate`` call as a whole, retries and waits included. The
    API key is ``api_key`` or comes from HFDC_API_KEY, then HF_TOKEN for Hugging Face endpoints (https on
    huggingface.co / hf.space / huggingface.cloud) or OPENAI_API_KEY for any other host; it is sent as the
    only Authorization header and redacted from every error message. Cached answers are keyed by base_url too.
    """

    kind = "openai"

    def __init__(
        self,
        model: str,
        base_url: str,
        api_key: str | None = None,
        max_workers: int = 8,
        timeout: float = 120.0,
        max_retries: int = 5,
        backoff: float = 1.0,
        total_timeout: float | None = None,
        cache_dir=None,
        use_cache: bool = True,
        progress: bool = True,
    ):
        super().__init__(model, cache_dir=cache_dir, use_cache=use_cache, progress=progress)
        if max_workers < 1:
            raise ValueError(f"max_workers must be >= 1, got {max_workers}")
        self.base_url = base_url
        self.max_workers = max_workers
        self.max_retries = max_retries
        self.backoff = backoff
        self.timeout = timeout
        self.total_timeout = total_timeout
        self._deadline = float("inf")
        self._api_key = api_key if api_key is not None else api_key_from_env(base_url)
        # the explicit Authorization header replaces huggingface_hub's default, which would add the local HF token
        self._headers = {"authorization": f"Bearer {self._api_key}" if self._api_key else ""}

    def __repr__(self):
        return f"OpenAIBackend(model={self.model!r}, base_url={self.base_url!r})"

    def cache_fields(self) -> dict:
        return {"base_url": self.base_url}

    def _redact(self, text: str) -> str:
        return text.replace(self._api_key, "***") if self._api_key else text

    def _fail(self, job: Job, attempts: int, status: int | None, reason: str, error: Exception | None):
        detail = f": {self._redact(str(error))}" if error is not None else ""
        return GenerationRequestError(
            f"{self!r}: request for prompt {job.prompt_index} sample {job.sample_index} failed after "
            f"{attempts} attempt(s) ({reason}){detail}",
            status=status,
            reason=reason,
        )

    def _request(self, job: Job, temperature: float, max_new_tokens: int) -> Sample:
        messages = to_openai_messages(job.messages)
        attempt = 0
        while True:
            remaining = self._deadline - time.monotonic()
            if remaining <= 0:
                reason = f"timeout: total_timeout={self.total_timeout}s spent"
                raise self._fail(job, attempt, None, reason, None) from None
            client = InferenceClient(
                base_url=self.base_url, headers=self._headers, timeout=min(self.timeout, remaining)
            )
            try:
                output = client.chat_completion(
                    messages, model=self.model, max_tokens=max_new_tokens, temperature=temperature, seed=job.seed
                )
                usage = output.usage
                return Sample(
                    output.choices[0].message.content or "",
                    prompt_tokens=usage.prompt_tokens if usage else 0,
                    completion_tokens=usage.completion_tokens if usage else 0,
                )
            except OfflineModeIsEnabled:
                raise GenerationRequestError(
                    f"{self!r}: HF_HUB_OFFLINE=1 blocks every huggingface_hub request, also to base_url; unset it",
                    reason="HF_HUB_OFFLINE=1 blocks requests to the endpoint",
                ) from None
            except (HfHubHTTPError, InferenceTimeoutError, httpx2.TransportError) as error:
                status = error.response.status_code if isinstance(error, HfHubHTTPError) else None
                retryable = status is None or status in RETRY_STATUSES
                reason = failure_reason(status, error)
                delay = self.backoff * 2**attempt
                out_of_time = time.monotonic() + delay >= self._deadline
                if not retryable or attempt == self.max_retries or out_of_time:
                    raise self._fail(job, attempt + 1, status, reason, error) from None
                logger.warning("%r: %s, retry %d/%d in %.1fs", self, reason, attempt + 1, self.max_retries, delay)
                time.sleep(delay)
                attempt += 1

    def _run(self, jobs: list[Job], temperature: float, max_new_tokens: int) -> Iterator[tuple[Job, Sample]]:
        """Yield samples as requests finish; after a failure, cancel queued requests, still yield the ones in
        flight that succeed (so they get cached), then raise the first failure."""
        failure = None
        self._deadline = time.monotonic() + self.total_timeout if self.total_timeout else float("inf")
        with ThreadPoolExecutor(max_workers=self.max_workers) as pool:
            futures = {pool.submit(self._request, job, temperature, max_new_tokens): job for job in jobs}
            for future in as_completed(futures):
                if future.cancelled():
                    continue
                if future.exception() is not None:
                    if failure is None:
                        failure = future.exception()
                        for pending in futures:
                            pending.cancel()
                    continue
                yield futures[future], future.result()
        if failure is not None:
            raise failure
