"""SAM / ASAM: one step equals the hand-computed two-pass update on a quadratic; SamTrainer does the same."""

import dataclasses

import pytest
import torch
from torch import nn
from transformers import PreTrainedConfig, PreTrainedModel, TrainingArguments
from transformers.modeling_outputs import SequenceClassifierOutput

from hfdc.optim import SAM, SamTrainer

A = torch.tensor([[3.0, 1.0], [1.0, 2.0]])
W0 = torch.tensor([1.0, -2.0])
LR, RHO, ETA = 0.1, 0.05, 0.01


def quadratic(w):
    return 0.5 * w @ A @ w


def hand_sam_step(w, adaptive=False):
    g = A @ w
    t = w.abs() + ETA if adaptive else torch.ones_like(w)
    e = RHO * t**2 * g / torch.linalg.norm(t * g)
    return w - LR * (A @ (w + e))


@pytest.mark.parametrize("adaptive", [False, True])
def test_sam_step_matches_hand_computed_update(adaptive):
    w = nn.Parameter(W0.clone())
    opt = SAM(torch.optim.SGD([w], lr=LR), rho=RHO, adaptive=adaptive)

    def closure():
        opt.zero_grad()
        loss = quadratic(w)
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert loss.item() == pytest.approx(quadratic(W0).item())
    torch.testing.assert_close(w.detach(), hand_sam_step(W0, adaptive))
    # SAM differs from the plain gradient step here
    assert not torch.allclose(w.detach(), W0 - LR * (A @ W0))


def test_split_form_and_errors():
    w = nn.Parameter(W0.clone())
    opt = SAM(torch.optim.SGD([w], lr=LR), rho=RHO)
    schedule = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    with pytest.raises(ValueError, match="backward"):
        opt.perturb()
    with pytest.raises(ValueError, match="perturb"):
        opt.step()
    quadratic(w).backward()
    opt.perturb()
    quadratic(w).backward()
    opt.step()
    torch.testing.assert_close(w.detach(), hand_sam_step(W0))
    base = opt.base_optimizer
    schedule.step()  # a scheduler on SAM drives the base optimizer's learning rate
    assert base.param_groups[0]["lr"] == pytest.approx(LR / 2)
    opt.load_state_dict(opt.state_dict())
    assert opt.param_groups is base.param_groups
    with pytest.raises(ValueError, match="rho"):
        SAM(torch.optim.SGD([w], lr=LR), rho=0)


class _QuadConfig(PreTrainedConfig):
    model_type = "hfdc_test_quadratic"


class _Quadratic(PreTrainedModel):
    config_class = _QuadConfig

    def __init__(self, config):
        super().__init__(config)
        self.w = nn.Parameter(W0.clone())

    def forward(self, x, labels=None):
        loss = 0.5 * self.w @ A @ self.w + 0.0 * x.sum()
        return SequenceClassifierOutput(loss=loss, logits=x)


def test_sam_trainer_takes_the_sam_step(tmp_path):
    from datasets import Dataset

    args = TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=1,
        per_device_train_batch_size=1,
        learning_rate=LR,
        optim="sgd",
        lr_scheduler_type="constant",
        weight_decay=0.0,
        max_grad_norm=0.0,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
    )
    model = _Quadratic(_QuadConfig())
    data = Dataset.from_dict({"x": [[0.0]], "labels": [0]})
    trainer = SamTrainer(model=model, args=args, train_dataset=data, rho=RHO)
    trainer.train()
    torch.testing.assert_close(model.w.detach(), hand_sam_step(W0))
    with pytest.raises(ValueError, match="gradient_accumulation_steps"):
        SamTrainer(
            model=model,
            args=TrainingArguments(output_dir=str(tmp_path), gradient_accumulation_steps=2, report_to=[]),
            rho=RHO,
        )


class _NormConfig(PreTrainedConfig):
    model_type = "hfdc_test_batchnorm"


class _BatchNormClassifier(PreTrainedModel):
    """BatchNorm straight on the input, then a linear head: the running mean after a step is hand-computable."""

    config_class = _NormConfig

    def __init__(self, config):
        super().__init__(config)
        self.norm = nn.BatchNorm1d(2)
        self.head = nn.Linear(2, 2)

    def forward(self, x, labels=None):
        logits = self.head(self.norm(x))
        return SequenceClassifierOutput(loss=nn.functional.cross_entropy(logits, labels), logits=logits)


def test_sam_trainer_updates_batchnorm_statistics_once_per_step(tmp_path):
    from datasets import Dataset

    x = [[0.3, -1.2], [1.7, 0.4], [-0.5, 2.6], [0.9, 0.1]]
    args = TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=1,
        per_device_train_batch_size=4,
        learning_rate=LR,
        optim="sgd",
        report_to=[],
        save_strategy="no",
        use_cpu=True,
    )
    model = _BatchNormClassifier(_NormConfig())
    data = Dataset.from_dict({"x": x, "labels": [0, 1, 1, 0]})
    SamTrainer(model=model, args=args, train_dataset=data, rho=RHO).train()
    # one update from the batch at w: mean 0 -> momentum * batch mean (a second, perturbed pass would give 0.19 x)
    assert model.norm.num_batches_tracked.item() == 1
    torch.testing.assert_close(model.norm.running_mean, 0.1 * torch.tensor(x).mean(0))
    assert model.norm.track_running_stats  # restored after the perturbed pass
    args = dataclasses.replace(args, max_steps=3, per_device_train_batch_size=2)
    SamTrainer(model=model, args=args, train_dataset=data, rho=RHO).train()
    assert model.norm.num_batches_tracked.item() == 4


def test_asam_perturbs_zero_initialised_parameters():
    w0 = torch.tensor([0.0, -2.0])
    w = nn.Parameter(w0.clone())
    opt = SAM(torch.optim.SGD([w], lr=LR), rho=RHO, adaptive=True)
    quadratic(w).backward()
    opt.perturb()
    g, t = A @ w0, w0.abs() + ETA  # T_w = |w| + eta: the zero coordinate still moves
    e = RHO * t**2 * g / torch.linalg.norm(t * g)
    torch.testing.assert_close(w.detach(), w0 + e)
    assert w[0].item() != 0.0
