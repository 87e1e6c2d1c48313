"""The MM-Gen task file: skill description, reference examples, candidate image pool, keywords, evaluation split.

A YAML or JSON mapping (Joshi et al., "MM-GEN", arXiv 2501.04155, section 3):

    name: shapes-spatial                   # optional, default: the file name
    skill: "Spatial reasoning: where one shape lies relative to another."
    keywords: [circle, square, triangle]   # subgroups for the CLIP partition
    reference:                             # inline LLaVA records (image paths relative to the task file) ...
      - image: images/ref0.png
        conversations:
          - {from: human, value: "<image>\\nWhere is the red circle? Options: left, right."}
          - {from: gpt, value: left}
    # ... or a data set source (below) with conversations_column, or question_column + answer_column
    candidates: {dataset: shapes, split: train, limit: 200, text_column: caption}
    evaluation: {dataset: shapes, split: test, question_column: question, answer_column: answer,
                 options: [left, right, above, below]}   # optional labelled split

A data set source names ``dataset`` (anything ``hfdc.data.load`` takes: embedded name, save_to_disk folder,
Hub id or builder such as ``json``), ``params`` (its keyword arguments), ``split``, ``contains`` ({column:
substring}: keep the rows whose column holds it), ``offset`` and ``limit`` (rows offset .. offset + limit - 1),
``image_column`` (an Image column, or file paths resolved against ``image_folder``) and ``text_column`` (a
description of each image for text-only generators). Every error names the field and the fix.
"""

from __future__ import annotations

import difflib
import hashlib
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from datasets import Dataset, DatasetDict, Features, Image, List, Value

CONVERSATION = List({"from": Value("string"), "value": Value("string")})
REFERENCE_FEATURES = Features({"image": Image(), "conversations": CONVERSATION, "text": Value("string")})
CANDIDATE_FEATURES = Features({"image": Image(decode=False), "text": Value("string")})
EVALUATION_FEATURES = Features(
    {"image": Image(), "question": Value("string"), "answer": Value("string"), "options": List(Value("string"))}
)

TOP_LEVEL = {
    "skill": "a one-sentence description of the skill, e.g. 'Chart understanding: reading values from bar charts.'",
    "keywords": "a list of subgroup keywords for the CLIP partition, e.g. [bar chart, pie chart, line chart]",
    "reference": "reference examples: a list of LLaVA records {image, conversations} or a data set source",
    "candidates": "the candidate image pool: a data set source {dataset, split, image_column, ...}",
}
OPTIONAL = {"name", "evaluation"}
SOURCE_KEYS = {
    "dataset",
    "params",
    "split",
    "image_column",
    "image_folder",
    "text_column",
    "limit",
    "offset",
    "contains",
    "conversations_column",
    "question_column",
    "answer_column",
    "options",
    "options_column",
}


class TaskFileError(ValueError):
    """A task file that cannot be used; the message names the file, the field and the fix."""


def with_options(question: str, options: list[str]) -> str:
    """The question with its multiple-choice options inline: ``"<question> Options: a, b, c."``."""
    return f"{question} Options: {', '.join(options)}." if options else question


def qa_conversation(question: str, answer: str) -> list[dict]:
    """One LLaVA turn pair: ``[{"from": "human", "value": "<image>\\n" + question}, {"from": "gpt", "value": answer}]``."""
    return [{"from": "human", "value": f"<image>\n{question}"}, {"from": "gpt", "value": answer}]


def conversation_pairs(conversations: list[dict]) -> list[tuple[str, str]]:
    """The (question, answer) pairs of a LLaVA conversation, ``<image>`` placeholders removed."""
    turns = [turn["value"].replace("<image>", "").strip() for turn in conversations]
    return list(zip(turns[0::2], turns[1::2]))


