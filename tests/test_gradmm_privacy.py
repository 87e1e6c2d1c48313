"""GRADMM's differential privacy: per-example clipping and Gaussian noise whose std is (C/B) sqrt(2 ln(1.25/delta))/eps,
in the helper and in the class targets the generator matches."""

import pytest
import torch

from hfdc.data import load
from hfdc.gradmm import GradmmConfig, add_dp_noise, clip_to_norm, dp_noise_std
from hfdc.gradmm.generate import ClassProblems, generation_mode, real_subsets
from hfdc.gradmm.gradients import embed, label_gradient, target_gradient
from hfdc.gradmm.task import build_task
from hfdc.models import tiny, tiny_processor


def test_noise_std_is_the_gaussian_mechanism_formula():
    # C = 1, B = 25, eps = 0.05, delta = 1e-4: sqrt(2 ln 12500) = sqrt(18.866968) = 4.343612; / 25 / 0.05 -> * 0.8
    assert dp_noise_std(1.0, 25, 0.05, 1e-4) == pytest.approx(3.474890, rel=1e-6)
    # C = 2, B = 10, eps = 0.5, delta = 1e-5: sqrt(2 ln 125000) = sqrt(23.472139) = 4.844805; * 2 / 10 / 0.5
    assert dp_noise_std(2.0, 10, 0.5, 1e-5) == pytest.approx(1.937922, rel=1e-6)
    with pytest.raises(ValueError, match="dp_epsilon"):
        dp_noise_std(1.0, 10, 2.0, 1e-5)


def test_added_noise_has_the_requested_std_and_is_seeded():
    zeros = [torch.zeros(400, 300), torch.zeros(1000)]
    noisy = add_dp_noise(zeros, 0.37, torch.Generator().manual_seed(0))
    values = torch.cat([n.flatten() for n in noisy])
    assert values.std().item() == pytest.approx(0.37, rel=0.01)
    assert abs(values.mean().item()) < 0.005
    again = add_dp_noise(zeros, 0.37, torch.Generator().manual_seed(0))
    assert all(torch.equal(a, b) for a, b in zip(noisy, again))


def test_clipping_scales_the_joint_norm_to_the_bound():
    grads = [torch.tensor([3.0, 4.0]), torch.tensor([12.0])]  # joint norm 13
    clipped = clip_to_norm(grads, 1.0)
    assert torch.allclose(clipped[0], torch.tensor([3.0, 4.0]) / 13, atol=1e-6)
    assert torch.allclose(clipped[1], torch.tensor([12.0]) / 13, atol=1e-6)
    assert all(torch.equal(a, b) for a, b in zip(clip_to_norm(grads, 100.0), grads))  # under the bound: unchanged


def test_class_targets_are_clipped_per_example_and_noised_with_the_formula_std():
    torch.set_num_threads(1)
    model, tokenizer = tiny("llama", initializer_range=0.2), tiny_processor("llama")
    data = load("sentiment", n_train=60, n_validation=4, n_test=4)["train"]
    common = dict(dataset="sentiment", text_column="text", prompt=" It was", label_words=[" bad", " great"])
    common.update(real_per_class=5, filter_shots=0, evaluate=False, seed=3)
    task = build_task(tokenizer, common["prompt"], common["label_words"])

    def class_problems(**dp):
        config = GradmmConfig(**common, **dp)
        return ClassProblems(model, tokenizer, task, real_subsets(data, config, 2), config)

    clean_problems = class_problems()
    block, sequences, label = clean_problems.block, clean_problems.encoded[1], task.label_ids[1]
    with generation_mode(model, block):
        per_example = [label_gradient(model, block, embed(model, torch.tensor([ids])), label)[0] for ids in sequences]
        clean = clean_problems.target(1)[0]
        noisy = class_problems(dp=True, dp_clip_norm=10.0, dp_epsilon=0.5, dp_delta=1e-4).target(1)[0]
        clipped = target_gradient(model, block, sequences, label, clip_norm=1e-3)[0]
    norms = [g.norm().item() for g in per_example]
    assert max(norms) < 10.0 < 1e4 * min(norms)  # C = 10 clips none of them, C = 1e-3 clips all of them
    assert torch.allclose(clean, sum(per_example) / 5, atol=1e-7)
    noise = (noisy - clean).flatten()
    assert noise.std().item() == pytest.approx(dp_noise_std(10.0, 5, 0.5, 1e-4), rel=0.02)
    by_hand = sum(g * 1e-3 / n for g, n in zip(per_example, norms)) / 5
    assert torch.allclose(clipped, by_hand, rtol=1e-4, atol=1e-12)
    with pytest.raises(ValueError, match="dp_epsilon"):
        GradmmConfig(**common, dp=True, dp_epsilon=1.5)
    with pytest.raises(ValueError, match="filter_shots"):
        GradmmConfig(**{**common, "filter_shots": 2}, dp=True)
