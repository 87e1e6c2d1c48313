"""Gradio Space: budget-aware black-box hallucination detection with hfdc (Xue et al. 2025, arXiv 2502.15845).

Paste an answer and samples (or ask the configured target model), set the verifier budget, and see the
self-consistency score, whether the question falls in the uncertain band that calls the verifier, the final
score and a plot. Models come from environment variables (Space secrets), never from the UI:

    HFDC_TARGET    backend spec of the target, e.g. openai:<model>@https://router.huggingface.co/v1
    HFDC_VERIFIER  backend spec of the verifier, e.g. openai:<another model>@https://router.huggingface.co/v1
    HFDC_API_KEY   key of the endpoints (or OPENAI_API_KEY / HF_TOKEN)

The detector's combiners and thresholds are fitted on the embedded simulated benchmark (hfdc's
``SimulatedWorld``) at the number of answers of the request (the answer + samples), per budget, and cached.
API endpoints (gradio_client): ``/detect`` (pasted answers), ``/ask`` (sample the configured models).

Cost limits for anonymous callers: at most MAX_MODEL_SAMPLES verifier samples per request (however many
answers are pasted), at most REQUEST_TIMEOUT_S per HTTP request, MAX_RETRIES retries, and REQUEST_BUDGET_S for
all calls of one model in a request; errors say what happened (key refused, rate limited, timeout), never the key.
"""

from __future__ import annotations

import functools
import logging
import os

import gradio as gr
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from hfdc.hallucination import TwoStageDetector, deploy, sample_answers, sample_verifier
from hfdc.hallucination.evaluate import featurize
from hfdc.hallucination.features import CROSS_FEATURES, SELF_FEATURES, compute_features
from hfdc.hallucination.similarity import normalized_match
from hfdc.hallucination.simulate import SimulatedBackend, SimulatedWorld

logger = logging.getLogger("hallucination-detector")

MAX_QUESTION_CHARS = 1000
MAX_ANSWER_CHARS = 500
MAX_ANSWERS = 20
MAX_MODEL_SAMPLES = 10
N_REFERENCE = 400
REQUEST_TIMEOUT_S = 20.0
MAX_RETRIES = 2
REQUEST_BUDGET_S = 45.0
EXAMPLE = (
    "Which city hosted the 1992 Summer Olympics?",
    "Barcelona\nBarcelona\nMadrid\nBarcelona\nSeville\nMadrid",
    "Barcelona\nBarcelona\nBarcelona",
)
HOW_TO_CONFIGURE = (
    "No models configured: paste answers below. To sample models, set the Space secrets `HFDC_TARGET` and "
    "`HFDC_VERIFIER` to backend specs such as `openai:<model>@<base_url>` (any OpenAI-compatible endpoint: "
    "HF router, vLLM, TGI) and `HFDC_API_KEY` to the endpoint's key."
)


def model_name(spec: str | None) -> str | None:
    """What the UI may show of a backend spec: the model name only (no URL, no key)."""
    if not spec:
        return None
    kind, _, rest = spec.partition(":")
    return f"{kind}:{rest.partition('@')[0].split('/')[-1]}" if rest else kind


@functools.cache
def backend(role: str):
    """The target or verifier backend named by HFDC_TARGET / HFDC_VERIFIER, or None when unset; HTTP backends get
    the per-request time and retry limits."""
    spec = os.environ.get(f"HFDC_{role.upper()}")
    if not spec:
        return None
    from hfdc import backends

    limits = (
        {"timeout": REQUEST_TIMEOUT_S, "max_retries": MAX_RETRIES, "total_timeout": REQUEST_BUDGET_S}
        if spec.startswith("openai:")
        else {}
    )
    return backends.get(spec, progress=False, **limits)


