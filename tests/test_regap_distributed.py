"""`hfdc regap train` under 2 real processes (torchrun, gloo), killed after a checkpoint and resumed."""

import json

import pytest

from tests.distributed import torchrun


@pytest.mark.slow
def test_regap_train_under_two_processes_and_resume(tmp_path):
    common = ["regap", "train", "--config", "recipes/regap/demo.yaml", "--output_dir", str(tmp_path / "out")]
    common += ["--use_cpu", "true", "--save_strategy", "steps", "--save_steps", "2", "--safety_judge", "none"]
    torchrun("-m", "hfdc", *common, "--max_steps", "2")
    checkpoint = tmp_path / "out" / "checkpoint-2"
    state = json.loads((checkpoint / "regap_state.json").read_text())
    assert state["batches"] == 2 and not state["frozen"]  # 2 of the 3 warm-up steps, one batch per step and rank
    torchrun("-m", "hfdc", *common, "--max_steps", "5", "--resume_from_checkpoint", str(checkpoint))
    final = json.loads((tmp_path / "out" / "checkpoint-4" / "regap_state.json").read_text())
    assert final["frozen"] and final["batches"] == 3
    card = (tmp_path / "out" / "model" / "README.md").read_text()
    assert "| MIR after |" in card and "unsafe rate" not in card
