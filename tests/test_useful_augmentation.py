"""Training-time augmentation (random crop with padding + horizontal flip) in hfdc.models.images and the recipes."""

import numpy as np
import pytest
import torch

import hfdc.data
from hfdc.models.images import image_transform, random_crop_flip, to_pil
from hfdc.useful import UsefulConfig, make_trainer, model_inputs, new_model

A, B, C, D = 0.2, -0.7, 0.9, 0.4
IMAGE = torch.tensor([[[A, B], [C, D]]])  # one channel, 2 x 2
P = -1.0  # padding is black


def test_crop_draws_every_window_of_the_padded_image():
    windows = {  # (dy, dx) -> the 2 x 2 window of the image padded by one black pixel per side
        (0, 0): [[P, P], [P, A]],
        (0, 1): [[P, P], [A, B]],
        (0, 2): [[P, P], [B, P]],
        (1, 0): [[P, A], [P, C]],
        (1, 1): [[A, B], [C, D]],
        (1, 2): [[B, P], [D, P]],
        (2, 0): [[P, C], [P, P]],
        (2, 1): [[C, D], [P, P]],
        (2, 2): [[D, P], [P, P]],
    }
    out = random_crop_flip(IMAGE.repeat(900, 1, 1, 1), crop_padding=1, generator=torch.Generator().manual_seed(0))
    seen = dict.fromkeys(windows, 0)
    for image in out:
        match = [key for key, window in windows.items() if torch.allclose(image[0], torch.tensor(window))]
        assert len(match) == 1, image
        seen[match[0]] += 1
    assert min(seen.values()) > 60  # each of the 9 offsets about 100 times out of 900


def test_flip_mirrors_left_right_half_the_time():
    out = random_crop_flip(IMAGE.repeat(400, 1, 1, 1), flip=True, generator=torch.Generator().manual_seed(1))
    mirrored = torch.tensor([[[B, A], [D, C]]])
    is_same = torch.isclose(out, IMAGE).flatten(1).all(1)
    is_mirror = torch.isclose(out, mirrored).flatten(1).all(1)
    assert bool((is_same ^ is_mirror).all()) and 160 < int(is_mirror.sum()) < 240
    assert torch.equal(random_crop_flip(IMAGE[None]), IMAGE[None])  # neither knob: unchanged


def test_transform_is_seeded_and_leaves_evaluation_rows_alone():
    images = [to_pil(torch.rand(1, 8, 8) * 2 - 1, "L") for _ in range(16)]
    batch = {"image": images, "label": list(range(16))}

    def run(seed, **knobs):
        return image_transform("L", crop_padding=2, seed=seed, **knobs)(dict(batch))["pixel_values"]

    plain = image_transform("L")(dict(batch))["pixel_values"]
    assert torch.equal(run(3), run(3)) and not torch.equal(run(3), run(4)) and not torch.equal(run(3), plain)
    assert image_transform("L", crop_padding=2)(dict(batch))["label"] == batch["label"]
    with pytest.raises(ValueError, match="crop_padding"):
        image_transform("L", crop_padding=-1)


def test_recipe_augments_training_rows_only(tmp_path):
    data = hfdc.data.load("digits", n_train=180, n_validation=10, n_test=10)
    config = UsefulConfig(
        output_dir=str(tmp_path), dataset="digits", model="convnet", random_crop_padding=1, random_flip=True
    )
    trainer = make_trainer(config, new_model(config, data["train"]), data["train"], tmp_path)
    augmented = torch.stack([row["pixel_values"] for row in trainer.train_dataset])
    plain = torch.stack([row["pixel_values"] for row in model_inputs(data["train"])])
    changed = (augmented != plain).flatten(1).any(1).float().mean().item()
    assert 0.88 < changed < 0.99  # 1 - (1/9 centre crop) * (1/2 no flip) = 0.94 of the rows change
    assert np.array_equal(trainer.train_dataset[0]["labels"], data["train"][0]["label"])
    feature_patches = UsefulConfig(output_dir=str(tmp_path), random_flip=True)
    train = hfdc.data.load("feature_patches", n_train=10, n_validation=2, n_test=2, dim=8)["train"]
    with pytest.raises(ValueError, match="random_flip=false"):
        make_trainer(feature_patches, new_model(feature_patches, train), train, tmp_path)
    with pytest.raises(ValueError, match="random_crop_padding must be >= 0"):
        UsefulConfig(output_dir=str(tmp_path), random_crop_padding=-2)
