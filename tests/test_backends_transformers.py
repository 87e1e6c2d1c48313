"""Transformers backend on a tiny random Llama saved to disk: seeded sampling, greedy decoding, chat template."""

import pytest
import torch
from PIL import Image
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

import hfdc.backends as backends

SENTENCES = ["a red circle left of a blue square", "the green triangle is above the circle", "what shape is red"]
CHAT_TEMPLATE = "{% for m in messages %}<{{ m['role'] }}> {{ m['content'] }} {% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}"


def tiny_llama(path, chat_template=None):
    """Save a 2-layer hidden-16 Llama with a word-level tokenizer on SENTENCES to ``path``."""
    vocab = {token: i for i, token in enumerate(["<unk>", "<s>", "</s>", "<pad>", "<user>", "<assistant>", "<system>"])}
    for word in sorted({w for s in SENTENCES for w in s.split()}):
        vocab.setdefault(word, len(vocab))
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="<pad>",
        chat_template=chat_template,
    )
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=64, bos_token_id=1, eos_token_id=2, pad_token_id=3,
    )
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return tokenizer


@pytest.fixture(scope="module")
def llama_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny-llama")
    tiny_llama(path)
    return path


def test_seeded_sampling_is_repeatable_and_seed_dependent(llama_path, tmp_path):
    prompts = ["a red circle", [{"role": "user", "content": "what shape is red"}]]
    backend = backends.get(f"transformers:{llama_path}", use_cache=False, progress=False)
    first = backend.generate(prompts, n=2, temperature=1.0, max_new_tokens=6, seed=0)
    assert backend.generate(prompts, n=2, temperature=1.0, max_new_tokens=6, seed=0) == first
    assert backend.generate(prompts, n=2, temperature=1.0, max_new_tokens=6, seed=1) != first
    assert first[0][0] != first[0][1]  # samples of one prompt use different seeds
    # a sample depends on (seed, prompt index, sample index) only, not on n
    assert backend.generate(prompts, n=1, temperature=1.0, max_new_tokens=6, seed=0) == [[first[0][0]], [first[1][0]]]
    assert backend.usage.calls == 4 * 3 + 2
    assert backend.usage.prompt_tokens == (3 + 4) * 7  # plain concatenation: the words of each prompt
    assert 0 < backend.usage.completion_tokens <= 6 * backend.usage.calls

    greedy = backend.generate(prompts, n=3, temperature=0.0, max_new_tokens=6, seed=0)
    assert all(len(set(samples)) == 1 for samples in greedy)
    assert backend.generate(prompts, n=1, temperature=0.0, max_new_tokens=6, seed=9) == [s[:1] for s in greedy]

    cached = backends.get(f"transformers:{llama_path}", cache_dir=tmp_path, progress=False)
    assert cached.generate(prompts, n=2, temperature=1.0, max_new_tokens=6, seed=0) == first
    rerun = backends.get(f"transformers:{llama_path}", cache_dir=tmp_path, progress=False)
    assert rerun.generate(prompts, n=2, temperature=1.0, max_new_tokens=6, seed=0) == first
    assert (cached.usage.calls, rerun.usage.calls, rerun.usage.cache_hits) == (4, 0, 4)


def test_chat_template_is_used_when_present(tmp_path):
    tokenizer = tiny_llama(tmp_path, chat_template=CHAT_TEMPLATE)
    backend = backends.get(f"transformers:{tmp_path}", use_cache=False, progress=False)
    messages = [{"role": "system", "content": "the green triangle"}, {"role": "user", "content": "what shape"}]
    inputs = backend.encode(messages)
    expected = tokenizer("<system> the green triangle <user> what shape <assistant>")["input_ids"]
    assert inputs["input_ids"][0].tolist() == expected
    image = [{"role": "user", "content": [{"type": "image", "image": Image.new("RGB", (2, 2))}]}]
    with pytest.raises(ValueError, match="text-only model"):
        backend.generate([image])
