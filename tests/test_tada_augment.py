"""TADA: SDEdit generators, resumable sharded augmentation, the DDPM trainer and the recipe, on digits."""

import numpy as np
import pytest
import torch
from datasets import Dataset
from diffusers.configuration_utils import FrozenDict

import hfdc.data
from hfdc.models import tiny
from hfdc.tada import (
    PipelineGenerator,
    TadaConfig,
    UNetGenerator,
    augment,
    build_unet,
    train_ddpm,
    train_tada,
    with_synthetic,
)


@pytest.fixture(scope="module")
def digits():
    return hfdc.data.load("digits", n_train=120, n_validation=20, n_test=60)


def small_unet(classes=10):
    return tiny(
        "unet",
        sample_size=8,
        in_channels=1,
        out_channels=1,
        num_class_embeds=classes,
        block_out_channels=(8, 16),
        attention_head_dim=4,
    )


def unet_generator(**kwargs):
    from diffusers import DDPMScheduler

    return UNetGenerator(small_unet(), DDPMScheduler(num_train_timesteps=1000), num_inference_steps=10, **kwargs)


class Counting:
    """Wraps a generator; counts calls and fails after ``fail_after`` calls (an interrupted run)."""

    def __init__(self, inner, fail_after=None):
        self.inner, self.fail_after, self.calls = inner, fail_after, 0
        self.images_per_example = inner.images_per_example

    def generate(self, *args):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise KeyboardInterrupt("simulated interruption")
        self.calls += 1
        return self.inner.generate(*args)


def pixels(dataset):
    return [np.asarray(im) for im in dataset["image"]]


def test_interrupted_augmentation_resumes_without_regenerating(tmp_path, digits):
    torch.set_num_threads(1)
    train, indices = digits["train"], list(range(0, 50, 2))  # 25 rows -> shards of 10, 10, 5; batches of 5
    reference = augment(
        train, indices, Counting(unet_generator()), tmp_path / "ref", batch_size=5, shard_size=10, seed=3
    )
    first = Counting(unet_generator(), fail_after=3)  # dies inside shard 1 (its first batch done)
    with pytest.raises(KeyboardInterrupt):
        augment(train, indices, first, tmp_path / "run", batch_size=5, shard_size=10, seed=3)
    assert sorted(p.name for p in (tmp_path / "run").glob("shard-*")) == ["shard-00000"]
    second = Counting(unet_generator())
    resumed = augment(train, indices, second, tmp_path / "run", batch_size=5, shard_size=10, seed=3)
    assert second.calls == 3  # shards 1 and 2 only (2 + 1 batches); shard 0 was not regenerated
    assert (
        resumed["source_index"] == indices
        and all(resumed["synthetic"])
        and resumed["label"] == [train[i]["label"] for i in indices]
    )
    assert all(
        np.array_equal(a, b) for a, b in zip(pixels(resumed), pixels(reference), strict=True)
    )  # same images as one uninterrupted run
    # a finished folder is reused as is; different settings in the same folder are refused
    third = Counting(unet_generator())
    augment(train, indices, third, tmp_path / "run", batch_size=5, shard_size=10, seed=3)
    assert third.calls == 0
    with pytest.raises(ValueError, match="changed: seed"):
        augment(train, indices, third, tmp_path / "run", batch_size=5, shard_size=10, seed=4)


def test_sdedit_strength_controls_faithfulness(digits):
    torch.set_num_threads(1)
    images, labels = digits["train"][:8]["image"], digits["train"][:8]["label"]
    names = digits["train"].features["label"].names
    src = np.stack([np.asarray(im, dtype=float) for im in images])

    def distance(strength):
        out = unet_generator(strength=strength).generate(images, labels, names, seed=0)
        assert [im.size for im in out] == [im.size for im in images] and out[0].mode == "L"
        return np.abs(np.stack([np.asarray(im, dtype=float) for im in out]) - src).mean()

    near, far = distance(0.1), distance(1.0)
    assert (
        near < 10 < far
    )  # 0-255 scale: one step from t=100 keeps the image, the full chain of a random UNet does not
    from diffusers import DDPMScheduler

    unconditional = UNetGenerator(small_unet(None), DDPMScheduler(), strength=0.1, num_inference_steps=10)
    assert not unconditional.conditional and len(unconditional.generate(images[:2], labels[:2], names, seed=0)) == 2
    two = unet_generator(images_per_example=2).generate(images[:3], labels[:3], names, seed=0)
    assert len(two) == 6 and not np.array_equal(np.asarray(two[0]), np.asarray(two[1]))


