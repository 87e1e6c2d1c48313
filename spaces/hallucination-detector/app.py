"""Gradio Space: budget-aware black-box hallucination detection with hfdc (Xue et al. 2025, arXiv 2502.15845).

Paste an answer and samples (or ask the configured target model), set the verifier budget, and see the
self-consistency score, whether the question falls in the uncertain band that calls the verifier, the final
score and a plot. Models come from environment variables (Space secrets), never from the UI:

    HFDC_TARGET    backend spec of the target, e.g. openai:<model>@https://router.huggingface.co/v1
    HFDC_VERIFIER  backend spec of the verifier, e.g. openai:<another model>@https://router.huggingface.co/v1
    HFDC_API_KEY   key of the endpoints (or OPENAI_API_KEY / HF_TOKEN)

The detector's combiners and thresholds are fitted at start-up on the embedded simulated benchmark (hfdc's
``SimulatedWorld``), refitted per budget. API endpoints (gradio_client): ``/detect`` (pasted answers),
``/ask`` (sample the configured models).
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

from hfdc.hallucination import TwoStageDetector, sample_target, sample_verifier
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
    """The target or verifier backend named by HFDC_TARGET / HFDC_VERIFIER, or None when unset."""
    spec = os.environ.get(f"HFDC_{role.upper()}")
    if not spec:
        return None
    from hfdc import backends

    return backends.get(spec, progress=False)


@functools.cache
def reference():
    """Validation features and labels of the simulated benchmark the detector is fitted on."""
    world = SimulatedWorld(N_REFERENCE, seed=0)
    questions = [world.question(i) for i in range(N_REFERENCE)]
    answers = sample_target(SimulatedBackend(world, "target"), questions, n_samples=10)
    for a, v in zip(answers, sample_verifier(SimulatedBackend(world, "verifier"), questions, n_samples=10)):
        a.verifier_samples = v
    return featurize(answers, [world.gold_answers(i) for i in range(N_REFERENCE)], normalized_match)


@functools.cache
def detector(budget: float) -> TwoStageDetector:
    ref = reference()
    return TwoStageDetector(budget=budget).fit(ref.x_self, ref.x_cross, ref.labels)


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


def band_plot(det: TwoStageDetector, self_score: float, called: bool):
    """Histogram of the reference self scores by label, the verifier band, and this question's score."""
    ref = reference()
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


def score(question: str, answers: list[str], verifier_answers: list[str] | None, budget: float, ask_verifier):
    """Two-stage decision for one question; ``ask_verifier(question)`` supplies verifier answers when needed."""
    det = detector(budget)
    x_self, _ = compute_features([answers[0]], [answers[1:]])
    self_score = float(det.self_combiner.predict_proba(x_self)[0])
    called = bool(det.route(np.array([self_score]))[0])
    note = ""
    final, cross = self_score, None
    if called:
        verifier_answers = verifier_answers or ask_verifier(question)
        if verifier_answers:
            _, x_cross = compute_features([answers[0]], [answers[1:]], [verifier_answers])
            final = float(det.predict(x_self, x_cross).scores[0])
            cross = dict(zip(CROSS_FEATURES, map(float, x_cross[0])))
        else:
            called = False
            note = (
                " The question is in the uncertain band, but no verifier answers were pasted and no verifier is "
                "configured: the score is self-consistency only."
            )
    elif verifier_answers:
        note = " The question is outside the uncertain band: the pasted verifier answers were not needed."
    verdict = (
        f"**P(hallucination) = {final:.3f}** ({'likely hallucination' if final >= 0.5 else 'likely correct'}); "
        f"self-consistency score {self_score:.3f}, band {format_band(det)}; "
        f"verifier {'called' if called else 'not called'}.{note}"
    )
    scores = {
        "self_features": dict(zip(SELF_FEATURES, map(float, x_self[0]))),
        "cross_features": cross,
        "self_score": self_score,
        "final_score": final,
        "budget": budget,
        "tau_low": None if det.thresholds is None else det.thresholds[0],
        "tau_high": None if det.thresholds is None else det.thresholds[1],
    }
    return answers[0], verdict, called, scores, band_plot(det, self_score, called)


def format_band(det: TwoStageDetector) -> str:
    if det.thresholds is None:
        return "empty (budget 0)"
    return "[" + ", ".join(f"{t:.3f}" if np.isfinite(t) else str(t) for t in det.thresholds) + "]"


def run_backend(role: str, question: str, n: int, sample):
    """Sample the configured backend; errors are shown without the endpoint URL or key."""
    try:
        return sample(backend(role), [question], n)
    except Exception as error:  # shown to the user: strip everything after the model name
        logger.warning("%s backend failed: %s", role, type(error).__name__)
        raise gr.Error(
            f"The {role} model ({model_name(os.environ.get(f'HFDC_{role.upper()}'))}) failed: "
            f"{type(error).__name__}. Try again later or paste answers instead."
        ) from None


def verifier_for(n: int):
    def ask(question: str):
        if backend("verifier") is None or not question:
            return None
        return run_backend("verifier", question, n, lambda b, q, k: sample_verifier(b, q, k)[0])

    return ask


def detect(question: str, answers: str, verifier_answers: str, budget: float):
    """Pasted answers: the first line of ``answers`` is the answer, the other lines are samples of the same model."""
    question = check_question(question, required=False)
    target = parse_answers(answers, "Answers", 2)
    verifier = parse_answers(verifier_answers, "Verifier answers", 1) if (verifier_answers or "").strip() else None
    return score(question, target, verifier, check_budget(budget), verifier_for(len(target)))


def ask(question: str, n_samples: float, budget: float):
    """Sample the configured target (answer + n samples); the verifier is asked only inside the band."""
    question = check_question(question, required=True)
    if backend("target") is None:
        raise gr.Error(HOW_TO_CONFIGURE)
    n = int(n_samples)
    if not 1 <= n <= MAX_MODEL_SAMPLES:
        raise gr.Error(f"Samples: {n} must be between 1 and {MAX_MODEL_SAMPLES}.")
    result = run_backend("target", question, n, lambda b, q, k: sample_target(b, q, k)[0])
    return score(question, [result.answer, *result.samples], None, check_budget(budget), verifier_for(n))


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
detector(0.5)  # fit the reference detector at start-up, not on the first request

if __name__ == "__main__":
    demo.launch()
