"""Embedded data sets: determinism, features, sizes, exact noise fractions, the feature-patch model, digits."""

import numpy as np
import pytest
import torch
from datasets import Array2D, ClassLabel, Image, Value

from hfdc.data import DATASETS, load
from hfdc.data.digits import scaled_images
from hfdc.data.feature_patches import feature_vectors
from hfdc.data.sentiment import source_counts

SMALL = {
    "shapes": dict(n_train=60, n_validation=20, n_test=20),
    "feature_patches": dict(n_train=200, n_validation=20, n_test=20),
    "digits": dict(n_train=100),
    "sentiment": dict(n_train=200, n_validation=40, n_test=40),
    "factual_qa": dict(n_validation=40, n_test=40),
}


def rows(ds):
    return [
        {k: (np.asarray(v).tolist() if k in ("image", "x") else v) for k, v in row.items()}
        for split in ds.values()
        for row in split
    ]


@pytest.mark.parametrize("name", list(DATASETS))
def test_same_seed_same_rows_other_seed_other_rows(name):
    first, again = load(name, seed=3, **SMALL[name]), load(name, seed=3, **SMALL[name])
    assert list(first) == ["train", "validation", "test"]
    assert rows(first) == rows(again)
    assert rows(first) != rows(load(name, seed=4, **SMALL[name]))


def test_unknown_name_and_param_are_clear_errors():
    with pytest.raises(
        ValueError, match="not an embedded data set \\(shapes, feature_patches, digits, sentiment, factual_qa\\)"
    ):
        load("cifar")
    with pytest.raises(ValueError, match="'n_trian'.*n_train"):
        load("shapes", n_trian=5)
    with pytest.raises(ValueError, match="'noise_fraction'"):
        load("shapes", noise_fraction=1.5)
    with pytest.raises(ValueError, match="'hard_strength'"):
        load("feature_patches", easy_strength=1.0, hard_strength=2.0)
    with pytest.raises(ValueError, match="n_validation \\+ n_test"):
        load("digits", n_test=1700)


def test_shapes_features_sizes_and_exact_noise():
    ds = load("shapes", n_train=50, n_validation=10, n_test=13, image_size=24, noise_fraction=0.3)
    assert {k: v.num_rows for k, v in ds.items()} == {"train": 50, "validation": 10, "test": 13}
    features = ds["train"].features
    assert isinstance(features["image"], Image) and features["image"].mode == "RGB"
    assert features["label"].names == ["circle", "square", "triangle", "cross", "diamond", "ring"]
    assert features["is_noisy"] == Value("bool")
    train = ds["train"]
    assert train[0]["image"].size == (24, 24) and train[0]["image"].mode == "RGB"
    assert sum(train["is_noisy"]) == 15 and sum(ds["test"]["is_noisy"]) == round(0.3 * 13)
    names = features["label"].names
    for row in train:
        # the caption names the large shape (the label) first; noisy captions come from another class
        assert row["caption"].split()[2] == names[row["label"]]
        assert row["answer"] in {"left", "right", "above", "below"}
        if row["is_noisy"]:
            assert row["noisy_caption"].split()[2] != names[row["label"]]
        else:
            assert row["noisy_caption"] == row["caption"]
    # balanced labels: 50 rows over 6 classes -> counts 8 or 9
    assert set(np.bincount(train["label"], minlength=6)) <= {8, 9}


def test_shapes_relation_matches_pixels():
    """The centre of mass of the bright pixels lies on the large shape's side, as the answer says."""
    ds = load("shapes", n_train=30, n_validation=2, n_test=2, noise_fraction=0.0)["train"]
    for row in ds:
        ys, xs = np.nonzero(np.asarray(row["image"]).astype(float).sum(-1) > 150)
        centre = xs.mean() if row["answer"] in ("left", "right") else ys.mean()
        assert (centre < 16) == (row["answer"] in ("left", "above"))


def test_feature_patches_structure():
    ds = load(
        "feature_patches",
        n_train=400,
        n_validation=10,
        n_test=10,
        num_patches=5,
        dim=12,
        easy_strength=3.0,
        hard_strength=0.7,
        noise_std=1.0,
        missing_easy_fraction=0.25,
        seed=1,
    )
    assert ds["train"].features["x"] == Array2D(shape=(5, 12), dtype="float32")
    assert ds["train"].features["label"] == ClassLabel(names=["-1", "+1"])
    data = ds["train"].with_format("numpy")[:]
    x, label, has_easy = data["x"], data["label"], data["has_easy"]
    assert x.dtype == np.float32 and x.shape == (400, 5, 12)
    assert (~has_easy).sum() == 100
    easy, hard = feature_vectors(2, 12)
    y = (2 * label - 1).astype(np.float32)
    for i in range(400):
        is_easy = np.all(x[i] == y[i] * 3.0 * easy[0], axis=1)
        is_hard = np.all(x[i] == y[i] * np.float32(0.7) * hard[0], axis=1)
        assert is_easy.sum() == int(has_easy[i]) and is_hard.sum() == 1
        noise = x[i][~(is_easy | is_hard)]
        assert np.all(noise @ easy[0] == 0) and np.all(noise @ hard[0] == 0)  # orthogonal to the features
    noise = x[:, :, 2:]
    assert abs(noise[noise != 0].std() - 1.0) < 0.05
    multi = load("feature_patches", num_classes=3, dim=8, n_train=30, n_validation=3, n_test=3)["train"]
    assert multi.features["label"].names == ["0", "1", "2"]
    easy3, hard3 = feature_vectors(3, 8)
    for row in multi.with_format("numpy"):

        def has(patch, x=row["x"]):
            return np.all(x == patch, axis=1).sum()

        assert has(2.0 * easy3[row["label"]]) == int(row["has_easy"]) and has(0.5 * hard3[row["label"]]) == 1


