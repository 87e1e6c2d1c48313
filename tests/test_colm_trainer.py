"""ColmTrainer on the tiny Llama and the sentiment mixture: selection, LoRA, accumulation, resume, DDP, errors."""

import inspect
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from datasets import Dataset
from transformers import Trainer

import hfdc.colm.trainer as trainer_module
from hfdc.colm import (
    ColmConfig,
    ColmTrainer,
    FeatureMoments,
    find_parameter_block,
    select_small_batch,
    zeroth_order_features,
)
from hfdc.colm.cli import build_trainer, run
from hfdc.colm.data import tokenize_mixture
from hfdc.colm.moments import raw_features
from hfdc.colm.trainer import STATE_NAME, check_sharding
from hfdc.models import tiny, tiny_processor
from tests.distributed import torchrun

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


def _spy(monkeypatch, trainer):
    """(large, trained): the inputs every feature pass saw and every training forward (train mode) got."""
    large, trained = [], []
    features = trainer_module.zeroth_order_features

    def spy(model, block, inputs, *args, **kwargs):
        result = features(model, block, inputs, *args, **kwargs)
        large.append(({k: v.clone() for k, v in inputs.items()}, result))
        return result

    monkeypatch.setattr(trainer_module, "zeroth_order_features", spy)

    def record(module, args, kwargs):
        if module.training:
            trained.append({k: kwargs[k].clone() for k in ("input_ids", "attention_mask")})

    trainer.model.register_forward_pre_hook(record, with_kwargs=True)
    return large, trained


def _rows(batch: dict) -> list[list[int]]:
    """The unpadded token ids of each row."""
    return [ids[mask.bool()].tolist() for ids, mask in zip(batch["input_ids"], batch["attention_mask"])]


def test_trains_on_the_selected_rows_of_the_large_batch(tmp_path, monkeypatch):
    trainer = build_trainer(_config(tmp_path))
    large, trained = _spy(monkeypatch, trainer)
    trainer.train()
    assert len(trainer.colm_history) == len(large) == len(trained) == 3
    for entry, (pool, _), batch in zip(trainer.colm_history, large, trained):
        assert len(entry["indices"]) == 4 and len(set(entry["indices"])) == 4
        assert _rows(batch) == [_rows(pool)[i] for i in entry["indices"]]
    logged = [e for e in trainer.state.log_history if "loss" in e]
    assert len(logged) == 3
    assert all(sum(v for k, v in e.items() if k.startswith("colm/selected_")) == 4 for e in logged)
    assert trainer.moments.step == 3 and trainer.moments.v.abs().sum() > 0


@pytest.mark.parametrize("weighted", [False, True])
def test_gradient_accumulation_selects_once_per_optimizer_step(tmp_path, monkeypatch, weighted):
    # 2 micro-batches of 2 from 2 x 4 = one selection of 4 from 8, trained like one batch of 4 selected from 8 (with
    # medoid weights: sum(w L) / sum(w) over the whole step, not per micro-batch)
    options = dict(use_medoid_weights=weighted, seed=1)
    accumulated = build_trainer(
        _config(tmp_path / "a", per_device_train_batch_size=2, gradient_accumulation_steps=2, **options)
    )
    doubled = build_trainer(_config(tmp_path / "b", **options))
    for trainer in (accumulated, doubled):
        trainer.model.double()  # float64: batch shapes differ, results must not
    large, trained = _spy(monkeypatch, accumulated)
    accumulated.train()
    doubled.train()
    assert len(accumulated.colm_history) == 3 and accumulated.moments.step == 3 and len(trained) == 6
    assert [e["indices"] for e in accumulated.colm_history] == [e["indices"] for e in doubled.colm_history]
    for step, entry in enumerate(accumulated.colm_history):
        pool = _rows(large[2 * step][0]) + _rows(large[2 * step + 1][0])
        assert _rows(trained[2 * step]) + _rows(trained[2 * step + 1]) == [pool[i] for i in entry["indices"]]
    for (name, a), b in zip(accumulated.model.named_parameters(), doubled.model.parameters()):
        assert torch.allclose(a, b, atol=1e-10), name
    assert torch.allclose(accumulated.moments.m, doubled.moments.m)
    if weighted:
        assert any(len(set(e["weights"])) > 1 for e in doubled.colm_history)  # unequal weights were trained with


