"""CoLM building blocks: parameter block, zeroth-order features, Adam-style moments, sparsify, selection."""

import pytest
import torch

from hfdc.colm import (
    FeatureMoments,
    ZerothOrderFeatures,
    find_parameter_block,
    matching_error,
    matching_errors,
    select_small_batch,
    zeroth_order_features,
)
from hfdc.colm.features import per_example_loss
from hfdc.colm.moments import sparsify
from hfdc.models import tiny
from hfdc.submodular import facility_location


def _inputs(batch=4, length=10, seed=0):
    ids = torch.randint(3, 200, (batch, length), generator=torch.Generator().manual_seed(seed))
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone()}


def test_parameter_block_is_last_layer_and_lora_when_peft():
    model = tiny("llama")
    block = find_parameter_block(model, "v_proj")
    assert [name for name, _ in block] == ["model.layers.1.self_attn.v_proj.weight"]
    from peft import LoraConfig, get_peft_model

    peft_model = get_peft_model(model, LoraConfig(r=2, target_modules=["v_proj", "q_proj"]))
    names = [name for name, _ in find_parameter_block(peft_model, "v_proj")]  # the reference's block: LoRA B
    assert names == ["base_model.model.model.layers.1.self_attn.v_proj.lora_B.default.weight"]
    names = [name for name, _ in find_parameter_block(peft_model, "v_proj", lora_matrices="AB")]
    assert len(names) == 2 and all("layers.1.self_attn.v_proj.lora_" in n for n in names)
    with pytest.raises(ValueError, match="zo_parameters='w_proj' matches no parameter"):
        find_parameter_block(model, "w_proj")


def test_zeroth_order_features_match_the_directional_derivative():
    model = tiny("llama").double()
    block = find_parameter_block(model, "v_proj")
    inputs = _inputs()
    features = zeroth_order_features(model, block, inputs, eps=1e-4, seed=3).dense()
    z = torch.randn(block[0][1].numel(), generator=torch.Generator().manual_seed(3)).double()
    for i in range(2):  # exact per-example gradient via autograd, projected on z
        model.zero_grad()
        per_example_loss(model, {k: v[i : i + 1] for k, v in inputs.items()}).sum().backward()
        directional = float(block[0][1].grad.flatten() @ z)
        assert torch.allclose(features[i], directional * z, rtol=1e-4, atol=1e-9)


def test_feature_moments_adam_normalisation_and_state():
    moments = FeatureMoments(3, beta1=0.9, beta2=0.999, eps=0.0)
    g = ZerothOrderFeatures(
        torch.tensor([[2.0, 3.0], [-4.0, 0.5]]), torch.tensor([[1.0, -0.5, 0.25], [1.0, 1.0, 0.5]])
    )
    dense = g.dense()  # one row per example: slopes @ directions / 2
    assert torch.allclose(dense[0], torch.tensor([2.5, 1.0, 1.0]))
    assert torch.allclose(moments.features(g).take(torch.arange(2), torch.arange(3)), torch.sign(dense))  # g / |g|
    moments.update(g, torch.tensor([0]))
    assert (
        moments.step == 1
        and torch.allclose(moments.m, 0.1 * dense[0])
        and torch.allclose(moments.v, 0.001 * dense[0] ** 2)
    )
    m2 = 0.9 * 0.1 * dense[0] + 0.1 * dense
    v2 = 0.999 * 0.001 * dense[0] ** 2 + 0.001 * dense**2
    expected = (m2 / (1 - 0.9**2)) / (v2 / (1 - 0.999**2)).sqrt()
    features = moments.features(g)
    features.block_elements = 2  # one column per block
    assert torch.allclose(features.take(torch.arange(2), torch.arange(3)), expected)
    assert torch.allclose(features.means([(torch.arange(2), None)])[0], expected.mean(0))
    weights = torch.tensor([3.0, 1.0])
    assert torch.allclose(features.means([(torch.arange(2), weights)])[0], weights @ expected / 4)
    moments.update(g, torch.tensor([0, 1]))  # means over two rows, from the factored form
    assert torch.allclose(moments.m, 0.9 * 0.1 * dense[0] + 0.1 * dense.mean(0))
    assert torch.allclose(moments.v, 0.999 * 0.001 * dense[0] ** 2 + 0.001 * (dense**2).mean(0))
    restored = FeatureMoments(3)
    restored.load_state_dict(moments.state_dict())
    assert torch.equal(restored.m, moments.m) and restored.step == 2
    with pytest.raises(ValueError, match="dimension"):
        FeatureMoments(4).load_state_dict(moments.state_dict())


