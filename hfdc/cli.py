"""``hfdc <command> --config recipe.yaml [--field value ...]``.

Every command is a config dataclass read by ``transformers.HfArgumentParser`` plus a ``run(config)``
function. YAML keys, flags and dataclass fields are the same names; flags override the recipe; a
recipe key that is not a field is an error naming the key. A command whose config has a ``stage`` field takes
it as a leading word (``hfdc mkdt experts --config r.yaml``); a method whose stages have different configs
registers one two-word command per stage (``hfdc regap train``). Command modules import lazily so
``hfdc --help`` stays fast.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import importlib
import json
import logging
import sys
from pathlib import Path
from typing import NamedTuple


class Command(NamedTuple):
    help: str
    config: str  # "module:ConfigClass"
    run: str  # "module:function" taking the parsed config


COMMANDS: dict[str, Command] = {
    "data": Command(
        "Export an embedded data set (shapes, feature_patches, digits, sentiment) with a card.",
        "hfdc.data.cli:DataConfig",
        "hfdc.data.cli:run",
    ),
    "colm": Command(
        "CoLM: train with per-step mini-batch coresets (facility location on zeroth-order gradient features).",
        "hfdc.colm.config:ColmConfig",
        "hfdc.colm.cli:run",
    ),
    "clipcov": Command(
        "CLIPCov: select an image-caption subset that preserves cross-covariance, for CLIP pretraining.",
        "hfdc.clipcov.config:ClipCovConfig",
        "hfdc.clipcov.cli:run",
    ),
    "useful": Command(
        "USEFUL: find slow-learnable examples early in training, upsample them, retrain.",
        "hfdc.useful.config:UsefulConfig",
        "hfdc.useful.cli:run",
    ),
    "tada": Command(
        "TADA: augment only the slow-learnable examples with a diffusion model (SDEdit), retrain.",
        "hfdc.tada.config:TadaConfig",
        "hfdc.tada.cli:run",
    ),
    "hallucination": Command(
        "Hallucination detection: self/cross-model consistency with a budget-aware two-stage verifier.",
        "hfdc.hallucination.config:HallucinationConfig",
        "hfdc.hallucination.cli:run",
    ),
    "mmgen": Command(
        "MM-Gen: targeted synthetic Q/A for a vision-language task (partition, generate, filter, SFT, evaluate).",
        "hfdc.mmgen.config:MmgenConfig",
        "hfdc.mmgen.cli:run",
    ),
    "mkdt": Command(
        "MKDT: distil a data set for self-supervised pre-training (teacher | experts | distill | evaluate | all).",
        "hfdc.mkdt.config:MkdtConfig",
        "hfdc.mkdt.cli:run",
    ),
    "ddranking": Command(
        "DD-Ranking: label- and augmentation-robust scores (LRS, ARS) of a distilled data set.",
        "hfdc.ddranking.config:DDRankingConfig",
        "hfdc.ddranking.cli:run",
    ),
    "gradmm": Command(
        "GRADMM: readable synthetic text whose gradient matches a few real examples (ADMM), filtered and evaluated.",
        "hfdc.gradmm.config:GradmmConfig",
        "hfdc.gradmm.cli:run",
    ),
    "regap train": Command(
        "ReGap: LLaVA stage-1 pretraining with the modality-gap regulariser; gap and unsafe rate in the card.",
        "hfdc.regap.config:RegapConfig",
        "hfdc.regap.cli:run_train",
    ),
    "regap measure": Command(
        "ReGap: per-layer modality gap (MIR) of a LLaVA-style model; prints the table, saves a plot.",
        "hfdc.regap.config:GapConfig",
        "hfdc.regap.cli:run_measure",
    ),
    "regap safety": Command(
        "ReGap: unsafe rate on harmful instructions with blank / random / typographic images or none.",
        "hfdc.regap.config:SafetyConfig",
        "hfdc.regap.cli:run_safety",
    ),
    "demo": Command(
        "Run the default recipes on the embedded data and write artifacts and cards.",
        "hfdc.demo:DemoConfig",
        "hfdc.demo:run",
    ),
}


class RecipeError(ValueError):
    """A recipe or flag value that the command cannot use; the message names the key and the fix."""


def _load(target: str):
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def load_recipe(path: str | Path) -> dict:
    """Read a YAML recipe into a dict of field -> value."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"recipe {str(path)!r} does not exist")
    with path.open() as f:
        recipe = yaml.safe_load(f) or {}
    if not isinstance(recipe, dict):
        raise RecipeError(f"recipe {str(path)!r} must be a mapping of field: value, got {type(recipe).__name__}")
    return recipe


