"""CLIPCov across 2 real processes (torchrun, gloo): class-sharded selection equals one process; the CLI shards embeddings."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from datasets import Dataset

from hfdc.clipcov import select

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[2])
    import numpy as np
    from accelerate import PartialState
    from hfdc.clipcov import select
    from hfdc.distributed import end_process_group
    from tests.test_clipcov_distributed import data

    image, text, labels = data()
    result = select(image, text, 0.2, labels=labels, block_size=5, show_progress=False)
    state = PartialState()
    np.savez(f"{sys.argv[1]}/rank{state.process_index}.npz", indices=result.indices, scores=result.scores,
             processes=state.num_processes)
    end_process_group()
""")


def data():
    rng = np.random.default_rng(7)
    image, text = rng.normal(size=(400, 12)).astype(np.float32), rng.normal(size=(400, 12)).astype(np.float32)
    return image, text, rng.integers(0, 9, 400)


@pytest.mark.slow
def test_two_processes_equal_one(tmp_path):
    script = tmp_path / "run_select.py"
    script.write_text(SCRIPT)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            str(script),
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        timeout=240,
        cwd=str(ROOT),
    )
    image, text, labels = data()
    expected = select(image, text, 0.2, labels=labels, block_size=5, show_progress=False)
    for rank in range(2):
        got = np.load(tmp_path / f"rank{rank}.npz")
        assert int(got["processes"]) == 2
        np.testing.assert_array_equal(got["indices"], expected.indices)
        np.testing.assert_array_equal(got["scores"], expected.scores)


@pytest.mark.slow
def test_cli_under_two_processes_shards_embeddings_and_publishes_once(tmp_path):
    out = tmp_path / "run"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "hfdc",
            "clipcov",
            "--output_dir",
            str(out),
            "--n_train",
            "40",
            "--n_validation",
            "12",
            "--n_test",
            "12",
            "--prompt_templates",
            "a {}",
            "--fraction",
            "0.25",
            "--block_size",
            "4",
            "--proxy_epochs",
            "1",
            "--num_train_epochs",
            "1",
            "--per_device_train_batch_size",
            "6",
            "--save_strategy",
            "no",
            "--disable_tqdm",
            "true",
            "--use_cpu",
            "true",
        ],
        check=True,
        timeout=240,
        cwd=str(ROOT),
    )
    assert len(list((out / "embeddings").glob("clip-embeddings-*.arrow"))) == 2  # one Dataset.shard per process
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["selected_rows"] == 10 and metrics["pool_rows"] == 40
    assert len(Dataset.load_from_disk(str(out / "subset"))) == 10