def test_sparsify_keeps_largest_mean_coordinates():
    mean = torch.tensor([1.0, -5.0, 0.0, 3.0])
    assert sorted(sparsify(mean, 2, "top").tolist()) == [1, 3]
    assert sorted(sparsify(mean, 2, "smallest").tolist()) == [0, 2]
    assert len(set(sparsify(mean, 3, "random", seed=1).tolist())) == 3
    assert sparsify(mean, 4).tolist() == [0, 1, 2, 3]


def test_selection_keeps_rare_sources_and_splits_budgets():
    features = torch.randn(16, 6, generator=torch.Generator().manual_seed(0))
    sources = torch.tensor([0] * 10 + [1] * 4 + [2] * 2)
    chosen = select_small_batch(features, sources, budget=8, keep_sources=(2,))
    picked = chosen.indices.tolist()
    assert picked[:2] == [14, 15] and len(set(picked)) == 8  # rare source first, all of it
    assert chosen.budgets == {0: 4, 1: 2}  # 6 left, proportional to 10 : 4 -> 4.3, 1.7 -> 4, 2
    assert [int(sources[i]) for i in picked[2:]] == [0] * 4 + [1] * 2
    assert chosen.weights[2:6].sum() == 10 and chosen.weights[6:].sum() == 4
    balanced = select_small_batch(features, sources, budget=8, keep_sources=(2,), budget_mode="balanced")
    assert balanced.budgets == {0: 3, 1: 3}  # 6 left over 2 sources: 3 each
    assert [int(sources[i]) for i in balanced.indices[2:]] == [0] * 3 + [1] * 3
    pooled = select_small_batch(features, sources, budget=8, keep_sources=(2,), budget_mode="none")
    assert pooled.budgets == {0: 6}  # one pool: facility location over sources 0 and 1 together
    together = facility_location(features[:14], k=6, metric="l1")
    assert pooled.indices[2:].tolist() == together.indices.tolist()
    with pytest.raises(ValueError, match="budget 17"):
        select_small_batch(features, sources, budget=17)
    bad = features.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        select_small_batch(bad, sources, budget=4)


def test_matching_error_and_selection_beats_random_on_clusters():
    x = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0], [0.0, 2.0]])
    assert matching_error(x, torch.tensor([0, 2])) == pytest.approx(
        float(torch.tensor([0.5, 1.0]).sub(torch.tensor([1.0, 1.0])).norm() / torch.tensor([1.0, 1.0]).norm())
    )
    weights = torch.tensor([1.0, 3.0])
    assert matching_errors(x, [(torch.tensor([0, 2]), None), (torch.tensor([1, 3]), weights)]) == pytest.approx(
        [matching_error(x, torch.tensor([0, 2])), matching_error(x, torch.tensor([1, 3]), weights)]
    )
    assert matching_error(x, torch.tensor([1, 3]), weights) == pytest.approx(
        float((torch.tensor([0.75, 1.5]) - torch.tensor([1.0, 1.0])).norm() / torch.tensor([1.0, 1.0]).norm())
    )
    # weighted medoids of well-separated clusters reproduce the mean closely
    gen = torch.Generator().manual_seed(1)
    centres = torch.randn(4, 8, generator=gen) * 5
    feats = torch.cat([c + 0.05 * torch.randn(8, 8, generator=gen) for c in centres]) + 3
    chosen = select_small_batch(feats, torch.zeros(32, dtype=torch.long), budget=4, similarity="l1")
    assert sorted(int(i) // 8 for i in chosen.indices) == [0, 1, 2, 3]  # one medoid per cluster
    assert matching_error(feats, chosen.indices, chosen.weights) < 0.02
    randoms = [matching_error(feats, torch.randperm(32, generator=gen)[:4]) for _ in range(50)]
    assert sum(randoms) / len(randoms) > 10 * matching_error(feats, chosen.indices, chosen.weights)


def test_chunked_features_equal_whole_batch_features():
    model = tiny("llama").double()  # float64: batch-shape rounding would otherwise show through the 1/(2 eps)
    block = find_parameter_block(model, "v_proj")
    inputs = _inputs(batch=6)
    whole = zeroth_order_features(model, block, inputs, seed=2).dense()
    chunked = zeroth_order_features(model, block, inputs, seed=2, chunk_size=4).dense()
    assert torch.allclose(whole, chunked, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("lora", [False, True])
def test_reusing_the_layer_prefix_gives_the_same_features_and_restores_weights(lora):
    model = tiny("llama", num_hidden_layers=3).double()
    if lora:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=2, target_modules=["v_proj"], init_lora_weights=False))
    block = find_parameter_block(model, "v_proj")
    before = [p.clone() for _, p in block]
    inputs = _inputs(batch=6)
    calls = []
    hooks = [
        layer.mlp.register_forward_hook(lambda m, a, o, i=i: calls.append(i))
        for i, layer in enumerate(model.get_submodule(block[0][0].split(".layers.")[0] + ".layers"))
    ]
    full = zeroth_order_features(model, block, inputs, seed=1, directions=3, chunk_size=4, reuse_prefix=False).dense()
    full_calls, calls[:] = list(calls), []
    reused = zeroth_order_features(model, block, inputs, seed=1, directions=3, chunk_size=4).dense()
    for hook in hooks:
        hook.remove()
    assert torch.allclose(full, reused, rtol=1e-9, atol=1e-12)
    assert all(torch.equal(p, b) for (_, p), b in zip(block, before))
    # 2 chunks x 3 directions x 2 signs = 12 passes; with the cache layers 0 and 1 compute once per chunk
    assert full_calls.count(0) == 12 and calls.count(0) == 2 and calls.count(1) == 2 and calls.count(2) == 12


