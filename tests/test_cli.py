"""The CLI: recipes and flags are the config's fields; bad keys and values fail with clear messages."""

import subprocess
import sys
from dataclasses import dataclass, field

import pytest

from hfdc.cli import COMMANDS, RecipeError, main, parse_config, recipe_to_argv


@dataclass
class ToyConfig:
    name: str = field(metadata={"help": "A required name."})
    lr: float = field(default=0.1, metadata={"help": "Learning rate."})
    steps: int = field(default=3, metadata={"help": "Steps."})
    flag: bool = field(default=False, metadata={"help": "A switch."})
    sources: list[str] = field(default_factory=list, metadata={"help": "Sources."})
    repo_id: str | None = field(default=None, metadata={"help": "Optional repo."})


def _recipe(tmp_path, text):
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return str(path)


def test_recipe_values_are_typed_and_flags_override(tmp_path):
    recipe = _recipe(tmp_path, "name: toy\nlr: 1e-3\nsteps: 7\nflag: true\nsources: [a, b]\nrepo_id: null\n")
    config = parse_config(ToyConfig, ["--config", recipe, "--steps", "9"])
    assert config == ToyConfig(name="toy", lr=1e-3, steps=9, flag=True, sources=["a", "b"], repo_id=None)


def test_unknown_recipe_key_names_the_key(tmp_path):
    recipe = _recipe(tmp_path, "name: toy\nstepz: 4\n")
    with pytest.raises(RecipeError, match=r"unknown key 'stepz'.*did you mean 'steps'"):
        parse_config(ToyConfig, ["--config", recipe])


def test_bad_value_is_rejected_by_the_parser(tmp_path, capsys):
    recipe = _recipe(tmp_path, "name: toy\nsteps: many\n")
    with pytest.raises(SystemExit):
        parse_config(ToyConfig, ["--config", recipe])
    assert "--steps" in capsys.readouterr().err


def test_empty_value_cannot_override_a_default():
    with pytest.raises(RecipeError, match="'lr'"):
        recipe_to_argv({"lr": None}, ToyConfig)


def test_missing_recipe_file_is_a_clear_error(tmp_path):
    with pytest.raises(RecipeError, match="does not exist"):
        parse_config(ToyConfig, ["--config", str(tmp_path / "nope.yaml")])


def test_unknown_command_exits_with_message(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["dmeo"])
    assert exit_info.value.code == 2
    assert "did you mean 'demo'" in capsys.readouterr().err


def test_help_lists_every_command():
    out = subprocess.run([sys.executable, "-m", "hfdc", "--help"], capture_output=True, text=True, check=True).stdout
    for name in COMMANDS:
        assert f"  {name}" in out


def test_command_help_lists_fields():
    out = subprocess.run(
        [sys.executable, "-m", "hfdc", "demo", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "--steps" in out and "--output_dir" in out and "--config" in out


def test_demo_recipe_with_unknown_key_fails_naming_it(tmp_path):
    recipe = _recipe(tmp_path, "output_dir: x\nstepz: []\n")
    result = subprocess.run([sys.executable, "-m", "hfdc", "demo", "--config", recipe], capture_output=True, text=True)
    assert result.returncode == 2
    assert "unknown key 'stepz'" in result.stderr


def test_import_and_help_stay_light():
    code = (
        "import sys, time; t = time.perf_counter(); import hfdc, hfdc.cli; "
        "heavy = [m for m in ('torch', 'transformers', 'datasets') if m in sys.modules]; "
        "print(time.perf_counter() - t, heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split(
        maxsplit=1
    )
    assert out[1].strip() == "[]"
    assert float(out[0]) < 1.5