@functools.lru_cache(maxsize=MAX_ANSWERS)
def reference(n_answers: int):
    """Features and labels of the simulated benchmark at ``n_answers`` target answers per question (the answer +
    n_answers - 1 samples): the detector is fitted at the sample count it reads."""
    world = SimulatedWorld(N_REFERENCE, seed=0)
    questions = [world.question(i) for i in range(N_REFERENCE)]
    target, verifier = SimulatedBackend(world, "target"), SimulatedBackend(world, "verifier")
    answers = sample_answers(target, questions, n_answers - 1, verifier, MAX_MODEL_SAMPLES)
    return featurize(questions, answers, [world.gold_answers(i) for i in range(N_REFERENCE)], normalized_match)


@functools.lru_cache(maxsize=64)
def detector(budget: float, n_answers: int) -> TwoStageDetector:
    """The two-stage detector for ``budget``, fitted at ``n_answers`` answers per question."""
    ref = reference(n_answers)
    return TwoStageDetector(budget=budget).fit(ref.x_self, ref.x_cross, ref.labels, ref.questions)


def parse_answers(text: str | None, field: str, minimum: int) -> list[str]:
    """One answer per non-empty line, within the limits; clear errors otherwise."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    if len(lines) < minimum:
        need = "the answer on the first line and at least one more sample below it" if minimum == 2 else "one answer"
        raise gr.Error(f"{field}: got {len(lines)} non-empty line(s); paste {need}, one per line.")
    if len(lines) > MAX_ANSWERS:
        raise gr.Error(f"{field}: {len(lines)} lines; at most {MAX_ANSWERS} answers are accepted.")
    long = [i + 1 for i, line in enumerate(lines) if len(line) > MAX_ANSWER_CHARS]
    if long:
        raise gr.Error(f"{field}: line(s) {long} exceed {MAX_ANSWER_CHARS} characters; shorten the answers.")
    return lines


def check_question(question: str | None, required: bool) -> str:
    question = (question or "").strip()
    if required and not question:
        raise gr.Error("Question: enter a question for the models to answer.")
    if len(question) > MAX_QUESTION_CHARS:
        raise gr.Error(f"Question: {len(question)} characters; at most {MAX_QUESTION_CHARS}.")
    return question


def check_budget(budget) -> float:
    budget = float(budget)
    if not 0.0 <= budget <= 1.0:
        raise gr.Error(f"Budget: {budget} must be between 0 and 1.")
    return round(budget, 2)


def band_plot(det: TwoStageDetector, n_answers: int, self_score: float, called: bool):
    """Histogram of the reference self scores by label, the verifier band, and this question's score."""
    ref = reference(n_answers)
    s = det.self_combiner.predict_proba(ref.x_self)
    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
    bins = np.linspace(0, 1, 31)
    ax.hist(s[ref.labels == 0], bins=bins, alpha=0.6, color="C2", label="correct (reference)")
    ax.hist(s[ref.labels == 1], bins=bins, alpha=0.6, color="C3", label="hallucinated (reference)")
    if det.thresholds is not None:
        low, high = (float(np.clip(t, 0, 1)) for t in det.thresholds)
        ax.axvspan(low, high, color="C0", alpha=0.12, label=f"verifier band ({det.budget:.0%} of questions)")
    ax.axvline(self_score, color="black", lw=2, label="this question")
    ax.set_xlabel("self-consistency score P(hallucination | self features)")
    ax.set_ylabel("questions")
    ax.set_title("verifier called" if called else "verifier not called")
    ax.legend(fontsize=7)
    fig.tight_layout()
    plt.close(fig)
    return fig


class NoVerifier(Exception):
    """The question is in the band, but there are no pasted verifier answers and no verifier is configured."""


OUT_OF_RANGE_NOTE = " Some scores lie outside the range the detector was fitted on: read the probability with care."


