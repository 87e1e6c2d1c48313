"""Sample answers from a target and a verifier backend (``hfdc.backends``), batch by batch, with cost counts.

A prompt is ``prompt_template`` filled with the question, optionally after ``few_shot`` worked examples given as
earlier chat turns (small models answer in a few words only when shown how). An answer is the first non-empty
line of the generation. Backends cache every sample on disk, so a run that fails half way resumes where it
stopped; the batches finished before a failure are returned on the raised :class:`SamplingError` (``.partial``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from tqdm.auto import tqdm

DEFAULT_PROMPT = "Answer the following question in a few words, without explanation.\nQuestion: {question}\nAnswer:"
# worked examples for few-shot prompts; none of them is a question of the embedded factual_qa set
FEW_SHOT = (
    ("Who painted the Mona Lisa?", "Leonardo da Vinci"),
    ("How many legs does a spider have?", "Eight"),
    ("At what temperature in degrees Celsius does water boil at sea level?", "100"),
    ("What is the tallest mountain on Earth?", "Mount Everest"),
)


class SamplingError(RuntimeError):
    """A backend failed while sampling; ``role`` is "target" or "verifier", ``partial`` holds the questions answered
    before the failure."""

    def __init__(self, message: str, partial: list, role: str = ""):
        super().__init__(message)
        self.partial = partial
        self.role = role


@dataclass
class Answers:
    """One question's target answer (low temperature) and samples, and the verifier's samples (may be empty)."""

    answer: str
    samples: list[str]
    verifier_samples: list[str] = field(default_factory=list)


def format_prompts(
    questions: Sequence[str], template: str = DEFAULT_PROMPT, few_shot: Sequence[tuple[str, str]] = ()
) -> list:
    """The prompt per question: ``template`` filled with the question (a str), or with ``few_shot`` (question,
    answer) pairs as earlier user/assistant turns (a list of chat messages); ``template`` needs "{question}"."""
    if "{question}" not in template:
        raise ValueError(f"prompt_template must contain '{{question}}', got {template!r}")
    if not few_shot:
        return [template.format(question=q) for q in questions]
    shots = []
    for q, a in few_shot:
        shots += [{"role": "user", "content": template.format(question=q)}, {"role": "assistant", "content": a}]
    return [[*shots, {"role": "user", "content": template.format(question=q)}] for q in questions]


def clean_answer(text: str) -> str:
    """The first non-empty line of a generation, stripped."""
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def _generate(backend, prompts, start, total, n, temperature, max_new_tokens, seed, what, done) -> list[list[str]]:
    try:
        out = backend.generate(prompts, n=n, temperature=temperature, max_new_tokens=max_new_tokens, seed=seed)
    except Exception as error:
        raise SamplingError(
            f"{what}: backend {backend!r} failed in the batch starting at question {start} of {total} "
            f"({type(error).__name__}: {error}); the {len(done)} questions finished before are kept on .partial, "
            "finished samples are cached: run again to resume",
            partial=done,
            role=what,
        ) from error
    return [[clean_answer(text) for text in texts] for texts in out]


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
    few_shot: Sequence[tuple[str, str]] = (),
) -> list[Answers]:
    """Per question: the answer at ``answer_temperature`` and ``n_samples`` samples at ``temperature``."""
    if n_samples < 1:
        raise ValueError(f"n_samples={n_samples}: self-consistency needs at least one sample besides the answer")
    prompts = format_prompts(questions, prompt_template, few_shot)
    results: list[Answers] = []
    for start in tqdm(range(0, len(prompts), batch_size), desc="target sampling", leave=False):
        batch = prompts[start : start + batch_size]
        answers = _generate(
            backend, batch, start, len(prompts), 1, answer_temperature, max_new_tokens, seed, "target", results
        )
        samples = _generate(
            backend, batch, start, len(prompts), n_samples, temperature, max_new_tokens, seed + 1, "target", results
        )
        results += [Answers(a[0], ss) for a, ss in zip(answers, samples)]
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
    few_shot: Sequence[tuple[str, str]] = (),
) -> list[list[str]]:
    """``n_samples`` verifier answers per question."""
    if n_samples < 1:
        raise ValueError(f"n_verifier_samples={n_samples} must be >= 1")
    prompts = format_prompts(questions, prompt_template, few_shot)
    results: list[list[str]] = []
    for start in tqdm(range(0, len(prompts), batch_size), desc="verifier sampling", leave=False):
        batch = prompts[start : start + batch_size]
        results += _generate(
            backend, batch, start, len(prompts), n_samples, temperature, max_new_tokens, seed + 2, "verifier", results
        )
    return results


def sample_answers(
    target,
    questions: Sequence[str],
    n_samples: int = 10,
    verifier=None,
    n_verifier_samples: int = 10,
    **sampling,
) -> list[Answers]:
    """Target answer + ``n_samples`` samples per question and, when a ``verifier`` is given, its
    ``n_verifier_samples`` samples on ``.verifier_samples``; ``sampling`` goes to both (temperature,
    max_new_tokens, seed, prompt_template, batch_size, few_shot; answer_temperature to the target only)."""
    answers = sample_target(target, questions, n_samples, **sampling)
    if verifier is not None:
        sampling.pop("answer_temperature", None)
        for a, v in zip(answers, sample_verifier(verifier, questions, n_verifier_samples, **sampling)):
            a.verifier_samples = v
    return answers
