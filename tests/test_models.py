"""Tiny model factories: seeding, save/load round trips, processors, and that each model trains/runs."""

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import (
    AutoModelForImageClassification,
    AutoProcessor,
    AutoTokenizer,
    CLIPModel,
    LlamaForCausalLM,
    LlavaForConditionalGeneration,
)

from hfdc.models import KINDS, image_transform, tiny, tiny_processor


def _images(n: int, size: int = 32, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)) for _ in range(n)]


def _assert_same_state(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


def test_unknown_kind_and_bad_override_raise():
    with pytest.raises(ValueError, match="llama"):
        tiny("gpt7")
    with pytest.raises(ValueError, match="hidden_sise"):
        tiny("llama", hidden_sise=64)
    with pytest.raises(ValueError, match="text_config"):
        tiny("llava", text_config={"hiden": 3})
    with pytest.raises(ValueError, match="image_token_id"):
        tiny("llava", image_token_id=5000)
    with pytest.raises(ValueError, match="gpt7"):
        tiny_processor("gpt7")


def test_seed_controls_weights_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a, b, c = tiny("convnet", seed=1), tiny("convnet", seed=1), tiny("convnet", seed=2)
    assert torch.equal(torch.rand(1), before)
    _assert_same_state(a, b)
    assert not torch.equal(a.classifier.weight, c.classifier.weight)
    assert tiny("llama", hidden_size=64, num_attention_heads=8).config.hidden_size == 64


def test_tokenizer_round_trip_and_chat_template(tmp_path):
    tok = tiny_processor("llama")
    text = "The quick brown fox jumps over the lazy dog. Ünïcödé 😀 and <tags>!"
    ids = tok(text).input_ids
    assert ids[0] == tok.bos_token_id and tok.eos_token_id not in ids
    assert tok.decode(ids, skip_special_tokens=True) == text
    assert len(tok("the red circle").input_ids) == 4  # <s> + three whole-word tokens from the built-in corpus
    assert {tok.pad_token_id, tok.bos_token_id, tok.eos_token_id} == {0, 1, 3} and len(tok) == 1024
    chat = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert chat == "<s><|user|>\nhi</s>\n<|assistant|>\n"
    messages = [{"role": "user", "content": "hi"}]
    chat_ids = tok.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"]
    assert chat_ids[:2] == [tok.bos_token_id, tok.encode("<|", add_special_tokens=False)[0]] and chat_ids.count(1) == 1
    tok.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert loaded(text).input_ids == ids and loaded.chat_template == tok.chat_template
    clip_tok = tiny_processor("clip").tokenizer
    assert clip_tok("a dog").input_ids[-1] == clip_tok.eos_token_id


def test_llama_save_load_and_generate(tmp_path):
    model, tok = tiny("llama"), tiny_processor("llama")
    assert model.config.vocab_size == len(tok)
    inputs = tok(["hello there", "a red circle is left"], return_tensors="pt", padding=True)
    logits = model(**inputs).logits
    model.save_pretrained(tmp_path)
    loaded = LlamaForCausalLM.from_pretrained(tmp_path)
    _assert_same_state(model, loaded)
    assert torch.equal(loaded(**inputs).logits, logits)
    out = model.generate(**inputs, max_new_tokens=5, do_sample=False, pad_token_id=tok.pad_token_id)
    assert out.shape == (2, inputs.input_ids.shape[1] + 5)


def test_llava_processor_forward_generate_and_round_trip(tmp_path):
    model, processor = tiny("llava"), tiny_processor("llava")
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What shape?"}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    inputs = processor(images=_images(1), text=prompt, return_tensors="pt")
    assert (inputs.input_ids == model.config.image_token_id).sum().item() == (32 // 8) ** 2
    logits = model(**inputs).logits
    assert logits.shape == (1, inputs.input_ids.shape[1], 1024)
    out = model.generate(**inputs, max_new_tokens=3, do_sample=False)
    assert out.shape[1] == inputs.input_ids.shape[1] + 3
    model.save_pretrained(tmp_path / "model")
    processor.save_pretrained(tmp_path / "processor")
    loaded, loaded_processor = (
        LlavaForConditionalGeneration.from_pretrained(tmp_path / "model"),
        AutoProcessor.from_pretrained(tmp_path / "processor"),
    )
    _assert_same_state(model, loaded)
    again = loaded_processor(images=_images(1), text=prompt, return_tensors="pt")
    assert torch.equal(again.input_ids, inputs.input_ids)
    assert torch.equal(again.pixel_values, inputs.pixel_values)
    assert torch.equal(loaded(**again).logits, logits)


def test_clip_features_and_round_trip(tmp_path):
    model, processor = tiny("clip"), tiny_processor("clip")
    inputs = processor(images=_images(3), text=["a red circle", "a dog", "x"], return_tensors="pt", padding=True)
    image_embeds = model.get_image_features(pixel_values=inputs.pixel_values).pooler_output
    text_embeds = model.get_text_features(input_ids=inputs.input_ids, attention_mask=inputs.attention_mask)
    text_embeds = text_embeds.pooler_output
    assert image_embeds.shape == text_embeds.shape == (3, model.config.projection_dim)
    logits = model(**inputs).logits_per_image
    assert logits.shape == (3, 3)
    model.save_pretrained(tmp_path / "model")
    processor.save_pretrained(tmp_path / "processor")
    loaded = CLIPModel.from_pretrained(tmp_path / "model")
    _assert_same_state(model, loaded)
    again = AutoProcessor.from_pretrained(tmp_path / "processor")(
        images=_images(3), text=["a red circle", "a dog", "x"], return_tensors="pt", padding=True
    )
    assert torch.equal(loaded(**again).logits_per_image, logits)


@pytest.mark.parametrize("kind", ["convnet", "resnet"])
def test_classifier_trains_and_round_trips(kind, tmp_path):
    model = tiny(kind, num_labels=4, image_size=16)
    torch.manual_seed(0)
    pixel_values, labels = torch.randn(8, 3, 16, 16), torch.tensor([0, 1, 2, 3] * 2)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(20):
        loss = model(pixel_values, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    model.eval()
    model.save_pretrained(tmp_path)
    loaded = AutoModelForImageClassification.from_pretrained(tmp_path).eval()
    assert type(loaded) is type(model)
    _assert_same_state(model, loaded)
    assert torch.equal(loaded(pixel_values).logits, model(pixel_values).logits)
    assert model.embed(pixel_values).shape[0] == 8


def test_grayscale_convnet_trains_in_trainer_with_image_transform(tmp_path):
    from datasets import ClassLabel, Dataset, Features
    from datasets import Image as ImageFeature
    from transformers import Trainer, TrainingArguments

    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8), "L") for _ in range(8)]
    features = Features(image=ImageFeature(), label=ClassLabel(names=["a", "b"]))
    data = Dataset.from_dict({"image": images, "label": [0, 1] * 4}, features=features)
    data.set_transform(image_transform("L"))
    batch = data[:2]
    assert batch["pixel_values"].shape == (2, 1, 8, 8) and batch["label"] == [0, 1]
    expected = (np.asarray(images[0], dtype=np.float32) / 255 - 0.5) / 0.5
    assert np.allclose(batch["pixel_values"][0, 0].numpy(), expected, atol=1e-6)
    model = tiny("convnet", num_channels=1, image_size=8, num_labels=2)
    with pytest.raises(ValueError, match="num_channels"):
        model(torch.zeros(1, 3, 8, 8))
    args = TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=15,
        per_device_train_batch_size=8,
        learning_rate=0.01,
        remove_unused_columns=False,
        report_to=[],
        use_cpu=True,
        save_strategy="no",
        disable_tqdm=True,
        seed=0,
    )
    trainer = Trainer(model=model, args=args, train_dataset=data, eval_dataset=data)
    before = trainer.evaluate()["eval_loss"]
    trainer.train()
    assert trainer.evaluate()["eval_loss"] < 0.5 * before


