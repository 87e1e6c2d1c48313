"""``hfdc tada``: run the TADA recipe; save the synthetic rows (datasets) and the retrained model (and push them)."""

from __future__ import annotations

import json
from pathlib import Path

from hfdc.data import card_name
from hfdc.hub import push_dataset, push_model
from hfdc.tada.config import TadaConfig
from hfdc.tada.train import TADA_PAPER, train_tada


def run(config: TadaConfig) -> Path:
    """Discover, augment, retrain; write synthetic_dataset/ and model/ (with cards) under output_dir (main process)."""
    result = train_tada(config)
    out = Path(config.output_dir)
    if not result.trainer.is_world_process_zero():
        return out / "model"
    common = {
        "method": "tada",
        "paper": TADA_PAPER,
        "arxiv": "2505.21574",
        "datasets": [card_name(config.dataset)],
        "config": config,
    }
    what = f"{len(result.augmented)} {config.augment} rows x{config.images_per_example} " + (
        f"SDEdit variants (strength {config.strength}, {config.generator}; "
        f"{result.metrics['dropped_unsafe']} flagged by the safety checker and dropped)"
        if config.addition == "sdedit"
        else "copies (duplication, no generation)"
    )
    push_dataset(
        result.train_dataset,
        repo_id=f"{config.repo_id}-data" if config.repo_id else None,
        output_dir=out / "synthetic_dataset",
        card={
            **common,
            "description": f"{config.dataset} training set plus {what}; `synthetic` flags generated rows, `source_index` "
            "names the real row.",
            "figures": {k: v for k, v in result.metrics.items() if not k.startswith("test_")},
        },
    )
    folder = out / "model"
    folder.mkdir(parents=True, exist_ok=True)
    summary = {"augment": config.augment, "indices": result.augmented, "metrics": result.metrics}
    if result.slow is not None:
        summary.update(method=result.slow.method, epoch=result.slow.epoch, stats=result.slow.stats)
    (folder / "selection.json").write_text(json.dumps(summary, indent=2) + "\n")
    path = push_model(
        result.trainer.model,
        repo_id=config.repo_id,
        output_dir=folder,
        card={
            **common,
            "description": f"{config.model} retrained on real data plus {what}.",
            "figures": result.metrics,
        },
    )
    print(json.dumps(result.metrics, indent=2))
    return path
