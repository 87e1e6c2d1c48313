"""``hfdc useful``: run the USEFUL recipe and save (and push) the retrained model with its selection and card."""

from __future__ import annotations

import json
from pathlib import Path

from hfdc.data import card_name
from hfdc.hub import push_model
from hfdc.useful.config import UsefulConfig
from hfdc.useful.train import train_useful

PAPER = "Changing the Training Data Distribution to Reduce Simplicity Bias Improves In-distribution Generalization"


def run(config: UsefulConfig) -> Path:
    """Train t epochs, discover, upsample, retrain; write model/ (weights, selection.json, README.md) under output_dir
    (the main process writes; every process trains)."""
    result = train_useful(config)
    folder = Path(config.output_dir) / "model"
    if not result.trainer.is_world_process_zero():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    selection = {"selection": config.selection, "indices": result.selected, "metrics": result.metrics}
    if result.slow is not None:
        selection.update(method=result.slow.method, epoch=result.slow.epoch, stats=result.slow.stats)
    (folder / "selection.json").write_text(json.dumps(selection, indent=2) + "\n")
    card = {
        "method": "useful",
        "paper": PAPER,
        "arxiv": "2404.17768",
        "datasets": [card_name(config.dataset)],
        "description": (
            f"{config.model} retrained after {config.emphasis}ing {len(result.selected)} {config.selection} rows "
            f"x{config.factor}"
            + (f" (slow-learnable at epoch {result.slow.epoch}, {config.partition})" if result.slow else "")
            + (f", SAM rho={config.sam_rho}" if config.sam_rho else "")
            + "."
        ),
        "config": config,
        "figures": result.metrics,
    }
    path = push_model(result.trainer.model, repo_id=config.repo_id, output_dir=folder, card=card)
    print(json.dumps(result.metrics, indent=2))
    return path
