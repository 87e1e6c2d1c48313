"""Save hfdc artifacts locally with a rendered card and publish them to the Hugging Face Hub.

Every output goes through :func:`push_dataset` or :func:`push_model`. The card is a Jinja template shipped
in the package (``hfdc/model_cards/<template>.md`` or ``hfdc/dataset_cards/<template>.md``), filled from a
``card`` dict:

    template     file stem of the template (default "default")
    method       hfdc method name (also added as a tag)
    paper        paper title;  arxiv: its arXiv id (linked)
    license      license id for the YAML front matter (default apache-2.0)
    tags         extra tags ("hfdc" and the method are always added)
    base_model   model the artifact starts from or was produced with (a Hub id, a local folder, "tiny:llama")
    datasets     data sets it comes from, by the names ``hfdc.data.load`` takes
    pretty_name  display name (default: the repo or folder name)
    description  free text under the title
    usage        Python snippet that loads the artifact ("{repo_id}" is replaced by the repo or folder);
                 default: from the artifact's class (``AutoModelForCausalLM``, ``CLIPModel``, ``UNet2DModel``,
                 ``TwoStageDetector``, ...; ``load_dataset`` / ``load_from_disk`` for data sets)
    config       the run's config dataclass (only the fields that differ from the class defaults are recorded,
                 see :func:`card_config`) or a plain dict; secrets are redacted
    figures      dict name -> measured number or text

Only Hub ids (``owner/name``) go into the ``base_model`` / ``datasets`` metadata; every name, embedded sets
and local folders included, is written in the card's body. The Hub token comes from ``HF_TOKEN`` (or
``hf auth login``) and never enters a card, log line or error.
"""

import dataclasses
import enum
import importlib
import importlib.resources
import json
import logging
import re
from pathlib import Path

import yaml
from huggingface_hub import DatasetCard, DatasetCardData, HfApi, ModelCard, ModelCardData, get_token

logger = logging.getLogger(__name__)

CARD_KEYS = (
    "template",
    "method",
    "paper",
    "arxiv",
    "license",
    "tags",
    "base_model",
    "datasets",
    "pretty_name",
    "description",
    "usage",
    "config",
    "figures",
)
SECRET_KEY = re.compile(r"(^|_)(token|secret|password|api_?key)$", re.IGNORECASE)  # hub_token, not max_new_tokens
REDACTED = "<redacted>"
DEFAULT_LICENSE = "apache-2.0"
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# Fields that describe this machine or this run's bookkeeping, not how the artifact was made.
LOCAL_FIELDS = frozenset({"output_dir", "logging_dir", "repo_id", "resume_from_checkpoint", "cache_dir", "local_rank"})
# Fields every rebuild keeps: the output folder, and use_cpu (a TrainingArguments built without it inside a
# launched CPU job would rebuild the process state for GPUs).
ANCHORS = ("output_dir", "use_cpu")
# Task Auto classes tried for a transformers model's usage snippet; other models load with their own class.
AUTO_CLASSES = (
    "AutoModelForCausalLM",
    "AutoModelForImageTextToText",
    "AutoModelForImageClassification",
    "AutoModelForSequenceClassification",
)


def templates_dir(kind: str):
    """The card template folder (``model_cards`` or ``dataset_cards``) shipped inside the hfdc package."""
    return importlib.resources.files("hfdc") / f"{kind}_cards"


def hub_id(name) -> str | None:
    """``name`` when it is a Hub repo id (``owner/name``, not an existing local path), else None."""
    if not isinstance(name, str) or not HUB_ID.match(name) or Path(name).exists():
        return None
    return name


