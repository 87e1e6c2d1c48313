"""OpenAI-compatible HTTP backend (vLLM, TGI, llama.cpp, OpenAI, HF router) via ``huggingface_hub.InferenceClient``."""

import base64
import io
import logging
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed

import httpx2
from huggingface_hub import InferenceClient
from huggingface_hub.errors import HfHubHTTPError, InferenceTimeoutError, OfflineModeIsEnabled

from .base import Backend, Job, Sample

logger = logging.getLogger(__name__)

API_KEY_VARIABLES = ("HFDC_API_KEY", "OPENAI_API_KEY", "HF_TOKEN")
RETRY_STATUSES = {408, 409, 425, 429, 500, 502, 503, 504}


def api_key_from_env() -> str | None:
    """The first of HFDC_API_KEY, OPENAI_API_KEY, HF_TOKEN that is set and non-empty."""
    for name in API_KEY_VARIABLES:
        if os.environ.get(name):
            return os.environ[name]
    return None


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
    """A chat-completion request failed for good (after retries); the message never contains the API key."""


class OpenAIBackend(Backend):
    """Chat completions against ``base_url`` with one request per sample (``seed`` = sample seed).

    Retries 408/409/425/429/5xx, timeouts and connection errors with exponential backoff
    (``backoff * 2**attempt`` seconds) up to ``max_retries`` times; runs at most
    ``max_workers`` requests at once. The API key comes from HFDC_API_KEY, OPENAI_API_KEY or HF_TOKEN
    (or ``api_key``) and is redacted from every error message.
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
        self._api_key = api_key if api_key is not None else api_key_from_env()
        self.client = InferenceClient(base_url=base_url, api_key=self._api_key, timeout=timeout)

    def __repr__(self):
        return f"OpenAIBackend(model={self.model!r}, base_url={self.base_url!r})"

    def _redact(self, text: str) -> str:
        return text.replace(self._api_key, "***") if self._api_key else text

    def _request(self, job: Job, temperature: float, max_new_tokens: int) -> Sample:
        messages = to_openai_messages(job.messages)
        attempt = 0
        while True:
            try:
                output = self.client.chat_completion(
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
                    f"{self!r}: HF_HUB_OFFLINE=1 blocks every huggingface_hub request, also to base_url; unset it"
                ) from None
            except (HfHubHTTPError, InferenceTimeoutError, httpx2.TransportError) as error:
                status = error.response.status_code if isinstance(error, HfHubHTTPError) else None
                retryable = status is None or status in RETRY_STATUSES
                reason = f"HTTP {status}" if status else type(error).__name__
                if not retryable or attempt == self.max_retries:
                    raise GenerationRequestError(
                        f"{self!r}: request for prompt {job.prompt_index} sample {job.sample_index} failed after "
                        f"{attempt + 1} attempt(s) ({reason}): {self._redact(str(error))}"
                    ) from None
                delay = self.backoff * 2**attempt
                logger.warning("%r: %s, retry %d/%d in %.1fs", self, reason, attempt + 1, self.max_retries, delay)
                time.sleep(delay)
                attempt += 1

    def _run(self, jobs: list[Job], temperature: float, max_new_tokens: int) -> Iterator[tuple[Job, Sample]]:
        """Yield samples as requests finish; after a failure, cancel queued requests, still yield the ones in
        flight that succeed (so they get cached), then raise the first failure."""
        failure = None
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