def score(question: str, answers: list[str], verifier_answers: list[str] | None, budget: float, ask_verifier):
    """Two-stage decision for one question; ``ask_verifier(question)`` supplies verifier answers when needed."""
    det = detector(budget, len(answers))
    x_self, _ = compute_features([answers[0]], [answers[1:]], questions=[question])
    asked = []

    def cross(indices):
        verifier = verifier_answers or ask_verifier(question)
        if not verifier:
            raise NoVerifier
        asked.append(verifier)
        return compute_features([answers[0]], [answers[1:]], [verifier], questions=[question])[1]

    note = ""
    try:
        detection = det.predict(x_self, cross, [question])
    except NoVerifier:  # same combiners, no band: self-consistency only
        detection = detector(0.0, len(answers)).predict(x_self, None, [question])
        note = (
            " The question is in the uncertain band, but no verifier answers were pasted and no verifier is "
            "configured: the score is self-consistency only."
        )
    if verifier_answers and not detection.called_verifier[0]:
        note = " The question is outside the uncertain band: the pasted verifier answers were not needed."
    return outcome(det, question, answers, asked[0] if asked else None, detection, note)


def outcome(det, question: str, answers: list[str], verifier_samples, detection, note: str):
    """The five outputs (answer, verdict, verifier called, scores, plot) of one detection."""
    x_self, x_cross = compute_features(
        [answers[0]], [answers[1:]], None if verifier_samples is None else [verifier_samples], questions=[question]
    )
    self_score, final = float(detection.self_scores[0]), float(detection.scores[0])
    called, out_of_range = bool(detection.called_verifier[0]), bool(detection.out_of_range[0])
    verdict = (
        f"**P(hallucination) = {final:.3f}** ({'likely hallucination' if final >= 0.5 else 'likely correct'}); "
        f"self-consistency score {self_score:.3f}, band {format_band(det)}; "
        f"verifier {'called' if called else 'not called'}.{note}{OUT_OF_RANGE_NOTE if out_of_range else ''}"
    )
    scores = {
        "self_features": dict(zip(SELF_FEATURES, map(float, x_self[0]))),
        "cross_features": None if x_cross is None else dict(zip(CROSS_FEATURES, map(float, x_cross[0]))),
        "self_score": self_score,
        "final_score": final,
        "budget": det.budget,
        "answers": len(answers),
        "out_of_fitted_range": out_of_range,
        "tau_low": None if det.thresholds is None else det.thresholds[0],
        "tau_high": None if det.thresholds is None else det.thresholds[1],
    }
    return answers[0], verdict, called, scores, band_plot(det, len(answers), self_score, called)


def format_band(det: TwoStageDetector) -> str:
    if det.thresholds is None:
        return "empty (budget 0)"
    return "[" + ", ".join(f"{t:.3f}" if np.isfinite(t) else str(t) for t in det.thresholds) + "]"


def failure_message(error: Exception) -> str:
    """What the user sees when a model fails: which model (by name) and what happened (key refused, rate limited,
    timeout), never the endpoint URL or the key."""
    role = getattr(error, "role", "") or "model"
    cause = error
    while cause is not None and not getattr(cause, "reason", ""):
        cause = cause.__cause__
    what = cause.reason if cause is not None else type(error).__name__
    name = model_name(os.environ.get(f"HFDC_{role.upper()}"))
    return f"The {role} model{f' ({name})' if name else ''} failed: {what}. Try again later or paste answers instead."


def run_backend(fn):
    """Run ``fn()`` (which samples configured backends); errors are shown without the endpoint URL or key."""
    try:
        return fn()
    except Exception as error:  # shown to the user: only the model name and the failure reason
        logger.warning("model call failed: %s", type(error).__name__)
        raise gr.Error(failure_message(error)) from None


def verifier_for(n: int):
    """Asks the configured verifier for min(n, MAX_MODEL_SAMPLES) samples (None without a verifier)."""
    n = min(n, MAX_MODEL_SAMPLES)

    def ask_verifier(question: str):
        verifier = backend("verifier")
        if verifier is None or not question:
            return None
        return run_backend(lambda: sample_verifier(verifier, [question], n)[0])

    return ask_verifier


