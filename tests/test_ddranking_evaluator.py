"""The DD-Ranking evaluator: protocol wiring (which accuracy feeds which score), best over the learning-rate grid
and over the evaluations, random subsets with the distilled class counts, the KL soft-label loss, a real run, and
clear errors."""

import math

import numpy as np
import pytest
import torch

import hfdc.ddranking.evaluator as evaluator_module
from hfdc.ddranking import Evaluator, ProtocolConfig, ars, hlr, ior, lrs
from hfdc.ddranking.augment import augment
from hfdc.ddranking.evaluator import soft_label_loss


def _blobs(n_per_class: int, seed: int):
    """Two classes of 1x4x4 images: a bright left half or a bright right half, plus noise."""
    generator = torch.Generator().manual_seed(seed)
    left = torch.zeros(1, 4, 4)
    left[..., :2] = 1.0
    base = torch.stack([left, left.flip(-1)])
    labels = torch.arange(2).repeat_interleave(n_per_class)
    return base[labels] * 2 - 1 + 0.3 * torch.randn(len(labels), 1, 4, 4, generator=generator), labels


def _evaluator(**protocol):
    train_images, train_labels = _blobs(20, 0)
    test_images, test_labels = _blobs(10, 1)
    config = ProtocolConfig(
        **{
            "model_params": {"width": 4, "depth": 1},
            "learning_rates": [0.01, 0.1],
            "epochs": 4,
            "eval_every": 2,
            "num_eval": 2,
            "batch_size": 8,
            "full_epochs": 8,
            "full_learning_rate": 0.1,
            **protocol,
        }
    )
    return Evaluator(train_images, train_labels, test_images, test_labels, config)


def test_scores_combine_the_right_accuracies(monkeypatch):
    """Fake accuracies that depend on the set, label mode, augmentation and seed; the scores are the formulas of
    exactly those accuracies, run by run."""
    evaluator = _evaluator(full_accuracy=0.83, num_eval=3, augmentation="mixup", soft_label_mode="teacher")
    images, labels = _blobs(3, 7)
    table = {"distilled": 0.61, "random": 0.52}
    offsets = {("teacher", "mixup"): 0.07, ("teacher", "none"): 0.02, ("hard", "none"): -0.2, ("hard", "mixup"): -0.1}

    def fake(self, set_images, set_labels, soft, mode, augmentation, seed):
        which = "distilled" if set_images is images else "random"
        return table[which] + offsets[mode, augmentation] + 0.013 * seed * (1 if which == "distilled" else -1)

    monkeypatch.setattr(Evaluator, "best_accuracy", fake)
    result = evaluator.evaluate(images, labels)
    seeds = np.arange(3)
    syn_aug, rand_aug = 0.68 + 0.013 * seeds, 0.59 - 0.013 * seeds
    syn_plain, rand_plain = 0.63 + 0.013 * seeds, 0.54 - 0.013 * seeds
    syn_hard = 0.41 + 0.013 * seeds
    expected_lrs = lrs(hlr([0.83] * 3, syn_hard), ior(syn_aug, rand_aug))
    expected_ars = ars(ior(syn_aug, rand_aug), ior(syn_plain, rand_plain))
    assert result["lrs"] == pytest.approx(expected_lrs.mean()) and result["lrs_std"] == pytest.approx(
        expected_lrs.std()
    )
    assert result["ars"] == pytest.approx(expected_ars.mean()) and result["ars_std"] == pytest.approx(
        expected_ars.std()
    )
    assert result["hlr"] == pytest.approx(0.83 - syn_hard.mean())
    np.testing.assert_allclose(result["runs"]["random_unaugmented_accuracy"], rand_plain)
    evaluator.config.hard_label_augmentation = True  # HLR's hard-label runs then use the augmentation too
    augmented = evaluator.label_robust_score(images, labels)
    assert augmented["hlr"] == pytest.approx(0.83 - (0.51 + 0.013 * seeds).mean())
    assert "ars" not in augmented and "lrs" not in evaluator.augmentation_robust_score(images, labels)


def test_accuracy_is_the_best_over_the_grid_and_the_evaluations(monkeypatch):
    evaluator = _evaluator(learning_rates=[0.003, 0.2, 0.05], epochs=5, eval_every=2)
    seen = []
    monkeypatch.setattr(
        Evaluator,
        "train",
        lambda self, *args: (seen.append(args[5]), (None, {0.003: 0.4, 0.2: 0.71, 0.05: 0.6}[args[5]]))[1],
    )
    images, labels = _blobs(2, 3)
    assert evaluator.best_accuracy(images, labels, None, "hard", "none", 0) == 0.71
    assert seen == [0.003, 0.2, 0.05]
    monkeypatch.undo()
    readings = iter([0.3, 0.8, 0.55])
    calls = []
    monkeypatch.setattr(evaluator_module, "accuracy", lambda *a: (calls.append(1), next(readings))[1])
    _, best = evaluator.train(images, labels, None, "hard", "none", 0.05, 5, 0)
    assert best == 0.8 and len(calls) == 3  # epochs 2, 4 and the last one (5)