def recipe_to_argv(recipe: dict, config_class, source: str = "recipe") -> list[str]:
    """Turn recipe keys into flags so that argparse applies one set of type conversions to both.

    Unknown keys raise :class:`RecipeError` naming the key and the closest valid field.
    """
    fields = {f.name: f for f in dataclasses.fields(config_class) if f.init}
    argv: list[str] = []
    for key, value in recipe.items():
        if key not in fields:
            close = difflib.get_close_matches(key, fields, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise RecipeError(
                f"unknown key {key!r} in {source}{hint}; "
                f"`hfdc <command> --help` lists the fields of {config_class.__name__}"
            )
        if value is None or value == []:
            default = fields[key].default
            factory = fields[key].default_factory
            default = factory() if factory is not dataclasses.MISSING else default
            if default in (None, []) or default == value:
                continue
            raise RecipeError(f"key {key!r} in {source}: an empty value cannot override default {default!r}")
        if isinstance(value, bool):
            argv += [f"--{key}", str(value).lower()]
        elif isinstance(value, (list, tuple)):
            argv += [f"--{key}", *(json.dumps(v) if isinstance(v, dict) else str(v) for v in value)]
        elif isinstance(value, dict):
            argv += [f"--{key}", json.dumps(value)]
        else:
            argv += [f"--{key}", str(value)]
    return argv


def parse_config(config_class, argv: list[str], prog: str = "hfdc"):
    """Parse ``[--config recipe.yaml] [--field value ...]`` into one ``config_class`` instance."""
    from transformers import HfArgumentParser

    parser = HfArgumentParser(config_class, prog=prog)
    parser.add_argument(
        "--config", default=None, help="YAML recipe; its keys are the fields below; flags override it."
    )
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config", default=None)
    known, rest = pre.parse_known_args(argv)
    recipe_argv = recipe_to_argv(load_recipe(known.config), config_class, known.config) if known.config else []
    outputs = parser.parse_args_into_dataclasses(recipe_argv + rest)
    return outputs[0]


def split_command(argv: list[str]) -> tuple[str, list[str]]:
    """(command, its arguments): the first two words when they name a command (``regap train``), else the first."""
    if len(argv) > 1 and f"{argv[0]} {argv[1]}" in COMMANDS:
        return f"{argv[0]} {argv[1]}", argv[2:]
    return argv[0], argv[1:]


def run_command(name: str, argv: list[str]):
    """Parse ``argv`` for command ``name`` and run it; returns what the command's ``run`` returns."""
    if name not in COMMANDS:
        stages = [command.split(" ", 1)[1] for command in COMMANDS if command.startswith(f"{name} ")]
        if stages:
            raise RecipeError(
                f"command {name!r} needs a sub-command: {' | '.join(stages)} (`hfdc {name} <sub-command> --help`)"
            )
        close = difflib.get_close_matches(name, COMMANDS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise RecipeError(f"unknown command {name!r}{hint}; `hfdc --help` lists the commands")
    from hfdc.distributed import cpu_threads

    command = COMMANDS[name]
    config_class = _load(command.config)
    if argv and not argv[0].startswith("-") and "stage" in {f.name for f in dataclasses.fields(config_class)}:
        argv = ["--stage", *argv]  # `hfdc mkdt experts ...`: a leading word names the stage
    config = parse_config(config_class, argv, prog=f"hfdc {name}")
    with cpu_threads(getattr(config, "cpu_threads", 0)):
        return _load(command.run)(config)


def _print_help() -> None:
    width = max(map(len, COMMANDS))
    lines = ["usage: hfdc <command> [--config recipe.yaml] [--field value ...]", "", "commands:"]
    lines += [f"  {name.ljust(width)}  {cmd.help}" for name, cmd in COMMANDS.items()]
    lines += ["", "`hfdc <command> --help` lists every field of that command's config."]
    print("\n".join(lines))


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        _print_help()
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    from hfdc.distributed import end_process_group

    try:
        run_command(*split_command(argv))
        end_process_group()
    except RecipeError as err:
        print(f"hfdc: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
