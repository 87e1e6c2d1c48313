"""`hfdc regap train|measure|safety`: the demo recipe end to end, a LLaVA built from parts, the sub-command errors."""

import json
from pathlib import Path

import pytest

from hfdc.cli import RecipeError, main, run_command, split_command
from hfdc.models import tiny, tiny_processor

ROOT = Path(__file__).resolve().parents[1]
DEMO = str(ROOT / "recipes" / "regap" / "demo.yaml")


def test_train_then_measure_and_safety_on_the_saved_model(tmp_path, capsys):
    out = tmp_path / "train"
    folder = run_command("regap train", ["--config", DEMO, "--output_dir", str(out), "--max_steps", "6"])
    card = (folder / "README.md").read_text()
    for figure in ("MIR before", "MIR after", "layer-1 distance after", "caption LM loss", "unsafe rate (blank)"):
        assert figure in card
    before = json.loads((folder / "gap_before.json").read_text())
    after = json.loads((folder / "gap_after.json").read_text())
    assert f"| MIR after | {round(after['mir'], 4)} |" in card and before["mir"] != after["mir"]
    assert (folder / "gap.png").stat().st_size > 10_000 and (out / "safety" / "none.json").is_file()

    report = run_command(
        "regap measure",
        ["--model_name_or_path", str(folder), "--output_dir", str(tmp_path / "m"), "--gap_pairs", "24"]
        + ["--dataset_params", '{"n_train": 96, "n_validation": 24, "n_test": 8}', "--max_length", "48"],
    )
    assert report.mir == pytest.approx(after["mir"], rel=1e-5)  # the saved model measures as it was trained
    assert "MIR (sum over layers 1..2)" in capsys.readouterr().out
    assert (tmp_path / "m" / "gap.png").is_file()

    reports = run_command(
        "regap safety",
        ["--model_name_or_path", str(folder), "--output_dir", str(tmp_path / "s"), "--safety_max_prompts", "3"]
        + ["--safety_image_kinds", "random", "typographic", "--safety_max_new_tokens", "4"],
    )
    summary = json.loads((tmp_path / "s" / "safety.json").read_text())
    assert set(summary["rates"]) == {"random", "typographic"} and summary["rates"]["random"]["n"] == 3
    assert summary["rates"]["random"]["unsafe_rate"] == reports["random"].unsafe_rate


def test_train_builds_a_llava_from_a_tiny_clip_trained_on_the_captions(tmp_path):
    tiny("llama").save_pretrained(tmp_path / "lm")
    tiny_processor("llama").save_pretrained(tmp_path / "lm")
    out = tmp_path / "parts"
    args = ["--config", DEMO, "--output_dir", str(out), "--max_steps", "2", "--safety_judge", "none"]
    args += ["--vision_tower", "tiny:clip", "--language_model", str(tmp_path / "lm"), "--vision_tower_epochs", "1"]
    folder = run_command("regap train", args)
    assert (out / "vision_tower" / "config.json").is_file()
    config = json.loads((folder / "config.json").read_text())
    assert config["vision_feature_layer"] == -2 and config["image_seq_length"] == 16
    assert "unsafe rate" not in (folder / "README.md").read_text()


def test_sub_commands():
    assert split_command(["regap", "train", "--x", "1"]) == ("regap train", ["--x", "1"])
    assert split_command(["colm", "--x"]) == ("colm", ["--x"])
    with pytest.raises(RecipeError, match=r"command 'regap' needs a sub-command: train \| measure \| safety"):
        run_command(*split_command(["regap", "--config", DEMO]))
    with pytest.raises(SystemExit):
        main(["regap", "evaluate"])
