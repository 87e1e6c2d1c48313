"""`hfdc mkdt teacher|experts|distill|evaluate` on the demo recipe: every stage writes what the next reads, the
teacher is cached, the distilled set has its card (learned step size, evaluation), DD-Ranking scores it, the set
goes to a Hub, experts spread over 2 processes, and bad inputs fail clearly."""

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from datasets import load_from_disk
from safetensors.torch import load_file

import hfdc.data
import hfdc.mkdt.teacher as teacher_module
from hfdc.cli import main, parse_config
from hfdc.mkdt import MkdtConfig, learned_step_size, pretrain, teacher_representations
from hfdc.mkdt.evaluate import labelled_rows
from hfdc.mkdt.experts import epoch_file
from hfdc.models import tiny, tiny_processor
from hfdc.models.images import pixel_values
from tests.distributed import torchrun
from tests.hub_fixtures import run_online

ROOT = Path(__file__).resolve().parents[1]
RECIPE = str(ROOT / "recipes" / "mkdt" / "demo.yaml")


def mkdt(*args):
    main(["mkdt", *args, "--config", RECIPE])


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("mkdt")
    for stage in ("teacher", "experts", "distill", "evaluate"):
        mkdt(stage, "--output_dir", str(out))
    return out


def test_stages_write_what_the_next_reads(run):
    representations = load_file(str(run / "teacher" / "representations.safetensors"))["representations"]
    train = hfdc.data.load("digits")["train"]
    assert representations.shape == (len(train), 16 * 4 * 4)  # the ConvNet teacher's backbone feature
    assert (run / "teacher" / "encoder" / "README.md").is_file()
    experts = sorted((run / "experts").glob("expert_*"))
    assert len(experts) == 4 and all(epoch_file(e, k).is_file() for e in experts for k in range(7))
    distilled = load_from_disk(str(run / "distilled"))
    assert distilled.column_names == ["pixel_values", "image", "target", "source_row", "label"]
    assert len(distilled) == 30 and len(distilled[0]["target"]) == 256
    assert distilled[0]["label"] == train[distilled[0]["source_row"]]["label"]
    card = (run / "distilled" / "README.md").read_text()
    eta = learned_step_size(run / "distill")
    assert eta != 0.1 and f"| learned step size (eta) | {round(eta, 6)} |" in card
    evaluation = json.loads((run / "evaluation.json").read_text())
    assert evaluation["pretrain_learning_rate"] == eta
    for arm in ("mkdt", "random", "none"):
        for fraction in ("0.05", "0.2"):
            accuracies = evaluation["runs"][arm][f"probe_{fraction}"]
            assert len(accuracies) == 2 and all(0.1 < a <= 1 for a in accuracies)  # well above chance (10 classes)
            mean = evaluation["mean_std"][arm][f"probe_{fraction}"][0]
            assert f"| linear probe {float(fraction):.0%} labels, {arm} | {mean:.4f}" in card


def test_teacher_stage_reuses_the_cached_representations(run, monkeypatch):
    path = run / "teacher" / "representations.safetensors"
    before = path.stat().st_mtime_ns
    monkeypatch.setattr(teacher_module, "encode", lambda *a: pytest.fail("encoded again despite the cache"))
    mkdt("teacher", "--output_dir", str(run))
    assert path.stat().st_mtime_ns == before


def test_ddranking_scores_the_mkdt_set(run, tmp_path):
    main(
        [
            "ddranking",
            "--config",
            str(ROOT / "recipes" / "ddranking" / "demo.yaml"),
            "--distilled",
            str(run / "distilled"),
            "--output_dir",
            str(tmp_path),
            "--num_eval",
            "1",
            "--epochs",
            "4",
            "--eval_every",
            "2",
        ]
    )
    result = json.loads((tmp_path / "ddranking.json").read_text())
    assert 0 <= result["lrs"] <= 1 and 0 <= result["ars"] <= 1 and 0 < result["full_accuracy"] <= 1
    assert result["hlr"] == pytest.approx(result["full_accuracy"] - result["runs"]["distilled_hard_accuracy"][0])


