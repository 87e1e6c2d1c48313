"""Peer hallucination scores on the samples of benchmarks/hallucination_real.py; runs in the peers' own venv.

    /work/venvs/hallu-peers/bin/python benchmarks/hallucination_peers.py SAMPLES.json OUT.json MINILM_FOLDER

SAMPLES.json: [{"question", "answer", "samples", "label"}, ...]. OUT.json: {"scores": [{"method", "similarity",
"values"}], "could_not_run": [{"method", "why"}]}, each score oriented higher = more likely hallucination. The peers
(uqlm 0.6.7, selfcheckgpt 0.1.7, lm-polygraph 0.7.0) pin numpy < 2 and old transformers, so they live in a venv of
their own (never in hfdc's dependencies); this file imports nothing from hfdc.
"""

import json
import re
import sys
import traceback
from pathlib import Path

import numpy as np


def normalize(text: str) -> str:
    """SQuAD normalisation (lower case, no punctuation or articles), as hfdc's string match."""
    text = re.sub(r"\b(a|an|the)\b", " ", re.sub(r"[^\w\s]", "", text.lower()))
    return " ".join(text.split())


def uqlm_scores(rows):
    from uqlm import BlackBoxUQ

    bb = BlackBoxUQ(llm=None, scorers=["exact_match", "cosine_sim"], sentence_transformer=sys.argv[3])
    result = bb.score(responses=[r["answer"] for r in rows], sampled_responses=[r["samples"] for r in rows])
    frame = result.to_df()
    return [
        {"method": f"uqlm {name}", "similarity": similarity, "values": (1.0 - frame[name].to_numpy()).tolist()}
        for name, similarity in (("exact_match", "exact string"), ("cosine_sim", "MiniLM cosine"))
    ]


def selfcheck_scores(rows):
    import spacy

    def blank_english(*args, **kwargs):  # en_core_web_sm is not installable offline: sentences by a sentencizer
        nlp = spacy.blank("en")
        nlp.add_pipe("sentencizer")
        return nlp

    spacy.load = blank_english
    from selfcheckgpt.modeling_selfcheck import SelfCheckNgram

    checker = SelfCheckNgram(n=1)
    values = []
    for r in rows:
        out = checker.predict(sentences=[r["answer"]], passage=r["answer"], sampled_passages=r["samples"])
        values.append(float(out["doc_level"]["avg_neg_logprob"]))
    return [{"method": "selfcheckgpt Ngram (unigram)", "similarity": "unigram counts", "values": values}]


def polygraph_scores(rows):
    from lm_polygraph.estimators import DegMat, Eccentricity, EigValLaplacian, LexicalSimilarity, NumSemSets

    texts = [[r["answer"], *r["samples"]] for r in rows]
    stats = {"sample_texts": texts}
    out = []
    for name, estimator in (
        ("LexicalSimilarity rougeL", LexicalSimilarity("rougeL")),
        ("EigValLaplacian", EigValLaplacian(similarity_score="Jaccard_score")),
        ("Eccentricity", Eccentricity(similarity_score="Jaccard_score")),
        ("DegMat", DegMat(similarity_score="Jaccard_score")),
    ):
        similarity = "rougeL" if name.startswith("Lexical") else "Jaccard"
        out.append({"method": f"lm-polygraph {name}", "similarity": similarity, "values": estimator(stats).tolist()})
    match = np.stack(
        [np.array([[float(normalize(a) == normalize(b)) for b in t] for a in t]) for t in texts]
    )  # all rows have the same number of answers
    stats = {"sample_texts": texts, "semantic_matrix_entail": match, "semantic_matrix_contra": 1.0 - match}
    values = NumSemSets()(stats)
    out.append({"method": "lm-polygraph NumSemSets", "similarity": "string match", "values": values.tolist()})
    return out


def main() -> None:
    rows = json.loads(Path(sys.argv[1]).read_text())
    scores, failed = [], []
    for peer, fn in (("uqlm", uqlm_scores), ("selfcheckgpt", selfcheck_scores), ("lm-polygraph", polygraph_scores)):
        try:
            scores += fn(rows)
        except Exception as error:  # report, do not hide: the table says what could not run and why
            traceback.print_exc()
            failed.append({"method": peer, "why": f"{type(error).__name__}: {str(error)[:300]}"})
    failed += [
        {"method": "selfcheckgpt NLI / BERTScore / MQAG / Prompt", "why": "need Hub models or an LLM API (offline)"},
        {"method": "uqlm NLI / semantic_negentropy", "why": "need a Hub NLI model (deberta-large-mnli), offline"},
        {"method": "lm-polygraph SemanticEntropy / NLI-based graph scores", "why": "need an NLI model (offline)"},
    ]
    Path(sys.argv[2]).write_text(json.dumps({"scores": scores, "could_not_run": failed}))


if __name__ == "__main__":
    main()