def test_reusing_the_prefix_refuses_layers_that_return_tuples():
    model = tiny("llama")
    first = model.model.layers[0]
    forward = first.forward
    first.forward = lambda *args, **kwargs: (forward(*args, **kwargs),)
    block = find_parameter_block(model, "v_proj")
    with pytest.raises(TypeError, match="set zo_reuse_prefix=False"):
        zeroth_order_features(model, block, _inputs())
    assert torch.equal(block[0][1], find_parameter_block(tiny("llama"), "v_proj")[0][1])  # weights restored


def test_selection_on_blockwise_features_equals_selection_on_the_stored_matrix():
    gen = torch.Generator().manual_seed(4)
    g = ZerothOrderFeatures(torch.randn(24, 3, generator=gen), torch.randn(3, 50, generator=gen))
    moments = FeatureMoments(50)
    moments.update(g, torch.arange(6))
    lazy = moments.features(g)
    lazy.block_elements = 24 * 7  # 8 column blocks
    dense = lazy.take(torch.arange(24), torch.arange(50))
    sources = torch.arange(24) % 3
    a = select_small_batch(lazy, sources, budget=10, keep_sources=(2,), zo_dim=20)
    b = select_small_batch(dense, sources, budget=10, keep_sources=(2,), zo_dim=20)
    assert torch.equal(a.indices, b.indices) and torch.equal(a.weights, b.weights)
    assert matching_error(lazy, a.indices, a.weights) == pytest.approx(matching_error(dense, a.indices, a.weights))


@pytest.mark.parametrize("arch", ["phi", "gpt2"])
def test_reusing_the_prefix_is_exact_on_other_architectures(arch):
    import transformers

    config = (
        transformers.PhiConfig(
            vocab_size=200, hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4
        )
        if arch == "phi"
        else transformers.GPT2Config(vocab_size=200, n_embd=32, n_layer=3, n_head=4, bos_token_id=1, eos_token_id=2)
    )
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(config).double()
    block = find_parameter_block(model, "v_proj" if arch == "phi" else "c_attn")
    inputs = _inputs()
    full = zeroth_order_features(model, block, inputs, reuse_prefix=False).dense()
    assert torch.allclose(full, zeroth_order_features(model, block, inputs).dense(), rtol=1e-8, atol=1e-12)
    assert full.abs().max() > 0


def _slopes_by_autograd(model, block, inputs, z):
    """Directional derivatives of each example's loss along z (float64 autograd, one example at a time)."""
    out = []
    for i in range(len(inputs["labels"])):
        model.zero_grad()
        per_example_loss(model, {k: v[i : i + 1] for k, v in inputs.items()}).sum().backward()
        out.append(float(torch.cat([p.grad.flatten() for _, p in block]) @ z))
    model.zero_grad()
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize("reuse_prefix", [True, False])
@pytest.mark.parametrize("float32", [True, False])
def test_features_under_an_outer_autocast(reuse_prefix, float32):
    # autocast caches the low-precision copy of each weight: the perturbed block must not be read from that cache
    model = tiny("llama", num_hidden_layers=3)
    block = find_parameter_block(model, "v_proj")
    inputs = _inputs(batch=6)
    plain = zeroth_order_features(model, block, inputs, seed=3, reuse_prefix=reuse_prefix).slopes[:, 0]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = zeroth_order_features(model, block, inputs, seed=3, reuse_prefix=reuse_prefix, float32=float32)
    assert (mixed.slopes != 0).all()
    # float32 passes ignore the autocast (only the cached prefix ran in bf16); bf16 passes are ~15% off
    assert float((mixed.slopes[:, 0] - plain).norm() / plain.norm()) < (0.02 if float32 else 0.3)


