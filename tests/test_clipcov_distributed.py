"""CLIPCov across 2 real processes (torchrun, gloo): class-sharded selection equals one process and each process
reads only its rows; the CLI shards the embeddings, evaluates zero-shot and publishes on the main process only."""

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
from datasets import Dataset

from hfdc.clipcov import select
from tests.distributed import torchrun

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[2])
    import numpy as np
    from accelerate import PartialState
    from hfdc.clipcov import select
    from hfdc.distributed import end_process_group
    from tests.test_clipcov_distributed import RowsRead, data

    image, text, labels = data()
    image, text = RowsRead(image), RowsRead(text)
    result = select(image, text, 0.2, labels=labels, block_size=5, show_progress=False)
    state = PartialState()
    np.savez(f"{sys.argv[1]}/rank{state.process_index}.npz", indices=result.indices, scores=result.scores,
             image_rows=sorted(image.rows), text_rows=sorted(text.rows))
    end_process_group()
""")
CLI = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[2])
    from accelerate import PartialState
    import hfdc.clipcov.cli
    from hfdc.cli import main

    evaluate, folder = hfdc.clipcov.cli.zero_shot_accuracy, sys.argv[1]

    def recorded(*args, **kwargs):  # one file per process that evaluates
        with open(f"{folder}/zero-shot-rank{PartialState().process_index}", "a") as f:
            f.write("evaluated\\n")
        return evaluate(*args, **kwargs)

    hfdc.clipcov.cli.zero_shot_accuracy = recorded
    sys.argv = ["hfdc", *sys.argv[3:]]
    main()
""")


class RowsRead:
    """A row-indexable array that records the rows read from it (in this process)."""

    def __init__(self, array):
        self.array, self.shape, self.dtype, self.rows = array, array.shape, array.dtype, set()

    def __len__(self):
        return len(self.array)

    def __getitem__(self, key):
        self.rows.update(np.atleast_1d(np.arange(len(self.array))[key]).tolist())
        return self.array[key]

    def __array__(self, dtype=None, copy=None):  # read whole
        return self[:].astype(dtype or self.dtype)


def data():
    rng = np.random.default_rng(7)
    image, text = rng.normal(size=(400, 12)).astype(np.float32), rng.normal(size=(400, 12)).astype(np.float32)
    return image, text, rng.integers(0, 9, 400)


@pytest.mark.slow
def test_two_processes_equal_one(tmp_path):
    script = tmp_path / "run_select.py"
    script.write_text(SCRIPT)
    torchrun(str(script), str(tmp_path), str(ROOT), timeout=240)
    image, text, labels = data()
    expected = select(image, text, 0.2, labels=labels, block_size=5, show_progress=False)
    sizes = np.bincount(labels)
    by_size = np.lexsort((np.arange(len(sizes)), -sizes))
    for rank in range(2):
        got = np.load(tmp_path / f"rank{rank}.npz")
        np.testing.assert_array_equal(got["indices"], expected.indices)
        np.testing.assert_array_equal(got["scores"], expected.scores)
        # read: its contiguous half of the rows (classes, centroids), then the rows of the classes it scores
        own = set(range(200 * rank, 200 * rank + 200)) | set(np.flatnonzero(np.isin(labels, by_size[rank::2])))
        for name in ("image_rows", "text_rows"):
            assert set(got[name].tolist()) <= own and len(got[name]) < len(labels)


@pytest.mark.slow
def test_cli_under_two_processes_shards_embeddings_evaluates_and_publishes_once(tmp_path):
    out = tmp_path / "run"
    script = tmp_path / "run_cli.py"
    script.write_text(CLI)
    torchrun(
        str(script),
        str(tmp_path),
        str(ROOT),
        "clipcov",
        "--output_dir",
        str(out),
        "--dataset_params",
        '{"n_train": 40, "n_validation": 12, "n_test": 12}',
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
        timeout=240,
    )
    assert len(list((out / "embeddings").glob("clip-embeddings-*.arrow"))) == 2  # one Dataset.shard per process
    assert len(list((out / "embeddings").glob("*_embeds.npy"))) == 2  # memory-mapped by both
    # the proxy and the trained CLIP are evaluated once each, by the main process
    assert (tmp_path / "zero-shot-rank0").read_text().split() == ["evaluated"] * 2
    assert not (tmp_path / "zero-shot-rank1").exists()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["selected_rows"] == 10 and metrics["pool_rows"] == 40
    assert len(Dataset.load_from_disk(str(out / "subset"))) == 10
