"""GRADMM's ADMM on a tiny random Llama: the matching loss of x falls over the iterations, every z-step yields real
token ids inside their position's cosine top-k (the LM's pick among them), and the losses are the formulas."""

import math

import pytest
import torch
from transformers import PhiConfig, PhiForCausalLM

from hfdc.data import load
from hfdc.gradmm import GradmmConfig, admm
from hfdc.gradmm.generate import ClassProblems, generation_mode, real_subsets
from hfdc.gradmm.gradients import head_gradient, head_matching_loss, label_gradient, matching_loss, parameter_block
from hfdc.gradmm.task import build_task
from hfdc.models import tiny, tiny_processor


@pytest.fixture(scope="module")
def problems():
    """Class problems of the sentiment set for a tiny Llama with spread-out weights (init std 0.2), so that
    the gradients of different inputs differ."""
    torch.set_num_threads(1)
    config = GradmmConfig(
        model_name_or_path="tiny:llama",
        dataset="sentiment",
        text_column="text",
        prompt=" It was",
        label_words=[" bad", " great"],
        real_per_class=6,
        generation_batch_size=3,
        sequence_length=10,
        admm_inner_steps=4,
        topk=20,
        evaluate=False,
    )
    model, tokenizer = tiny("llama", initializer_range=0.2), tiny_processor("llama")
    data = load("sentiment", n_train=80, n_validation=4, n_test=4)["train"]
    task = build_task(tokenizer, config.prompt, config.label_words)
    problems = ClassProblems(model, tokenizer, task, real_subsets(data, config, 2), config)
    with generation_mode(model, problems.block):
        yield problems


def test_matching_loss_of_x_decreases_over_admm_iterations(problems):
    problem = problems[0]
    x0 = admm.initial_x(problem, torch.Generator().manual_seed(0), 2, problems.init_norm)
    start = problem.matching(problem.full_sequence(x0)).item()
    state = admm.run_admm(problem, admm.AdmmState.start(x0, problem.settings), steps=8)
    losses = [h["matching_loss"] for h in state.history]
    assert len(losses) == 8 and state.step == 8
    assert losses[-1] < 0.6 * start, (start, losses)
    assert sum(losses[-3:]) < sum(losses[:3]), losses
    assert state.best_objective == min(h["objective"] for h in state.history)


def test_every_z_is_real_token_ids_inside_its_positions_topk_chosen_by_the_lm(problems, monkeypatch):
    problem = problems[1]
    calls = []
    original = admm.z_step

    def recording(problem, query):
        ids = original(problem, query)
        calls.append((query.detach().clone(), ids))
        return ids

    monkeypatch.setattr(admm, "z_step", recording)
    x0 = admm.initial_x(problem, torch.Generator().manual_seed(1), 1, problems.init_norm)
    state = admm.run_admm(problem, admm.AdmmState.start(x0, problem.settings), steps=3)
    free_ids, _, _ = admm.decode_result(problem, state)
    assert len(calls) == 4 and torch.equal(calls[-1][1], free_ids)

    embeddings, allowed, k = problem.embeddings, problem.allowed, problem.settings.topk
    vocab = torch.nonzero(allowed).flatten()
    vectors = embeddings[vocab].double()
    model, context = problem.model, problem.context_ids[0].tolist()
    for query, ids in calls:
        assert ids.dtype == torch.long and ids.shape == (problem.batch_size, problem.free_length)
        for b in range(ids.shape[0]):
            for i in range(ids.shape[1]):
                token = int(ids[b, i])
                assert 0 <= token < len(embeddings) and bool(allowed[token])
                # cosine to every allowed token in float64, the k largest
                q = query[b, i].double()
                cos = vectors @ q / (vectors.norm(dim=1) * q.norm())
                topk = vocab[torch.argsort(cos, descending=True)[:k]].tolist()
                assert token in topk
                # the LM's most probable token of that set after the context and the tokens chosen before (no cache)
                with torch.no_grad():
                    logits = model(input_ids=torch.tensor([context + ids[b, :i].tolist()])).logits[0, -1]
                assert token == max(topk, key=lambda t: float(logits[t]))


def test_cosine_topk_ranks_allowed_tokens_by_cosine():
    embeddings = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.1, 2.0], [0.9, 0.1]])
    allowed = torch.tensor([True, True, True, False])
    query = torch.tensor([[[1.0, 1.0]]])  # cos: 0.707, 0.990, 0.742, (0.781 but not allowed)
    assert admm.cosine_topk(query, embeddings, allowed, 2)[0, 0].tolist() == [1, 2]
    assert admm.cosine_topk(query, embeddings, allowed, 9).shape == (1, 1, 3)  # k is capped at the allowed tokens


def test_dual_step_adds_rho_times_the_gap():
    lam, x, z = torch.tensor([0.5, -1.0]), torch.tensor([2.0, 0.25]), torch.tensor([1.5, 1.0])
    assert torch.allclose(admm.dual_step(lam, x, z, rho=0.7), torch.tensor([0.5 + 0.35, -1.0 - 0.525]))


def test_matching_losses_are_the_formulas():
    target = [torch.tensor([1.0, 2.0]), torch.tensor([3.0])]
    current = [torch.tensor([2.0, 1.0]), torch.tensor([-1.0])]
    cos_first = 1 - (2 + 2) / (math.sqrt(5) * math.sqrt(5))  # 1 - 0.8
    cos_second = 1 - (-3) / 3  # opposite directions: 2
    assert matching_loss(target, current, "cos").item() == pytest.approx((cos_first + cos_second) / 2)
    assert matching_loss(target, current, "l2").item() == pytest.approx(1 + 1 + 16)
    assert matching_loss(target, current, "l2_l1", l1_weight=0.5).item() == pytest.approx(18 + 0.5 * (1 + 1 + 4))


@pytest.mark.parametrize("kind", ["cos", "l2", "l2_l1"])
@pytest.mark.parametrize("with_bias", [False, True])
def test_factored_head_matching_equals_autograd_of_the_dense_gradient(kind, with_bias):
    """The LM-head path (no [V, d] tensor) gives the same loss and the same gradient w.r.t. x as double backward."""
    if with_bias:  # Phi's LM head has a bias
        config = PhiConfig(
            vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4
        )
        model = PhiForCausalLM(config).eval()
    else:
        model = tiny("llama", initializer_range=0.2)
    block = parameter_block(model)
    assert len(block) == (2 if with_bias else 1)
    generator = torch.Generator().manual_seed(0)
    target = [torch.randn(p.shape, generator=generator) * 0.01 for p in block]
    x = torch.randn(3, 7, model.config.hidden_size, generator=generator, requires_grad=True)
    dense = matching_loss(target, label_gradient(model, block, x, 5, create_graph=True), kind)
    factored = head_matching_loss(target, head_gradient(model, x, 5, create_graph=True), kind)
    (dense_grad,) = torch.autograd.grad(dense, x)
    (factored_grad,) = torch.autograd.grad(factored, x)
    assert factored.item() == pytest.approx(dense.item(), rel=1e-5)
    assert torch.allclose(factored_grad, dense_grad, rtol=1e-3, atol=1e-6 * dense_grad.abs().max().item())
