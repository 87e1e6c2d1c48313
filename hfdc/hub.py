"""Save hfdc artifacts locally with a rendered card and publish them to the Hugging Face Hub.

Every output goes through :func:`push_dataset` or :func:`push_model`. The card is a Jinja template from
``dataset_cards/<template>.md`` or ``model_cards/<template>.md`` at the repo root, filled from a ``card`` dict:

    template     file stem of the template (default "default")
    method       hfdc method name (also added as a tag)
    paper        paper title;  arxiv: its arXiv id (linked)
    license      license id for the YAML front matter (default apache-2.0)
    tags         extra tags ("hfdc" and the method are always added)
    base_model   model the artifact starts from or was produced with
    datasets     source data sets
    pretty_name  display name (default: the repo or folder name)
    description  free text under the title
    usage        Python snippet that loads the artifact ("{repo_id}" is replaced by the repo or folder);
                 default: ``load_dataset`` / ``load_from_disk`` / ``AutoModel.from_pretrained``
    config       dict of the run's configuration (e.g. ``dataclasses.asdict(config)``); secrets are redacted
    figures      dict name -> measured number or text

The Hub token comes from ``HF_TOKEN`` (or ``hf auth login``) and never enters a card, log line or error.
"""

import json
import logging
import re
from pathlib import Path

import yaml
from huggingface_hub import DatasetCard, DatasetCardData, HfApi, ModelCard, ModelCardData, get_token

import hfdc

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


def templates_dir(kind: str) -> Path:
    """The card template folder (``model_cards`` or ``dataset_cards``) at the root of the hfdc checkout."""
    folder = Path(hfdc.__file__).resolve().parents[1] / f"{kind}_cards"
    if not folder.is_dir():
        raise FileNotFoundError(
            f"Card templates not found at {folder}: hfdc needs its source checkout's {kind}_cards/ folder "
            "(install with `pip install -e .` from the repository)."
        )
    return folder


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
    for key in (
        "template",
        "method",
        "paper",
        "arxiv",
        "license",
        "base_model",
        "pretty_name",
        "description",
        "usage",
    ):
        if card.get(key) is not None and not isinstance(card[key], str):
            raise TypeError(f"card[{key!r}] must be a string, got {type(card[key]).__name__}.")
    for key in ("config", "figures"):
        if card.get(key) is not None and not isinstance(card[key], dict):
            raise TypeError(f"card[{key!r}] must be a dict, got {type(card[key]).__name__}.")
    return card


def render_card(kind: str, card: dict | None, name: str, local: bool = False) -> str:
    """Render the README.md of a ``kind`` ("model" or "dataset") artifact called ``name`` from a ``card`` dict.

    ``local`` marks an artifact saved to the folder ``name`` only (its usage snippet loads from disk).
    """
    card = _check_card(dict(card or {}))
    method = card.get("method") or "hfdc"
    tags = list(dict.fromkeys(["hfdc", method, *card.get("tags", [])]))
    pretty_name = card.get("pretty_name") or name.split("/")[-1]
    if kind == "model":
        card_class = ModelCard
        data = ModelCardData(
            license=card.get("license", DEFAULT_LICENSE),
            tags=tags,
            base_model=card.get("base_model"),
            datasets=card.get("datasets"),
            pretty_name=pretty_name,
        )
    else:
        card_class = DatasetCard
        data = DatasetCardData(
            license=card.get("license", DEFAULT_LICENSE),
            tags=tags,
            source_datasets=card.get("datasets"),
            pretty_name=pretty_name,
            base_model=card.get("base_model"),
        )
    template = templates_dir(kind) / f"{card.get('template') or 'default'}.md"
    if not template.is_file():
        raise FileNotFoundError(
            f"card['template']={card.get('template')!r}: no template {template}; "
            f"available: {sorted(p.stem for p in template.parent.glob('*.md'))}."
        )
    config = _redact(json.loads(json.dumps(card.get("config") or {}, default=str)))
    rendered = card_class.from_template(
        data,
        template_path=str(template),
        method=method,
        paper=card.get("paper"),
        arxiv=card.get("arxiv"),
        description=card.get("description") or "",
        repo_id=name,
        local=local,
        usage=card["usage"].replace("{repo_id}", name) if card.get("usage") else None,
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
    readme = render_card("model", card, repo_id or str(folder), local=repo_id is None)
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