def test_all_zero_slopes_raise():
    model = tiny("llama")
    model.model.layers[-1].self_attn.o_proj.weight.data.zero_()  # v_proj of the last layer no longer counts
    with pytest.raises(ValueError, match="every zeroth-order slope is exactly 0"):
        zeroth_order_features(model, find_parameter_block(model, "v_proj"), _inputs())


@pytest.mark.parametrize("reuse_prefix", [True, False])
def test_feature_passes_build_no_kv_cache(reuse_prefix):
    model = tiny("llama", num_hidden_layers=3)
    caches = []
    model.register_forward_hook(lambda module, args, output: caches.append(output.past_key_values))
    zeroth_order_features(
        model, find_parameter_block(model, "v_proj"), _inputs(), directions=2, reuse_prefix=reuse_prefix
    )
    assert caches and all(cache is None for cache in caches)


@pytest.mark.parametrize("dtype, tolerance", [(torch.bfloat16, 0.015), (torch.float16, 0.005)])
def test_low_precision_slopes_match_float64_autograd(dtype, tolerance):
    # a 12-layer model stored in bf16 / fp16: the perturbed passes run the block's layer onwards in float32
    low = tiny("llama", num_hidden_layers=12, seed=5).to(dtype)
    exact = tiny("llama", num_hidden_layers=12, seed=5).double()
    exact.load_state_dict({k: v.double() for k, v in low.state_dict().items()})
    inputs = _inputs(batch=6)
    block = find_parameter_block(low, "v_proj")
    before = block[0][1].clone()
    got = zeroth_order_features(low, block, inputs, seed=2).slopes[:, 0].double()
    assert torch.equal(block[0][1], before) and block[0][1].dtype == dtype
    z = torch.randn(block[0][1].numel(), generator=torch.Generator().manual_seed(2)).double()
    expected = _slopes_by_autograd(exact, find_parameter_block(exact, "v_proj"), inputs, z)
    assert float((got - expected).norm() / expected.norm()) < tolerance  # 0.19 (bf16) and 0.021 (fp16) in bf16


def test_sparsification_uses_each_sources_own_mean():
    # source 0 varies on coordinate 0 (its largest mean), source 1 on coordinate 1; zo_dim=1 keeps one coordinate
    # per source: selecting on a shared coordinate would pick other rows
    gen = torch.Generator().manual_seed(2)
    a = torch.stack([torch.tensor([5.0, 3.0, 9.0, 5.2, 8.8, 1.0]), 0.5 * torch.rand(6, generator=gen)], 1)
    b = torch.stack([0.5 * torch.rand(6, generator=gen), torch.tensor([-1.0, -7.0, -2.0, -6.5, -9.0, -1.2])], 1)
    features, sources = torch.cat([a, b]), torch.tensor([0] * 6 + [1] * 6)
    chosen = select_small_batch(features, sources, budget=4, zo_dim=1)
    expected = [facility_location(x[:, [c]], k=2, metric="l1").indices + 6 * c for c, x in enumerate((a, b))]
    assert chosen.indices.tolist() == torch.cat(expected).tolist()
    shared = [facility_location(x[:, [0]], k=2, metric="l1").indices + 6 * c for c, x in enumerate((a, b))]
    assert chosen.indices.tolist() != torch.cat(shared).tolist()


def test_per_example_loss_on_a_padded_batch():
    model = tiny("llama", num_hidden_layers=3)
    gen = torch.Generator().manual_seed(4)
    rows = [torch.randint(4, 200, (n,), generator=gen) for n in (9, 5, 7)]
    prompt = 3  # the first 3 tokens of each row are a masked prompt
    ids = torch.zeros(3, 9, dtype=torch.long)  # right padding with the pad id 0
    mask, labels = torch.zeros_like(ids), torch.full_like(ids, -100)
    for i, row in enumerate(rows):
        ids[i, : len(row)], mask[i, : len(row)], labels[i, prompt : len(row)] = row, 1, row[prompt:]
    got = per_example_loss(model, {"input_ids": ids, "attention_mask": mask, "labels": labels})
    for i, row in enumerate(rows):  # the model's own loss on the row alone, unpadded
        alone = labels[i : i + 1, : len(row)]
        assert float(got[i]) == pytest.approx(float(model(input_ids=row[None], labels=alone).loss), rel=1e-5)