@dataclass
class TaskSpec:
    """A validated MM-Gen task: the skill, keywords, and the reference / candidate / evaluation data sets.

    ``reference`` has columns image, conversations (LLaVA turns), text; ``candidates`` image (undecoded, so a
    broken file is a counted skip, not a crash) and text; ``evaluation`` (optional) image, question, answer,
    options. ``text`` is the image's description for text-only generators ("" when the task has none).
    ``fingerprint`` identifies the task file's content (cache keys of every stage start from it); ``sources``
    names the data sets it reads (for cards).
    """

    skill: str
    keywords: list[str]
    reference: Dataset
    candidates: Dataset
    evaluation: Dataset | None = None
    name: str = "task"
    fingerprint: str = ""
    sources: tuple[str, ...] = ()

    @classmethod
    def from_file(cls, path: str | Path) -> TaskSpec:
        """Read and validate a YAML (.yaml/.yml) or JSON task file; relative paths resolve against its folder."""
        import yaml

        path = Path(path)
        if not path.is_file():
            raise TaskFileError(f"task file {str(path)!r} does not exist")
        try:
            mapping = yaml.safe_load(path.read_text(encoding="utf-8"))  # JSON is YAML too
        except yaml.YAMLError as err:
            raise TaskFileError(f"task file {str(path)!r} is not valid YAML/JSON: {err}") from None
        mapping = dict(mapping) if isinstance(mapping, Mapping) else mapping
        if isinstance(mapping, dict):
            mapping.setdefault("name", path.stem)
        return cls.from_dict(mapping, base_dir=path.parent, source=str(path))

    @classmethod
    def from_dict(cls, mapping, base_dir: str | Path = ".", source: str = "task") -> TaskSpec:
        """Validate a task mapping (the parsed file) and load its data sets."""
        if not isinstance(mapping, Mapping):
            raise TaskFileError(f"{source}: must be a mapping of field: value, got {type(mapping).__name__}")
        _check_keys(mapping, set(TOP_LEVEL) | OPTIONAL, source, "the task")
        for key, what in TOP_LEVEL.items():
            if key not in mapping or mapping[key] in (None, "", [], {}):
                raise TaskFileError(f"{source}: missing field {key!r}: add {what}")
        base_dir = Path(base_dir)
        skill = mapping["skill"]
        if not isinstance(skill, str):
            raise TaskFileError(f"{source}: field 'skill' must be a string, got {type(skill).__name__}")
        keywords = mapping["keywords"]
        if not isinstance(keywords, list) or not all(isinstance(k, str) and k.strip() for k in keywords):
            raise TaskFileError(f"{source}: field 'keywords' must be a list of non-empty strings, got {keywords!r}")
        if len(set(keywords)) != len(keywords):
            raise TaskFileError(f"{source}: field 'keywords' repeats a keyword: {keywords!r}")
        loaded = {}
        reference = _load_reference(mapping["reference"], base_dir, source, loaded)
        candidates = _load_candidates(mapping["candidates"], base_dir, source, loaded)
        evaluation = mapping.get("evaluation")
        evaluation = _load_evaluation(evaluation, base_dir, source, loaded) if evaluation is not None else None
        return cls(
            skill=skill.strip(),
            keywords=list(keywords),
            reference=reference,
            candidates=candidates,
            evaluation=evaluation,
            name=str(mapping.get("name") or "task"),
            fingerprint=_fingerprint(mapping, base_dir),
            sources=tuple(dict.fromkeys(name for name, _ in loaded)),
        )

    @property
    def has_text(self) -> bool:
        """True when every candidate and reference row has a description (text-only generators can be used)."""
        return all(self.candidates["text"]) and all(self.reference["text"])


def _check_keys(mapping: Mapping, allowed: set[str], source: str, where: str) -> None:
    for key in mapping:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise TaskFileError(f"{source}: unknown field {key!r} in {where}{hint}; fields are {sorted(allowed)}")