def test_any_encoder_gives_row_aligned_representations(tmp_path, monkeypatch):
    data = hfdc.data.load("digits")["test"].select(range(7))
    pixels = pixel_values(data["image"], "L")
    module = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3), torch.nn.Flatten())
    out = teacher_representations(module, data, batch_size=3)
    assert torch.allclose(out, module(pixels), atol=1e-6)
    classifier = tiny("convnet", num_channels=1, image_size=8, num_labels=5)
    out = teacher_representations(classifier, data, batch_size=4, cache_file=tmp_path / "c.safetensors")
    assert torch.allclose(out[5], classifier.embed(pixels[5:6])[0], atol=1e-6)
    calls = []
    monkeypatch.setattr(teacher_module, "encode", lambda *a: calls.append(1))
    assert torch.equal(
        teacher_representations(classifier, data, batch_size=4, cache_file=tmp_path / "c.safetensors"), out
    )
    assert not calls
    monkeypatch.undo()
    other = tiny("convnet", seed=1, num_channels=1, image_size=8, num_labels=5)  # new weights: the cache is stale
    fresh = teacher_representations(other, data, batch_size=4, cache_file=tmp_path / "c.safetensors")
    assert torch.allclose(fresh, other.embed(pixels), atol=1e-6) and not torch.allclose(fresh, out)
    vision = tiny("clip").vision_model
    processor = tiny_processor("clip").image_processor
    out = teacher_representations(vision, data, processor=processor, batch_size=4)
    expected = vision(pixel_values=processor(images=[data[6]["image"]], return_tensors="pt")["pixel_values"])
    assert out.shape == (7, 32) and torch.allclose(out[6], expected.pooler_output[0], atol=1e-5)


def test_probe_rows_are_stratified():
    labels = torch.tensor([0] * 10 + [1] * 30 + [2] * 7)
    rows = labelled_rows(labels, 0.1, seed=0)
    assert labels[rows].tolist() == [0, 1, 1, 1, 2]  # ceil(0.1 * class size) of each class
    assert not torch.equal(rows, labelled_rows(labels, 0.1, seed=1))


def test_bad_inputs_have_clear_errors(run, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no teacher representations .* run `hfdc mkdt teacher` first"):
        mkdt("experts", "--output_dir", str(tmp_path / "fresh"))
    with pytest.raises(ValueError, match=r"holds 1197 teacher representations but the data has 100 training rows"):
        mkdt("experts", "--output_dir", str(run), "--num_train_rows", "100")
    config = parse_config(MkdtConfig, ["--config", RECIPE])
    with pytest.raises(ValueError, match="the pre-training set is empty: the distilled set has no rows"):
        pretrain(config, torch.zeros(0, 1, 16, 16), torch.zeros(0, 256), lr=0.1, seed=0)
    with pytest.raises(ValueError, match="image_column='img' is not a column"):
        mkdt("teacher", "--output_dir", str(tmp_path / "x"), "--image_column", "img")


@pytest.mark.slow
def test_experts_spread_over_two_processes(run, tmp_path):
    (tmp_path / "teacher").mkdir()
    shutil.copy(run / "teacher" / "representations.safetensors", tmp_path / "teacher")
    torchrun("-m", "hfdc", "mkdt", "experts", "--config", RECIPE, "--output_dir", str(tmp_path), "--num_experts", "3")
    for index in range(3):  # the same seeds give the same trajectories as the single-process run
        for epoch in (0, 6):
            name = f"expert_{index:04d}"
            spread = load_file(str(epoch_file(tmp_path / "experts" / name, epoch)))
            single = load_file(str(epoch_file(run / "experts" / name, epoch)))
            assert all(torch.equal(spread[key], single[key]) for key in single)


@pytest.mark.slow
def test_the_distilled_set_goes_to_the_hub(run, hub_server, tmp_path):
    shutil.copytree(run, tmp_path / "run")
    script = (  # one process: push (the distillation is complete, so it only publishes), then read back
        "import sys; from datasets import load_dataset; from huggingface_hub import hf_hub_download; "
        "from hfdc.cli import main; main(sys.argv[1:]); "
        "d = load_dataset('user/mkdt-demo', split='train'); "
        "print(len(d), len(d[0]['target']), open(hf_hub_download('user/mkdt-demo', 'README.md', repo_type='dataset')).read())"
    )
    args = [
        "mkdt",
        "distill",
        "--config",
        RECIPE,
        "--output_dir",
        str(tmp_path / "run"),
        "--repo_id",
        "user/mkdt-demo",
    ]
    proc = run_online(["-c", script, *args], hub_server, tmp_path / "home")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout[proc.stdout.index("30 256") :]
    eta = re.search(r"\| learned step size \(eta\) \| ([0-9.]+) \|", out).group(1)
    assert float(eta) == round(learned_step_size(run / "distill"), 6)