def test_images_scale_to_unit_range_and_round_trip():
    from hfdc.models.images import pixel_values, to_pil

    images = [Image.new("RGB", (40, 48), (0, 255, 51)), Image.new("RGB", (32, 32), (10, 128, 200))]
    x = pixel_values(images, "RGB", size=32)
    assert x.shape == (2, 3, 32, 32)
    assert torch.allclose(x[0, :, 0, 0], torch.tensor([-1.0, 1.0, 51 / 127.5 - 1]))
    assert torch.allclose(x[1, :, 5, 7], torch.tensor([10 / 127.5 - 1, 128 / 127.5 - 1, 200 / 127.5 - 1]), atol=1e-6)
    assert np.array_equal(np.asarray(to_pil(x[1], "RGB")), np.asarray(images[1]))
    grey = pixel_values([images[1]], "L")
    assert grey.shape == (1, 1, 32, 32) and np.array_equal(
        np.asarray(to_pil(grey[0], "L")), np.asarray(images[1].convert("L"))
    )
    with pytest.raises(ValueError, match="hfdc.models.images"):
        tiny_processor("convnet")


def test_unet_class_conditional_round_trip(tmp_path):
    from diffusers import UNet2DModel

    unet = tiny("unet", num_class_embeds=3)
    sample, timestep, labels = torch.randn(2, 3, 32, 32), torch.tensor([10, 500]), torch.tensor([0, 2])
    with torch.no_grad():
        out = unet(sample, timestep, class_labels=labels).sample
        other = unet(sample, timestep, class_labels=torch.tensor([1, 1])).sample
    assert out.shape == sample.shape and not torch.allclose(out, other)
    unet.save_pretrained(tmp_path)
    loaded = UNet2DModel.from_pretrained(tmp_path)
    _assert_same_state(unet, loaded)
    with torch.no_grad():
        assert torch.equal(loaded(sample, timestep, class_labels=labels).sample, out)


