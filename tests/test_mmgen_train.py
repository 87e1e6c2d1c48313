"""MM-Gen SFT (trl SFTTrainer, full and LoRA) lowers the loss on the kept data; evaluation picks options right."""

import importlib

import numpy as np
import pytest
from datasets import Dataset
from transformers import TrainingArguments

import hfdc.models
from hfdc.mmgen import evaluate, filter_by_loss, sft_rows, train_sft
from hfdc.mmgen.task import qa_conversation
from hfdc.mmgen.vlm import completion_nll


@pytest.fixture(scope="module")
def kept():
    shapes = hfdc.data.load("shapes", n_train=24, n_validation=2, n_test=2, seed=2)["train"]
    data = Dataset.from_dict(
        {
            "image": list(shapes["image"]),
            "conversations": [
                qa_conversation(f"{q} Options: left, right, above, below.", a)
                for q, a in zip(shapes["question"], shapes["answer"])
            ],
        }
    )
    model, processor = hfdc.models.tiny("llava", seed=0), hfdc.models.tiny_processor("llava")
    return filter_by_loss(data, model, processor, keep=(0, 75))


def mean_loss(model, processor, records) -> float:
    nll = completion_nll(model, processor, list(sft_rows(records)), batch_size=8)
    return float(nll[:, 0].sum() / nll[:, 1].sum())


def args(tmp_path, **changes):
    return TrainingArguments(
        output_dir=str(tmp_path),
        num_train_epochs=8,
        per_device_train_batch_size=6,
        learning_rate=3e-3,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
        seed=0,
        **changes,
    )


def test_full_sft_lowers_the_loss_on_the_kept_data(kept, tmp_path):
    model, processor = hfdc.models.tiny("llava", seed=0), hfdc.models.tiny_processor("llava")
    before = mean_loss(model, processor, kept)
    trainer = train_sft(model, processor, kept, args(tmp_path))
    after = mean_loss(model, processor, kept)
    assert len(kept) == 18 and trainer.state.global_step == 24  # 8 epochs of 3 batches
    assert after < 0.8 * before, (before, after)


def test_lora_sft_trains_adapters_only_and_lowers_the_loss(kept, tmp_path):
    from peft import LoraConfig

    model, processor = hfdc.models.tiny("llava", seed=0), hfdc.models.tiny_processor("llava")
    before = mean_loss(model, processor, kept)
    frozen = model.model.language_model.layers[0].mlp.up_proj.weight.detach().clone()
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], modules_to_save=["lm_head"])
    trainer = train_sft(model, processor, kept, args(tmp_path), peft_config=lora)
    trainable = {n for n, p in trainer.model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or "modules_to_save" in n for n in trainable)
    assert mean_loss(trainer.model, processor, kept) < 0.9 * before
    np.testing.assert_array_equal(
        trainer.model.base_model.model.model.language_model.layers[0].mlp.up_proj.weight.detach(), frozen
    )


def test_multiple_choice_takes_the_most_likely_option_per_row(monkeypatch):
    evaluate_module = importlib.import_module("hfdc.mmgen.evaluate")  # the package exports the function too
    rows = Dataset.from_dict(
        {
            "image": [None, None, None],
            "question": ["q0", "q1", "q2"],
            "answer": ["b", "left", "Yes"],
            "options": [["a", "b"], ["left", "right", "above"], ["yes", "no"]],
        }
    )
    # summed NLL per (row, option) in order: row 0 -> b, row 1 -> right (wrong), row 2 -> yes (normalised: right)
    nll = np.array([[2.0, 1], [1.5, 1], [0.9, 1], [0.4, 1], [3.0, 1], [1.2, 1], [1.3, 1]])
    monkeypatch.setattr(evaluate_module, "sft_row", lambda image, question, answer: (question, answer))
    monkeypatch.setattr(evaluate_module, "completion_nll", lambda model, processor, rows, batch_size, progress: nll)
    result = evaluate(None, None, rows)
    assert result == {"accuracy": 2 / 3, "n": 3, "metric": "multiple_choice"}
    monkeypatch.setattr(evaluate_module, "greedy_answers", lambda *a, **k: ["The B.", "left", "no"])
    assert evaluate(None, None, rows, metric="exact_match")["accuracy"] == pytest.approx(2 / 3)
