"""USEFUL discovery, upsampling and the recipe on feature_patches with known easy/hard membership."""

import numpy as np
import pytest
import torch
from datasets import Dataset
from transformers import default_data_collator

import hfdc.data
from hfdc.useful import (
    SlowLearnableCallback,
    UsefulConfig,
    WeightedLossTrainer,
    emphasise,
    find_slow_learnable,
    random_indices,
    train_useful,
    upsample,
    upweight,
)
from hfdc.useful.data import model_inputs
from hfdc.useful.train import make_trainer, new_model

DATA = dict(n_train=300, n_validation=10, n_test=300, dim=50, noise_std=0.2, missing_easy_fraction=0.3)


def config(tmp_path, **overrides):
    values = dict(
        output_dir=str(tmp_path),
        dataset_params=DATA,
        num_train_epochs=3,
        separation_epoch=2,
        learning_rate=0.5,
        optim="sgd",
        lr_scheduler_type="constant",
        weight_decay=0.0,
        max_grad_norm=0.0,
        per_device_train_batch_size=50,
        per_device_eval_batch_size=300,
        save_strategy="no",
        disable_tqdm=True,
        use_cpu=True,
    )
    return UsefulConfig(**{**values, **overrides})


@pytest.fixture(scope="module")
def data():
    return hfdc.data.load("feature_patches", **DATA)


def precision_recall(indices, has_easy):
    selected = np.zeros(len(has_easy), bool)
    selected[indices] = True
    hard = ~np.asarray(has_easy)
    return (hard & selected).sum() / selected.sum(), (hard & selected).sum() / hard.sum()


def test_callback_recovers_examples_without_easy_feature(tmp_path, data):
    torch.set_num_threads(1)
    cfg = config(tmp_path)
    train = data["train"]
    callback = SlowLearnableCallback(model_inputs(train), default_data_collator, epoch=2, seed=0)
    trainer = make_trainer(cfg, new_model(cfg, train), train, tmp_path, [callback])
    trainer.train()
    assert trainer.state.epoch == 2  # stopped at the separation epoch
    result = callback.result
    precision, recall = precision_recall(result.indices, train["has_easy"])
    assert precision >= 0.9 and recall >= 0.9, (precision, recall)
    per_class = result.stats["per_class"]
    assert all(s["mean_loss_slow"] > s["mean_loss_rest"] for s in per_class.values())
    # the partitions compared in the paper, on the same outputs
    from hfdc.useful import training_outputs

    logits, labels = training_outputs(trainer.model, model_inputs(train), default_data_collator)
    misclassified = find_slow_learnable(logits, labels, "misclassified")
    assert set(misclassified.indices) == set(np.flatnonzero(logits.argmax(1).numpy() != labels.numpy()))


@pytest.mark.parametrize("q", [0.3, 0.75])
def test_quantile_partition_keeps_each_class_above_its_quantile(q):
    # three classes with different loss scales, so one global threshold would take other counts per class
    g = torch.Generator().manual_seed(0)
    labels = torch.tensor([0] * 9 + [1] * 8 + [2] * 11)
    logits = torch.randn(len(labels), 3, generator=g) * torch.tensor([1.0, 3.0, 0.3])[labels][:, None]
    result = find_slow_learnable(logits, labels, "quantile", quantile=q)
    losses = torch.nn.functional.cross_entropy(logits, labels, reduction="none").numpy()
    selected = np.zeros(len(labels), bool)
    selected[result.indices] = True
    for c in range(3):
        members = labels.numpy() == c
        inside, outside = losses[members & selected], losses[members & ~selected]
        assert inside.min() > outside.max()  # every selected loss exceeds every unselected one in the class
        # the class's own quantile: positions above q * (n - 1) in its sorted losses
        assert len(inside) == members.sum() - 1 - int(np.floor(q * (members.sum() - 1)))
        assert result.stats["per_class"][c]["slow"] == len(inside)


def test_flattening_trigger(tmp_path, data):
    torch.set_num_threads(1)
    cfg = config(tmp_path, num_train_epochs=8, separation_epoch=0)
    train = data["train"]
    callback = SlowLearnableCallback(model_inputs(train), default_data_collator, epoch=None, flatten_tol=0.02)
    make_trainer(cfg, new_model(cfg, train), train, tmp_path, [callback]).train()
    assert callback.result is not None and callback.result.epoch == len(callback.errors)
    assert callback.errors[-2] - callback.errors[-1] < 0.02 < callback.errors[0] - callback.errors[-1]


def test_kmeans_on_hand_made_outputs():
    logits = torch.tensor([[5.0, 0.0], [5.1, 0.0], [0.2, 0.0], [0.1, 0.0], [0.0, 4.0], [0.0, 4.2], [0.0, 0.1]])
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 1])
    result = find_slow_learnable(logits, labels)
    assert result.indices == [2, 3, 6]
    stats = result.stats["per_class"][0]
    assert (stats["size"], stats["slow"]) == (4, 2) and stats["mean_loss_slow"] > 0.5 > stats["mean_loss_rest"]
    assert result.stats["fraction"] == pytest.approx(3 / 7)