def test_img2img_pipeline_generator_and_bad_pipeline(digits):
    torch.set_num_threads(1)
    from diffusers import DDPMPipeline, DDPMScheduler

    pipeline = tiny("img2img")
    generator = PipelineGenerator(pipeline, strength=0.5, num_inference_steps=4, images_per_example=2, image_size=16)
    images, labels = digits["train"][:3]["image"], digits["train"][:3]["label"]
    out = generator.generate(images, labels, digits["train"].features["label"].names, seed=0)
    assert len(out) == 6 and {im.size for im in out} == {(8, 8)} and {im.mode for im in out} == {"L"}
    with pytest.raises(ValueError, match="not an img2img pipeline"):
        PipelineGenerator(DDPMPipeline(small_unet(None), DDPMScheduler()))
    with pytest.raises(ValueError, match="label"):
        PipelineGenerator(pipeline, prompt_template="a photo")


def test_loaded_generators_take_the_torch_dtype(tmp_path):
    from diffusers import DDPMScheduler

    from hfdc.tada import build_generator

    small_unet().save_pretrained(tmp_path / "unet")
    DDPMScheduler().save_pretrained(tmp_path / "unet")
    common = dict(output_dir=str(tmp_path), torch_dtype="bfloat16", use_cpu=True)
    folder = build_generator(TadaConfig(generator=str(tmp_path / "unet"), **common), None)
    assert isinstance(folder, UNetGenerator) and folder.unet.dtype == torch.bfloat16
    pipeline = build_generator(TadaConfig(generator="tiny-img2img", **common), None).pipeline
    assert pipeline.unet.dtype == pipeline.vae.dtype == torch.bfloat16
    with pytest.raises(ValueError, match="torch_dtype='half' is not allowed"):
        TadaConfig(output_dir=str(tmp_path), torch_dtype="half")


def test_with_synthetic_flags_and_sources(digits):
    train = digits["train"].select(range(6))
    fake = Dataset.from_dict(
        {
            "image": [train[1]["image"], train[4]["image"]],
            "label": [train[1]["label"], train[4]["label"]],
            "synthetic": [True, True],
            "source_index": [1, 4],
        }
    )
    out = with_synthetic(train, fake)
    assert (
        len(out) == 8
        and out["synthetic"] == [False] * 6 + [True] * 2
        and out["source_index"] == [0, 1, 2, 3, 4, 5, 1, 4]
    )
    assert out.features["label"] == train.features["label"]


def test_ddpm_training_lowers_denoising_loss(tmp_path, digits):
    torch.set_num_threads(1)
    from diffusers import DDPMScheduler

    from hfdc.models.images import pixel_values

    train = digits["train"]
    x0 = pixel_values(train[:64]["image"], "L")
    y = torch.tensor(train[:64]["label"])
    g = torch.Generator().manual_seed(0)
    noise, t = torch.randn(x0.shape, generator=g), torch.randint(0, 1000, (64,), generator=g)

    def loss(unet):
        with torch.no_grad():
            noisy = DDPMScheduler(num_train_timesteps=1000).add_noise(x0, noise, t)
            return torch.nn.functional.mse_loss(unet(noisy, t, class_labels=y).sample, noise).item()

    unet = build_unet(train, block_out_channels=(8, 16), attention_head_dim=4)
    before = loss(unet)
    unet, _, losses = train_ddpm(
        unet,
        train,
        epochs=6,
        batch_size=16,
        learning_rate=3e-3,
        warmup_steps=5,
        checkpoint_dir=tmp_path / "ck",
        cpu=True,
    )
    assert loss(unet) < 0.7 * before and len(losses) == 6 and losses[-1] < losses[0]
    assert (tmp_path / "ck" / "epoch.txt").read_text() == "6"


def test_ddpm_resumes_from_its_accelerate_checkpoint(tmp_path, digits):
    torch.set_num_threads(1)
    train = digits["train"].select(range(48))  # 3 batches of 16 per epoch

    class Interrupted(Exception):
        pass

    def run(folder, stop_after_batches=None, learning_rate=3e-3, other_set_order=False):
        unet = build_unet(train, block_out_channels=(8, 16), attention_head_dim=4)
        if other_set_order:  # another process (its own string hash seed) lists the unset defaults in another order
            defaults = list(reversed(unet.config["_use_default_values"]))
            unet._internal_dict = FrozenDict({**unet.config, "_use_default_values": defaults})
        if stop_after_batches is not None:
            calls = []

            def hook(module, args):
                calls.append(1)
                if len(calls) > stop_after_batches:
                    raise Interrupted

            unet.register_forward_pre_hook(hook)
        return train_ddpm(
            unet,
            train,
            epochs=4,
            batch_size=16,
            learning_rate=learning_rate,
            warmup_steps=2,
            checkpoint_dir=folder,
            cpu=True,
        )

    whole, _, whole_losses = run(tmp_path / "whole")
    with pytest.raises(Interrupted):
        run(tmp_path / "resumed", stop_after_batches=7)  # killed in epoch 3, after 2 epochs were saved
    assert (tmp_path / "resumed" / "epoch.txt").read_text() == "2"
    with pytest.raises(ValueError, match="changed: learning_rate"):  # never resumed into another run's state
        run(tmp_path / "resumed", learning_rate=1e-3)
    resumed, _, losses = run(tmp_path / "resumed", other_set_order=True)
    assert len(losses) == 2 and losses == pytest.approx(whole_losses[2:], rel=1e-5)
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=name)


