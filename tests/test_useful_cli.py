"""The useful and tada commands: demo recipes parse into their configs, --help renders, bad recipe keys are refused."""

import pytest

from hfdc.cli import RecipeError, parse_config, run_command
from hfdc.tada import TadaConfig
from hfdc.useful import UsefulConfig


@pytest.mark.parametrize("config_class, recipe", [(UsefulConfig, "recipes/useful/demo.yaml"), (TadaConfig, "recipes/tada/demo.yaml")])
def test_demo_recipes_parse(config_class, recipe, tmp_path):
    from hfdc.cli import load_recipe

    config = parse_config(config_class, ["--config", recipe, "--output_dir", str(tmp_path)])
    assert config.output_dir == str(tmp_path)
    assert config.separation_epoch == load_recipe(recipe)["separation_epoch"]
    assert config.num_train_epochs == load_recipe(recipe)["num_train_epochs"]


@pytest.mark.parametrize("command", ["useful", "tada"])
def test_help_renders(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_command(command, ["--help"])
    assert exit_info.value.code == 0 and "--separation_epoch" in capsys.readouterr().out


def test_unknown_recipe_key(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("separation_epochs: 3\n")
    with pytest.raises(RecipeError, match="separation_epoch"):
        parse_config(UsefulConfig, ["--config", str(recipe)])
