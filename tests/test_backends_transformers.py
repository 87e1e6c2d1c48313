"""Transformers backend on tiny random models saved to disk (hfdc.models): seeded sampling, greedy, prompt building."""

import pytest
from PIL import Image

import hfdc.backends as backends
from hfdc.models import tiny, tiny_processor


def save_tiny(kind, path, chat_template=True):
    """Save ``tiny(kind)`` and its processor to ``path`` (without a chat template when asked)."""
    processor = tiny_processor(kind)
    if not chat_template:
        processor.chat_template = None
    tiny(kind).save_pretrained(path)
    processor.save_pretrained(path)
    return processor


@pytest.fixture(scope="module")
def llama_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny-llama")
    save_tiny("llama", path)
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
    prompt_lengths = [len(backend.encode(backends.base.to_messages(p))["input_ids"][0]) for p in prompts]
    assert backend.usage.prompt_tokens == 7 * sum(prompt_lengths)
    assert 0 < backend.usage.completion_tokens <= 6 * backend.usage.calls

    greedy = backend.generate(prompts, n=3, temperature=0.0, max_new_tokens=6, seed=0)
    assert all(len(set(samples)) == 1 for samples in greedy)
    assert backend.generate(prompts, n=1, temperature=0.0, max_new_tokens=6, seed=9) == [s[:1] for s in greedy]

    cached = backends.get(f"transformers:{llama_path}", cache_dir=tmp_path, progress=False)
    assert cached.generate(prompts, n=2, temperature=1.0, max_new_tokens=6, seed=0) == first
    rerun = backends.get(f"transformers:{llama_path}", cache_dir=tmp_path, progress=False)
    assert rerun.generate(prompts, n=2, temperature=1.0, max_new_tokens=6, seed=0) == first
    assert (cached.usage.calls, rerun.usage.calls, rerun.usage.cache_hits) == (4, 0, 4)


def test_prompt_uses_chat_template_else_joined_texts(llama_path, tmp_path):
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "what shape"}]
    with_template = backends.get(f"transformers:{llama_path}", use_cache=False, progress=False)
    tokenizer = with_template.tokenizer
    rendered = "<s><|system|>\nbe brief</s>\n<|user|>\nwhat shape</s>\n<|assistant|>\n"
    expected = tokenizer(rendered, add_special_tokens=False)["input_ids"]
    assert with_template.encode(messages)["input_ids"][0].tolist() == expected

    save_tiny("llama", tmp_path, chat_template=False)
    plain = backends.get(f"transformers:{tmp_path}", use_cache=False, progress=False)
    assert plain.encode(messages)["input_ids"][0].tolist() == tokenizer("be brief\nwhat shape")["input_ids"]
    image = [{"role": "user", "content": [{"type": "image", "image": Image.new("RGB", (2, 2))}]}]
    with pytest.raises(ValueError, match="text-only model"):
        plain.generate([image])


def test_vision_language_model_takes_images(tmp_path):
    processor = save_tiny("llava", tmp_path)
    backend = backends.get(f"transformers:{tmp_path}", use_cache=False, progress=False)
    image_token_id = backend.network.config.image_token_id
    prompt = [
        {
            "role": "user",
            "content": [
                {"type": "image", "image": Image.new("RGB", (32, 32), "red")},
                {"type": "text", "text": "what shape is red"},
            ],
        }
    ]
    inputs = backend.encode(prompt)
    patch_size = backend.network.config.vision_config.patch_size
    num_image_tokens = (processor.image_processor.size["shortest_edge"] // patch_size) ** 2
    assert int((inputs["input_ids"] == image_token_id).sum()) == num_image_tokens
    assert inputs["pixel_values"].shape[0] == 1
    first = backend.generate([prompt, "a red circle"], n=2, max_new_tokens=4, seed=3)
    assert backend.generate([prompt, "a red circle"], n=2, max_new_tokens=4, seed=3) == first
    assert first[0][0] != first[0][1]

    backend.processor.chat_template = None  # fallback: texts joined, image parts become the image token
    plain = backend.encode(prompt)
    assert int((plain["input_ids"] == image_token_id).sum()) == num_image_tokens
    ids = plain["input_ids"][0]
    assert backend.tokenizer.decode(ids[ids != image_token_id]) == "<s>\nwhat shape is red"
