"""Sample answers from a target and a verifier backend (``hfdc.backends``), batch by batch, with cost counts.

Backends cache every sample on disk, so a run that fails half way resumes where it stopped; the batches
finished before a failure are returned on the raised :class:`SamplingError` (``.partial``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from tqdm.auto import tqdm

DEFAULT_PROMPT = "Answer the following question in a few words, without explanation.\nQuestion: {question}\nAnswer:"


class SamplingError(RuntimeError):
    """A backend failed while sampling; ``partial`` holds the questions answered before the failure."""

    def __init__(self, message: str, partial: list):
        super().__init__(message)
        self.partial = partial


@dataclass
class Answers:
    """One question's target answer (low temperature) and samples, and the verifier's samples (may be empty)."""

    answer: str
    samples: list[str]
    verifier_samples: list[str] = field(default_factory=list)


def format_prompts(questions: Sequence[str], template: str = DEFAULT_PROMPT) -> list[str]:
    """The prompt per question; ``template`` must contain "{question}"."""
    if "{question}" not in template:
        raise ValueError(f"prompt_template must contain '{{question}}', got {template!r}")
    return [template.format(question=q) for q in questions]


def _generate(backend, prompts, start, total, n, temperature, max_new_tokens, seed, what, done) -> list[list[str]]:
    try:
        return backend.generate(prompts, n=n, temperature=temperature, max_new_tokens=max_new_tokens, seed=seed)
    except Exception as error:
        raise SamplingError(
            f"{what}: backend {backend!r} failed in the batch starting at question {start} of {total} "
            f"({type(error).__name__}: {error}); the {len(done)} questions finished before are kept on .partial, "
            "finished samples are cached: run again to resume",
            partial=done,
        ) from error


def sample_target(
    backend,
    questions: Sequence[str],
    n_samples: int = 10,
    temperature: float = 1.0,
    answer_temperature: float = 0.0,
    max_new_tokens: int = 32,
    seed: int = 0,
    prompt_template: str = DEFAULT_PROMPT,
    batch_size: int = 32,
) -> list[Answers]:
    """Per question: the answer at ``answer_temperature`` and ``n_samples`` samples at ``temperature``."""
    if n_samples < 1:
        raise ValueError(f"n_samples={n_samples}: self-consistency needs at least one sample besides the answer")
    prompts = format_prompts(questions, prompt_template)
    results: list[Answers] = []
    for start in tqdm(range(0, len(prompts), batch_size), desc="target sampling", leave=False):
        batch = prompts[start : start + batch_size]
        answers = _generate(
            backend, batch, start, len(prompts), 1, answer_temperature, max_new_tokens, seed, "target", results
        )
        samples = _generate(
            backend, batch, start, len(prompts), n_samples, temperature, max_new_tokens, seed + 1, "target", results
        )
        results += [Answers(a[0].strip(), [s.strip() for s in ss]) for a, ss in zip(answers, samples)]
    return results


def sample_verifier(
    backend,
    questions: Sequence[str],
    n_samples: int = 10,
    temperature: float = 1.0,
    max_new_tokens: int = 32,
    seed: int = 0,
    prompt_template: str = DEFAULT_PROMPT,
    batch_size: int = 32,
) -> list[list[str]]:
    """``n_samples`` verifier answers per question."""
    if n_samples < 1:
        raise ValueError(f"n_verifier_samples={n_samples} must be >= 1")
    prompts = format_prompts(questions, prompt_template)
    results: list[list[str]] = []
    for start in tqdm(range(0, len(prompts), batch_size), desc="verifier sampling", leave=False):
        batch = prompts[start : start + batch_size]
        samples = _generate(
            backend, batch, start, len(prompts), n_samples, temperature, max_new_tokens, seed + 2, "verifier", results
        )
        results += [[s.strip() for s in ss] for ss in samples]
    return results
