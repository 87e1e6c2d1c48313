"""RegapTrainer on the tiny Llava: stage-1 freezing, the regulariser's value and gradient, alpha warm-up and resume."""

import json

import numpy as np
import pytest
import torch
from datasets import Dataset
from PIL import Image

from hfdc.models import tiny, tiny_processor
from hfdc.regap import AlphaWarmup, RegapConfig, RegapTrainer, gap_penalty
from hfdc.regap.data import encode_pairs
from hfdc.regap.llava import modality_masks
from hfdc.regap.trainer import STATE_NAME

CAPTIONS = [
    "a red circle to the left of a small blue square",
    "a green triangle above a small yellow ring",
    "a blue cross below a small red diamond",
    "a yellow square to the right of a small cyan circle",
]


def _data(n=16):
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)) for _ in range(n)]
    return Dataset.from_dict({"image": images, "caption": [CAPTIONS[i % 4] for i in range(n)]})


def _config(tmp_path, **overrides):
    values = dict(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=4,
        max_steps=4,
        learning_rate=5e-3,
        lr_scheduler_type="constant",
        logging_steps=1,
        report_to="none",
        use_cpu=True,
        save_strategy="no",
        max_length=40,
        regap_warmup_steps=2,
        disable_tqdm=True,
        seed=0,
    )
    values.update(overrides)
    return RegapConfig(**values)


def _trainer(tmp_path, **overrides):
    return RegapTrainer(
        model=tiny("llava", seed=1),
        args=_config(tmp_path, **overrides),
        train_dataset=_data(),
        processing_class=tiny_processor("llava"),
    )


def test_gap_penalty_matches_hand_computation():
    states = torch.tensor([[[9.0, 9.0], [1.0, 2.0], [3.0, 0.5], [0.0, 1.0], [2.0, 2.0], [-1.0, 4.0]]])
    image = torch.tensor([[False, True, True, False, False, False]])
    text = torch.tensor([[False, False, False, True, True, True]])
    mu_i, mu_t = np.array([2.0, 1.25]), np.array([1 / 3, 7 / 3])
    s = np.mean([1.0, np.sqrt(8), np.sqrt(17)])
    mean = ((mu_i - mu_t) ** 2).sum()
    assert gap_penalty(states, image, text, "mean", rescale=False).item() == pytest.approx(mean, rel=1e-6)
    assert gap_penalty(states, image, text, "mean").item() == pytest.approx(mean / s**2, rel=1e-6)
    sd_i = np.array([np.std([1.0, 3.0], ddof=1), np.std([2.0, 0.5], ddof=1)])
    sd_t = np.array([np.std([0.0, 2.0, -1.0], ddof=1), np.std([1.0, 2.0, 4.0], ddof=1)])
    frechet = (mean + ((sd_i - sd_t) ** 2).sum()) / s**2
    assert gap_penalty(states, image, text, "frechet_diag").item() == pytest.approx(frechet, rel=1e-6)
    with pytest.raises(ValueError, match="1 image and 3 text token states"):
        gap_penalty(states, image & (torch.arange(6) == 1), text)


def test_alpha_warmup_matches_the_loss_ratio_then_freezes():
    alpha = AlphaWarmup(weight=0.5, warmup_steps=2)
    assert alpha.step(4.0, 0.5, global_step=0) == pytest.approx(0.5 * 4 / 0.5)
    assert alpha.step(2.0, 1.5, global_step=1) == pytest.approx(0.5 * 6 / 2.0)
    assert alpha.step(9.0, 0.1, global_step=2) == pytest.approx(1.5) and alpha.frozen
    assert alpha.step(1.0, 9.0, global_step=3) == pytest.approx(1.5)
    fixed = AlphaWarmup(fixed=0.25)
    assert fixed.frozen and fixed.step(3.0, 1.0, 0) == 0.25
    with pytest.raises(ValueError, match="regap_warmup_steps must be >= 1"):
        AlphaWarmup(warmup_steps=0)


def test_stage1_trains_only_the_projector(tmp_path):
    trainer = _trainer(tmp_path)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    changed = {n for n, p in trainer.model.named_parameters() if not torch.equal(before[n], p)}
    projector = {n for n, _ in trainer.model.named_parameters() if "multi_modal_projector" in n}
    assert changed == projector == set(trainer.trainable_parameters)
    assert len(projector) == 4  # linear_1 and linear_2, weight and bias


