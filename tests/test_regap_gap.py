"""ReGap gap measurement: Frechet distance / MIR against hand computations, measure_gap on the tiny Llava, errors."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from hfdc.models import tiny, tiny_processor
from hfdc.regap import GapReport, RunningMoments, frechet_distance, layer_gap, measure_gap, plot_gaps
from hfdc.regap.gap import sqrtm_psd
from hfdc.regap.llava import modality_masks


def _gaussian(seed, n, mean, cov):
    return np.random.default_rng(seed).multivariate_normal(mean, cov, size=n)


# two fixed 2-D Gaussian samples of unequal size, mean and covariance
IMAGE = _gaussian(0, 40, [1.5, -0.5], [[2.0, 0.6], [0.6, 0.5]])
TEXT = _gaussian(1, 30, [0.2, 0.9], [[0.7, -0.2], [-0.2, 1.3]])


def _hand_frechet(x, y):
    """Rescale by the mean text norm s; ||mu_x - mu_y||^2 + tr S_x + tr S_y - 2 tr sqrt(S_x^1/2 S_y S_x^1/2), with
    the 2x2 identity tr sqrt(M) = sqrt(tr M + 2 sqrt(det M)) and det M = det S_x det S_y, tr M = tr(S_x S_y)."""
    s = np.linalg.norm(y, axis=1).mean()
    x, y = x / s, y / s
    cx, cy = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    cross = np.sqrt(np.trace(cx @ cy) + 2 * np.sqrt(np.linalg.det(cx) * np.linalg.det(cy)))
    return ((x.mean(0) - y.mean(0)) ** 2).sum() + np.trace(cx) + np.trace(cy) - 2 * cross


def _moments(rows, batches=3):
    moments = RunningMoments(rows.shape[1])
    for part in np.array_split(rows, batches):
        moments.update(torch.tensor(part, dtype=torch.float32 if rows.dtype == np.float32 else torch.float64))
    return moments


def test_layer_gap_matches_hand_computation():
    gap = layer_gap(_moments(IMAGE), _moments(TEXT))
    assert gap.frechet == pytest.approx(_hand_frechet(IMAGE, TEXT), rel=1e-9)
    s = np.linalg.norm(TEXT, axis=1).mean()
    mu_x, mu_y = IMAGE.mean(0), TEXT.mean(0)
    assert gap.scale == pytest.approx(s, rel=1e-12)
    assert gap.distance == pytest.approx(np.linalg.norm(mu_x - mu_y) / s, rel=1e-9)
    cosine = mu_x @ mu_y / (np.linalg.norm(mu_x) * np.linalg.norm(mu_y))
    assert gap.cosine_gap == pytest.approx(1 - cosine, rel=1e-9)
    assert gap.image_norm == pytest.approx(np.linalg.norm(IMAGE, axis=1).mean(), rel=1e-12)


def test_mir_sums_decoder_layers_and_not_the_embedding_layer():
    second_image, second_text = IMAGE[:, ::-1] * 0.5, TEXT + 0.3
    layers = [
        layer_gap(_moments(TEXT), _moments(IMAGE)),  # layer 0: projector output, not part of MIR
        layer_gap(_moments(IMAGE), _moments(TEXT)),
        layer_gap(_moments(second_image), _moments(second_text)),
    ]
    report = GapReport(layers, n_pairs=3, n_image_tokens=40, n_text_tokens=30)
    hand = _hand_frechet(IMAGE, TEXT) + _hand_frechet(second_image, second_text)
    assert report.mir == pytest.approx(hand, rel=1e-9)
    assert report.mir_log10 == pytest.approx(np.log10(hand), rel=1e-9)


def test_moments_stable_under_a_large_offset_and_singular_covariances():
    offset = IMAGE.astype(np.float64) + 1e6  # float32 would lose every digit of the spread
    shifted = _moments(offset)
    assert torch.allclose(shifted.covariance, torch.tensor(np.cov(IMAGE, rowvar=False)), rtol=1e-6, atol=1e-6)
    # rank-1 covariances (all points on a line): the square roots stay finite and the distance is exact
    line_x = np.outer(np.linspace(-1, 1, 9), [1.0, 2.0])
    line_y = np.outer(np.linspace(-2, 2, 9), [1.0, 2.0])
    cx, cy = np.cov(line_x, rowvar=False), np.cov(line_y, rowvar=False)
    value = frechet_distance(*(torch.tensor(a) for a in (line_x.mean(0), cx, line_y.mean(0), cy)))
    # collinear: sqrt(S_x^1/2 S_y S_x^1/2) = sqrt(var_x var_y) |v|^2, so FD = (sd_x - sd_y)^2 |v|^2
    sd_x, sd_y = np.sqrt(cx[0, 0]), np.sqrt(cy[0, 0])
    assert value == pytest.approx((sd_x - sd_y) ** 2 * 5, rel=1e-9)
    root = sqrtm_psd(torch.tensor(cx))
    assert torch.allclose(root @ root, torch.tensor(cx), atol=1e-12)


def test_modality_masks_skip_padding_the_sink_and_text_before_the_image():
    image_id = 2
    input_ids = torch.tensor([[1, 7, 2, 2, 5, 6], [0, 0, 2, 2, 2, 9]])
    attention = torch.tensor([[1, 1, 1, 1, 1, 0], [0, 0, 1, 1, 1, 1]])
    image, text = modality_masks(input_ids, attention, image_id)
    assert image.tolist() == [[0, 0, 1, 1, 0, 0], [0, 0, 0, 1, 1, 0]]  # row 2's first image token is its sink
    assert text.tolist() == [[0, 0, 0, 0, 1, 0], [0, 0, 0, 0, 0, 1]]  # token 7 precedes the image; 6 is padding


def _pairs(n=6):
    colours = [(200, 40, 40), (40, 200, 60), (50, 90, 240), (240, 220, 40), (170, 60, 220), (40, 220, 230)]
    captions = ["a red circle", "a green square to the left", "blue", "a yellow star above a cross", "purple", "cyan"]
    return [(Image.new("RGB", (32, 32), colours[i % 6]), captions[i % 6]) for i in range(n)]


def test_measure_gap_on_tiny_llava_matches_states_computed_by_hand():
    model, processor = tiny("llava", seed=3), tiny_processor("llava")
    pairs = _pairs()
    report = measure_gap(model, processor, pairs, batch_size=4, progress=False)
    assert len(report.layers) == model.config.text_config.num_hidden_layers + 1
    assert report.n_pairs == 6 and report.n_image_tokens == 6 * 16  # (32 / 8)^2 tokens; BOS is the sink
    # layer 1 by hand: one pair at a time, states gathered by position
    images, texts = [], []
    for image, caption in pairs:
        enc = processor(text="<image>\n" + caption + "</s>", images=[image], return_tensors="pt")
        with torch.no_grad():
            states = model(**enc, output_hidden_states=True).hidden_states[1][0].double().numpy()
        ids = enc["input_ids"][0].numpy()
        is_image = ids == model.config.image_token_id
        after = np.cumsum(is_image) > 0
        images.append(states[1:][is_image[1:]])
        texts.append(states[1:][(after & ~is_image)[1:]])
    x, y = np.concatenate(images), np.concatenate(texts)
    assert report.n_text_tokens == len(y)
    s = np.linalg.norm(y, axis=1).mean()
    xs, ys = x / s, y / s
    cx, cy = np.cov(xs, rowvar=False), np.cov(ys, rowvar=False)
    values, vectors = np.linalg.eigh(cx)
    root = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(root @ cy @ root), 0, None)).sum()
    hand = ((xs.mean(0) - ys.mean(0)) ** 2).sum() + np.trace(cx) + np.trace(cy) - 2 * cross
    assert report.layers[1].frechet == pytest.approx(hand, rel=1e-6)
    assert report.mir == pytest.approx(sum(report.column("frechet")[1:]), rel=1e-12)


def test_report_table_json_and_plot(tmp_path):
    model, processor = tiny("llava", seed=3), tiny_processor("llava")
    report = measure_gap(model, processor, _pairs(4), progress=False)
    table = report.table()
    assert f"MIR (sum over layers 1..2) = {report.mir:.4f}" in table and len(table.splitlines()) == 5
    assert json.loads(report.save(tmp_path / "gap.json").read_text())["mir"] == pytest.approx(report.mir)
    assert GapReport.load(tmp_path / "gap.json") == report
    path = plot_gaps({"before": report, "after": report}, tmp_path / "gap.png")  # GapReport.plot runs in the CLI tests
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def test_measure_gap_rejects_a_model_that_is_not_llava_style():
    with pytest.raises(TypeError, match="LLaVA-style.*LlamaForCausalLM has no config.vision_config"):
        measure_gap(tiny("llama"), tiny_processor("llama"), _pairs(2))


def test_measure_gap_rejects_an_image_token_count_mismatch():
    model, processor = tiny("llava"), tiny_processor("llava")
    processor.patch_size = 4  # the processor now writes (32 / 4)^2 = 64 placeholders; the model fills 16
    with pytest.raises(ValueError, match="image token count mismatch: the inputs hold 128 image tokens .* 2 image"):
        measure_gap(model, processor, _pairs(2), progress=False)
    processor.patch_size = 16  # too few: (32 / 16)^2 = 4 placeholders per image
    with pytest.raises(ValueError, match="the inputs hold 8 image tokens .* 2 image.* fills 16 per image"):
        measure_gap(model, processor, _pairs(2), progress=False)
