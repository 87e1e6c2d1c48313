"""Round trips through the test Hub, run in a subprocess by tests/test_hub.py: ``python -m tests.hub_roundtrip OUT``.

Pushes a tiny DatasetDict and a tiny Llama with hfdc.hub, loads them back with the real clients and writes what
it saw to the JSON file OUT (the test asserts on it).
"""

import json
import logging
import os
import sys
from pathlib import Path

import datasets
import numpy as np
import torch
from huggingface_hub import DatasetCard, ModelCard
from PIL import Image
from transformers import LlamaConfig, LlamaForCausalLM

from hfdc import hub
from tests.hub_server import ECHO_AUTH_PREFIX

CARD = {
    "method": "colm",
    "paper": "Small-to-Large Data Selection",
    "arxiv": "2407.19580",
    "license": "apache-2.0",
    "tags": ["data-selection"],
    "base_model": "hfdc/tiny-llama",
    "datasets": ["hfdc/sentiment"],
    "description": "A round-trip test artifact.",
    "config": {"budget": 4, "seed": 0, "hub_token": os.environ.get("HF_TOKEN")},
    "figures": {"accuracy": 0.75},
}


def tiny_dataset() -> datasets.DatasetDict:
    rng = np.random.default_rng(0)
    features = datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=["a", "b"]), "text": datasets.Value("string")}
    )

    def split(n, offset):
        return datasets.Dataset.from_dict(
            {
                "image": [Image.fromarray(rng.integers(0, 255, (4, 4, 3), dtype=np.uint8)) for _ in range(n)],
                "label": [i % 2 for i in range(n)],
                "text": [f"row {offset + i}" for i in range(n)],
            },
            features=features,
        )

    return datasets.DatasetDict({"train": split(5, 0), "test": split(3, 5)})


def rows(dataset: datasets.Dataset) -> list:
    return [(np.asarray(r["image"]).tolist(), r["label"], r["text"]) for r in dataset]


def main(out: Path) -> None:
    logging.basicConfig(level=logging.INFO)
    torch.manual_seed(0)
    work = out.parent
    result = {}

    data = tiny_dataset()
    hub.push_dataset(data, repo_id="hfdc-tester/tiny-data", output_dir=work / "data", card=CARD)
    loaded = datasets.load_dataset("hfdc-tester/tiny-data")
    result["dataset_equal"] = {s: rows(loaded[s]) == rows(data[s]) for s in data}
    result["dataset_features_equal"] = loaded["train"].features == data["train"].features
    result["dataset_card"] = DatasetCard.load("hfdc-tester/tiny-data", repo_type="dataset").data.to_dict()

    model = LlamaForCausalLM(
        LlamaConfig(
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=2,
            vocab_size=64,
        )
    )
    hub.push_model(model, repo_id="hfdc-tester/tiny-llama", output_dir=work / "model", card=CARD)
    reloaded = LlamaForCausalLM.from_pretrained("hfdc-tester/tiny-llama")
    theirs = reloaded.state_dict()
    result["model_equal"] = all(torch.equal(v, theirs[k]) for k, v in model.state_dict().items())
    model_card = ModelCard.load("hfdc-tester/tiny-llama")
    result["model_card"] = model_card.data.to_dict()
    result["model_card_text"] = model_card.text

    errors = {}
    try:
        hub.push_model(model, repo_id=f"hfdc-tester/{ECHO_AUTH_PREFIX}-model", output_dir=work / "echo", card=CARD)
    except Exception as exc:
        errors["server_echoes_token"] = f"{type(exc).__name__}: {exc}"
    token = os.environ.pop("HF_TOKEN")
    try:
        hub.push_dataset(data, repo_id="hfdc-tester/no-token", output_dir=work / "no-token", card=CARD)
    except Exception as exc:
        errors["no_token"] = f"{type(exc).__name__}: {exc}"
    os.environ["HF_TOKEN"] = token
    result["errors"] = errors
    result["no_token_saved_locally"] = (work / "no-token" / "README.md").is_file()
    result["local_cards"] = [p.read_text() for p in work.rglob("README.md")]
    out.write_text(json.dumps(result))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