def test_img2img_pipeline_size_seed_and_round_trip(tmp_path):
    from diffusers import StableDiffusionImg2ImgPipeline

    pipe = tiny("img2img")
    image = _images(1)[0]

    def run(p, seed):
        return p(
            prompt="a red circle",
            image=image,
            num_inference_steps=2,
            strength=0.5,
            output_type="np",
            generator=torch.Generator().manual_seed(seed),
        ).images

    first = run(pipe, 0)
    assert first.shape == (1, 32, 32, 3)
    assert np.array_equal(first, run(pipe, 0)) and not np.array_equal(first, run(pipe, 1))
    pipe.save_pretrained(tmp_path)
    loaded = StableDiffusionImg2ImgPipeline.from_pretrained(tmp_path)
    _assert_same_state(pipe.unet, loaded.unet)
    np.testing.assert_allclose(run(loaded, 0), first, atol=1e-5)  # reloaded components differ in float rounding only


def test_every_kind_builds_small_and_seeded():
    for kind in KINDS:
        if kind != "img2img":
            model = tiny(kind)
            assert 0 < sum(p.numel() for p in model.parameters()) < 500_000, kind
            _assert_same_state(model, tiny(kind))


def test_classifier_for_sizes_the_model_to_the_data_set():
    from hfdc.data import load
    from hfdc.models import classifier_for

    digits = load("digits", n_train=20, n_validation=10, n_test=10)["train"]
    model = classifier_for("convnet", digits, seed=3, width=8)
    assert (model.config.num_labels, model.config.num_channels, model.config.image_size) == (10, 1, 8)
    assert model.config.width == 8
    _assert_same_state(model, classifier_for("convnet", digits, seed=3, width=8))
    patches = load("feature_patches", num_classes=3, dim=8, n_train=6, n_validation=3, n_test=3)["train"]
    cnn = classifier_for("two_layer_cnn", patches)
    assert (cnn.config.num_labels, cnn.config.dim) == (3, 8)
    with pytest.raises(ValueError, match="feature patches"):
        classifier_for("two_layer_cnn", digits)
    with pytest.raises(ValueError, match="one of"):
        classifier_for("vit", digits)