def test_upweighted_loss_takes_the_step_of_the_upsampled_set(tmp_path):
    torch.set_num_threads(1)
    train = hfdc.data.load("feature_patches", **{**DATA, "n_train": 12})["train"]
    chosen, factor = [2, 5, 11], 3
    steps = dict(max_steps=1, logging_strategy="no", data_seed=0)
    duplicated = config(tmp_path / "d", per_device_train_batch_size=12 + 2 * len(chosen), factor=factor, **steps)
    weighted = config(tmp_path / "w", per_device_train_batch_size=12, emphasis="upweight", factor=factor, **steps)
    models = []
    for cfg in (duplicated, weighted):
        rows = emphasise(cfg, train, chosen)
        trainer = make_trainer(cfg, new_model(cfg, train), rows, cfg.output_dir)
        assert isinstance(trainer, WeightedLossTrainer) == (cfg.emphasis == "upweight")
        trainer.train()
        models.append(trainer.model.weight.detach())
    before = new_model(duplicated, train).weight.detach()
    assert not torch.allclose(models[0], before)
    torch.testing.assert_close(models[1], models[0])  # sum_i w_i CE_i / sum_i w_i = mean over the duplicated rows
    rows = emphasise(weighted, train, chosen)
    assert rows["loss_weight"] == [3.0 if i in chosen else 1.0 for i in range(12)]


def test_upsample_duplicates_exactly_the_selected_rows():
    ds = Dataset.from_dict({"v": list(range(10)), "label": [0, 1] * 5})
    out = upsample(ds, [2, 7], factor=3)
    assert out["v"] == list(range(10)) + [2, 7, 2, 7]
    assert out["source_index"] == out["v"]
    assert upsample(ds, [], factor=2)["v"] == list(range(10))
    picked = random_indices(10, 4, seed=1)
    assert len(set(picked)) == 4 and picked == random_indices(10, 4, seed=1)
    with pytest.raises(ValueError, match="outside"):
        upsample(ds, [10])
    with pytest.raises(ValueError, match="factor"):
        upsample(ds, [1], factor=0)
    weighted = upweight(ds, [2, 7], factor=4)
    assert weighted["loss_weight"] == [4.0 if i in (2, 7) else 1.0 for i in range(10)] and weighted["v"] == ds["v"]
    with pytest.raises(ValueError, match="already has a 'loss_weight'"):
        upweight(weighted, [1])


def test_bad_input(tmp_path):
    with pytest.raises(ValueError, match="class 1 has 1 training example"):
        find_slow_learnable(torch.randn(4, 2), torch.tensor([0, 0, 0, 1]))
    with pytest.raises(ValueError, match="beyond the training length"):
        config(tmp_path, separation_epoch=5, num_train_epochs=3)
    with pytest.raises(ValueError, match="separation_epoch must be >= 0"):
        config(tmp_path, separation_epoch=-1)
    with pytest.raises(ValueError, match="partition"):
        config(tmp_path, partition="median")
    with pytest.raises(ValueError, match=r"beyond the training length \(1 epochs\)"):  # max_steps cuts training short
        from hfdc.useful.train import discover

        discover(config(tmp_path, max_steps=2), hfdc.data.load("feature_patches", **DATA)["train"])
    with pytest.raises(ValueError, match="NaN"):
        find_slow_learnable(torch.tensor([[float("nan"), 0.0]] * 4), torch.tensor([0, 0, 1, 1]))


def test_recipe_upsamples_and_retrains(tmp_path, data):
    torch.set_num_threads(1)
    result = train_useful(config(tmp_path, num_train_epochs=10), data)
    assert result.metrics["train_rows"] == len(data["train"]) + len(result.selected)
    precision, recall = precision_recall(result.selected, data["train"]["has_easy"])
    assert precision >= 0.9 and recall >= 0.9
    assert result.metrics["test_accuracy"] > 0.8
    random = train_useful(config(tmp_path / "r", num_train_epochs=3, selection="random"), data)
    assert len(random.selected) == len(result.selected) and random.selected != result.selected


def test_hard_coordinate_noise_takes_the_hard_rule_off_the_ceiling():
    from scipy.stats import norm

    params = dict(n_train=4000, n_validation=2, n_test=2, dim=8, easy_strength=2.0, hard_strength=0.5)
    clean = hfdc.data.load("feature_patches", **params)["train"].with_format("numpy")[:]
    noisy = hfdc.data.load("feature_patches", **params, hard_noise_std=0.4)["train"].with_format("numpy")[:]
    sign = 2.0 * noisy["label"] - 1
    hard = noisy["x"][:, :, 1].sum(1) * sign  # v_h = e_1 appears only in the hard patch: beta_h + xi
    assert hard.mean() == pytest.approx(0.5, abs=0.02) and hard.std() == pytest.approx(0.4, rel=0.05)
    assert (hard > 0).mean() == pytest.approx(norm.cdf(0.5 / 0.4), abs=0.015)  # the hard rule: Phi(1.25) = 0.89
    assert np.array_equal(clean["x"][:, :, 1].sum(1) * sign, np.full(4000, 0.5, np.float32))
    others = [c for c in range(8) if c != 1]  # every other coordinate is drawn as before
    assert np.array_equal(noisy["x"][:, :, others], clean["x"][:, :, others])
