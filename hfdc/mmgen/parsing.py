"""Robust parsing of a generator's reply into question-answer items (a JSON list of {"Q", "A"} objects).

Accepts what chat models commonly wrap around JSON: code fences, prose before and after, a single object, an
object holding the list, trailing commas, Python-style single quotes, and key spellings such as "question" /
"Answer". A reply that still yields no item raises :class:`ParseError` with a reason the generator counts.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

REASONS = ("no_json", "invalid_json", "no_items")
ALIASES = {"Q": ("q", "question"), "A": ("a", "answer", "description", "caption")}
_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)
_TRAILING_COMMA = re.compile(r",\s*([\]}])")
_OBJECT = re.compile(r"\{[^{}]*\}", re.DOTALL)
_QUOTES = str.maketrans({"\u201c": '"', "\u201d": '"', "\u2018": "'", "\u2019": "'"})


class ParseError(ValueError):
    """A reply with no usable item; ``reason`` is one of :data:`REASONS`."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass
class Parsed:
    """The items of a reply (dicts with exactly ``keys``, values stripped strings) and how many were dropped."""

    items: list[dict]
    dropped: int = 0


def _load(text: str):
    """json.loads, then with trailing commas removed, then ast.literal_eval (single quotes); None if all fail."""
    for attempt in (text, _TRAILING_COMMA.sub(r"\1", text)):
        try:
            return json.loads(attempt)
        except json.JSONDecodeError:
            pass
        try:
            return ast.literal_eval(attempt)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            pass
    return None


def _decode(text: str) -> tuple:
    """(JSON value in ``text``, objects cut off after it): the outermost list, else the outermost object, else
    every flat object found; an object opened after the parsed span (a truncated reply) counts as cut off."""
    fenced = _FENCE.search(text)
    text = (fenced.group(1) if fenced else text).translate(_QUOTES)
    spans = [(text.find(open_), text.rfind(close)) for open_, close in (("[", "]"), ("{", "}"))]
    spans = [(start, end) for start, end in spans if 0 <= start < end]
    if not spans:
        raise ParseError("no_json", f"no JSON list or object in the reply: {text[:80]!r}")
    for start, end in spans:
        value = _load(text[start : end + 1])
        if value is not None:
            return value, text[end + 1 :].count("{")
    found = _OBJECT.findall(text)
    objects = [value for value in map(_load, found) if isinstance(value, dict)]
    if objects:
        return objects, len(found) - len(objects) + text[text.rfind("}") + 1 :].count("{")
    raise ParseError("invalid_json", f"the reply's JSON does not parse: {text[:80]!r}")


def _item(value, keys: Sequence[str]) -> dict | None:
    if not isinstance(value, dict):
        return None
    lowered = {str(key).strip().lower(): item for key, item in value.items()}
    item = {}
    for key in keys:
        names = (key.lower(), *ALIASES.get(key, ()))
        found = next((lowered[name] for name in names if name in lowered), None)
        while isinstance(found, dict) and len(found) == 1:  # {"A": {"A": "text"}}: small models nest the value
            found = next(iter(found.values()))
        if isinstance(found, (list, dict)) or found is None or not str(found).strip():
            return None
        item[key] = str(found).strip()
    return item


def parse_items(text: str, keys: Sequence[str] = ("Q", "A")) -> Parsed:
    """The items of a reply; items without every key (or with empty values) and objects cut off by a truncated
    reply are dropped and counted."""
    value, cut_off = _decode(text)
    if isinstance(value, dict):
        lists = [item for item in value.values() if isinstance(item, list)]
        value = lists[0] if len(lists) == 1 and _item(value, keys) is None else [value]
    if not isinstance(value, list):
        raise ParseError("no_items", f"the reply's JSON is a {type(value).__name__}, not a list of objects")
    items = [_item(element, keys) for element in value]
    kept = [item for item in items if item is not None]
    if not kept:
        raise ParseError("no_items", f"no object in the reply has the keys {list(keys)}: {text[:80]!r}")
    return Parsed(kept, dropped=len(items) - len(kept) + cut_off)
