"""``hfdc demo``: run the default recipes on the embedded data, one after another."""

import importlib.resources
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from hfdc.cli import run_command

logger = logging.getLogger(__name__)


# (command, recipe under recipes/); each recipe runs in minutes on 2 CPU cores.
DEFAULT_STEPS = [
    "data:data/shapes.yaml",
    "colm:colm/demo.yaml",
    "hallucination:hallucination/demo.yaml",
    "useful:useful/demo.yaml",
    "tada:tada/demo.yaml",
    "clipcov:clipcov/demo.yaml",
    "mmgen:mmgen/demo.yaml",
    "mkdt:mkdt/demo.yaml",
    "ddranking:ddranking/demo.yaml",
    "gradmm:gradmm/demo.yaml",
    "regap train:regap/demo.yaml",
]


@dataclass
class DemoConfig:
    output_dir: str = field(default="outputs", metadata={"help": "Folder under which each step writes its artifacts."})
    steps: list[str] = field(
        default_factory=lambda: list(DEFAULT_STEPS),
        metadata={"help": "Steps as command:recipe (recipe path relative to recipes/, shipped inside the package)."},
    )


def run(config: DemoConfig) -> dict[str, Path]:
    """Run every step with ``--output_dir <output_dir>/<recipe name>``; return step -> output folder."""
    written = {}
    for step in config.steps:
        command, _, recipe = step.partition(":")
        out = Path(config.output_dir) / Path(recipe).parent.name / Path(recipe).stem
        start = time.perf_counter()
        logger.info("demo step %s (%s) -> %s", command, recipe, out)
        with importlib.resources.as_file(importlib.resources.files("hfdc") / "recipes" / recipe) as path:
            run_command(command, ["--config", str(path), "--output_dir", str(out)])
        logger.info("demo step %s done in %.1f s", command, time.perf_counter() - start)
        written[step] = out
    print("\nhfdc demo wrote:")
    for step, out in written.items():
        print(f"  {step:40s} {out.resolve()}")
    return written