def test_regulariser_gradient_reaches_the_projector(tmp_path):
    trainer = _trainer(tmp_path, regap_alpha=0.7)
    model = trainer.model.train()
    batch = encode_pairs(trainer.processing_class, list(_data(4)["image"]), CAPTIONS, max_length=40)
    projector = [p for n, p in model.named_parameters() if p.requires_grad]

    def grads(loss):
        return [g.clone() for g in torch.autograd.grad(loss, projector)]

    total = grads(trainer.compute_loss(model, dict(batch)))
    lm = grads(model(**batch).loss)
    out = model(**batch, output_hidden_states=True)
    image, text = modality_masks(batch["input_ids"], batch["attention_mask"], model.config.image_token_id)
    gap = grads(gap_penalty(out.hidden_states[1], image, text))
    for t, l, g in zip(total, lm, gap):
        assert g.abs().sum() > 0
        assert torch.allclose(t, l + 0.7 * g, atol=1e-6)


def _logged(trainer, key):
    return [e[key] for e in trainer.state.log_history if key in e]


def test_alpha_frozen_after_warmup_saved_and_restored_on_resume(tmp_path):
    full = _trainer(tmp_path / "full", max_steps=6)
    full.train()
    alphas, lms, gaps = (_logged(full, f"regap/{k}") for k in ("alpha", "lm_loss", "gap"))
    # warm-up steps 0, 1: alpha = sum(LM) / sum(D) so far (logged values are rounded to 6 digits)
    assert alphas[0] == pytest.approx(lms[0] / gaps[0], rel=1e-4)
    assert alphas[1] == pytest.approx((lms[0] + lms[1]) / (gaps[0] + gaps[1]), rel=1e-4)
    assert alphas[2:] == [alphas[1]] * 4 and full.alpha.frozen
    assert gaps[-1] < gaps[0]

    first = _trainer(tmp_path / "resume", max_steps=6, save_strategy="steps", save_steps=3)
    first.train()
    checkpoint = tmp_path / "resume" / "out" / "checkpoint-3"
    saved = json.loads((checkpoint / STATE_NAME).read_text())
    assert saved["frozen"] and saved["alpha"] == pytest.approx(full.alpha.alpha, rel=1e-6)
    resumed = _trainer(tmp_path / "resume", max_steps=6, save_strategy="steps", save_steps=3)
    resumed.train(resume_from_checkpoint=str(checkpoint))
    assert resumed.alpha.state_dict() == saved  # frozen: the resumed steps leave it as loaded
    assert resumed.alpha.frozen and resumed.alpha.batches == 2
    for (name, p), q in zip(full.model.named_parameters(), resumed.model.parameters()):
        assert torch.allclose(p, q, atol=1e-6), name


def test_resume_needs_the_regap_state(tmp_path):
    first = _trainer(tmp_path, max_steps=2, save_strategy="steps", save_steps=2)
    first.train()
    checkpoint = tmp_path / "out" / "checkpoint-2"
    (checkpoint / STATE_NAME).unlink()
    with pytest.raises(ValueError, match="has no regap_state.json"):
        _trainer(tmp_path, max_steps=3).train(resume_from_checkpoint=str(checkpoint))


def test_baseline_runs_without_hidden_states_and_eval_reports_the_lm_loss(tmp_path):
    trainer = _trainer(tmp_path, regap_weight=0.0, max_steps=2)
    assert not trainer.args.regularise
    trainer.train()
    assert not _logged(trainer, "regap/alpha")
    batch = encode_pairs(trainer.processing_class, list(_data(4)["image"]), CAPTIONS, max_length=40)
    trainer.model.eval()
    with torch.no_grad():
        expected = trainer.model(**batch).loss.item()
    reg = _trainer(tmp_path / "reg", regap_alpha=5.0)
    reg.model.load_state_dict(trainer.model.state_dict())
    loss, _ = reg.compute_loss(reg.model.eval(), dict(batch), return_outputs=True)
    assert loss.item() == pytest.approx(expected, rel=1e-6)  # no regulariser outside training


def test_trainer_errors(tmp_path):
    with pytest.raises(TypeError, match="LLaVA-style"):
        RegapTrainer(model=tiny("llama"), args=_config(tmp_path), train_dataset=_data())
    with pytest.raises(ValueError, match="regap_layer=3 but the language model has 2 layers"):
        _trainer(tmp_path, regap_layer=3)
    with pytest.raises(TypeError, match="RegapConfig"):
        RegapTrainer(model=tiny("llava"), args=None)
    with pytest.raises(ValueError, match="regap_distance='l2' is not allowed"):
        _config(tmp_path, regap_distance="l2")
    with pytest.raises(ValueError, match="set both vision_tower and language_model"):
        _config(tmp_path, vision_tower="tiny:clip")
