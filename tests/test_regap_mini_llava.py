"""hfdc.models.mini_llava: a LLaVA from a CLIP tower folder + a causal-LM folder, saved and loaded back."""

import pytest
import torch
from PIL import Image
from transformers import AutoProcessor, LlavaForConditionalGeneration, PreTrainedTokenizerFast

from benchmarks.assets import asset_path
from hfdc.models import mini_llava, tiny, tiny_processor, tiny_tokenizer
from tests.assets_fixtures import requires_asset

IMAGE = Image.new("RGB", (32, 32), (200, 60, 20))


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    root = tmp_path_factory.mktemp("parts")
    clip, llama = tiny("clip", seed=4), tiny("llama", seed=5)
    clip.save_pretrained(root / "clip")
    tiny_processor("clip").save_pretrained(root / "clip")
    llama.save_pretrained(root / "llama")
    tiny_processor("llama").save_pretrained(root / "llama")
    # the same LM with a tokenizer that declares no image token (as most text LMs)
    llama.save_pretrained(root / "text_lm")
    tokenizer = tiny_tokenizer()
    PreTrainedTokenizerFast(
        tokenizer_object=tokenizer.backend_tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        chat_template=tokenizer.chat_template,
    ).save_pretrained(root / "text_lm")
    return root, clip, llama


def _chat(processor, text="what is this?"):
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]
    return processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def test_parts_keep_their_weights_and_the_projector_is_fresh_and_seeded(parts):
    root, clip, llama = parts
    model, processor = mini_llava(str(root / "clip"), str(root / "llama"), seed=7)
    for name, value in clip.vision_model.state_dict().items():
        assert torch.equal(model.model.vision_tower.state_dict()[name], value), name
    for name, value in llama.model.state_dict().items():
        assert torch.equal(model.model.language_model.state_dict()[name], value), name
    assert torch.equal(model.lm_head.weight, llama.lm_head.weight)
    same, _ = mini_llava(str(root / "clip"), str(root / "llama"), seed=7)
    other, _ = mini_llava(str(root / "clip"), str(root / "llama"), seed=8)
    weight = model.model.multi_modal_projector.linear_1.weight
    assert torch.equal(weight, same.model.multi_modal_projector.linear_1.weight)
    assert not torch.equal(weight, other.model.multi_modal_projector.linear_1.weight)
    assert model.config.vision_feature_layer == -2 and model.config.image_seq_length == 16
    text = _chat(processor)
    assert "<image>\nwhat is this?" in text
    enc = processor(text=text, images=[IMAGE], add_special_tokens=False, return_tensors="pt")
    assert int((enc["input_ids"] == model.config.image_token_id).sum()) == 16  # (32 / 8)^2 patches


def test_a_missing_image_token_is_added_below_the_vocab_size_and_round_trips(parts, tmp_path):
    root, _, llama = parts
    with pytest.raises(ValueError, match="declares image_token '<image>'; pass image_token='<image>'"):
        mini_llava(str(root / "clip"), str(root / "llama"), image_token="<img>")
    model, processor = mini_llava(str(root / "clip"), str(root / "text_lm"), image_token="<img>")
    vocab = llama.config.vocab_size
    assert model.config.image_token_id == vocab and model.config.text_config.vocab_size == vocab + 1
    assert torch.equal(model.lm_head.weight[:vocab], llama.lm_head.weight)
    enc = processor(text=_chat(processor), images=[IMAGE], add_special_tokens=False, return_tensors="pt")
    assert int((enc["input_ids"] == vocab).sum()) == 16
    with torch.no_grad():
        logits = model(**enc).logits
    model.save_pretrained(tmp_path / "llava")
    processor.save_pretrained(tmp_path / "llava")
    loaded = LlavaForConditionalGeneration.from_pretrained(tmp_path / "llava").eval()
    reloaded = AutoProcessor.from_pretrained(tmp_path / "llava")
    again = reloaded(text=_chat(reloaded), images=[IMAGE], add_special_tokens=False, return_tensors="pt")
    assert torch.equal(again["input_ids"], enc["input_ids"])
    with torch.no_grad():
        assert torch.allclose(loaded(**again).logits, logits, atol=1e-5)


def test_strategy_and_crop_size_errors(parts, tmp_path):
    root, clip, _ = parts
    with pytest.raises(ValueError, match="vision_feature_select_strategy must be 'default' or 'full'"):
        mini_llava(str(root / "clip"), str(root / "llama"), vision_feature_select_strategy="cls")
    clip.save_pretrained(tmp_path / "clip")
    tiny_processor("clip", image_size=48).save_pretrained(tmp_path / "clip")
    with pytest.raises(ValueError, match="crops to 48x48 but the tower takes image_size=32"):
        mini_llava(str(tmp_path / "clip"), str(root / "llama"))


@requires_asset("smollm2-135m-instruct")
def test_mini_llava_with_smollm2(parts):
    root, _, _ = parts
    model, processor = mini_llava(str(root / "clip"), str(asset_path("smollm2-135m-instruct")))
    assert model.config.image_token_id == 49152 < model.config.text_config.vocab_size == 49153
    assert model.lm_head.weight is model.model.language_model.embed_tokens.weight  # SmolLM2 ties them
    text = _chat(processor)
    assert text.startswith("<|im_start|>system\n") and "<|im_start|>user\n<image>\nwhat is this?<|im_end|>" in text
    enc = processor(text=text, images=[IMAGE], add_special_tokens=False, return_tensors="pt")
    out = model.generate(**enc, max_new_tokens=3, do_sample=False)
    assert out.shape[1] == enc["input_ids"].shape[1] + 3
