"""`hfdc demo` from another folder: every artifact gets a card whose usage snippet loads it back, and the
cards record only the fields that differ from the defaults."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from huggingface_hub import DatasetCard, ModelCard

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    work = tmp_path_factory.mktemp("demo")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "hfdc", "demo", "--output_dir", str(work / "out")],
        cwd=work,  # not the repository: recipes and card templates come from the package
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return work / "out"


def _cards(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("README.md") if "checkpoint" not in str(p))


def _snippet(card_text: str) -> str:
    return re.search(r"## Usage\n\n```python\n(.*?)```", card_text, re.S).group(1)


def _config(card_text: str) -> dict:
    return yaml.safe_load(re.search(r"```yaml\n(.*?)```", card_text, re.S).group(1)) or {}


@pytest.mark.slow
def test_every_demo_card_snippet_loads_its_artifact(demo):
    cards = _cards(demo)
    assert {p.parent.relative_to(demo).parts[0] for p in cards} >= {
        "data",
        "colm",
        "hallucination",
        "useful",
        "tada",
        "clipcov",
        "mmgen",
        "regap",
    }
    for readme in cards:
        text = readme.read_text()
        scope: dict = {}
        exec(compile(_snippet(text), str(readme), "exec"), scope)  # the card's own code, as a user would run it
        loaded = scope.get("model", scope.get("dataset"))
        assert loaded is not None, readme
        if "dataset" in scope:
            from datasets import load_from_disk

            assert "load_from_disk" in _snippet(text) and repr(loaded) == repr(load_from_disk(str(readme.parent)))
        else:
            loader = re.search(r"(\w+)\.from_pretrained", _snippet(text)).group(1)
            assert loader == type(loaded).__name__ or loader.startswith("AutoModelFor"), (readme, loader)
            weights = list(getattr(loaded, "parameters", lambda: [])())
            assert weights or type(loaded).__name__ == "TwoStageDetector", readme


@pytest.mark.slow
def test_demo_cards_hold_non_default_fields_and_hub_ids_only(demo):
    colm = demo / "colm" / "demo" / "README.md"
    config = _config(colm.read_text())
    recipe = yaml.safe_load((ROOT / "recipes" / "colm" / "demo.yaml").read_text())
    assert set(config) <= set(recipe), set(config) - set(recipe)  # nothing the recipe did not set
    assert config["learning_rate"] == 0.003 and config["keep_sources"] == ["support"]
    assert "selection_ratio" not in config and "similarity" not in config  # set in the recipe, equal to the default
    assert "output_dir" not in config and "hub_token" not in config
    for readme in _cards(demo):
        card_class = (
            DatasetCard
            if (readme.parent / "dataset_dict.json").exists() or (readme.parent / "state.json").exists()
            else ModelCard
        )
        data = card_class.load(readme).data.to_dict()
        for name in [data.get("base_model"), *(data.get("datasets") or []), *(data.get("source_datasets") or [])]:
            assert name is None or re.fullmatch(r"[\w.-]+/[\w.-]+", name), (readme, name)
    text = colm.read_text()
    assert "sentiment (embedded in hfdc)" in text and "base_model" not in ModelCard.load(colm).data.to_dict()
