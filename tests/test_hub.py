"""hfdc.hub: card rendering, and push -> load round trips through the local test Hub (tests/hub_server.py)."""

import json

import pytest
import yaml
from huggingface_hub import DatasetCard, ModelCard

from hfdc import hub
from tests.hub_fixtures import FAKE_TOKEN, run_online

CARD = {
    "method": "clipcov",
    "paper": "Data-Efficient Contrastive Language-Image Pretraining",
    "arxiv": "2403.12267",
    "license": "mit",
    "tags": ["clip"],
    "base_model": "hfdc/tiny-clip",
    "datasets": ["hfdc/shapes"],
    "description": "Selected subset.",
    "config": {"budget": 0.3, "seed": 1, "api_key": "sk-secret"},
    "figures": {"zero-shot accuracy": 0.42, "selected rows": 30},
}


@pytest.mark.parametrize("kind,card_class", [("model", ModelCard), ("dataset", DatasetCard)])
def test_render_card_metadata_and_body(kind, card_class):
    text = hub.render_card(kind, CARD, "user/selected")
    card = card_class(text)
    data = card.data.to_dict()
    assert data["tags"] == ["hfdc", "clipcov", "clip"]
    assert data["license"] == "mit" and data["pretty_name"] == "selected"
    assert data["base_model"] == "hfdc/tiny-clip"
    assert data["datasets" if kind == "model" else "source_datasets"] == ["hfdc/shapes"]
    assert "[arXiv:2403.12267](https://arxiv.org/abs/2403.12267)" in card.text
    assert "*Data-Efficient Contrastive Language-Image Pretraining*" in card.text
    config = yaml.safe_load(card.text.split("```yaml\n")[1].split("```")[0])
    assert config == {"budget": 0.3, "seed": 1, "api_key": "<redacted>"}
    assert "| zero-shot accuracy | 0.42 |" in card.text and "| selected rows | 30 |" in card.text
    assert "sk-secret" not in text


def test_render_card_bad_input():
    with pytest.raises(ValueError, match="budget"):
        hub.render_card("model", {"budget": 3}, "x")
    with pytest.raises(TypeError, match="tags"):
        hub.render_card("model", {"tags": "clip"}, "x")
    with pytest.raises(FileNotFoundError, match="available: \\['default'\\]"):
        hub.render_card("dataset", {"template": "nope"}, "x")


def test_card_usage_snippet_and_redaction_of_secret_keys_only():
    card = {"usage": 'load("{repo_id}")', "config": {"hub_token": "hf_x", "api_key": "k", "max_new_tokens": 64}}
    text = hub.render_card("model", card, "me/detector")
    assert 'load("me/detector")' in text and "AutoModel" not in text
    assert "hub_token: <redacted>" in text and "api_key: <redacted>" in text and "max_new_tokens: 64" in text
    assert "hf_x" not in text


def test_push_without_repo_saves_locally(tmp_path):
    datasets = pytest.importorskip("datasets")
    data = datasets.Dataset.from_dict({"x": [1, 2, 3]})
    folder = hub.push_dataset(data, output_dir=tmp_path / "out", card={"method": "colm"})
    assert datasets.load_from_disk(str(folder))["x"] == [1, 2, 3]
    card = DatasetCard.load(folder / "README.md")
    assert card.data.tags == ["hfdc", "colm"]
    assert card.data.license == "apache-2.0"
    assert f'load_from_disk("{folder}")' in card.text  # a local folder is not loadable with load_dataset


@pytest.fixture(scope="module")
def round_trip(hub_server, tmp_path_factory):
    work = tmp_path_factory.mktemp("hub_round_trip")
    proc = run_online(["-m", "tests.hub_roundtrip", str(work / "result.json")], hub_server, work / "hf_home")
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads((work / "result.json").read_text()), proc.stdout + proc.stderr


pytestmark = pytest.mark.xdist_group("hub")


def test_dataset_round_trip(round_trip):
    result, _ = round_trip
    assert result["dataset_equal"] == {"train": True, "test": True}
    assert result["dataset_features_equal"]


