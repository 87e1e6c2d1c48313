"""A scripted generator for the embedded ``shapes`` data: answers MM-Gen prompts from the scene descriptions.

It reads the last "Image description: a <color> <shape> <relation> a small <color> <shape>" of a prompt and
replies as a careful but imperfect teacher would: question-answer pairs in the examples' style when the
prompt shows examples (mode "mmgen"), a mix of spatial, colour and shape questions without them ("task_qa"),
and descriptions for the caption modes. A seeded fraction of replies is malformed, in three equally likely
kinds: wrapped in prose and fences (the parser reads it); single-quoted and cut off (the parser keeps the
complete items and counts the cut-off one as dropped); or no JSON at all (format-fix requests, answered by
recovering the pairs from the broken text, find none either, so the prompt is skipped). A seeded fraction of
spatial answers is wrong. Used with ``hfdc.backends.get("scripted", responses=...)``.
"""

from __future__ import annotations

import hashlib
import json
import re

from hfdc.backends.base import message_text
from hfdc.data.shapes import COLORS, RELATIONS, SHAPES

OPTIONS = [word for _, word in RELATIONS.values()]
_SCENE = re.compile(
    rf"a (\w+) (\w+) ({'|'.join(RELATIONS)}) a small (\w+) (\w+)",
)
_COUNT = re.compile(r"exactly (\d+)")
_PAIR = re.compile(r"""["']Q["']\s*:\s*["'](.*?)["']\s*,\s*["']A["']\s*:\s*["'](.*?)["']""", re.DOTALL)
_QUESTION_STYLES = (
    "where is the {big} relative to the small {small}?",
    "Is the {big} to the left of, to the right of, above or below the small {small}?",
    "Relative to the small {small}, where is the {big}?",
)


def _unit(seed: int, salt: str) -> float:
    """A number in [0, 1) from sha256 of the sample seed and a salt (independent draws per purpose)."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{salt}".encode()).digest()[:8], "big") / 2**64


def _options(question: str, options: list[str]) -> str:
    return f"{question} Options: {', '.join(options)}."


def _pairs(scene: tuple, count: int, with_examples: bool, wrong: float, seed: int) -> list[dict]:
    big_color, big_shape, relation, small_color, small_shape = scene
    big, small = f"{big_color} {big_shape}", f"{small_color} {small_shape}"
    answer = RELATIONS[relation][1]
    pairs = []
    for number in range(count):
        kind = "spatial" if with_examples or number % 3 == 0 else ("color", "shape")[number % 3 - 1]
        if kind == "spatial":
            style = _QUESTION_STYLES[int(_unit(seed, f"style{number}") * len(_QUESTION_STYLES))]
            given = answer
            if _unit(seed, f"wrong{number}") < wrong:
                given = [o for o in OPTIONS if o != answer][int(_unit(seed, f"pick{number}") * 3)]
            pairs.append({"Q": _options(style.format(big=big, small=small), OPTIONS), "A": given})
        elif kind == "color":
            colors = sorted({big_color, *list(COLORS)[:3]})
            pairs.append({"Q": _options("What colour is the large shape?", colors), "A": big_color})
        else:
            pairs.append({"Q": _options("What shape is the small one?", list(SHAPES)), "A": small_shape})
    return pairs


def _captions(scene: tuple, count: int, generic: bool) -> list[dict]:
    """``count`` descriptions, alternating two phrasings: the generic caption or a skill-focused one."""
    big_color, big_shape, relation, small_color, small_shape = scene
    big, small, side = f"{big_color} {big_shape}", f"{small_color} {small_shape}", RELATIONS[relation][1]
    if generic:
        texts = (f"a {big} {relation} a small {small}", f"There is a large {big} {relation} a small {small}.")
    else:
        texts = (
            f"The large {big} is {relation} the small {small}, so it lies {side} relative to it.",
            f"Relative to the small {small}, the large {big} lies {side}.",
        )
    return [{"A": texts[number % 2]} for number in range(count)]


def _malformed(pairs: list[dict], kind: float) -> str:
    """A broken reply: prose + fence (parses), cut-off single quotes (complete items parse), or no JSON (skipped)."""
    if kind < 1 / 3:
        return f"Sure! Here are the pairs:\n```json\n{json.dumps(pairs)}\n```\nHope this helps."
    if kind < 2 / 3:
        return json.dumps(pairs).replace('"', "'")[:-2]
    return "I am sorry, I cannot see the image clearly enough to write questions about it."


def _repair(text: str) -> str:
    """Answer a format-fix request: the Q/A pairs found in the broken text as JSON, else the text unchanged."""
    pairs = [{"Q": q, "A": a} for q, a in _PAIR.findall(text)]
    return json.dumps(pairs) if pairs else text


def shapes_oracle(malformed: float = 0.2, wrong: float = 0.1):
    """A ``responses`` callable ``(messages, seed) -> str`` for the scripted backend (fractions in [0, 1])."""
    for name, value in (("malformed", malformed), ("wrong", wrong)):
        if not 0 <= value <= 1:
            raise ValueError(f"{name} must be a fraction in [0, 1], got {value}")

    def respond(messages: list[dict], seed: int) -> str:
        system, prompt = message_text(messages[0]), message_text(messages[-1])
        if system.startswith("You repair malformed JSON"):
            return _repair(prompt)
        scenes = _SCENE.findall(prompt)
        if not scenes:
            return "I cannot tell what the image shows."
        count = int(next(iter(_COUNT.findall(prompt)), 1))
        if "question-answer" in system:
            items = _pairs(scenes[-1], count, "Example 1" in prompt, wrong, seed)
        else:
            items = _captions(scenes[-1], count, generic=system.startswith("You write detailed"))
        if _unit(seed, "malformed") < malformed:
            return _malformed(items, _unit(seed, "kind"))
        return json.dumps(items)

    return respond
