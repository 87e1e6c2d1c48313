"""``hfdc mmgen``: the demo recipe end to end, selectable stages, cards, and a push to the test Hub."""

import json
import math
import textwrap

import pytest
from datasets import load_from_disk

from hfdc.cli import run_command
from tests.hub_fixtures import run_online

RECIPE = "recipes/mmgen/demo.yaml"
FAST = ["--cpu_threads", "1", "--num_train_epochs", "1"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("mmgen")
    metrics = run_command("mmgen", ["--config", RECIPE, "--output_dir", str(out), *FAST])
    return out, metrics


def test_demo_recipe_runs_every_stage_and_writes_cards(demo):
    out, metrics = demo
    generated, filtered = load_from_disk(str(out / "generated")), load_from_disk(str(out / "filtered"))
    assert metrics["generated: records"] == len(generated) > 0
    n = len(generated)  # ranks floor(n/4 + 1/2) .. floor(3n/4 + 1/2) - 1 of the loss order
    assert metrics["filtered: kept rows"] == len(filtered) == math.floor(0.75 * n + 0.5) - math.floor(0.25 * n + 0.5)
    assert sum(metrics["candidates per subgroup"].values()) == 48
    assert {"accuracy before", "accuracy after"} <= set(metrics) and metrics["eval rows"] == 48
    assert metrics["train rows"] == len(filtered)
    card = (out / "generated" / "README.md").read_text()
    for text in ("| backend calls |", "| format-fix requests |", "| prompts planned (", "[system]", "mmgen"):
        assert text in card
    assert "| filter band (loss percentiles) | [25, 75) |" in (out / "filtered" / "README.md").read_text()
    assert (out / "model" / "config.json").is_file() and (out / "model" / "processor_config.json").is_file()
    assert json.loads((out / "metrics.json").read_text())["accuracy after"] == metrics["accuracy after"]


def test_stages_read_earlier_outputs_and_name_missing_ones(demo, tmp_path):
    out, metrics = demo
    again = run_command("mmgen", ["--config", RECIPE, "--output_dir", str(out), "--stages", "filter", "train", *FAST])
    assert again["filtered: kept rows"] == metrics["filtered: kept rows"] and "generated: records" not in again
    with pytest.raises(FileNotFoundError, match="add 'filter' to stages"):
        run_command("mmgen", ["--config", RECIPE, "--output_dir", str(tmp_path), "--stages", "train", *FAST])
    reference = run_command(
        "mmgen",
        ["--config", RECIPE, "--output_dir", str(tmp_path), "--stages", "train", "--train_data", "reference", *FAST],
    )
    assert reference["train rows"] == 12  # the task file's 12 reference examples


CHECK = textwrap.dedent("""
    import json, sys
    from datasets import load_dataset
    from huggingface_hub import hf_hub_download
    kept = load_dataset("user/mmgen-kept", split="train")
    json.dump({"rows": len(kept), "columns": kept.column_names,
               "kept_card": open(hf_hub_download("user/mmgen-kept", "README.md", repo_type="dataset")).read(),
               "generated_card": open(hf_hub_download("user/mmgen-all", "README.md", repo_type="dataset")).read()},
              open(sys.argv[1], "w"))
""")


@pytest.mark.slow
def test_generated_and_filtered_sets_are_pushed_with_cards(hub_server, tmp_path):
    args = ["-m", "hfdc", "mmgen", "--config", RECIPE, "--output_dir", str(tmp_path / "out"), *FAST]
    args += ["--stages", "generate", "filter", "--repo_id", "user/mmgen-kept", "--generated_repo_id", "user/mmgen-all"]
    proc = run_online(args, hub_server, tmp_path / "home")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (tmp_path / "check.py").write_text(CHECK)
    check = run_online([str(tmp_path / "check.py"), str(tmp_path / "out.json")], hub_server, tmp_path / "home")
    assert check.returncode == 0, check.stderr[-3000:]
    result = json.loads((tmp_path / "out.json").read_text())
    assert result["rows"] > 0 and {"image", "conversations", "subgroup", "loss"} <= set(result["columns"])
    assert "| kept rows |" in result["kept_card"] and "arxiv.org/abs/2501.04155" in result["kept_card"]
    assert "| completion tokens |" in result["generated_card"] and "| cost (USD) | 0.0 |" in result["generated_card"]