def test_model_round_trip(round_trip):
    result, _ = round_trip
    assert result["model_equal"]


def test_pushed_cards_carry_metadata(round_trip):
    result, _ = round_trip
    for data in (result["dataset_card"], result["model_card"]):
        assert data["tags"] == ["hfdc", "colm", "data-selection"] and data["license"] == "apache-2.0"
    assert result["dataset_card"]["configs"][0]["data_files"][0]["path"].startswith("data/")  # datasets' metadata kept
    assert result["model_card"]["datasets"] == ["hfdc/sentiment"]
    assert "| accuracy | 0.75 |" in result["model_card_text"]


def test_push_errors_are_clear_and_token_never_leaks(round_trip):
    result, log = round_trip
    errors = result["errors"]
    assert errors["no_token"].startswith("ValueError") and "HF_TOKEN" in errors["no_token"]
    assert result["no_token_saved_locally"]
    assert errors["server_echoes_token"].startswith("HubPushError") and "***" in errors["server_echoes_token"]
    for text in [*errors.values(), log, *result["local_cards"], result["model_card_text"]]:
        assert FAKE_TOKEN not in text


def test_usage_snippet_names_the_class_that_loads_the_artifact():
    from diffusers import UNet2DModel
    from peft import LoraConfig, get_peft_model

    from hfdc.models import tiny

    assert "from transformers import AutoModelForCausalLM" in hub.model_usage(tiny("llama"))
    assert "AutoModelForImageTextToText.from_pretrained" in hub.model_usage(tiny("llava"))
    assert hub.model_usage(tiny("clip")).startswith("from transformers import CLIPModel\n")
    assert hub.model_usage(tiny("unet")).startswith("from diffusers import UNet2DModel\n")
    assert isinstance(tiny("unet"), UNet2DModel)
    assert hub.model_usage(tiny("convnet")).startswith("from hfdc.models import ConvNetForImageClassification\n")
    lora = get_peft_model(tiny("llama"), LoraConfig(r=2, target_modules=["q_proj"], task_type="CAUSAL_LM"))
    assert "AutoPeftModelForCausalLM.from_pretrained" in hub.model_usage(lora)


def test_only_hub_ids_reach_the_metadata_and_every_name_the_body(tmp_path):
    assert hub.hub_id("stanfordnlp/imdb") == "stanfordnlp/imdb"
    for name in ("tiny:llama", "sentiment (embedded in hfdc)", "/abs/folder", "parquet", None):
        assert hub.hub_id(name) is None, name
    (tmp_path / "me").mkdir()
    (tmp_path / "me" / "folder").mkdir()
    card = {"base_model": "tiny:llama", "datasets": ["sentiment (embedded in hfdc)", "stanfordnlp/imdb"]}
    text = hub.render_card("model", card, "me/m")
    data = ModelCard(text).data.to_dict()
    assert data["datasets"] == ["stanfordnlp/imdb"] and "base_model" not in data
    assert "Base model: `tiny:llama`" in text and "`sentiment (embedded in hfdc)`, `stanfordnlp/imdb`" in text


def test_card_config_records_the_changed_fields_only(tmp_path):
    from hfdc.colm import ColmConfig

    config = ColmConfig(
        output_dir=str(tmp_path),
        learning_rate=0.003,
        selection_ratio=0.5,
        use_cpu=True,
        report_to="none",
        eval_strategy="steps",
        keep_sources=["support"],
        hub_token="hf_secret",
    )
    assert hub.card_config(config) == {
        "eval_strategy": "steps",
        "learning_rate": 0.003,
        "use_cpu": True,
        "hub_token": "hf_secret",
        "keep_sources": ["support"],
    }
    text = hub.render_card("model", {"config": config}, "me/m")
    assert "hub_token: <redacted>" in text and "hf_secret" not in text and "selection_ratio" not in text
    with pytest.raises(TypeError, match="config dataclass instance"):
        hub.card_config({"a": 1})
