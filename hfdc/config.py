"""Config pieces every hfdc command shares: the Hub repo to publish to, choices checks, data by name.

Every command config is a dataclass that ``HfArgumentParser`` reads from YAML recipes and flags. A field
whose values are a fixed set carries them as ``metadata={"choices": [...]}`` (as trl's configs do):
argparse then lists them in ``hfdc <command> --help`` and refuses others, and :func:`check_choices` refuses
them when the config is built in Python. Trainer configs subclass ``TrainingArguments`` and mix in
:class:`HfdcConfig`; the others start from :class:`OutputConfig`.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field


def check_choices(config) -> None:
    """Raise ValueError naming the field when a field with ``choices`` metadata holds another value.

    List-valued fields are checked item by item; ``None`` passes where it is the field's default.
    """
    for f in dataclasses.fields(config):
        choices = f.metadata.get("choices")
        if not choices:
            continue
        value = getattr(config, f.name)
        if value is None and f.default is None:
            continue
        values = value if isinstance(value, (list, tuple)) else [value]
        wrong = [v for v in values if v not in choices]
        if wrong:
            raise ValueError(f"{f.name}={value!r} is not allowed; choose from {list(choices)}")


def parse_json_object(name: str, value) -> dict:
    """A dict from a dict or a JSON object string (YAML mappings arrive as JSON text); else ValueError naming ``name``."""
    if isinstance(value, dict):
        return value
    try:
        parsed = json.loads(value)
    except (TypeError, json.JSONDecodeError) as err:
        raise ValueError(f"{name} must be a JSON object like '{{\"n_train\": 400}}', got {value!r} ({err})") from None
    if not isinstance(parsed, dict):
        raise ValueError(f"{name} must be a JSON object, got {value!r}")
    return parsed


def _post_init_chain(config, cls) -> None:
    """Run the ``__post_init__`` that follows ``cls`` in the MRO of ``config`` (TrainingArguments' or none)."""
    parent = getattr(super(cls, config), "__post_init__", None)
    if parent is not None:
        parent()


@dataclass
class HfdcConfig:
    """What every command config shares: the Hub repo it publishes to (through ``hfdc.hub``, with the method's
    card), the CPU threads it runs with (applied by the CLI), and the ``choices`` check.

    Mix in before ``TrainingArguments`` (``class MyConfig(HfdcConfig, TrainingArguments)``): it refuses
    Trainer's own ``push_to_hub``, which would publish a generic card.
    """

    repo_id: str | None = field(
        default=None,
        metadata={
            "help": "Hub repo id (user/name) to push the result to, with its card; unset saves locally only. "
            "Token from HF_TOKEN."
        },
    )
    cpu_threads: int = field(
        default=0,
        metadata={
            "help": "torch intra-op CPU threads while the command runs (1 is fastest for tiny models on busy "
            "machines); 0 = torch default."
        },
    )

    def __post_init__(self):
        if getattr(self, "push_to_hub", False):
            raise ValueError(
                "push_to_hub=True would publish Trainer's generic model card; set repo_id=<user/name> instead: "
                "hfdc pushes the result with the method's card"
            )
        if self.cpu_threads < 0:
            raise ValueError(f"cpu_threads must be >= 0 (0 = torch default), got {self.cpu_threads}")
        _post_init_chain(self, HfdcConfig)
        check_choices(self)


@dataclass
class OutputConfig(HfdcConfig):
    """Where a command that is not a Trainer writes its artifact, and the seed of its random choices."""

    output_dir: str = field(default="outputs", metadata={"help": "Local folder for artifacts and cards."})
    seed: int = field(default=0, metadata={"help": "Seed for every random choice of the command."})


@dataclass
class DatasetConfig:
    """A data set by name for :func:`hfdc.data.load`: embedded name, ``save_to_disk`` folder or Hub id.

    Mix in before ``TrainingArguments``/``OutputConfig``; a method overrides ``dataset``'s default.
    """

    dataset: str = field(
        default="shapes",
        metadata={
            "help": "Data set for hfdc.data.load: an embedded name (shapes, feature_patches, digits, sentiment, "
            "...), a save_to_disk folder, or a Hub id / datasets builder."
        },
    )
    dataset_params: str = field(
        default="{}",
        metadata={
            "help": "JSON object (or YAML mapping) of parameters: the embedded set's generator arguments, or "
            "datasets.load_dataset keywords (name, data_files, ...)."
        },
    )

    def __post_init__(self):
        self.dataset_params = parse_json_object("dataset_params", self.dataset_params)
        _post_init_chain(self, DatasetConfig)
