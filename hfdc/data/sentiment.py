"""Templated sentiment classification from an imbalanced mixture of sources: the tiny data mixture for CoLM.

Four template families (``source``) with their own topics and phrasing: reviews (60%), tweets (27%),
news (10%) and support (3%, the rare source). Within each source the labels are balanced. A text
combines a topic noun, one or two sentiment adjectives and optional intensifiers; some templates
contrast a first impression with the final verdict, so the label is not always the first adjective.
"""

from __future__ import annotations

import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

from hfdc.data.checks import split_rng, split_sizes

LABELS = ("negative", "positive")
SOURCE_FRACTIONS = {"reviews": 0.60, "tweets": 0.27, "news": 0.10, "support": 0.03}

ADJECTIVES = {
    "positive": [
        "great",
        "excellent",
        "wonderful",
        "amazing",
        "delightful",
        "superb",
        "fantastic",
        "lovely",
        "brilliant",
        "impressive",
        "reliable",
        "charming",
        "solid",
        "outstanding",
        "pleasant",
        "smooth",
        "helpful",
        "beautiful",
        "enjoyable",
        "remarkable",
    ],
    "negative": [
        "terrible",
        "awful",
        "horrible",
        "disappointing",
        "dreadful",
        "poor",
        "boring",
        "broken",
        "useless",
        "annoying",
        "mediocre",
        "clumsy",
        "frustrating",
        "flimsy",
        "painful",
        "sloppy",
        "unreliable",
        "ugly",
        "tedious",
        "dismal",
    ],
}
INTENSIFIERS = ["", "", "really ", "truly ", "very ", "quite ", "absolutely ", "surprisingly "]
VERDICT = {
    "positive": ["I would recommend it", "worth every penny", "five stars", "I will buy again"],
    "negative": ["I want a refund", "avoid it", "one star", "never again"],
}
EMOJI = {"positive": [":)", ":D", "<3", "!!"], "negative": [":(", ":/", "ugh", "..."]}
REACTION = {
    "positive": ["welcomed", "praised", "celebrated", "applauded"],
    "negative": ["criticised", "condemned", "questioned", "rejected"],
}
THANKS = {
    "positive": ["thank you so much", "problem solved", "great job team", "much appreciated"],
    "negative": ["still not fixed", "this is unacceptable", "nobody answers", "I am losing patience"],
}

NOUNS = {
    "reviews": [
        "movie",
        "book",
        "laptop",
        "phone",
        "restaurant",
        "hotel",
        "album",
        "camera",
        "novel",
        "headphones",
        "game",
        "coffee maker",
        "series",
        "jacket",
        "blender",
    ],
    "tweets": [
        "monday",
        "commute",
        "concert",
        "weather",
        "new haircut",
        "weekend",
        "match",
        "pizza",
        "gym session",
        "flight",
        "update",
        "party",
    ],
    "news": [
        "budget plan",
        "merger",
        "election result",
        "policy",
        "stadium project",
        "trade deal",
        "earnings report",
        "reform",
        "new law",
        "transit plan",
    ],
    "support": [
        "refund request",
        "login issue",
        "delivery",
        "ticket",
        "billing problem",
        "account reset",
        "replacement order",
        "installation",
    ],
}

TEMPLATES = {
    "reviews": [
        "the {noun} was {int}{adj}.",
        "this {noun} is {int}{adj}, {verdict}.",
        "I found the {noun} {int}{adj} and {adj2}.",
        "at first the {noun} seemed {opp}, but in the end it was {int}{adj}.",
        "{verdict}: the {noun} is {int}{adj}.",
    ],
    "tweets": [
        "this {noun} is {int}{adj} {emoji}",
        "{int}{adj} {noun} today {emoji} #{tag}",
        "ok the {noun} was {adj} {emoji}",
        "not gonna lie, {noun} = {int}{adj} #{tag}",
    ],
    "news": [
        "analysts call the {noun} {int}{adj}.",
        "the {noun} was {reaction} as {adj} by observers.",
        "officials describe the {noun} as {int}{adj} and {adj2}.",
    ],
    "support": [
        "support for my {noun} was {int}{adj}, {thanks}.",
        "the {noun} experience was {int}{adj}; {thanks}.",
    ],
}

FEATURES = Features({"text": Value("string"), "label": ClassLabel(names=list(LABELS)), "source": Value("string")})


def source_counts(n: int) -> dict[str, int]:
    """Rows per source for a split of ``n`` rows: SOURCE_FRACTIONS by largest remainder, summing to ``n``."""
    exact = np.array(list(SOURCE_FRACTIONS.values())) * n
    counts = np.floor(exact).astype(int)
    counts[np.argsort(counts - exact)[: n - counts.sum()]] += 1
    return dict(zip(SOURCE_FRACTIONS, counts.tolist()))


def render(source: str, label: str, rng: np.random.Generator) -> str:
    """One text of ``source`` with sentiment ``label``."""
    other = LABELS[1 - LABELS.index(label)]
    adj, adj2 = rng.choice(ADJECTIVES[label], size=2, replace=False)
    template = TEMPLATES[source][rng.integers(len(TEMPLATES[source]))]
    return template.format(
        noun=rng.choice(NOUNS[source]),
        int=rng.choice(INTENSIFIERS),
        adj=adj,
        adj2=adj2,
        opp=rng.choice(ADJECTIVES[other]),
        verdict=rng.choice(VERDICT[label]),
        emoji=rng.choice(EMOJI[label]),
        tag=rng.choice(NOUNS[source]).replace(" ", ""),
        reaction=rng.choice(REACTION[label]),
        thanks=rng.choice(THANKS[label]),
    )


def generate_split(n: int, rng: np.random.Generator) -> Dataset:
    """One split: sources in SOURCE_FRACTIONS proportions, labels balanced within each source, rows shuffled."""
    rows = []
    for source, count in source_counts(n).items():
        for label in rng.permutation(np.arange(count) % 2):
            rows.append((render(source, LABELS[label], rng), int(label), source))
    rows = [rows[i] for i in rng.permutation(len(rows))]
    return Dataset.from_dict(
        {"text": [r[0] for r in rows], "label": [r[1] for r in rows], "source": [r[2] for r in rows]},
        features=FEATURES,
    )


def generate(n_train: int = 2000, n_validation: int = 300, n_test: int = 300, seed: int = 0) -> DatasetDict:
    """Sentiment mixture: columns text, label (negative/positive), source (reviews/tweets/news/support)."""
    sizes = split_sizes(n_train, n_validation, n_test)
    return DatasetDict({split: generate_split(n, split_rng(seed, split)) for split, n in sizes.items()})
