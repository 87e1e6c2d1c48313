"""The generation backend interface: prompts in, n samples per prompt out, cached on disk, usage counted."""

import hashlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from PIL import Image
from tqdm.auto import tqdm

from .cache import ResponseCache, cache_key, default_cache_dir

Prompt = str | list[dict]


@dataclass
class Usage:
    """Accumulated cost counters: backend calls and tokens (cache hits are free and counted apart)."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cache_hits: int = 0


@dataclass(frozen=True)
class Job:
    """One sample to generate: prompt ``prompt_index``, sample ``sample_index``, with its derived seed."""

    prompt_index: int
    sample_index: int
    seed: int
    messages: list


@dataclass
class Sample:
    """A generated text with the token counts the backend reported for it."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0


def sample_seed(seed: int, prompt_index: int, sample_index: int) -> int:
    """Seed of one sample: the first 4 bytes of sha256("seed:prompt_index:sample_index"), below 2**31."""
    digest = hashlib.sha256(f"{seed}:{prompt_index}:{sample_index}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % (2**31)


def to_messages(prompt: Prompt, index: int = 0) -> list[dict]:
    """A prompt as chat messages: a str becomes one user message; messages are checked for role/content/parts."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    if not isinstance(prompt, list) or not prompt:
        raise TypeError(
            f"prompts[{index}] must be a str or a non-empty list of chat messages, got {type(prompt).__name__}"
        )
    for message in prompt:
        if not isinstance(message, dict) or "role" not in message or "content" not in message:
            raise ValueError(f"prompts[{index}]: each message needs 'role' and 'content' keys, got {message!r}")
        content = message["content"]
        if isinstance(content, str):
            continue
        if not isinstance(content, list):
            raise TypeError(
                f"prompts[{index}]: message content must be a str or a list of parts, got {type(content).__name__}"
            )
        for part in content:
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text" and isinstance(part.get("text"), str):
                continue
            if kind == "image" and isinstance(part.get("image"), Image.Image):
                continue
            raise ValueError(
                f"prompts[{index}]: content parts must be {{'type': 'text', 'text': str}} or "
                f"{{'type': 'image', 'image': PIL.Image}}, got {part!r}"
            )
    return prompt


def message_text(message: dict) -> str:
    """The text of one message (text parts joined by spaces; images left out)."""
    content = message["content"]
    if isinstance(content, str):
        return content
    return " ".join(part["text"] for part in content if part["type"] == "text")


class Backend:
    """Base class: subclasses set ``kind``/``model`` and implement ``_run`` (jobs -> (job, Sample) as they finish).

    ``generate`` derives one seed per sample from (seed, prompt index, sample index), answers what it can from
    the on-disk cache, sends the rest to ``_run`` and stores each sample as soon as it arrives, so a batch that
    fails half way resumes where it stopped.
    """

    kind: str = ""

    def __init__(
        self, model: str, cache_dir: str | os.PathLike | None = None, use_cache: bool = True, progress: bool = True
    ):
        self.model = model
        cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.cache = ResponseCache(cache_dir) if use_cache else None
        self.progress = progress
        self.usage = Usage()

    def __repr__(self):
        return f"{type(self).__name__}(model={self.model!r})"

    def _run(self, jobs: list[Job], temperature: float, max_new_tokens: int) -> Iterable[tuple[Job, Sample]]:
        raise NotImplementedError

    def cache_fields(self) -> dict:
        """What besides kind and model tells this backend's answers apart in the cache (e.g. the endpoint URL)."""
        return {}

    def generate(
        self, prompts: list[Prompt], n: int = 1, temperature: float = 1.0, max_new_tokens: int = 64, seed: int = 0
    ) -> list[list[str]]:
        """One list of ``n`` sampled texts per prompt (temperature 0 = greedy); repeatable for a given seed."""
        if isinstance(prompts, (str, dict)):
            raise TypeError("prompts must be a list of prompts; wrap a single prompt as [prompt]")
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        messages = [to_messages(prompt, index) for index, prompt in enumerate(prompts)]
        results: list[list[str | None]] = [[None] * n for _ in prompts]
        remaining = [n] * len(prompts)
        keys, todo = {}, []
        bar = tqdm(total=len(prompts), desc=f"generate ({self.kind})", unit="prompt", disable=not self.progress)

        def done(job: Job, text: str) -> None:
            results[job.prompt_index][job.sample_index] = text
            remaining[job.prompt_index] -= 1
            if remaining[job.prompt_index] == 0:
                bar.update(1)

        for i, message_list in enumerate(messages):
            for j in range(n):
                job = Job(i, j, sample_seed(seed, i, j), message_list)
                if self.cache is not None:
                    keys[(i, j)] = cache_key(
                        **self.cache_fields(),
                        kind=self.kind,
                        model=self.model,
                        messages=message_list,
                        temperature=float(temperature),
                        max_new_tokens=max_new_tokens,
                        seed=job.seed,
                    )
                    record = self.cache.get(keys[(i, j)])
                    if record is not None:
                        self.usage.cache_hits += 1
                        done(job, record["text"])
                        continue
                todo.append(job)
        try:
            for job, sample in self._run(todo, float(temperature), max_new_tokens):
                self.usage.calls += 1
                self.usage.prompt_tokens += sample.prompt_tokens
                self.usage.completion_tokens += sample.completion_tokens
                if self.cache is not None:
                    self.cache.put(keys[(job.prompt_index, job.sample_index)], asdict(sample))
                done(job, sample.text)
        finally:
            bar.close()
        return results


def run_sequentially(jobs: list[Job], generate_one) -> Iterator[tuple[Job, Sample]]:
    """Yield ``(job, generate_one(job))`` in order (backends without parallel calls)."""
    for job in jobs:
        yield job, generate_one(job)
