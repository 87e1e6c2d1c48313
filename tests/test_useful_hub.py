"""USEFUL and TADA push their artifacts (model, DDPM, synthetic data set) with cards to a Hub (the local test server)."""

import json
import textwrap

import pytest

from tests.hub_fixtures import run_online

CHECK = textwrap.dedent("""
    import json, sys
    import hfdc.useful  # registers the two-layer CNN with the Auto classes
    from datasets import load_dataset
    from diffusers import UNet2DModel
    from huggingface_hub import hf_hub_download
    from transformers import AutoModel

    model = AutoModel.from_pretrained("user/useful-demo")
    readme = open(hf_hub_download("user/useful-demo", "README.md")).read()
    selection = json.load(open(hf_hub_download("user/useful-demo", "selection.json")))
    unet = UNet2DModel.from_pretrained("user/tada-ddpm")
    data = load_dataset("user/tada-demo-data", split="train")
    json.dump({"model": type(model).__name__, "readme": readme, "selected": len(selection["indices"]),
               "class_embeds": unet.config.num_class_embeds, "rows": len(data), "synthetic": sum(data["synthetic"]),
               "tada_readme": open(hf_hub_download("user/tada-demo", "README.md")).read()}, open(sys.argv[1], "w"))
""")


@pytest.mark.slow
def test_push_to_hub(hub_server, tmp_path):
    common = [
        "--separation_epoch",
        "1",
        "--num_train_epochs",
        "2",
        "--disable_tqdm",
        "true",
        "--use_cpu",
        "true",
        "--cpu_threads",
        "1",
    ]
    proc = run_online(
        [
            "-m",
            "hfdc",
            "useful",
            "--config",
            "recipes/useful/demo.yaml",
            "--output_dir",
            str(tmp_path / "u"),
            "--repo_id",
            "user/useful-demo",
            *common,
        ],
        hub_server,
        tmp_path / "home",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = run_online(
        [
            "-m",
            "hfdc",
            "tada",
            "--config",
            "recipes/tada/demo.yaml",
            "--output_dir",
            str(tmp_path / "t"),
            "--dataset_params",
            json.dumps({"n_train": 64, "n_validation": 10, "n_test": 32}),
            "--ddpm_epochs",
            "1",
            "--num_inference_steps",
            "10",
            "--repo_id",
            "user/tada-demo",
            "--ddpm_repo_id",
            "user/tada-ddpm",
            *common,
        ],
        hub_server,
        tmp_path / "home",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    script = tmp_path / "check.py"
    script.write_text(CHECK)
    proc = run_online([str(script), str(tmp_path / "got.json")], hub_server, tmp_path / "home2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads((tmp_path / "got.json").read_text())
    assert got["model"] == "TwoLayerCNN" and "2404.17768" in got["readme"] and "test_accuracy" in got["readme"]
    assert got["selected"] > 0 and got["class_embeds"] == 10
    assert got["rows"] == 64 + got["synthetic"] and got["synthetic"] > 0 and "2505.21574" in got["tada_readme"]