class FlaggingPipeline:
    """An img2img pipeline whose safety checker flags every third output (and blackens it, as Stable Diffusion does)."""

    def __call__(self, prompt, image, strength, guidance_scale, num_inference_steps, generator, output_type):
        from types import SimpleNamespace

        flags = [i % 3 == 1 for i in range(len(prompt))]
        arrays = np.stack([np.asarray(im.convert("RGB"), dtype=np.float32) / 255 for im in image])
        arrays[np.array(flags)] = 0.0
        return SimpleNamespace(images=arrays, nsfw_content_detected=flags)

    def set_progress_bar_config(self, **kwargs):
        pass


def test_images_flagged_by_the_safety_checker_are_dropped_and_counted(tmp_path, digits):
    indices = [0, 3, 4, 8, 9, 15, 16]
    generator = PipelineGenerator(FlaggingPipeline(), images_per_example=1)
    out = augment(digits["train"], indices, generator, tmp_path, batch_size=4, shard_size=4)
    kept = [i for b in (indices[:4], indices[4:]) for j, i in enumerate(b) if j % 3 != 1]  # per batch of 4
    assert out["source_index"] == kept == [0, 4, 8, 9, 16]
    assert out["label"] == [digits["train"][i]["label"] for i in kept]
    assert min(np.asarray(im).max() for im in out["image"]) > 0  # no blackened image left
    common = dict(dataset="digits", model="convnet", num_train_epochs=1, separation_epoch=1, use_cpu=True)
    config = TadaConfig(
        output_dir=str(tmp_path / "r"),
        augment="full",
        generation_batch_size=4,
        shard_size=4,
        report_to="none",
        **common,
    )
    result = train_tada(config, digits.select_columns(["image", "label"]), generator=generator)
    n = len(digits["train"])
    flagged = sum(1 for start in range(0, n, 4) for j in range(min(4, n - start)) if j % 3 == 1)
    assert result.metrics["dropped_unsafe"] == flagged and result.metrics["generated_images"] == n - flagged
    assert result.metrics["train_rows"] == 2 * n - flagged


def test_recipe_targeted_vs_full_and_bad_config(tmp_path, digits, monkeypatch):
    torch.set_num_threads(1)
    common = dict(
        dataset="digits",
        model="convnet",
        separation_epoch=1,
        num_train_epochs=2,
        learning_rate=3e-3,
        per_device_train_batch_size=32,
        per_device_eval_batch_size=128,
        save_strategy="no",
        disable_tqdm=True,
        use_cpu=True,
        generator="ddpm",
        ddpm_epochs=1,
        ddpm_batch_size=32,
        num_inference_steps=10,
        generation_batch_size=32,
        report_to="none",
    )
    targeted = train_tada(TadaConfig(output_dir=str(tmp_path / "t"), augment="targeted", **common), digits)
    n = len(digits["train"])
    assert 0 < len(targeted.augmented) < n
    assert targeted.metrics["generated_images"] == len(targeted.augmented) and targeted.metrics[
        "train_rows"
    ] == n + len(targeted.augmented)
    assert sorted(targeted.added["source_index"]) == targeted.augmented == targeted.slow.indices
    assert (tmp_path / "t" / "ddpm" / "README.md").exists() and (
        tmp_path / "t" / "ddpm" / "scheduler_config.json"
    ).exists()
    # the saved DDPM is reused by a second run in the same folder (training it again raises), the full baseline
    # augments every row
    import hfdc.tada.ddpm

    def no_training(*args, **kwargs):
        raise AssertionError("the DDPM was trained again instead of loaded")

    monkeypatch.setattr(hfdc.tada.ddpm, "train_ddpm", no_training)
    full = train_tada(TadaConfig(output_dir=str(tmp_path / "t"), augment="full", **common), digits)
    assert full.metrics["generated_images"] == n and full.slow is None
    # duplication of exactly the rows TADA augments: unchanged copies, nothing generated
    duplicate = train_tada(
        TadaConfig(output_dir=str(tmp_path / "d"), augment="targeted", addition="duplicate", **common), digits
    )
    assert duplicate.augmented == targeted.augmented and duplicate.added["source_index"] == targeted.augmented
    assert not any(duplicate.added["synthetic"]) and duplicate.metrics["generated_images"] == 0
    assert np.array_equal(pixels(duplicate.added), pixels(digits["train"].select(targeted.augmented)))
    assert not (tmp_path / "d" / "ddpm").exists() and duplicate.metrics["train_rows"] == n + len(targeted.augmented)
    with pytest.raises(ValueError, match="augment=.all. is not allowed"):
        TadaConfig(output_dir=str(tmp_path), augment="all", **common)
    with pytest.raises(ValueError, match="beyond the training length"):
        TadaConfig(output_dir=str(tmp_path), **{**common, "separation_epoch": 3})