@pytest.mark.parametrize("num_classes", [2, 3])
def test_feature_patches_hard_noise_moves_only_the_hard_patch(num_classes):
    """hard_noise_std s: the hard patch is (y * beta_h + xi) * v_h[class], xi ~ N(0, s^2), and every other value is
    the draw without noise (xi is drawn last)."""
    params = dict(n_train=3000, n_validation=3, n_test=3, num_classes=num_classes, dim=12, hard_strength=0.45, seed=4)
    plain = load("feature_patches", **params)["train"].with_format("numpy")[:]
    noisy = load("feature_patches", **params, hard_noise_std=0.2)["train"].with_format("numpy")[:]
    np.testing.assert_array_equal(plain["label"], noisy["label"])
    _, hard = feature_vectors(num_classes, 12)
    vector = hard[0] if num_classes == 2 else hard[plain["label"]]  # [n, dim] or [dim]
    y = (2 * plain["label"] - 1) if num_classes == 2 else np.ones(len(plain["label"]))
    slot = np.argmax(np.all(plain["x"] == (0.45 * y[:, None] * vector).astype(np.float32)[:, None, :], axis=2), axis=1)
    rows = np.arange(len(slot))
    changed = plain["x"] != noisy["x"]
    changed[rows, slot] = False
    assert not changed.any()  # only the hard patch moved
    hard_patch = noisy["x"][rows, slot]
    coefficient = (hard_patch * vector).sum(-1)
    np.testing.assert_allclose(hard_patch, coefficient[:, None] * vector, atol=1e-6)  # still along v_h[class]
    xi = coefficient - 0.45 * y
    assert abs(xi.mean()) < 0.02 and abs(xi.std() - 0.2) < 0.01


def test_feature_patches_easy_feature_is_learned_first():
    """GD on a two-layer ReLU CNN fits the examples with the easy patch well before those without."""
    torch.manual_seed(0)
    data = load("feature_patches", n_train=400, n_validation=10, n_test=10).with_format("torch")["train"][:]
    x, y, has_easy = data["x"], data["label"].float() * 2 - 1, data["has_easy"]
    weights = (0.1 * torch.randn(2, 10, x.shape[-1])).requires_grad_()
    optimizer = torch.optim.SGD([weights], lr=0.05)
    for _ in range(40):
        scores = torch.einsum("npd,cmd->ncmp", x, weights).relu().sum((2, 3))
        loss = torch.nn.functional.softplus(-y * (scores[:, 1] - scores[:, 0]))
        optimizer.zero_grad()
        loss.mean().backward()
        optimizer.step()
    assert loss[has_easy].mean() < 0.05 < 0.3 < loss[~has_easy].mean()


def test_digits_pixels_equal_sklearn_scaled_and_split_stratified():
    from sklearn.datasets import load_digits

    ds = load("digits", n_validation=200, n_test=300, seed=0)
    assert ds["train"].features["image"].mode == "L"
    assert ds["train"].features["label"].names == [str(d) for d in range(10)]
    assert sum(split.num_rows for split in ds.values()) == 1797
    images, labels = scaled_images()
    sk = load_digits()
    assert np.array_equal(images, np.round(sk.images * 255 / 16).astype(np.uint8)) and images.max() == 255
    seen = {np.asarray(row["image"]).tobytes(): row["label"] for split in ds.values() for row in split}
    for i in range(0, 1797, 97):
        assert seen[images[i].tobytes()] == labels[i]
    counts = np.bincount(ds["test"]["label"], minlength=10)
    assert counts.min() >= 28 and counts.max() <= 32  # stratified: ~30 per class


def test_sentiment_mixture():
    ds = load("sentiment", n_train=1000, n_validation=100, n_test=100)
    assert ds["train"].features["label"].names == ["negative", "positive"]
    assert source_counts(1000) == {"reviews": 600, "tweets": 270, "news": 100, "support": 30}
    assert sum(source_counts(101).values()) == 101
    train = ds["train"]
    sources = np.array(train["source"])
    labels = np.array(train["label"])
    for source, count in source_counts(1000).items():
        assert (sources == source).sum() == count
        assert abs(labels[sources == source].mean() - 0.5) <= 0.5 / count
    assert len(set(train["text"])) > 700  # varied texts