def _load_source(
    spec, field: str, base_dir: Path, source: str, allowed: set[str], loaded: dict
) -> tuple[Dataset, Mapping]:
    """The rows a data set source names (split chosen, first ``limit`` rows), checked for its columns.

    ``loaded`` maps (name, params) to data sets already loaded for this task (sources often share one)."""
    import hfdc.data

    if not isinstance(spec, Mapping):
        raise TaskFileError(f"{source}: field {field!r} must be a data set source mapping, got {spec!r}")
    _check_keys(spec, allowed, source, f"{field!r}")
    if not spec.get("dataset"):
        raise TaskFileError(f"{source}: missing field '{field}.dataset': name a data set for hfdc.data.load")
    name = str(spec["dataset"])
    local = base_dir / name
    if not Path(name).is_absolute() and local.is_dir():
        name = str(local)
    params = spec.get("params") or {}
    if not isinstance(params, Mapping):
        raise TaskFileError(f"{source}: field '{field}.params' must be a mapping, got {params!r}")
    key = (name, json.dumps(params, sort_keys=True, default=str))
    if key not in loaded:
        try:
            loaded[key] = hfdc.data.load(name, **params)
        except ValueError as err:
            raise TaskFileError(f"{source}: field '{field}.dataset' = {name!r}: {err}") from None
    data = loaded[key]
    if isinstance(data, DatasetDict):
        split = spec.get("split")
        if split not in data:
            raise TaskFileError(
                f"{source}: field '{field}.split' must name one of the splits {list(data)} of {name!r}, got {split!r}"
            )
        data = data[split]
    contains = spec.get("contains") or {}
    if not isinstance(contains, Mapping):
        raise TaskFileError(f"{source}: field '{field}.contains' must map a column to a substring, got {contains!r}")
    for column, text in contains.items():
        if column not in data.column_names:
            raise TaskFileError(f"{source}: field '{field}.contains' names {column!r}, not a column of {name!r}")
        data = data.filter(
            lambda value, text=str(text): text in str(value), input_columns=column, desc=f"{field}: contains"
        )
    offset, limit = spec.get("offset", 0), spec.get("limit")
    for key, value, minimum in (("offset", offset, 0), ("limit", limit, 1)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < minimum):
            raise TaskFileError(f"{source}: field '{field}.{key}' must be an integer >= {minimum}, got {value!r}")
    stop = len(data) if limit is None else min(offset + limit, len(data))
    if offset or stop < len(data):
        data = data.select(range(min(offset, stop), stop))
    for key in ("image_column", "text_column", "conversations_column", "question_column", "answer_column"):
        column = spec.get(key, "image" if key == "image_column" else None)
        if column is not None and column not in data.column_names:
            raise TaskFileError(
                f"{source}: field '{field}.{key}' = {column!r} is not a column of {name!r}; columns are "
                f"{data.column_names}"
            )
    if len(data) == 0:
        raise TaskFileError(f"{source}: field {field!r} selects no rows from {name!r}")
    return data, spec


def _images(data: Dataset, spec: Mapping, field: str, base_dir: Path, decode: bool) -> Dataset:
    """The source's image column as an Image feature (paths resolved against ``image_folder``)."""
    column = spec.get("image_column", "image")
    feature = data.features[column]
    if isinstance(feature, Image):
        return data.cast_column(column, Image(decode=decode))
    if feature != Value("string"):
        raise TaskFileError(f"{field}.image_column={column!r} must hold images or file paths, got {feature}")
    folder = base_dir / spec.get("image_folder", ".")
    data = data.map(lambda row: {column: str(folder / row[column])}, desc=f"{field}: image paths")
    return data.cast_column(column, Image(decode=decode))


def _answer(value) -> str:
    """An answer as text; a list of accepted answers (ChartQA's ``label``) gives its first."""
    return str(value[0] if isinstance(value, list) and value else value)


def _options(row: dict, spec: Mapping) -> list[str]:
    options = row[spec["options_column"]] if spec.get("options_column") else spec.get("options") or []
    return [str(option) for option in options]


def _qa_columns(spec: Mapping, field: str, source: str, conversations_allowed: bool) -> None:
    has_conversations = conversations_allowed and spec.get("conversations_column")
    if not has_conversations and not (spec.get("question_column") and spec.get("answer_column")):
        what = "conversations_column, or " if conversations_allowed else ""
        raise TaskFileError(f"{source}: field {field!r} needs {what}question_column and answer_column")


def _load_reference(value, base_dir: Path, source: str, loaded: dict) -> Dataset:
    if isinstance(value, list):
        return _inline_reference(value, base_dir, source)
    data, spec = _load_source(value, "reference", base_dir, source, SOURCE_KEYS, loaded)
    _qa_columns(spec, "reference", source, conversations_allowed=True)
    data = _images(data, spec, "reference", base_dir, decode=True)
    text_column = spec.get("text_column")

    def to_llava(row: dict) -> dict:
        if spec.get("conversations_column"):
            conversations = [{"from": t["from"], "value": t["value"]} for t in row[spec["conversations_column"]]]
        else:
            question = with_options(str(row[spec["question_column"]]), _options(row, spec))
            conversations = qa_conversation(question, _answer(row[spec["answer_column"]]))
        return {
            "image": row[spec.get("image_column", "image")],
            "conversations": conversations,
            "text": str(row[text_column]) if text_column else "",
        }

    reference = data.map(
        to_llava, remove_columns=data.column_names, features=REFERENCE_FEATURES, desc="reference: LLaVA records"
    )
    for i, conversations in enumerate(reference["conversations"]):
        _check_conversation(conversations, f"reference[{i}].conversations", source)
    return reference


