"""The wheel ships the card templates and the recipes, so a plain (non-editable) install works."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_holds_templates_and_every_recipe(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        cwd=tmp_path,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("hfdc-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    recipes = {f"hfdc/recipes/{p.relative_to(ROOT / 'recipes')}" for p in (ROOT / "recipes").rglob("*.yaml")}
    assert recipes and recipes <= names, sorted(recipes - names)
    assert {"hfdc/model_cards/default.md", "hfdc/dataset_cards/default.md"} <= names
