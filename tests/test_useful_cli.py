"""The useful and tada commands: demo recipes parse into their configs, --help renders, bad recipe keys are refused."""

import pytest

from hfdc.cli import RecipeError, parse_config, run_command
from hfdc.tada import TadaConfig
from hfdc.useful import UsefulConfig


@pytest.mark.parametrize(
    "config_class, recipe", [(UsefulConfig, "recipes/useful/demo.yaml"), (TadaConfig, "recipes/tada/demo.yaml")]
)
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


def test_hub_style_data_set_with_renamed_columns(tmp_path):
    import hfdc.data
    from hfdc.useful import load_splits

    digits = hfdc.data.load("digits", n_train=30, n_validation=10, n_test=10)
    files = {}
    for split in ("train", "test"):
        files[split] = str(tmp_path / f"{split}.parquet")
        digits[split].rename_columns({"image": "img", "label": "fine_label"}).to_parquet(files[split])
    config = UsefulConfig(
        output_dir=str(tmp_path),
        dataset="parquet",
        dataset_params={"data_files": files},
        image_column="img",
        label_column="fine_label",
        model="convnet",
    )
    data = load_splits(config)
    assert data["train"].column_names == ["image", "label"] and data["train"]["label"] == digits["train"]["label"]
    assert data["train"].features["label"].names == digits["train"].features["label"].names
    with pytest.raises(ValueError, match="image_column"):
        load_splits(
            UsefulConfig(
                output_dir=str(tmp_path), dataset="parquet", dataset_params={"data_files": files}, model="convnet"
            )
        )


def test_card_config_keeps_only_changed_fields(tmp_path):
    from hfdc.hub import card_config

    config = UsefulConfig(output_dir=str(tmp_path), learning_rate=0.5, dataset_params={"n_train": 10}, seed=3)
    assert card_config(config) == {"dataset_params": {"n_train": 10}, "learning_rate": 0.5, "seed": 3}


def test_cpu_threads_are_restored():
    import torch

    from hfdc.distributed import cpu_threads

    before = torch.get_num_threads()
    with cpu_threads(before + 1):
        assert torch.get_num_threads() == before + 1
    assert torch.get_num_threads() == before
    with cpu_threads(0):
        assert torch.get_num_threads() == before