def test_random_subsets_copy_the_class_counts():
    evaluator = _evaluator()
    labels = torch.tensor([1, 0, 1, 1, 1])
    images, drawn = evaluator.random_subset(labels, seed=4)
    assert sorted(drawn.tolist()) == [0, 1, 1, 1, 1]
    rows = [int((evaluator.train_images == image).all(dim=(1, 2, 3)).nonzero()) for image in images]
    assert evaluator.train_labels[rows].tolist() == drawn.tolist() and len(set(rows)) == 5
    other, _ = evaluator.random_subset(labels, seed=5)
    assert not torch.equal(images, other)
    with pytest.raises(ValueError, match="class 1 has 21 distilled images but only 20 real training rows"):
        evaluator.random_subset(torch.ones(21, dtype=torch.long), seed=0)


def test_soft_label_loss_is_the_tempered_kl():
    student = torch.tensor([[1.0, -0.5, 0.3], [0.2, 0.9, -1.1]])
    teacher = torch.tensor([[0.4, 0.1, -0.7], [1.5, -0.2, 0.6]])
    t = 1.7
    p = np.exp(teacher.numpy() / t) / np.exp(teacher.numpy() / t).sum(1, keepdims=True)
    q = np.exp(student.numpy() / t) / np.exp(student.numpy() / t).sum(1, keepdims=True)
    assert soft_label_loss(student, teacher, t).item() == pytest.approx((p * np.log(p / q)).sum() / 2, rel=1e-5)


def test_a_real_run_scores_prototypes(tmp_path):
    evaluator = _evaluator(augmentation="dsa", soft_label_mode="teacher")
    images, labels = _blobs(2, 9)
    result = evaluator.evaluate(images, labels)
    assert result["full_accuracy"] > 0.9  # the full-data model learns the two halves; it is also the teacher
    for name in ("lrs", "ars"):
        assert 0 <= result[name] <= 1
    assert all(len(v) == 2 and all(0 <= a <= 1 for a in v) for v in result["runs"].values())
    stored = _evaluator(soft_label_mode="stored", augmentation="cutmix", num_eval=1)
    soft = torch.tensor([[2.0, -1.0], [1.5, 0.0], [-1.0, 2.0], [0.0, 1.0]])
    assert 0 <= stored.label_robust_score(images, labels, soft)["lrs"] <= 1


def test_bad_inputs_have_clear_errors():
    evaluator = _evaluator(soft_label_mode="stored")
    images, labels = _blobs(2, 9)
    with pytest.raises(ValueError, match="the distilled set is empty"):
        evaluator.evaluate(images[:0], labels[:0])
    with pytest.raises(ValueError, match=r"stored needs soft labels of shape \(4, 2\), got None"):
        evaluator.evaluate(images, labels)
    with pytest.raises(ValueError, match=r"distilled images are \(1, 8, 8\) but the real ones \(1, 4, 4\)"):
        evaluator.evaluate(torch.zeros(4, 1, 8, 8), labels, torch.zeros(4, 2))
    with pytest.raises(ValueError, match="full_accuracy=71.0 must be a fraction"):
        ProtocolConfig(full_accuracy=71.0)
    with pytest.raises(ValueError, match="augmentation='autoaugment' is not allowed"):
        ProtocolConfig(augmentation="autoaugment")


def test_augmentations_mix_within_the_batch():
    torch.manual_seed(0)
    images = torch.arange(4.0)[:, None, None, None].expand(4, 1, 4, 4).contiguous()
    mixed = augment(images, "mixup")
    lam = mixed[:, 0, 0, 0]  # each image is lam * own value + (1 - lam) * another's
    assert ((lam >= 0) & (lam <= 3)).all() and not torch.equal(mixed, images)
    pasted = augment(images, "cutmix", beta=1.0)
    assert set(pasted.unique().tolist()) <= {0.0, 1.0, 2.0, 3.0}
    for name in ("dsa", "none"):
        torch.manual_seed(1)
        first = augment(images, name)
        torch.manual_seed(1)
        assert first.shape == images.shape and torch.equal(first, augment(images, name))
    with pytest.raises(ValueError, match="augmentation must be one of"):
        augment(images, "jitter")
    assert math.isfinite(float(augment(images, "dsa").sum()))
