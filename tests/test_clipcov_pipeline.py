"""CLIPCov on Datasets: cached proxy embeddings, undecodable images, select_dataset, CLIP training, prompts,
the data order per seed, the CLI end to end (zero-shot accuracy recomputed)."""

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import Dataset, Features, Image, Value
from transformers import CLIPModel, CLIPProcessor, Trainer, TrainingArguments

import hfdc.data
import hfdc.models
from hfdc.cli import run_command
from hfdc.clipcov import select
from hfdc.clipcov.config import ClipCovConfig
from hfdc.clipcov.dataset import select_dataset
from hfdc.clipcov.embed import clip_embeddings, embedding_arrays
from hfdc.clipcov.train import ImageCaptionCollator, class_text_embeddings, train_clip, zero_shot_accuracy


@pytest.fixture(scope="module")
def shapes():
    return hfdc.data.load("shapes", n_train=48, n_validation=8, n_test=8, seed=1)["train"]


def test_select_dataset_on_embedding_columns_equals_select():
    rng = np.random.default_rng(0)
    image, text = rng.normal(size=(50, 8)).astype(np.float32), rng.normal(size=(50, 8)).astype(np.float32)
    labels = rng.integers(0, 3, 50)
    ds = Dataset.from_dict({"image_embeds": image.tolist(), "text_embeds": text.tolist(), "label": labels.tolist()})
    result = select_dataset(ds, 0.2, label_column="label", block_size=3)
    expected = select(image, text, 0.2, labels=labels, block_size=3, show_progress=False)
    np.testing.assert_array_equal(result.indices, expected.indices)
    assert len(ds.select(result.indices)) == 10
    semdedup = select_dataset(ds, 0.2, method="semdedup", label_column="label", num_clusters=3)
    assert semdedup.method == "semdedup" and len(semdedup) == 10


def test_embeddings_are_normalised_and_cached(shapes, tmp_path):
    model, processor = hfdc.models.tiny("clip", seed=0), hfdc.models.tiny_processor("clip")
    first = clip_embeddings(
        shapes, model, processor, caption_column="noisy_caption", batch_size=16, cache_dir=tmp_path
    )
    image, text, rows = embedding_arrays(first)
    assert image.shape == text.shape == (48, model.config.projection_dim) and rows.tolist() == list(range(48))
    np.testing.assert_allclose(np.linalg.norm(image, axis=1), 1, atol=1e-5)
    with torch.no_grad():  # equals the model's own projected, normalised features
        pixels = processor.image_processor(images=shapes[:2]["image"], return_tensors="pt")["pixel_values"]
        direct = model.get_image_features(pixel_values=pixels).pooler_output
    np.testing.assert_allclose(image[:2], (direct / direct.norm(dim=-1, keepdim=True)).numpy(), atol=1e-5)
    assert len(list(tmp_path.glob("clip-embeddings-*.arrow"))) == 1
    second = clip_embeddings(
        shapes, model, processor, caption_column="noisy_caption", batch_size=16, cache_dir=tmp_path
    )
    np.testing.assert_array_equal(embedding_arrays(second)[0], image)
    mapped_image, mapped_text, _ = embedding_arrays(second, tmp_path)  # written once, then memory-mapped
    assert isinstance(mapped_image, np.memmap) and isinstance(mapped_text, np.memmap)
    np.testing.assert_array_equal(mapped_image, image)
    np.testing.assert_array_equal(mapped_text, text)
    other = hfdc.models.tiny("clip", seed=1)  # another proxy never reuses these embeddings
    clip_embeddings(shapes, other, processor, caption_column="noisy_caption", batch_size=16, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("clip-embeddings-*.arrow"))) == 2


def test_missing_captions_are_clear_errors(shapes):
    model, processor = hfdc.models.tiny("clip"), hfdc.models.tiny_processor("clip")
    with pytest.raises(ValueError, match="captions missing.*'text'"):
        clip_embeddings(shapes, model, processor, caption_column="text")
    broken = shapes.select(range(4)).map(
        lambda row, i: {"caption": None if i == 2 else row["caption"]}, with_indices=True
    )
    with pytest.raises(ValueError, match="caption missing in column 'caption' at row 2"):
        clip_embeddings(broken, model, processor)
    with pytest.raises(ValueError, match="model= and processor="):
        select_dataset(shapes, 0.5)