def _plain(value):
    """A value a YAML card can hold: enums as their value, paths and other objects as text."""
    if isinstance(value, enum.Enum):
        return _plain(value.value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _rebuild(config, names) -> object | None:
    """``config``'s class built from ``config``'s values of ``names`` and :data:`ANCHORS` only; None if refused.

    A ``TrainingArguments`` built inside a running job would reset the process's accelerate state (and hang a
    distributed run), so it is told to reuse the configured state.
    """
    kwargs = {name: getattr(config, name) for name in names}
    kwargs.update({name: getattr(config, name) for name in ANCHORS if hasattr(config, name)})
    if hasattr(config, "accelerator_config") and "accelerator_config" not in kwargs:
        from accelerate.state import PartialState

        if PartialState._shared_state:
            kwargs["accelerator_config"] = {"use_configured_state": True}
    try:
        return type(config)(**kwargs)
    except (ValueError, TypeError):
        return None


def card_config(config) -> dict:
    """The fields of a config dataclass that were set away from their defaults, as plain values.

    Fields that differ from their declared default are candidates; a candidate that comes out the same when the
    config is rebuilt without it is derived from the others in ``__post_init__`` (``do_eval`` from
    ``eval_strategy``, ``dataloader_pin_memory`` from ``use_cpu``) and is dropped. Bookkeeping fields
    (:data:`LOCAL_FIELDS`) are left out. A card that lists these fields reproduces the run.
    """
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise TypeError(f"card_config takes a config dataclass instance, got {type(config).__name__}")
    chosen = []
    for f in dataclasses.fields(config):
        if not f.init or f.name in LOCAL_FIELDS:
            continue
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if _plain(getattr(config, f.name)) != _plain(default):
            chosen.append(f.name)
    for name in [n for n in chosen if n not in ANCHORS]:
        rebuilt = _rebuild(config, [n for n in chosen if n != name])
        if rebuilt is not None and _plain(getattr(rebuilt, name)) == _plain(getattr(config, name)):
            chosen.remove(name)
    return {name: _plain(getattr(config, name)) for name in chosen}


def _public_import(cls: type) -> str:
    """``from <shortest module exporting cls> import <name>`` (``hfdc.models``, ``diffusers``, ...)."""
    parts = cls.__module__.split(".")
    for end in range(1, len(parts) + 1):
        module = ".".join(parts[:end])
        try:
            if getattr(importlib.import_module(module), cls.__name__, None) is cls:
                return f"from {module} import {cls.__name__}"
        except ImportError:
            continue
    return f"from {cls.__module__} import {cls.__name__}"


def _model_loader(model) -> tuple[str, str]:
    """(import line, class name) that loads ``model``'s saved folder back: a task Auto class when one maps to
    it (``AutoModelForCausalLM``), else the model's own class (``CLIPModel``, ``UNet2DModel``, ...)."""
    if type(model).__module__.startswith("peft."):
        return "from peft import AutoPeftModelForCausalLM", "AutoPeftModelForCausalLM"
    if type(model).__module__.startswith("transformers."):
        import transformers

        for name in AUTO_CLASSES:
            mapping = getattr(transformers, name)._model_mapping
            if type(model.config) in mapping and mapping[type(model.config)] is type(model):
                return f"from transformers import {name}", name
    return _public_import(type(model)), type(model).__name__


def model_usage(model) -> str:
    """The card snippet that loads ``model`` back with the class that fits it ("{repo_id}" is filled in later)."""
    line, name = _model_loader(model)
    return f'{line}\n\nmodel = {name}.from_pretrained("{{repo_id}}")'


def dataset_usage(local: bool) -> str:
    """The card snippet that loads a data set back: ``load_from_disk`` for a local folder, else ``load_dataset``."""
    loader = "load_from_disk" if local else "load_dataset"
    return f'from datasets import {loader}\n\ndataset = {loader}("{{repo_id}}")'


def _redact(value):
    """Replace the value of every secret-looking key (token, password, ...) in nested dicts/lists."""
    if isinstance(value, dict):
        return {
            k: REDACTED if SECRET_KEY.search(str(k)) and v not in (None, "") else _redact(v) for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [_redact(v) for v in value]
    return value


def _check_card(card: dict) -> dict:
    unknown = sorted(set(card) - set(CARD_KEYS))
    if unknown:
        raise ValueError(f"Unknown card key(s) {unknown}; allowed keys are {list(CARD_KEYS)}.")
    for key in ("tags", "datasets"):
        if card.get(key) is not None and (
            not isinstance(card[key], (list, tuple)) or not all(isinstance(v, str) for v in card[key])
        ):
            raise TypeError(f"card[{key!r}] must be a list of strings, got {card[key]!r}.")
    strings = ("template", "method", "paper", "arxiv", "license", "base_model", "pretty_name", "description", "usage")
    for key in strings:
        if card.get(key) is not None and not isinstance(card[key], str):
            raise TypeError(f"card[{key!r}] must be a string, got {type(card[key]).__name__}.")
    if card.get("config") is not None and not (
        isinstance(card["config"], dict) or dataclasses.is_dataclass(card["config"])
    ):
        raise TypeError(f"card['config'] must be a config dataclass or a dict, got {type(card['config']).__name__}.")
    if card.get("figures") is not None and not isinstance(card["figures"], dict):
        raise TypeError(f"card['figures'] must be a dict, got {type(card['figures']).__name__}.")
    return card


def _template(kind: str, name: str | None):
    template = templates_dir(kind) / f"{name or 'default'}.md"
    if not template.is_file():
        available = sorted(p.name.removesuffix(".md") for p in templates_dir(kind).iterdir() if p.name.endswith(".md"))
        raise FileNotFoundError(
            f"card['template']={name!r}: no {kind} card template {name}.md; available: {available}."
        )
    return template


def render_card(kind: str, card: dict | None, name: str, local: bool = False, usage: str | None = None) -> str:
    """Render the README.md of a ``kind`` ("model" or "dataset") artifact called ``name`` from a ``card`` dict.

    ``local`` marks an artifact saved to the folder ``name`` only; ``usage`` is the snippet used when the card
    has none (default: :func:`dataset_usage` for data sets, a generic ``AutoModel`` line for models).
    """
    card = _check_card(dict(card or {}))
    method = card.get("method") or "hfdc"
    tags = list(dict.fromkeys(["hfdc", method, *card.get("tags", [])]))
    pretty_name = card.get("pretty_name") or name.split("/")[-1]
    base_model = hub_id(card.get("base_model"))
    datasets = [d for d in card.get("datasets") or [] if hub_id(d)] or None
    common = dict(
        license=card.get("license", DEFAULT_LICENSE), tags=tags, base_model=base_model, pretty_name=pretty_name
    )
    if kind == "model":
        card_class, data = ModelCard, ModelCardData(datasets=datasets, **common)
        usage = usage or 'from transformers import AutoModel\n\nmodel = AutoModel.from_pretrained("{repo_id}")'
    else:
        card_class, data = DatasetCard, DatasetCardData(source_datasets=datasets, **common)
        usage = usage or dataset_usage(local)
    template = _template(kind, card.get("template"))
    config = card.get("config") or {}
    config = card_config(config) if dataclasses.is_dataclass(config) else config
    config = _redact(json.loads(json.dumps(config, default=str)))
    with importlib.resources.as_file(template) as template_path:
        rendered = card_class.from_template(
            data,
            template_path=str(template_path),
            method=method,
            paper=card.get("paper"),
            arxiv=card.get("arxiv"),
            description=card.get("description") or "",
            model_name=card.get("base_model"),
            data_names=card.get("datasets") or [],
            usage=(card.get("usage") or usage).replace("{repo_id}", name),
            config_yaml=yaml.safe_dump(config, sort_keys=False) if config else "{}\n",
            figures=card.get("figures") or {},
        )
    parsed = card_class(str(rendered))  # re-parse: the front matter must load back into the card data class
    if parsed.data.to_dict() != data.to_dict():
        raise ValueError(
            f"Card template {template} does not reproduce its metadata: put `{{{{ card_data }}}}` "
            "between the leading `---` lines."
        )
    return str(rendered)


def _output_dir(output_dir, repo_id: str | None) -> Path:
    if output_dir is None and repo_id is None:
        raise ValueError("Give output_dir (local folder) or repo_id (Hub repo) to save the artifact.")
    path = Path(output_dir) if output_dir is not None else Path("outputs") / repo_id.split("/")[-1]
    path.mkdir(parents=True, exist_ok=True)
    return path


def _token(repo_id: str) -> str:
    token = get_token()
    if not token:
        raise ValueError(
            f"Pushing to repo_id={repo_id!r} needs a Hugging Face token with write access: "
            "set the HF_TOKEN environment variable (export HF_TOKEN=hf_...) or run `hf auth login`, "
            "or leave repo_id unset to save locally only."
        )
    return token


class HubPushError(RuntimeError):
    """A push to the Hub failed (message scrubbed of the token)."""


def _push(repo_id: str, upload) -> str:
    """Run ``upload(api, token)``; an error whose text would reveal the token is re-raised scrubbed."""
    token = _token(repo_id)
    try:
        url = upload(HfApi(token=token), token)
    except Exception as exc:
        chain, cause = [], exc
        while cause is not None:
            chain.append(str(cause))
            cause = cause.__cause__ or cause.__context__
        if any(token in text for text in chain):
            raise HubPushError(f"Pushing to {repo_id} failed: {str(exc).replace(token, '***')}") from None
        raise
    logger.info("Pushed %s", url)
    return url


def push_dataset(dataset, repo_id: str | None = None, output_dir=None, card: dict | None = None) -> Path:
    """Save a Dataset/DatasetDict (``save_to_disk`` + README.md card) and push it to ``repo_id`` when given."""
    if not hasattr(dataset, "save_to_disk") or not hasattr(dataset, "push_to_hub"):
        raise TypeError(f"dataset must be a datasets.Dataset or DatasetDict, got {type(dataset).__name__}.")
    folder = _output_dir(output_dir, repo_id)
    readme = render_card("dataset", card, repo_id or str(folder), local=repo_id is None)
    dataset.save_to_disk(str(folder))
    (folder / "README.md").write_text(readme, encoding="utf-8")
    if repo_id is not None:

        def upload(api: HfApi, token: str) -> str:
            # The card goes first: Dataset.push_to_hub then adds its dataset_info/configs to this README.
            api.create_repo(repo_id, repo_type="dataset", exist_ok=True)
            api.upload_file(
                path_or_fileobj=readme.encode(),
                path_in_repo="README.md",
                repo_id=repo_id,
                repo_type="dataset",
                commit_message="Add hfdc dataset card",
            )
            return dataset.push_to_hub(repo_id, token=token, commit_message="Upload dataset with hfdc").commit_url

        _push(repo_id, upload)
    return folder


def push_model(model, repo_id: str | None = None, output_dir=None, card: dict | None = None) -> Path:
    """Save anything with ``save_pretrained`` (model, diffusers pipeline) + README.md; push the folder to ``repo_id``.

    Everything already in ``output_dir`` is pushed too, e.g. ``tokenizer.save_pretrained(output_dir)`` done first.
    """
    if not hasattr(model, "save_pretrained"):
        raise TypeError(f"model must have save_pretrained (transformers/diffusers), got {type(model).__name__}.")
    folder = _output_dir(output_dir, repo_id)
    readme = render_card("model", card, repo_id or str(folder), local=repo_id is None, usage=model_usage(model))
    model.save_pretrained(str(folder))
    (folder / "README.md").write_text(readme, encoding="utf-8")
    if repo_id is not None:

        def upload(api: HfApi, token: str) -> str:
            api.create_repo(repo_id, exist_ok=True)
            return api.upload_folder(
                folder_path=folder, repo_id=repo_id, commit_message="Upload model with hfdc"
            ).commit_url

        _push(repo_id, upload)
    return folder
