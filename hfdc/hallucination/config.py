"""Configuration of ``hfdc hallucination``: data, target/verifier backends, sampling, scores, labels, budgets."""

from dataclasses import dataclass, field

from hfdc.config import DatasetConfig, OutputConfig
from hfdc.hallucination.data import LABEL_METHODS
from hfdc.hallucination.sampling import DEFAULT_PROMPT, FEW_SHOT
from hfdc.hallucination.similarity import SIMILARITIES
from hfdc.hallucination.simulate import SimulationParams


@dataclass
class HallucinationConfig(DatasetConfig, OutputConfig, SimulationParams):
    """Evaluate self-, cross-consistency and the two-stage detector on labelled QA data and save the fitted detector;
    or, with ``detector``, deploy a fitted detector on new questions (the verifier sampled only where routed).

    The simulated benchmark's parameters are the fields of :class:`SimulationParams` (inherited).
    """

    # data
    dataset: str = field(
        default="simulated",
        metadata={
            "help": "'simulated' (the simulated benchmark), or a QA data set for hfdc.data.load with question/answers "
            "columns: 'factual_qa' (embedded), a save_to_disk folder or a Hub id (dataset_params: its config name)."
        },
    )
    validation_split: str = field(default="validation", metadata={"help": "Split the detector is fitted on."})
    test_split: str = field(default="test", metadata={"help": "Split the detector is evaluated (or deployed) on."})
    question_column: str = field(default="question", metadata={"help": "Column with the question text."})
    answers_column: str = field(
        default="answers",
        metadata={"help": "Column with gold answers (str, list of aliases, SQuAD or TriviaQA dict)."},
    )
    max_questions: int | None = field(
        default=None,
        metadata={"help": "Keep at most this many questions per split (seeded subset)."},
    )
    n_validation: int = field(default=500, metadata={"help": "simulated: number of validation questions."})
    n_test: int = field(default=1000, metadata={"help": "simulated: number of test questions."})
    # models and sampling
    target: str = field(
        default="simulated",
        metadata={
            "help": "Target backend spec: 'simulated' or an hfdc.backends spec (transformers:<path>, "
            "openai:<model>@<url>)."
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
    few_shot: int = field(
        default=0,
        metadata={
            "help": f"Worked examples shown before each question as chat turns (0-{len(FEW_SHOT)}, from "
            "hfdc.hallucination.sampling.FEW_SHOT); small models need them to answer in a few words."
        },
    )
    batch_size: int = field(
        default=32,
        metadata={"help": "Questions per backend call (a failed batch leaves earlier ones cached)."},
    )
    cache_dir: str | None = field(
        default=None,
        metadata={"help": "Response cache folder of the backends (default $HF_HOME/hfdc/generations)."},
    )
    # scores and labels
    similarity: str = field(
        default="normalized",
        metadata={
            "help": "Answer similarity: exact, normalized (SQuAD), embedding (all-MiniLM-L6-v2 cosine) or nli.",
            "choices": SIMILARITIES,
        },
    )
    nli_model: str | None = field(
        default=None,
        metadata={"help": "NLI classifier (path or Hub id) for similarity=nli."},
    )
    label_method: str = field(
        default="exact_match",
        metadata={
            "help": "How an answer is judged correct: exact_match (normalised, against every gold alias), "
            "containment (a gold alias occurs in the answer) or judge (an LLM judge, see judge).",
            "choices": LABEL_METHODS,
        },
    )
    judge: str | None = field(default=None, metadata={"help": "Backend spec of the LLM judge for label_method=judge."})
    # detector
    budget: float = field(
        default=0.5,
        metadata={"help": "Verifier-call budget (fraction of questions) of the saved detector."},
    )
    budgets: list[float] = field(
        default_factory=lambda: [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0],
        metadata={"help": "Budgets of the budget-AUROC sweep."},
    )
    n_folds: int = field(
        default=5, metadata={"help": "Cross-fitting folds: the band is placed on out-of-fold combiner scores."}
    )
    detector: str | None = field(
        default=None,
        metadata={
            "help": "A fitted detector (folder or Hub id): deploy it on the test split instead of evaluating; the "
            "verifier is sampled only for the questions it routes."
        },
    )

    def __post_init__(self):
        super().__post_init__()
        if not 0 <= self.few_shot <= len(FEW_SHOT):
            raise ValueError(f"few_shot={self.few_shot} must be between 0 and {len(FEW_SHOT)}")
        if self.label_method == "judge" and not self.judge:
            raise ValueError("label_method=judge needs judge=<backend spec> (e.g. openai:<model>@<url>)")
        if self.similarity == "nli" and not self.nli_model:
            raise ValueError("similarity=nli needs nli_model=<path or Hub id of an NLI classifier>")