def _check_conversation(conversations, field: str, source: str) -> None:
    if not isinstance(conversations, list) or len(conversations) < 2 or len(conversations) % 2:
        raise TaskFileError(f"{source}: field {field!r} must be a list of human/gpt turn pairs, got {conversations!r}")
    for j, turn in enumerate(conversations):
        expected = "human" if j % 2 == 0 else "gpt"
        if not isinstance(turn, Mapping) or turn.get("from") != expected or not isinstance(turn.get("value"), str):
            raise TaskFileError(
                f"{source}: field '{field}[{j}]' must be {{from: {expected}, value: <text>}}, got {turn!r}"
            )


def _inline_reference(records: list, base_dir: Path, source: str) -> Dataset:
    from PIL import Image as PILImage

    rows = {"image": [], "conversations": [], "text": []}
    for i, record in enumerate(records):
        field = f"reference[{i}]"
        if not isinstance(record, Mapping):
            raise TaskFileError(f"{source}: field {field!r} must be a mapping {{image, conversations}}")
        _check_keys(record, {"image", "conversations", "text", "id"}, source, field)
        for key in ("image", "conversations"):
            if key not in record:
                raise TaskFileError(f"{source}: missing field '{field}.{key}'")
        _check_conversation(record["conversations"], f"{field}.conversations", source)
        path = base_dir / str(record["image"])
        try:
            with PILImage.open(path) as image:
                image.load()
                rows["image"].append(image.convert("RGB"))
        except (OSError, ValueError) as err:
            raise TaskFileError(
                f"{source}: field '{field}.image' = {str(path)!r} cannot be decoded ({err}); fix or remove the example"
            ) from None
        rows["conversations"].append([{"from": t["from"], "value": t["value"]} for t in record["conversations"]])
        rows["text"].append(str(record.get("text", "")))
    return Dataset.from_dict(rows, features=REFERENCE_FEATURES)


def _load_candidates(value, base_dir: Path, source: str, loaded: dict) -> Dataset:
    allowed = SOURCE_KEYS - {"conversations_column", "question_column", "answer_column", "options", "options_column"}
    data, spec = _load_source(value, "candidates", base_dir, source, allowed, loaded)
    data = _images(data, spec, "candidates", base_dir, decode=False)
    image_column, text_column = spec.get("image_column", "image"), spec.get("text_column")
    texts = [str(t) for t in data[text_column]] if text_column else [""] * len(data)
    data = data.select_columns([image_column])
    if image_column != "image":
        data = data.rename_column(image_column, "image")
    return data.add_column("text", texts).cast(CANDIDATE_FEATURES)


def _load_evaluation(value, base_dir: Path, source: str, loaded: dict) -> Dataset:
    data, spec = _load_source(value, "evaluation", base_dir, source, SOURCE_KEYS - {"conversations_column"}, loaded)
    _qa_columns(spec, "evaluation", source, conversations_allowed=False)
    data = _images(data, spec, "evaluation", base_dir, decode=True)

    def to_row(row: dict) -> dict:
        return {
            "image": row[spec.get("image_column", "image")],
            "question": str(row[spec["question_column"]]),
            "answer": _answer(row[spec["answer_column"]]),
            "options": _options(row, spec),
        }

    return data.map(
        to_row, remove_columns=data.column_names, features=EVALUATION_FEATURES, desc="evaluation: questions"
    )


def _fingerprint(mapping: Mapping, base_dir: Path) -> str:
    """sha256 of the task mapping plus the bytes of every inline reference image (16 hex digits)."""
    digest = hashlib.sha256(json.dumps(mapping, sort_keys=True, default=str).encode())
    if isinstance(mapping.get("reference"), list):
        for record in mapping["reference"]:
            digest.update((base_dir / str(record["image"])).read_bytes())
    return digest.hexdigest()[:16]


def decode_image(value):
    """A PIL RGB image from an undecoded Image value ({"bytes", "path"}), or None when it cannot be decoded."""
    from PIL import Image as PILImage

    try:
        source = io.BytesIO(value["bytes"]) if value.get("bytes") else value["path"]
        with PILImage.open(source) as image:
            image.load()
            return image.convert("RGB")
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None
