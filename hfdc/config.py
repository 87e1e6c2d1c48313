"""Config pieces shared by commands that are not Trainers (Trainer configs subclass TrainingArguments)."""

from dataclasses import dataclass, field


@dataclass
class OutputConfig:
    """Where a command writes its artifact and, optionally, which Hub repo it pushes to."""

    output_dir: str = field(default="outputs", metadata={"help": "Local folder for artifacts and cards."})
    repo_id: str | None = field(
        default=None,
        metadata={"help": "Hub repo id (user/name) to push to; unset saves locally only. Token from HF_TOKEN."},
    )
    seed: int = field(default=0, metadata={"help": "Seed for every random choice of the command."})
