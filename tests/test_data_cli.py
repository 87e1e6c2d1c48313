"""``hfdc data``: recipe -> saved DatasetDict + README.md card; bad recipes and fields fail by name."""

import numpy as np
import pytest
from datasets import load_from_disk

from hfdc.cli import main
from hfdc.data import load
from tests.hub_fixtures import run_online


def test_cli_writes_loadable_dataset_and_card(tmp_path):
    recipe = tmp_path / "sentiment.yaml"
    recipe.write_text("name: sentiment\nn_train: 100\nn_validation: 20\nn_test: 20\nseed: 2\n")
    out = tmp_path / "out"
    main(["data", "--config", str(recipe), "--output_dir", str(out), "--n_test", "30"])  # flag overrides recipe
    saved = load_from_disk(str(out))
    expected = load("sentiment", n_train=100, n_validation=20, n_test=30, seed=2)
    assert {k: v.num_rows for k, v in saved.items()} == {"train": 100, "validation": 20, "test": 30}
    assert saved["train"].features == expected["train"].features
    assert saved["train"]["text"] == expected["train"]["text"]
    card = (out / "README.md").read_text()
    assert "**data**" in card and "| rows_test | 30 |" in card
    labels = np.array(expected["train"]["label"])
    assert f"| class_counts_train | negative {(labels == 0).sum()}, positive {(labels == 1).sum()} |" in card


def test_cli_feature_patches_card_cites_paper(tmp_path):
    out = tmp_path / "fp"
    main(
        [
            "data",
            "--name",
            "feature_patches",
            "--n_train",
            "10",
            "--n_validation",
            "2",
            "--n_test",
            "2",
            "--dim",
            "6",
            "--output_dir",
            str(out),
        ]
    )
    saved = load_from_disk(str(out))
    assert np.asarray(saved["train"].with_format("numpy")["x"]).shape == (10, 4, 6)
    card = (out / "README.md").read_text()
    assert "2404.17768" in card and "dim: 6" in card


def test_recipe_with_unknown_key_fails_naming_it(tmp_path, capsys):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text("name: shapes\nn_trian: 10\n")
    with pytest.raises(SystemExit):
        main(["data", "--config", str(recipe), "--output_dir", str(tmp_path / "out")])
    assert "'n_trian'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_field_that_the_data_set_lacks_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="'image_size'.*'digits'"):
        main(["data", "--name", "digits", "--image_size", "16", "--output_dir", str(tmp_path / "out")])


@pytest.mark.parametrize("name", ["shapes", "feature_patches", "digits", "sentiment"])
def test_recipe_per_data_set_spells_out_its_defaults(name):
    from pathlib import Path

    from hfdc.cli import parse_config
    from hfdc.data import params
    from hfdc.data.cli import DataConfig, dataset_params

    recipe = Path(__file__).resolve().parents[1] / "recipes" / "data" / f"{name}.yaml"
    config = parse_config(DataConfig, ["--config", str(recipe)])
    assert config.name == name
    defaults = {k: v for k, v in params(name).items() if v is not None}
    assert dataset_params(config) == defaults


def test_cli_pushes_to_hub_and_loads_back(hub_server, tmp_path):
    """With repo_id, the data set and its card reach the (local test) Hub and load back with load_dataset."""
    script = (
        "from hfdc.cli import main; from datasets import load_dataset; from huggingface_hub import hf_hub_download;"
        f"main(['data', '--config', 'recipes/data/demo.yaml', '--output_dir', {str(tmp_path / 'out')!r},"
        " '--repo_id', 'tester/shapes-demo', '--n_train', '12', '--n_validation', '6', '--n_test', '6']);"
        "ds = load_dataset('tester/shapes-demo');"
        "print('ROWS', {k: v.num_rows for k, v in ds.items()}, ds['train'].features['label'].names[0]);"
        "print('CARD', '| rows_train | 12 |' in open(hf_hub_download('tester/shapes-demo', 'README.md', repo_type='dataset')).read())"
    )
    result = run_online(["-c", script], hub_server, tmp_path / "home")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ROWS {'train': 12, 'validation': 6, 'test': 6} circle" in result.stdout
    assert "CARD True" in result.stdout