def test_medoid_weighted_loss_by_hand(tmp_path):
    trainer = build_trainer(_config(tmp_path, use_medoid_weights=True, seed=1))
    batches, _ = trainer.get_batch_samples(iter(trainer.get_train_dataloader()), 1, trainer.args.device)
    weights = torch.tensor(trainer.colm_history[-1]["weights"])
    assert len(set(weights.tolist())) > 1  # unequal weights, or the test proves nothing
    losses = []
    for ids, mask in zip(batches[0]["input_ids"], batches[0]["attention_mask"]):
        row = ids[mask.bool()][None]  # each row alone, unpadded: L_i = mean next-token cross-entropy
        logits = trainer.model(input_ids=row).logits[0, :-1]
        losses.append(torch.nn.functional.cross_entropy(logits, row[0, 1:]))
    expected = (weights * torch.stack(losses)).sum() / weights.sum()
    assert float(trainer.compute_loss(trainer.model, dict(batches[0]))) == pytest.approx(float(expected), rel=1e-5)


def test_moments_follow_the_selected_large_source_rows(tmp_path, monkeypatch):
    trainer = build_trainer(_config(tmp_path, max_steps=1, keep_sources=["tweets"], seed=2))
    large, _ = _spy(monkeypatch, trainer)
    trainer.train()
    entry = trainer.colm_history[0]
    rows = [i for i, source in zip(entry["indices"], entry["sources"]) if source != "tweets"]
    assert 0 < len(rows) < len(entry["indices"])  # kept rows were selected, and large-source rows
    g = large[0][1].dense()[rows]
    b1, b2 = trainer.args.adam_beta1, trainer.args.adam_beta2
    assert torch.allclose(trainer.moments.m, (1 - b1) * g.mean(0), atol=1e-7)
    assert torch.allclose(trainer.moments.v, (1 - b2) * g.square().mean(0), atol=1e-9)


@pytest.mark.parametrize(
    "options",
    [
        dict(feature_optimizer="sgd", budget_mode="balanced", similarity="cosine"),
        dict(feature_optimizer="adam", budget_mode="none", similarity="euclidean", zo_directions=3),
    ],
)
def test_selection_options_reach_the_selection(tmp_path, monkeypatch, options):
    trainer = build_trainer(_config(tmp_path, max_steps=1, **options))
    large, _ = _spy(monkeypatch, trainer)
    calls = []
    select = trainer_module.select_small_batch
    signature = inspect.signature(select)

    def spy(*args, **kwargs):
        calls.append(signature.bind(*args, **kwargs).arguments)
        return select(*args, **kwargs)

    monkeypatch.setattr(trainer_module, "select_small_batch", spy)
    trainer.train()
    g = large[0][1]
    assert g.slopes.shape == (8, options.get("zo_directions", 1))
    (call,) = calls
    assert (call["budget_mode"], call["similarity"]) == (options["budget_mode"], options["similarity"])
    expected = raw_features(g) if options["feature_optimizer"] == "sgd" else FeatureMoments(g.dim).features(g)
    everything = torch.arange(g.dim)
    assert torch.allclose(
        call["features"].take(torch.arange(8), everything), expected.take(torch.arange(8), everything)
    )
    assert trainer.colm_history[0]["indices"] == select_small_batch(**call).indices.tolist()