def detect(question: str, answers: str, verifier_answers: str, budget: float):
    """Pasted answers: the first line of ``answers`` is the answer, the other lines are samples of the same model."""
    question = check_question(question, required=False)
    target = parse_answers(answers, "Answers", 2)
    verifier = parse_answers(verifier_answers, "Verifier answers", 1) if (verifier_answers or "").strip() else None
    return score(question, target, verifier, check_budget(budget), verifier_for(len(target)))


def ask(question: str, n_samples: float, budget: float):
    """Sample the configured target (answer + n samples) and deploy the detector: the verifier is sampled only when
    the question falls in the band."""
    question = check_question(question, required=True)
    target, verifier = backend("target"), backend("verifier")
    if target is None:
        raise gr.Error(HOW_TO_CONFIGURE)
    n = int(n_samples)
    if not 1 <= n <= MAX_MODEL_SAMPLES:
        raise gr.Error(f"Samples: {n} must be between 1 and {MAX_MODEL_SAMPLES}.")
    det = detector(check_budget(budget) if verifier is not None else 0.0, n + 1)
    out = run_backend(lambda: deploy(det, target, verifier, [question], n, n))
    result = out.answers[0]
    note = f" Verifier calls made: {out.verifier_cost.calls}."
    return outcome(
        det, question, [result.answer, *result.samples], result.verifier_samples or None, out.detection, note
    )


def status_text() -> str:
    target, verifier = (model_name(os.environ.get(v)) for v in ("HFDC_TARGET", "HFDC_VERIFIER"))
    if not target:
        return HOW_TO_CONFIGURE
    return f"Target model: `{target}`; verifier: `{verifier or 'not configured (paste verifier answers)'}`."


with gr.Blocks(title="Hallucination detector (hfdc)") as demo:
    gr.Markdown(
        "# Verify when uncertain: two-stage hallucination detection\n"
        "Self-consistency scores every answer; only questions in the uncertain band (a fraction *budget* of "
        "questions) call the verifier model. [paper](https://arxiv.org/abs/2502.15845)"
    )
    gr.Markdown(status_text(), elem_id="status")
    budget = gr.Slider(0.0, 1.0, value=0.5, step=0.05, label="Verifier budget (fraction of questions)")
    with gr.Tabs():
        with gr.Tab("Paste answers"):
            question = gr.Textbox(label="Question", max_lines=3, value=EXAMPLE[0])
            answers = gr.Textbox(
                label="Answers (first line: the answer; next lines: samples of the same model)",
                lines=6,
                value=EXAMPLE[1],
            )
            verifier_answers = gr.Textbox(label="Verifier answers (optional, one per line)", lines=3, value=EXAMPLE[2])
            detect_button = gr.Button("Detect", variant="primary")
        with gr.Tab("Ask the models"):
            ask_question = gr.Textbox(label="Question for the target model", max_lines=3)
            n_samples = gr.Slider(1, MAX_MODEL_SAMPLES, value=5, step=1, label="Samples")
            ask_button = gr.Button("Ask", variant="primary", interactive=backend("target") is not None)
    answer = gr.Textbox(label="Answer", interactive=False)
    verdict = gr.Markdown(label="Verdict")
    called = gr.Checkbox(label="Verifier called", interactive=False)
    scores = gr.JSON(label="Scores")
    plot = gr.Plot(label="Self-consistency score and the verifier band")
    outputs = [answer, verdict, called, scores, plot]
    detect_button.click(detect, [question, answers, verifier_answers, budget], outputs, api_name="detect")
    ask_button.click(ask, [ask_question, n_samples, budget], outputs, api_name="ask")
    # the worked example, computed without the queue so that the page shows a result as soon as it loads
    demo.load(detect, [question, answers, verifier_answers, budget], outputs, api_visibility="private", queue=False)

demo.queue(default_concurrency_limit=2, max_size=32)
detector(0.5, len(EXAMPLE[1].splitlines()))  # fit the example's detector at start-up, not on the first request

if __name__ == "__main__":
    demo.launch()
