"""ColmTrainer on the tiny Llama and the sentiment mixture: selection, LoRA, accumulation, resume, DDP, errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hfdc.colm import ColmConfig, ColmTrainer
from hfdc.colm.cli import build_trainer, run
from hfdc.colm.trainer import STATE_NAME

ROOT = Path(__file__).resolve().parents[1]


def _config(tmp_path, **overrides):
    values = dict(
        output_dir=str(tmp_path / "out"),
        max_train_samples=64,
        max_eval_samples=16,
        max_length=24,
        per_device_train_batch_size=4,
        max_steps=3,
        learning_rate=3e-3,
        logging_steps=1,
        report_to="none",
        use_cpu=True,
        save_strategy="no",
        eval_strategy="no",
        seed=0,
        keep_sources=["support"],
        dataloader_num_workers=0,
    )
    values.update(overrides)
    return ColmConfig(**values)


def test_trains_on_selected_small_batches_and_logs(tmp_path):
    trainer = build_trainer(_config(tmp_path))
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    assert len(trainer.colm_history) == 3
    for entry in trainer.colm_history:  # 4 of the 8 examples, no duplicates
        assert len(entry["indices"]) == 4 and len(set(entry["indices"])) == 4
        assert all(0 <= i < 8 for i in entry["indices"])
        # medoid weights count the covered examples: at most the 8 of the large batch (a source whose budget
        # rounds to 0 is covered by nobody)
        assert all(w >= 1 for w in entry["weights"]) and 4 <= sum(entry["weights"]) <= 8
    logged = [e for e in trainer.state.log_history if "loss" in e]
    assert len(logged) == 3
    for key in ("colm/selection_time_s", "colm/matching_error", "colm/random_matching_error"):
        assert all(e[key] >= 0 for e in logged)
    assert all(sum(v for k, v in e.items() if k.startswith("colm/selected_")) == 4 for e in logged)
    assert any(not torch.equal(before[n], p) for n, p in trainer.model.named_parameters())
    assert trainer.moments.step == 3 and trainer.moments.v.abs().sum() > 0


def test_lora_and_gradient_accumulation(tmp_path):
    trainer = build_trainer(_config(tmp_path, lora_r=4, lora_alpha=8, gradient_accumulation_steps=2, max_steps=2))
    assert all("lora_" in name for name, _ in trainer.block)
    lora_before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if "lora_B" in n}
    trainer.train()
    assert len(trainer.colm_history) == 4  # one selection per micro-batch
    assert trainer.moments.step == 4
    assert any(not torch.equal(lora_before[n], p) for n, p in trainer.model.named_parameters() if "lora_B" in n)


def test_resume_restores_moments_and_continues_identically(tmp_path):
    full = build_trainer(_config(tmp_path / "a", max_steps=4, save_strategy="steps", save_steps=2))
    full.train()
    checkpoint = Path(full.args.output_dir) / "checkpoint-2"
    saved = torch.load(checkpoint / STATE_NAME, weights_only=True)
    assert saved["step"] == 2 and saved["m"].abs().sum() > 0

    resumed = build_trainer(_config(tmp_path / "b", max_steps=4, save_strategy="steps", save_steps=2))
    resumed._load_from_checkpoint(str(checkpoint))
    assert torch.equal(resumed.moments.m, saved["m"]) and resumed.moments.step == 2
    resumed.train(resume_from_checkpoint=str(checkpoint))
    assert [e["indices"] for e in resumed.colm_history] == [e["indices"] for e in full.colm_history[2:]]
    assert torch.allclose(resumed.moments.m, full.moments.m) and torch.allclose(resumed.moments.v, full.moments.v)


def test_bad_input_errors(tmp_path):
    with pytest.raises(ValueError, match="zo_parameters='w_proj'"):
        build_trainer(_config(tmp_path, zo_parameters="w_proj"))
    with pytest.raises(ValueError, match="empty source"):
        build_trainer(_config(tmp_path, keep_sources=["forum"]))
    trainer = build_trainer(_config(tmp_path))
    with pytest.raises(ValueError, match="'source' column"):
        ColmTrainer(
            model=trainer.model,
            args=trainer.args,
            train_dataset=trainer.train_dataset.remove_columns("source"),
            processing_class=trainer.processing_class,
        )
    with pytest.raises(ValueError, match="selection_ratio"):
        _config(tmp_path, selection_ratio=1.5)


def test_cli_run_saves_model_with_card(tmp_path):
    folder = run(_config(tmp_path, max_steps=2, eval_strategy="no"))
    card = (folder / "README.md").read_text()
    assert "2407.19580" in card and "final eval loss" in card and "mean matching error" in card
    assert (folder / "config.json").is_file() and (folder / "tokenizer_config.json").is_file()


SCRIPT = """
import json, sys
from hfdc.colm import ColmConfig
from hfdc.colm.cli import build_trainer
from hfdc.distributed import end_process_group
out = sys.argv[1]
config = ColmConfig(output_dir=out, max_train_samples=64, max_length=24, per_device_train_batch_size=2,
                    max_steps=3, learning_rate=3e-3, report_to="none", save_strategy="no", seed=0,
                    keep_sources=["support"], logging_steps=1, use_cpu=True)
trainer = build_trainer(config)
trainer.train()
rank = trainer.accelerator.process_index
json.dump({"history": trainer.colm_history, "m": trainer.moments.m.tolist(),
           "params": float(sum(p.detach().sum() for p in trainer.model.parameters()))}, open(f"{out}/rank{rank}.json", "w"))
end_process_group()
"""


@pytest.mark.slow
def test_two_processes_select_identically(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "accelerate.commands.launch",
            "--config_file",
            str(ROOT / "recipes/accelerate/cpu_2proc.yaml"),
            str(script),
            str(tmp_path),
        ],
        check=True,
        env=env,
        cwd=ROOT,
        timeout=240,
    )
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["history"] == ranks[1]["history"]
    assert len(ranks[0]["history"]) == 3
    assert all(len(e["indices"]) == 4 and max(e["indices"]) < 8 for e in ranks[0]["history"])  # 2 ranks x 4 pooled
    assert ranks[0]["m"] == ranks[1]["m"]
    assert ranks[0]["params"] == pytest.approx(ranks[1]["params"], rel=1e-6)  # DDP kept the replicas in sync


def test_history_keeps_only_the_last_selections(tmp_path, monkeypatch):
    monkeypatch.setattr("hfdc.colm.trainer.HISTORY_SIZE", 2)
    full = build_trainer(_config(tmp_path / "full"))
    trainer = build_trainer(_config(tmp_path / "bounded"))
    monkeypatch.setattr("hfdc.colm.trainer.HISTORY_SIZE", 1000)
    full.train()
    monkeypatch.setattr("hfdc.colm.trainer.HISTORY_SIZE", 2)
    trainer.train()
    assert [e["step"] for e in trainer.colm_history] == [e["step"] for e in full.colm_history[-2:]]
    assert [e["indices"] for e in trainer.colm_history] == [e["indices"] for e in full.colm_history[-2:]]