def test_evaluation_sources_unseen_in_training(tmp_path):
    trainer = build_trainer(_config(tmp_path))
    rows = trainer.train_dataset.select(range(8))
    unseen = trainer.evaluate(rows.map(lambda row: {"source": "forum"}))["eval_loss"]
    assert unseen == pytest.approx(trainer.evaluate(rows.remove_columns("source"))["eval_loss"])


def test_lora_and_gradient_accumulation(tmp_path):
    trainer = build_trainer(_config(tmp_path, lora_r=4, lora_alpha=8, gradient_accumulation_steps=2, max_steps=2))
    assert [name.split("layers.")[1] for name, _ in trainer.block] == ["1.self_attn.v_proj.lora_B.default.weight"]
    lora_before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if "lora_B" in n}
    trainer.train()
    assert len(trainer.colm_history) == trainer.moments.step == 2  # one selection per optimizer step
    assert all(len(e["indices"]) == 8 and max(e["indices"]) < 16 for e in trainer.colm_history)  # 2 x 4 of 2 x 8
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
from pathlib import Path
from types import SimpleNamespace
from hfdc.colm.cli import build_trainer
from hfdc.distributed import end_process_group
from tests.test_colm_trainer import DISTRIBUTED, _config, _state
trainer = build_trainer(_config(Path(sys.argv[1]), **DISTRIBUTED))
trainer.model.double()
trainer.train()
json.dump(_state(trainer), open(f"{sys.argv[1]}/rank{trainer.accelerator.process_index}.json", "w"))
end_process_group()
"""
DISTRIBUTED = dict(per_device_train_batch_size=2, use_medoid_weights=True, seed=1)


def _state(trainer) -> dict:
    params = [p.detach().flatten() for p in trainer.model.parameters()]
    return {"history": trainer.colm_history, "m": trainer.moments.m.tolist(), "params": torch.cat(params).tolist()}


@pytest.mark.slow
def test_two_processes_equal_one_process_on_the_pooled_batch(tmp_path):
    # 2 ranks x 4 examples pooled = the 8 a single process with twice the batch sees: same selections, same
    # medoid-weighted updates (the weighted loss is normalised over the pooled batch, not per rank)
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    torchrun(
        str(script),
        str(tmp_path),
        timeout=240,
    )
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    single = build_trainer(_config(tmp_path / "single", **{**DISTRIBUTED, "per_device_train_batch_size": 4}))
    single.model.double()
    single.train()
    expected = _state(single)
    for rank in ranks:
        assert rank["history"] == expected["history"]
        assert rank["m"] == pytest.approx(expected["m"], rel=1e-9, abs=1e-12)
        assert rank["params"] == pytest.approx(expected["params"], rel=1e-9, abs=1e-12)
    assert any(len(set(e["weights"])) > 1 for e in expected["history"])  # unequal weights were trained with


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


def test_mixed_precision_keeps_float32_feature_passes(tmp_path, monkeypatch):
    # bf16 autocast (accelerate wraps the model's forward in it): the perturbed passes still run in float32
    trainer = build_trainer(_config(tmp_path, max_steps=1, bf16=True))
    large, _ = _spy(monkeypatch, trainer)
    trainer.train()
    assert "_original_forward" in trainer.accelerator.unwrap_model(trainer.model).__dict__
    inputs, got = large[0]
    model = tiny("llama", seed=0)  # the trainer's model before its first step
    expected = zeroth_order_features(model, find_parameter_block(model, "v_proj"), inputs, seed=0)
    assert float((got.slopes - expected.slopes).norm() / expected.slopes.norm()) < 0.01


@pytest.mark.parametrize(
    "fsdp, zero_stage, mode", [(True, 0, "FSDP"), (False, 3, "DeepSpeed ZeRO-3"), (False, 2, None)]
)
def test_sharded_parameter_blocks_are_refused(tmp_path, monkeypatch, fsdp, zero_stage, mode):
    plugin = SimpleNamespace(zero_stage=zero_stage)
    fake = SimpleNamespace(
        is_fsdp_enabled=fsdp,
        is_deepspeed_enabled=zero_stage > 0,
        accelerator=SimpleNamespace(state=SimpleNamespace(deepspeed_plugin=plugin)),
    )
    if mode is None:
        check_sharding(fake)  # ZeRO-2 keeps whole parameters on every rank
        return
    with pytest.raises(ValueError, match=f"does not support {mode}.*multi_gpu.yaml"):
        check_sharding(fake)
    create = Trainer.create_accelerator_and_postprocess

    def sharded(self):
        create(self)
        self.is_fsdp_enabled = True

    monkeypatch.setattr(Trainer, "create_accelerator_and_postprocess", sharded)
    with pytest.raises(ValueError, match="does not support FSDP"):
        build_trainer(_config(tmp_path))


def test_prompt_tokens_masked_and_eos_trained_when_pad_is_eos(tmp_path):
    tokenizer = tiny_processor("llama")
    tokenizer.pad_token = tokenizer.eos_token  # as SmolLM2 and Phi-2 ship
    data = Dataset.from_dict(
        {"instruction": ["add 2 and 3", "name a colour"], "output": ["5", "a deep blue"], "source": ["a", "b"]}
    )
    tokenized = tokenize_mixture(data, tokenizer, "{output}", "source", 64, prompt_template="Q: {instruction}\nA: ")
    trainer = ColmTrainer(
        model=tiny("llama"),
        args=_config(tmp_path, keep_sources=[]),
        train_dataset=tokenized,
        processing_class=tokenizer,
    )
    batch = trainer.data_collator([tokenized[0], tokenized[1]])
    for i, (instruction, output) in enumerate(zip(data["instruction"], data["output"])):
        prompt = len(tokenizer(f"Q: {instruction}\nA: ")["input_ids"])
        full = tokenizer(f"Q: {instruction}\nA: {output}{tokenizer.eos_token}")["input_ids"]
        labels = batch["labels"][i].tolist()
        assert labels[:prompt] == [-100] * prompt  # the prompt is not trained
        assert labels[prompt : len(full)] == full[prompt:] and full[-1] == tokenizer.eos_token_id  # EOS is
        assert labels[len(full) :] == [-100] * (len(labels) - len(full))  # padding is not


@pytest.mark.parametrize("recipe", ["demo", "tiny_mixture", "phi2_mathinstruct"])
def test_recipes_parse(recipe):
    from hfdc.cli import parse_config

    config = parse_config(
        ColmConfig, ["--config", str(ROOT / "recipes" / "colm" / f"{recipe}.yaml"), "--output_dir", "x"]
    )
    assert 0 < config.selection_ratio <= 1 and config.keep_sources
    if recipe == "phi2_mathinstruct":  # the reference's step: 4 GPUs x 4 x 8 accumulation steps = 128 -> 64
        assert config.large_batch_size * config.gradient_accumulation_steps * 4 == 128
        assert (
            config.lora_target_modules == ["q_proj", "k_proj", "v_proj", "fc1", "fc2"]
            and len(config.keep_sources) == 10
        )
        assert config.prompt_template.endswith("### Response:") and config.text_template == "{output}"


@pytest.mark.parametrize("direction", ["fixed", "per_step"])
def test_direction_fixed_per_run_or_fresh_per_step(tmp_path, monkeypatch, direction):
    trainer = build_trainer(_config(tmp_path, max_steps=2, zo_direction=direction))
    large, _ = _spy(monkeypatch, trainer)
    trainer.train()
    first, second = (estimates.directions for _, estimates in large)
    z = torch.randn(first.shape[1], generator=torch.Generator().manual_seed(0))  # seed * 1_000_003 + 0
    assert torch.allclose(first[0], z, rtol=1e-3, atol=1e-3)  # the applied direction is z up to rounding
    assert torch.allclose(first, second, rtol=1e-3, atol=1e-3) == (direction == "fixed")
