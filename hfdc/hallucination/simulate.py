"""Simulated QA benchmark: questions with a correctness propensity, and target/verifier samplers.

Question q has one correct answer and K distractors (city names, written in varied surface forms that
SQuAD normalisation maps together). The target puts mass p_q ~ Beta(propensity_alpha, propensity_beta)
on the correct answer and spreads 1 - p_q over the distractors with Dirichlet(target_concentration)
weights (small concentration = consistent, "confident" hallucinations). The verifier puts mass
r_q = rho * p_q + (1 - rho) * r'_q, r'_q ~ Beta(verifier_alpha, verifier_beta), on the correct answer;
its wrong mass follows the target's distractor weights with probability ``verifier_shared_errors`` and
its own Dirichlet(verifier_concentration) weights otherwise. ``verifier_mode="copy"`` makes the verifier
the target itself and ``"unrelated"`` makes it answer strings that never match (both uninformative).
Sampling at temperature T draws from probs^(1/T) (renormalised); T = 0 returns the most likely answer.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from hfdc.backends.base import Backend, Job, Sample, message_text, run_sequentially
from hfdc.config import check_choices

CITIES = (
    "Paris Lyon Berlin Munich Madrid Lisbon Rome Milan Vienna Prague Warsaw Oslo Bergen Dublin Cork Athens "
    "Sofia Riga Tallinn Vilnius Helsinki Zagreb Bern Geneva Brussels Antwerp Amsterdam Utrecht Porto Seville "
    "Naples Turin Krakow Gdansk Bratislava Budapest Bucharest Belgrade Valencia Toulouse"
).split()
_SURFACE = ("{}", "{}.", "the {}", "{}!", "The {}.")
_QUESTION_ID = re.compile(r"\[q(\d+)\]")
VERIFIER_MODES = ("model", "copy", "unrelated")


@dataclass
class SimulationParams:
    """Parameters of the simulated benchmark (see the module docstring for the generative model)."""

    n_distractors: int = field(default=5, metadata={"help": "simulated: wrong candidate answers per question (K)."})
    propensity_alpha: float = field(
        default=1.0, metadata={"help": "simulated: target correct mass p_q ~ Beta(alpha, beta)."}
    )
    propensity_beta: float = field(default=0.7, metadata={"help": "simulated: see propensity_alpha."})
    target_concentration: float = field(
        default=1.0,
        metadata={
            "help": "simulated: Dirichlet concentration of the target's wrong mass (small = consistent hallucinations)."
        },
    )
    verifier_alpha: float = field(
        default=2.0, metadata={"help": "simulated: verifier's own correct mass r'_q ~ Beta(alpha, beta)."}
    )
    verifier_beta: float = field(default=1.0, metadata={"help": "simulated: see verifier_alpha."})
    verifier_correlation: float = field(
        default=0.5, metadata={"help": "simulated: r_q = rho * p_q + (1 - rho) * r'_q."}
    )
    verifier_shared_errors: float = field(
        default=0.5,
        metadata={"help": "simulated: probability that the verifier's wrong answers follow the target's."},
    )
    verifier_concentration: float = field(
        default=1.0, metadata={"help": "simulated: Dirichlet concentration of the verifier's own wrong mass."}
    )
    verifier_mode: str = field(
        default="model",
        metadata={
            "help": "simulated: 'model', 'copy' (verifier = target) or 'unrelated' (never matches).",
            "choices": VERIFIER_MODES,
        },
    )

    def __post_init__(self):
        check_choices(self)
        if not 1 <= self.n_distractors < len(CITIES):
            raise ValueError(f"n_distractors={self.n_distractors} must be in [1, {len(CITIES) - 1}]")
        for name in ("verifier_correlation", "verifier_shared_errors"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name}={getattr(self, name)} must be in [0, 1]")


class SimulatedWorld:
    """Per-question answer distributions of the simulated target and verifier, drawn once from ``seed``."""

    def __init__(self, n_questions: int, params: SimulationParams | None = None, seed: int = 0):
        if n_questions < 1:
            raise ValueError(f"n_questions={n_questions} must be >= 1")
        self.params = params = params or SimulationParams()
        self.seed = seed
        rng = np.random.default_rng(seed)
        k = params.n_distractors
        self.candidates = [[str(c) for c in rng.choice(CITIES, size=k + 1, replace=False)] for _ in range(n_questions)]
        self.propensity = rng.beta(params.propensity_alpha, params.propensity_beta, n_questions)
        target_wrong = rng.dirichlet(np.full(k, params.target_concentration), n_questions)
        self.target_probs = np.hstack([self.propensity[:, None], (1 - self.propensity)[:, None] * target_wrong])
        own = rng.beta(params.verifier_alpha, params.verifier_beta, n_questions)
        rho = params.verifier_correlation
        verifier_correct = rho * self.propensity + (1 - rho) * own
        shared = rng.random(n_questions) < params.verifier_shared_errors
        own_wrong = rng.dirichlet(np.full(k, params.verifier_concentration), n_questions)
        verifier_wrong = np.where(shared[:, None], target_wrong, own_wrong)
        self.verifier_probs = np.hstack([verifier_correct[:, None], (1 - verifier_correct)[:, None] * verifier_wrong])
        if params.verifier_mode == "copy":
            self.verifier_probs = self.target_probs

    def __len__(self) -> int:
        return len(self.candidates)

    def question(self, i: int) -> str:
        return f"[q{i}] In which city is landmark number {i} of the simulated atlas?"

    def gold_answers(self, i: int) -> list[str]:
        return [self.candidates[i][0]]

    def sample(self, i: int, role: str, temperature: float, seed: int) -> str:
        """One answer of ``role`` ("target" or "verifier") to question i, deterministic in (seed of the world,
        ``seed``, i, role)."""
        rng = np.random.default_rng([self.seed, seed, i, 0 if role == "target" else 1])
        if role == "verifier" and self.params.verifier_mode == "unrelated":
            return f"no idea {rng.integers(10**9)}"
        probs = self.target_probs[i] if role == "target" else self.verifier_probs[i]
        if temperature <= 0:
            pick = int(np.argmax(probs))
        else:
            logits = np.log(np.clip(probs, 1e-300, None)) / temperature
            tempered = np.exp(logits - logits.max())
            pick = rng.choice(len(probs), p=tempered / tempered.sum())
        return _SURFACE[rng.integers(len(_SURFACE))].format(self.candidates[i][pick])


class SimulatedBackend(Backend):
    """A ``hfdc.backends`` backend answering the simulated questions (prompts must contain the "[qN]" id); no cache."""

    kind = "simulated"

    def __init__(self, world: SimulatedWorld, role: str):
        if role not in ("target", "verifier"):
            raise ValueError(f"role={role!r} must be 'target' or 'verifier'")
        super().__init__(f"simulated-{role}", use_cache=False, progress=False)
        self.world, self.role = world, role

    def _generate_one(self, job: Job, temperature: float) -> Sample:
        text = message_text(job.messages[-1])
        match = _QUESTION_ID.search(text)
        if match is None or int(match.group(1)) >= len(self.world):
            raise ValueError(
                f"simulated backend: prompt {text[:80]!r} has no simulated question id [qN] below {len(self.world)}"
            )
        answer = self.world.sample(int(match.group(1)), self.role, temperature, job.seed)
        return Sample(answer, prompt_tokens=len(text.split()), completion_tokens=len(answer.split()))

    def _run(self, jobs: list[Job], temperature: float, max_new_tokens: int) -> Iterable[tuple[Job, Sample]]:
        return run_sequentially(jobs, lambda job: self._generate_one(job, temperature))