def png(array) -> bytes:
    out = io.BytesIO()
    from PIL import Image as PILImage

    PILImage.fromarray(np.asarray(array, dtype=np.uint8)).save(out, format="PNG")
    return out.getvalue()


def test_undecodable_images_are_skipped_and_counted(tmp_path):
    rng = np.random.default_rng(0)
    images = [{"bytes": png(rng.integers(0, 255, (16, 16, 3))), "path": None} for _ in range(8)]
    images[3] = {"bytes": b"not an image", "path": None}
    images[6] = {"bytes": png(rng.integers(0, 255, (16, 16, 3)))[:40], "path": None}  # truncated file
    ds = Dataset.from_dict(
        {"image": images, "caption": [f"a photo number {i}" for i in range(8)], "label": [0, 1] * 4},
        features=Features({"image": Image(), "caption": Value("string"), "label": Value("int64")}),
    )
    model, processor = hfdc.models.tiny("clip", seed=0), hfdc.models.tiny_processor("clip")
    embeddings = clip_embeddings(ds, model, processor, batch_size=4, cache_dir=tmp_path)
    assert embeddings["decodable"] == [True, True, True, False, True, True, False, True]
    image, text, rows = embedding_arrays(embeddings, tmp_path, chunk_rows=3)  # written in 3 chunks
    assert rows.tolist() == [0, 1, 2, 4, 5, 7] and isinstance(image, np.memmap)
    in_memory = embedding_arrays(embeddings)
    np.testing.assert_array_equal(image, in_memory[0])
    np.testing.assert_array_equal(text, in_memory[1])
    np.testing.assert_array_equal(text, np.asarray(embeddings["text_embeds"])[rows])
    result = select_dataset(ds, 0.5, model, processor, label_column="label", cache_dir=tmp_path, block_size=2)
    assert result.skipped == 2 and len(result) == 3  # half of the 6 decodable rows
    assert not {3, 6} & set(result.indices.tolist())
    assert np.isnan(result.scores[[3, 6]]).all() and np.isfinite(np.delete(result.scores, [3, 6])).all()
    assert result.labels[[3, 6]].tolist() == [-1, -1]
    accuracy = zero_shot_accuracy(model, processor, ds, ["cat", "dog"], ["a {}"], label_column="label")
    assert accuracy * 6 == pytest.approx(round(accuracy * 6))  # a fraction of the 6 decodable images


def test_class_names_are_cleaned_into_prompts():
    model, processor = hfdc.models.tiny("clip"), hfdc.models.tiny_processor("clip")
    templates = ["a photo of a {}.", "a {}"]
    raw = class_text_embeddings(model, processor, ["tench, Tinca tinca", "great_white_shark, man-eater"], templates)
    clean = class_text_embeddings(model, processor, ["tench", "great white shark"], templates)
    torch.testing.assert_close(raw, clean)


def data_order(seed: int, folder) -> list[list[int]]:
    config = ClipCovConfig(output_dir=str(folder), seed=seed, per_device_train_batch_size=4, use_cpu=True)
    trainer = Trainer(
        model=torch.nn.Linear(1, 1),
        args=config,
        train_dataset=Dataset.from_dict({"i": list(range(16))}),
        data_collator=lambda rows: {"i": torch.tensor([row["i"] for row in rows])},
    )
    return [batch["i"].tolist() for batch in trainer.get_train_dataloader()]


def test_seed_sets_the_training_data_order(tmp_path):
    first = data_order(0, tmp_path)
    assert data_order(0, tmp_path) == first
    assert data_order(1, tmp_path) != first  # ClipCovConfig used to fix Trainer's data_seed at 0
    assert ClipCovConfig(output_dir=str(tmp_path)).data_seed is None


def test_clip_training_lowers_the_contrastive_loss(shapes, tmp_path):
    model, processor = hfdc.models.tiny("clip", seed=0), hfdc.models.tiny_processor("clip")
    batch = ImageCaptionCollator(processor)(list(shapes.select(range(16))))
    with torch.no_grad():
        before = model(**batch).loss.item()
    args = TrainingArguments(
        output_dir=str(tmp_path),
        num_train_epochs=6,
        per_device_train_batch_size=16,
        learning_rate=3e-3,
        save_strategy="no",
        report_to="none",
        remove_unused_columns=False,
        disable_tqdm=True,
        seed=0,
    )
    train_clip(model, processor, shapes, args)
    with torch.no_grad():
        after = model(**batch).loss.item()
    assert after < before - 0.1


