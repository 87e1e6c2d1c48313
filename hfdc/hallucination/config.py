"""Configuration of ``hfdc hallucination``: data, target/verifier backends, sampling, scores, budgets."""

from dataclasses import dataclass, field

from hfdc.config import OutputConfig
from hfdc.hallucination.sampling import DEFAULT_PROMPT
from hfdc.hallucination.simulate import SimulationParams

_SIMULATION = SimulationParams()  # the simulation fields below default to SimulationParams' defaults


@dataclass
class HallucinationConfig(OutputConfig):
    """Evaluate self-, cross-consistency and the two-stage detector on labelled QA data; save the fitted detector."""

    dataset: str = field(
        default="simulated",
        metadata={
            "help": (
                "'simulated' (embedded benchmark), a Hub data set id or a save_to_disk folder "
                "with question/answers columns."
            )
        },
    )
    dataset_config: str | None = field(
        default=None,
        metadata={"help": "Config name of the Hub data set (e.g. 'rc.nocontext' for trivia_qa)."},
    )
    validation_split: str = field(default="validation", metadata={"help": "Split the detector is fitted on."})
    test_split: str = field(default="test", metadata={"help": "Split the detector is evaluated on."})
    question_column: str = field(default="question", metadata={"help": "Column with the question text."})
    answers_column: str = field(
        default="answers",
        metadata={"help": "Column with gold answers (str, list, SQuAD or TriviaQA dict)."},
    )
    max_questions: int | None = field(
        default=None,
        metadata={"help": "Keep at most this many questions per split (seeded subset)."},
    )
    target: str = field(
        default="simulated",
        metadata={
            "help": (
                "Target backend spec: 'simulated' or an hfdc.backends spec "
                "(transformers:<path>, openai:<model>@<url>)."
            )
        },
    )
    verifier: str = field(default="simulated", metadata={"help": "Verifier backend spec, as for target."})
    n_samples: int = field(default=10, metadata={"help": "Target samples per question besides the answer (N)."})
    n_verifier_samples: int = field(default=10, metadata={"help": "Verifier samples per question (M)."})
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature of the samples."})
    answer_temperature: float = field(
        default=0.0,
        metadata={"help": "Temperature of the target's answer (0 = greedy)."},
    )
    max_new_tokens: int = field(default=32, metadata={"help": "Token limit per generated answer."})
    prompt_template: str = field(default=DEFAULT_PROMPT, metadata={"help": "Prompt with a {question} placeholder."})
    batch_size: int = field(
        default=32,
        metadata={"help": "Questions per backend call (a failed batch leaves earlier ones cached)."},
    )
    cache_dir: str | None = field(
        default=None,
        metadata={"help": "Response cache folder of the backends (default $HF_HOME/hfdc/generations)."},
    )
    similarity: str = field(
        default="normalized",
        metadata={"help": "Answer similarity: exact, normalized, embedding (all-MiniLM-L6-v2) or nli."},
    )
    nli_model: str | None = field(
        default=None,
        metadata={"help": "NLI classifier (path or Hub id) for similarity=nli."},
    )
    budget: float = field(
        default=0.5,
        metadata={"help": "Verifier-call budget (fraction of questions) of the saved detector."},
    )
    budgets: list[float] = field(
        default_factory=lambda: [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0],
        metadata={"help": "Budgets of the budget-AUROC sweep."},
    )
    n_validation: int = field(default=500, metadata={"help": "simulated: number of validation questions."})
    n_test: int = field(default=1000, metadata={"help": "simulated: number of test questions."})
    n_distractors: int = field(
        default=_SIMULATION.n_distractors,
        metadata={"help": "simulated: wrong candidate answers per question (K)."},
    )
    propensity_alpha: float = field(
        default=_SIMULATION.propensity_alpha,
        metadata={"help": "simulated: target correct mass p_q ~ Beta(alpha, beta)."},
    )
    propensity_beta: float = field(
        default=_SIMULATION.propensity_beta,
        metadata={"help": "simulated: see propensity_alpha."},
    )
    target_concentration: float = field(
        default=_SIMULATION.target_concentration,
        metadata={
            "help": (
                "simulated: Dirichlet concentration of the target's wrong mass (small = consistent hallucinations)."
            )
        },
    )
    verifier_alpha: float = field(
        default=_SIMULATION.verifier_alpha,
        metadata={"help": "simulated: verifier's own correct mass r'_q ~ Beta(alpha, beta)."},
    )
    verifier_beta: float = field(
        default=_SIMULATION.verifier_beta, metadata={"help": "simulated: see verifier_alpha."}
    )
    verifier_correlation: float = field(
        default=_SIMULATION.verifier_correlation,
        metadata={"help": "simulated: r_q = rho * p_q + (1 - rho) * r'_q."},
    )
    verifier_shared_errors: float = field(
        default=_SIMULATION.verifier_shared_errors,
        metadata={"help": "simulated: probability that the verifier's wrong answers follow the target's."},
    )
    verifier_concentration: float = field(
        default=_SIMULATION.verifier_concentration,
        metadata={"help": "simulated: Dirichlet concentration of the verifier's own wrong mass."},
    )
    verifier_mode: str = field(
        default=_SIMULATION.verifier_mode,
        metadata={"help": "simulated: 'model', 'copy' (verifier = target) or 'unrelated' (never matches)."},
    )
