"""hfdc.config: choices metadata checked in Python and by the parser, Trainer's push_to_hub refused, JSON params."""

from dataclasses import dataclass, field

import pytest
from transformers import TrainingArguments

from hfdc.cli import parse_config
from hfdc.config import DatasetConfig, HfdcConfig, OutputConfig, check_choices, parse_json_object


@dataclass
class Toy(DatasetConfig, HfdcConfig, TrainingArguments):
    mode: str = field(default="a", metadata={"help": "x", "choices": ("a", "b")})
    modes: list[str] = field(default_factory=lambda: ["a"], metadata={"help": "y", "choices": ("a", "b")})
    maybe: str | None = field(default=None, metadata={"help": "z", "choices": ("c",)})


def test_choices_are_checked_in_python_and_by_the_parser(tmp_path, capsys):
    assert Toy(output_dir=str(tmp_path), mode="b", modes=["b", "a"]).mode == "b"
    with pytest.raises(ValueError, match=r"mode='c' is not allowed; choose from \['a', 'b'\]"):
        Toy(output_dir=str(tmp_path), mode="c")
    with pytest.raises(ValueError, match=r"modes=\['a', 'z'\] is not allowed"):
        Toy(output_dir=str(tmp_path), modes=["a", "z"])
    with pytest.raises(ValueError, match="maybe='d'"):
        Toy(output_dir=str(tmp_path), maybe="d")
    with pytest.raises(SystemExit):
        parse_config(Toy, ["--output_dir", str(tmp_path), "--mode", "c"])
    assert "invalid choice: 'c'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_config(Toy, ["--help"])
    assert "{a,b}" in capsys.readouterr().out


def test_trainer_push_to_hub_is_refused_with_a_pointer_to_repo_id(tmp_path):
    with pytest.raises(ValueError, match="set repo_id=<user/name> instead"):
        Toy(output_dir=str(tmp_path), push_to_hub=True)
    assert Toy(output_dir=str(tmp_path), repo_id="me/x").repo_id == "me/x"


def test_dataset_params_and_cpu_threads(tmp_path):
    config = Toy(output_dir=str(tmp_path), dataset_params='{"n_train": 4}')
    assert config.dataset_params == {"n_train": 4} and config.dataset == "shapes"
    assert parse_json_object("p", {"a": 1}) == {"a": 1}
    with pytest.raises(ValueError, match="p must be a JSON object"):
        parse_json_object("p", "[1]")
    with pytest.raises(ValueError, match="dataset_params must be a JSON object like"):
        Toy(output_dir=str(tmp_path), dataset_params="{n_train: 4")
    with pytest.raises(ValueError, match="cpu_threads must be >= 0"):
        OutputConfig(cpu_threads=-1)


def test_check_choices_on_a_plain_dataclass():
    @dataclass
    class Plain:
        kind: str = field(default="x", metadata={"choices": ["x", "y"]})

    check_choices(Plain("y"))
    with pytest.raises(ValueError, match="kind='q'"):
        check_choices(Plain("q"))