def test_class_prompt_embeddings_average_templates():
    model, processor = hfdc.models.tiny("clip"), hfdc.models.tiny_processor("clip")
    both = class_text_embeddings(model, processor, ["circle", "ring"], ["a {}", "the {}"])
    single = class_text_embeddings(model, processor, ["circle"], ["a {}"])
    assert both.shape == (2, model.config.projection_dim)
    np.testing.assert_allclose(both.norm(dim=1).numpy(), 1, atol=1e-5)
    assert not torch.allclose(both[0], single[0])
    with pytest.raises(ValueError, match="prompt_templates"):
        class_text_embeddings(model, processor, ["circle"], ["no placeholder"])


@torch.no_grad()
def accuracy_by_hand(folder: Path, test: Dataset, names: list[str], template: str) -> tuple[float, np.ndarray]:
    """Zero-shot accuracy and predictions of the saved CLIP, written out with the model's own feature functions."""
    model, processor = CLIPModel.from_pretrained(folder), CLIPProcessor.from_pretrained(folder)
    tokens = processor.tokenizer([template.format(n) for n in names], padding=True, return_tensors="pt")
    prompts = model.get_text_features(**tokens).pooler_output
    pixels = processor.image_processor(images=list(test["image"]), return_tensors="pt")["pixel_values"]
    images = model.get_image_features(pixel_values=pixels).pooler_output
    similarity = (images / images.norm(dim=1, keepdim=True)) @ (prompts / prompts.norm(dim=1, keepdim=True)).T
    predicted = similarity.argmax(1).numpy()
    return float((predicted == np.asarray(test["label"])).mean()), predicted


def test_cli_selects_publishes_and_trains(tmp_path):
    out = tmp_path / "run"
    params = {"n_train": 60, "n_validation": 24, "n_test": 24}
    argv = [
        "--output_dir",
        str(out),
        "--dataset_params",
        json.dumps(params),
        "--prompt_templates",
        "a {}",
        "--fraction",
        "0.25",
        "--block_size",
        "4",
        "--proxy_epochs",
        "1",
        "--num_train_epochs",
        "10",
        "--learning_rate",
        "0.003",
        "--per_device_train_batch_size",
        "12",
        "--save_strategy",
        "no",
        "--disable_tqdm",
        "true",
    ]
    metrics = run_command("clipcov", argv)
    assert metrics["selected_rows"] == 15 and metrics["pool_rows"] == 60
    assert sum(v for k, v in metrics.items() if k.startswith("selected_in_class_")) == 15
    test = hfdc.data.load("shapes", **params)["test"]
    names = test.features["label"].names
    accuracy, predicted = accuracy_by_hand(out / "model", test, names, "a {}")
    assert len(set(predicted.tolist())) > 1  # not one class for every image: the recomputation can disagree
    assert metrics["zero_shot_accuracy"] == round(accuracy, 4)
    assert 0 < metrics["cross_covariance_error"] < 1 and metrics["skipped_undecodable_images"] == 0
    assert json.loads((out / "metrics.json").read_text()) == metrics
    subset = Dataset.load_from_disk(str(out / "subset"))
    assert len(subset) == 15 and "clipcov_score" in subset.column_names
    card = (out / "subset" / "README.md").read_text()
    assert "clipcov" in card and "2403.12267" in card and "budget_fraction" in card
    assert "selected_in_class_circle" in card and str(out / "proxy") in card  # proxy model named in the card
    assert (out / "proxy" / "README.md").is_file() and (out / "model" / "config.json").is_file()
    counts = json.loads((out / "per_class_counts.json").read_text())
    assert sum(counts.values()) == 15 and counts["circle"] == metrics["selected_in_class_circle"]
    with pytest.raises(ValueError, match="fraction"):
        run_command("clipcov", argv + ["--fraction", "1.5"])


@pytest.mark.parametrize("recipe", ["demo", "shapes", "cc3m_vit_b32"])
def test_recipes_parse(recipe):
    from hfdc.cli import parse_config
    from hfdc.clipcov.config import ClipCovConfig

    path = Path(__file__).resolve().parents[1] / "recipes" / "clipcov" / f"{recipe}.yaml"
    config = parse_config(ClipCovConfig, ["--config", str(path), "--output_dir", "unused"])
    assert config.method == "clipcov" and 0 < config.fraction <= 1 and not config.remove_unused_columns
