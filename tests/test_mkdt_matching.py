"""MKDT trajectory matching: the loss equals a hand computation on a linear student, is differentiable in the
images and the step size, decreases under distillation, and a resumed run reproduces an uninterrupted one."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from hfdc.mkdt import MkdtConfig, distill, learned_step_size, matching_loss, student_steps, train_experts
from hfdc.mkdt.distill import kd_losses
from hfdc.mkdt.experts import epoch_file, load_parameters
from hfdc.mkdt.student import new_student

X = np.array([[0.3, -1.2, 0.8], [1.1, 0.4, -0.5], [-0.7, 0.9, 0.2], [0.5, 0.1, 1.4]])
Y = np.array([[0.2, -0.4], [1.0, 0.3], [-0.6, 0.8], [0.4, -1.1]])
W0 = np.array([[0.5, -0.3, 0.1], [0.2, 0.7, -0.4]])
B0 = np.array([0.05, -0.1])
W_STAR = np.array([[0.1, 0.2, -0.3], [0.6, -0.2, 0.3]])
B_STAR = np.array([0.3, 0.2])
ETA = 0.37


def _hand_steps(w, b, steps):
    """theta <- theta - eta * grad of mean((X W^T + b - Y)^2), written out: grad_W = 2/(n k) R^T X, grad_b = 2/(n k) sum R."""
    n, k = Y.shape
    for _ in range(steps):
        residual = X @ w.T + b - Y
        w, b = w - ETA * 2 / (n * k) * residual.T @ X, b - ETA * 2 / (n * k) * residual.sum(0)
    return w, b


def _linear():
    return torch.nn.Linear(3, 2).double()


def _t(array):
    return torch.tensor(array, dtype=torch.float64)


def test_matching_loss_equals_hand_computation_on_a_linear_student():
    start = {"weight": _t(W0), "bias": _t(B0)}
    target = {"weight": _t(W_STAR), "bias": _t(B_STAR)}
    loss = matching_loss(_linear(), start, target, _t(X), _t(Y), _t(ETA), 3, 0, torch.Generator())
    w, b = _hand_steps(W0, B0, 3)
    expected = (((w - W_STAR) ** 2).sum() + ((b - B_STAR) ** 2).sum()) / (
        ((W0 - W_STAR) ** 2).sum() + ((B0 - B_STAR) ** 2).sum()
    )
    assert loss.item() == pytest.approx(expected, rel=1e-12)
    end = student_steps(_linear(), start, _t(X), _t(Y), _t(ETA), 3, 0, torch.Generator())
    np.testing.assert_allclose(end["weight"].detach().numpy(), w, rtol=1e-12)


def test_matching_loss_gradients_match_finite_differences():
    """Second-order: d loss / d X and d loss / d eta flow through every differentiable step."""
    start = {"weight": _t(W0), "bias": _t(B0)}
    target = {"weight": _t(W_STAR), "bias": _t(B_STAR)}
    images, eta = _t(X).requires_grad_(True), _t(ETA).requires_grad_(True)

    def loss(x, e):
        return matching_loss(_linear(), start, target, x, _t(Y), e, 3, 0, torch.Generator())

    loss(images, eta).backward()
    h = 1e-6
    d_eta = (loss(_t(X), _t(ETA + h)) - loss(_t(X), _t(ETA - h))).item() / (2 * h)
    assert eta.grad.item() == pytest.approx(d_eta, rel=1e-6)
    bumped = X.copy()
    bumped[2, 1] += h
    lowered = X.copy()
    lowered[2, 1] -= h
    d_x = (loss(_t(bumped), _t(ETA)) - loss(_t(lowered), _t(ETA))).item() / (2 * h)
    assert images.grad[2, 1].item() == pytest.approx(d_x, rel=1e-5)


def _config(**overrides):
    fields = dict(
        student_params={"width": 4, "depth": 1},
        num_experts=2,
        expert_train_epochs=4,
        expert_batch_size=8,
        expert_learning_rate=0.05,
        num_synthetic=6,
        init_experts=2,
        iterations=6,
        syn_steps=4,
        expert_epochs=2,
        max_start_epoch=2,
        syn_batch_size=3,
        eval_interval=3,
        lr_images=100.0,
        lr_init=0.05,
    )
    return MkdtConfig(**{**fields, **overrides})


@pytest.fixture(scope="module")
def kd_data(tmp_path_factory):
    """24 soft random 1x4x4 images, targets of a fixed random linear teacher, and two trained experts."""
    generator = torch.Generator().manual_seed(3)
    images = torch.rand(24, 1, 4, 4, generator=generator) * 2 - 1
    targets = images.flatten(1) @ (torch.randn(16, 5, generator=generator) / 4)
    root = tmp_path_factory.mktemp("experts")
    train_experts(_config(), images, targets, root)
    return images, targets, root


def _mean_matching_loss(config, root, images, targets, lr):
    model = new_student(config, images, targets.shape[1], seed=0)
    losses = []
    for expert in sorted(root.glob("expert_*")):
        for start in range(config.max_start_epoch):
            losses.append(
                matching_loss(
                    model,
                    load_parameters(expert, start),
                    load_parameters(expert, start + config.expert_epochs),
                    images,
                    targets,
                    torch.tensor(lr),
                    config.syn_steps,
                    0,
                    torch.Generator(),
                ).item()
            )
    return float(np.mean(losses))


def test_distillation_decreases_the_matching_loss(kd_data, tmp_path):
    images, targets, root = kd_data
    config = _config(iterations=40, eval_interval=40, syn_batch_size=0)
    distilled = distill(config, images, targets, root, tmp_path)
    tensors = distilled.with_format("torch")[:]
    rows = tensors["source_row"]
    before = _mean_matching_loss(config, root, images[rows], targets[rows], config.lr_init)
    after = _mean_matching_loss(config, root, tensors["pixel_values"], tensors["target"], learned_step_size(tmp_path))
    assert after < 0.8 * before


def test_resumed_distillation_equals_an_uninterrupted_run(kd_data, tmp_path):
    images, targets, root = kd_data
    config = _config()
    whole = distill(config, images, targets, root, tmp_path / "whole").with_format("torch")[:]
    distill(dataclasses.replace(config, iterations=3), images, targets, root, tmp_path / "killed")
    assert [p.name for p in (tmp_path / "killed").iterdir()] == ["checkpoint-000003"]
    resumed = distill(config, images, targets, root, tmp_path / "killed").with_format("torch")[:]
    for column in ("pixel_values", "target", "source_row"):
        assert torch.equal(whole[column], resumed[column])
    assert learned_step_size(tmp_path / "whole") == learned_step_size(tmp_path / "killed") != config.lr_init
    assert not torch.equal(whole["pixel_values"], images[whole["source_row"]])  # the images did move


def test_high_loss_init_picks_the_worst_fitted_rows(kd_data, tmp_path):
    images, targets, root = kd_data
    config = _config(iterations=1, eval_interval=1)
    model = new_student(config, images, targets.shape[1], seed=0)
    losses = kd_losses(model, sorted(root.glob("expert_*")), config.expert_train_epochs, images, targets)
    distilled = distill(config, images, targets, root, tmp_path)
    chosen = set(distilled.with_format("torch")[:]["source_row"].tolist())
    assert min(losses[sorted(chosen)]) > max(losses[[i for i in range(len(images)) if i not in chosen]])


def test_bad_inputs_have_clear_errors(kd_data, tmp_path):
    images, targets, root = kd_data
    config = _config()
    with pytest.raises(ValueError, match=r"do not fit a student for the teacher's 6-d representations"):
        distill(config, images, torch.cat([targets, targets[:, :1]], 1), root, tmp_path / "a")
    with pytest.raises(FileNotFoundError, match=r"no finished expert trajectories .* run `hfdc mkdt experts` first"):
        distill(config, images, targets, tmp_path / "empty", tmp_path / "b")
    with pytest.raises(ValueError, match=r"24 images but 23 teacher representations"):
        train_experts(config, images, targets[:-1], tmp_path / "c")
    with pytest.raises(ValueError, match="no training images to distil"):
        distill(config, images[:0], targets[:0], root, tmp_path / "d")
    broken = tmp_path / "broken"
    train_experts(dataclasses.replace(config, num_experts=1), images, targets, broken)
    epoch_file(broken / "expert_0000", 1).unlink()
    with pytest.raises(FileNotFoundError, match=r"epoch_001.safetensors is missing .* `hfdc mkdt experts`"):
        distill(dataclasses.replace(config, init="random"), images, targets, broken, tmp_path / "e")


def test_max_grad_norm_clips_the_joint_gradient(kd_data, tmp_path):
    images, targets, root = kd_data
    clipped = distill(_config(iterations=3, max_grad_norm=1e-8), images, targets, root, tmp_path / "a")
    tensors = clipped.with_format("torch")[:]
    moved = (tensors["pixel_values"] - images[tensors["source_row"]]).abs().max().item()
    state = json.loads(next((tmp_path / "a").glob("checkpoint-*")).joinpath("state.json").read_text())
    assert min(state["grad_norms"]) > 1e-4  # the norms before clipping are recorded
    assert moved < 100 * 1e-8 * 5 and abs(state["lr"] - 0.05) < 1e-4 * 1e-8 * 5 + 1e-8  # lr x (1 + 1.5 + 1.75) x clip
