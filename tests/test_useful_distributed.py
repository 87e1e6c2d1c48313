"""USEFUL and TADA under 2 real processes (torchrun, gloo): both train, artifacts and shards are written once."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

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


def torchrun(*args):
    subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "hfdc", *args],
        check=True,
        timeout=300,
        cwd=str(ROOT),
    )


@pytest.mark.slow
def test_useful_and_tada_under_two_processes(tmp_path):
    torchrun(
        "useful",
        "--output_dir",
        str(tmp_path / "useful"),
        "--dataset_params",
        json.dumps(
            {
                "n_train": 200,
                "n_validation": 10,
                "n_test": 100,
                "dim": 50,
                "noise_std": 0.2,
                "missing_easy_fraction": 0.3,
            }
        ),
        "--learning_rate",
        "0.5",
        "--optim",
        "sgd",
        "--per_device_train_batch_size",
        "25",
        *COMMON,
    )
    selection = json.loads((tmp_path / "useful" / "model" / "selection.json").read_text())
    assert selection["metrics"]["processes"] == 2
    assert selection["metrics"]["train_rows"] == 200 + len(selection["indices"]) > 200
    assert (tmp_path / "useful" / "model" / "model.safetensors").exists()

    torchrun(
        "tada",
        "--output_dir",
        str(tmp_path / "tada"),
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
    summary = json.loads((tmp_path / "tada" / "model" / "selection.json").read_text())
    shards = sorted((tmp_path / "tada" / "synthetic" / "targeted").glob("shard-*"))
    assert len(shards) == -(-len(summary["indices"]) // 16) and not list(
        (tmp_path / "tada" / "synthetic" / "targeted").glob("tmp-*")
    )
    assert summary["metrics"]["processes"] == 2
    assert summary["metrics"]["generated_images"] == len(summary["indices"]) > 0
    assert (tmp_path / "tada" / "ddpm" / "README.md").exists() and (
        tmp_path / "tada" / "synthetic_dataset" / "README.md"
    ).exists()
