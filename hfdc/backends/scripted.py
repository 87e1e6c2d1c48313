"""A deterministic backend for tests: answers come from a callable, a per-prompt list or a dict keyed by prompt text."""

import hashlib
from collections.abc import Callable, Iterable

from .base import Backend, Job, Sample, message_text, run_sequentially


def default_response(messages: list[dict], seed: int) -> str:
    """``"sample <8 hex digits>"`` from sha256 of the last message's text and the sample seed."""
    digest = hashlib.sha256(f"{message_text(messages[-1])}|{seed}".encode()).hexdigest()[:8]
    return f"sample {digest}"


class ScriptedBackend(Backend):
    """Scripted responses; no cache unless ``cache_dir`` is given (it is then keyed by ``name``).

    ``responses`` is one of:
    - a callable ``(messages, seed) -> str`` (messages = the prompt as chat messages; seed = the sample seed);
    - a list with one entry per prompt index: a str, or a list of str where sample j gets entry j mod its length;
    - a dict from prompt text (the last message's text) to a str or a list of str, as for the list;
    - None: ``default_response`` (differs across prompts and seeds).
    """

    kind = "scripted"

    def __init__(
        self,
        responses: Callable | list | dict | None = None,
        name: str = "scripted",
        cache_dir=None,
        progress: bool = False,
    ):
        super().__init__(name, cache_dir=cache_dir, use_cache=cache_dir is not None, progress=progress)
        if responses is not None and not isinstance(responses, (list, dict)) and not callable(responses):
            raise TypeError(f"responses must be a callable, list, dict or None, got {type(responses).__name__}")
        self.responses = default_response if responses is None else responses

    def _respond(self, job: Job) -> str:
        if callable(self.responses):
            return self.responses(job.messages, job.seed)
        if isinstance(self.responses, list):
            if job.prompt_index >= len(self.responses):
                raise ValueError(
                    f"responses has {len(self.responses)} entries but prompt {job.prompt_index} was asked; "
                    "give one entry per prompt"
                )
            entry = self.responses[job.prompt_index]
        else:
            text = message_text(job.messages[-1])
            if text not in self.responses:
                raise ValueError(f"responses has no entry for prompt {text!r}; add it to the responses dict")
            entry = self.responses[text]
        return entry if isinstance(entry, str) else entry[job.sample_index % len(entry)]

    def _generate_one(self, job: Job, max_new_tokens: int) -> Sample:
        words = self._respond(job).split(" ")
        text = " ".join(words[:max_new_tokens])
        prompt_words = sum(len(message_text(message).split()) for message in job.messages)
        return Sample(text, prompt_tokens=prompt_words, completion_tokens=len(text.split()))

    def _run(self, jobs: list[Job], temperature: float, max_new_tokens: int) -> Iterable[tuple[Job, Sample]]:
        return run_sequentially(jobs, lambda job: self._generate_one(job, max_new_tokens))
