"""USEFUL and TADA under 2 real processes (torchrun, gloo) against one process: same selection, same trained rows,
generation spread over both processes with every shard written once; the TADA CLI's DDPM and cards written once."""

import hashlib
import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from tests.distributed import torchrun

ROOT = Path(__file__).resolve().parents[1]
COMMON = [
    "--separation_epoch",
    "1",
    "--num_train_epochs",
    "2",
    "--save_strategy",
    "no",
    "--disable_tqdm",
    "true",
    "--use_cpu",
    "true",
    "--cpu_threads",
    "1",
    "--per_device_eval_batch_size",
    "256",
]
PATCHES = {
    "n_train": 200,
    "n_validation": 10,
    "n_test": 100,
    "dim": 50,
    "noise_std": 0.2,
    "missing_easy_fraction": 0.3,
}
TADA_SCRIPT = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    sys.path.insert(0, sys.argv[2])
    from hfdc.distributed import end_process_group, process_state
    from hfdc.tada import train_tada
    from tests.test_useful_distributed import RecordingGenerator, tada_config, tada_data, summary

    out, batch = sys.argv[1], int(sys.argv[3])
    rank = process_state().process_index
    generator = RecordingGenerator(f"{out}/calls-{rank}.jsonl")
    result = train_tada(tada_config(out, batch), tada_data(), generator=generator)
    Path(f"{out}/result-{rank}.json").write_text(json.dumps(summary(result)))
    end_process_group()
""")


def tada_data():
    import hfdc.data

    return hfdc.data.load("digits", n_train=48, n_validation=10, n_test=20)


def tada_config(out, per_device_batch):
    from hfdc.tada import TadaConfig

    return TadaConfig(
        output_dir=out,
        dataset="digits",
        model="convnet",
        augment="targeted",
        separation_epoch=1,
        num_train_epochs=1,
        per_device_train_batch_size=per_device_batch,
        per_device_eval_batch_size=64,
        learning_rate=3e-3,
        generation_batch_size=2,
        shard_size=4,
        save_strategy="no",
        disable_tqdm=True,
        use_cpu=True,
        report_to="none",
    )


class RecordingGenerator:
    """A fixed small-UNet SDEdit generator that logs every call (process, seed, batch size) to ``log``."""

    images_per_example = 1

    def __init__(self, log):
        from diffusers import DDPMScheduler

        from hfdc.models import tiny
        from hfdc.tada import UNetGenerator

        unet = tiny("unet", sample_size=8, in_channels=1, out_channels=1, num_class_embeds=10,
                    block_out_channels=(8, 16), attention_head_dim=4)  # fmt: skip
        self.inner = UNetGenerator(unet, DDPMScheduler(), strength=0.3, num_inference_steps=10)
        self.log = log

    def generate(self, images, labels, class_names, seed):
        with open(self.log, "a") as f:
            f.write(json.dumps({"seed": seed, "examples": len(images)}) + "\n")
        return self.inner.generate(images, labels, class_names, seed)


def summary(result):
    """What a run trained on: the selection, and every synthetic row's source and pixels (hashed)."""
    rows = result.train_dataset.filter(lambda synthetic: synthetic, input_columns="synthetic")
    return {
        "selected": result.augmented,
        "train_rows": len(result.train_dataset),
        "synthetic_sources": list(rows["source_index"]),
        "synthetic_pixels": [hashlib.sha256(np.asarray(im).tobytes()).hexdigest() for im in rows["image"]],
    }


def calls(folder):
    return {p.name: [json.loads(line) for line in p.read_text().splitlines()] for p in folder.glob("calls-*.jsonl")}


@pytest.mark.slow
def test_tada_generation_spread_over_processes_equals_one_process(tmp_path):
    from hfdc.tada import train_tada

    script = tmp_path / "run_tada.py"
    script.write_text(TADA_SCRIPT)
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir(), two.mkdir()
    torch.set_num_threads(1)
    expected = summary(train_tada(tada_config(str(one), 16), tada_data(), RecordingGenerator(one / "calls-0.jsonl")))
    torchrun(str(script), str(two), str(ROOT), "8")  # 2 processes x 8 rows per step = 16, as one process
    single, ranks = calls(one), calls(two)
    assert set(ranks) == {"calls-0.jsonl", "calls-1.jsonl"} and all(ranks.values())  # both processes generated
    made = [c["seed"] for log in ranks.values() for c in log]
    assert sorted(made) == sorted(c["seed"] for c in single["calls-0.jsonl"])  # every batch once, none twice
    shards = sorted(p.name for p in (two / "synthetic" / "targeted").glob("*"))
    assert shards == ["manifest.json"] + [f"shard-{k:05d}" for k in range(-(-len(expected["selected"]) // 4))]
    for rank in range(2):
        assert json.loads((two / f"result-{rank}.json").read_text()) == expected  # same rows, same images


@pytest.mark.slow
def test_useful_under_two_processes_equals_one_process(tmp_path):
    from hfdc.cli import run_command

    def run(out, processes, batch):
        args = ["--output_dir", str(out), "--dataset_params", json.dumps(PATCHES), "--learning_rate", "0.5"]
        args += ["--optim", "sgd", "--per_device_train_batch_size", str(batch), "--dataloader_drop_last", "true"]
        torchrun("-m", "hfdc", "useful", *args, *COMMON) if processes == 2 else run_command("useful", args + COMMON)
        return json.loads((out / "model" / "selection.json").read_text()), load_file(
            out / "model" / "model.safetensors"
        )

    (one, one_weights), (two, two_weights) = run(tmp_path / "one", 1, 50), run(tmp_path / "two", 2, 25)
    assert two["indices"] == one["indices"] and 0 < len(one["indices"]) < 200
    assert two["metrics"]["train_rows"] == one["metrics"]["train_rows"] == 200 + len(one["indices"])
    for name, weight in one_weights.items():  # DDP over 2 x 25 rows takes the steps of one process over 50
        np.testing.assert_allclose(two_weights[name].numpy(), weight.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_tada_cli_under_two_processes_trains_the_ddpm_and_writes_once(tmp_path):
    torchrun(
        "-m",
        "hfdc",
        "tada",
        "--output_dir",
        str(tmp_path),
        "--dataset_params",
        json.dumps({"n_train": 64, "n_validation": 10, "n_test": 32}),
        "--ddpm_epochs",
        "1",
        "--ddpm_batch_size",
        "16",
        "--num_inference_steps",
        "10",
        "--generation_batch_size",
        "16",
        "--shard_size",
        "16",
        "--per_device_train_batch_size",
        "16",
        *COMMON,
    )
    summary = json.loads((tmp_path / "model" / "selection.json").read_text())
    shards = sorted(p.name for p in (tmp_path / "synthetic" / "targeted").glob("*"))
    assert shards == ["manifest.json"] + [f"shard-{k:05d}" for k in range(-(-len(summary["indices"]) // 16))]
    assert summary["metrics"]["generated_images"] == len(summary["indices"]) > 0
    assert (tmp_path / "ddpm" / "README.md").exists() and (tmp_path / "synthetic_dataset" / "README.md").exists()
