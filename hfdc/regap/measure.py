"""Measure the modality gap of a LLaVA-style model layer by layer: ``measure_gap(model, processor, pairs)``.

Each (image, text) pair runs through the model in the stage-1 layout (``hfdc.regap.data``); at every LLM
hidden-state index (0 = input embeddings, i.e. the projector output for image tokens; i = output of decoder
layer i) the image-token and text-token states feed float64 running moments (``hfdc.regap.gap``). The report
holds the per-layer Frechet distance, mean distance and cosine gap, and MIR = the sum of the Frechet
distances over the decoder layers 1..L (Huang et al. 2024, arXiv 2410.07167, as used by ReGap, arXiv 2505.24208).
MIR's reference code also replaces 3-sigma outlier states by the median before fitting; here the one
systematic outlier, the attention-sink first position, is left out instead (``modality_masks``), so states
stream through moments and never all sit in memory.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from hfdc.regap.data import encode_pairs
from hfdc.regap.gap import LayerGap, RunningMoments, layer_gap
from hfdc.regap.llava import check_image_tokens, check_llava, modality_masks


@dataclass
class GapReport:
    """Per-layer gaps (index 0 = projector output / input embeddings, i = decoder layer i) and token counts."""

    layers: list[LayerGap]
    n_pairs: int
    n_image_tokens: int
    n_text_tokens: int

    @property
    def mir(self) -> float:
        """Modality Integration Rate: the sum of the per-layer Frechet distances over decoder layers 1..L."""
        return sum(layer.frechet for layer in self.layers[1:])

    @property
    def mir_log10(self) -> float:
        """log10(MIR), the number MIR's reference code prints."""
        return math.log10(self.mir) if self.mir > 0 else float("-inf")

    def column(self, name: str) -> list[float]:
        """One per-layer quantity: frechet, distance, cosine_gap, scale or image_norm."""
        return [getattr(layer, name) for layer in self.layers]

    def table(self) -> str:
        """The per-layer table as aligned text, with MIR and the token counts."""
        lines = [f"{'layer':>5} {'frechet':>10} {'distance':>9} {'cos gap':>8} {'text norm':>10} {'image norm':>10}"]
        lines += [
            f"{i:>5} {g.frechet:>10.4f} {g.distance:>9.4f} {g.cosine_gap:>8.4f} {g.scale:>10.3f} {g.image_norm:>10.3f}"
            for i, g in enumerate(self.layers)
        ]
        lines.append(
            f"MIR (sum over layers 1..{len(self.layers) - 1}) = {self.mir:.4f} (log10 {self.mir_log10:.4f}); "
            f"{self.n_pairs} pairs, {self.n_image_tokens} image / {self.n_text_tokens} text tokens"
        )
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "mir": self.mir,
            "mir_log10": self.mir_log10,
            "n_pairs": self.n_pairs,
            "n_image_tokens": self.n_image_tokens,
            "n_text_tokens": self.n_text_tokens,
            "layers": [asdict(layer) for layer in self.layers],
        }

    def save(self, path: str | Path) -> Path:
        """Write :meth:`to_dict` as JSON."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> GapReport:
        """A report written by :meth:`save`."""
        data = json.loads(Path(path).read_text())
        return cls(
            layers=[LayerGap(**layer) for layer in data["layers"]],
            n_pairs=data["n_pairs"],
            n_image_tokens=data["n_image_tokens"],
            n_text_tokens=data["n_text_tokens"],
        )

    def plot(self, path: str | Path, label: str = "") -> Path:
        """Save a PNG of the per-layer curves (:func:`plot_gaps` with this report alone)."""
        return plot_gaps({label: self}, path)


PANELS = (
    ("frechet", "Frechet distance (per-layer MIR)"),
    ("distance", "mean distance / text norm"),
    ("cosine_gap", "1 - cos(image mean, text mean)"),
)


def plot_gaps(reports: dict[str, GapReport], path: str | Path) -> Path:
    """Save a PNG with one panel per quantity (``PANELS``) and one curve per labelled report (e.g. before/after)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not reports:
        raise ValueError("plot_gaps needs at least one report")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, len(PANELS), figsize=(13, 3.6))
    for label, report in reports.items():
        layers = list(range(len(report.layers)))
        legend = f"{label} (MIR {report.mir:.4g})" if label else f"MIR {report.mir:.4g}"
        for ax, (name, _) in zip(axes, PANELS):
            ax.plot(layers, report.column(name), marker="o", markersize=3, label=legend)
    for ax, (_, title) in zip(axes, PANELS):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("LLM layer (0 = projector output)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("modality gap between image and text tokens, per LLM layer", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


@torch.no_grad()
def measure_gap(
    model,
    processor,
    pairs,
    batch_size: int = 8,
    prompt_format: str = "plain",
    instruction: str = "",
    max_length: int = 512,
    progress: bool = True,
) -> GapReport:
    """Per-layer modality gap and MIR of ``model`` on ``pairs``, a sequence of (PIL image, text) tuples.

    The pairs are laid out as in stage-1 training (``prompt_format``: plain | chat, see ``hfdc.regap.data``);
    the text is what follows the image (a caption or question). Raises TypeError for a model that is not
    LLaVA-style and ValueError when the processor's image token count does not match the model.
    """
    check_llava(model)
    pairs = list(pairs)
    if not pairs:
        raise ValueError("pairs is empty: pass (image, text) tuples, about 100 for a stable MIR")
    if any(not isinstance(pair, (tuple, list)) or len(pair) != 2 for pair in pairs):
        raise ValueError("pairs must be (image, text) tuples")
    was_training = model.training
    model.eval()
    moments = None
    counts = [0, 0]
    try:
        for start in tqdm(range(0, len(pairs), batch_size), desc="measure gap", disable=not progress):
            images, texts = zip(*pairs[start : start + batch_size])
            batch = encode_pairs(processor, list(images), list(texts), prompt_format, instruction, max_length)
            batch.pop("labels")
            check_image_tokens(model.config, batch["input_ids"], batch["pixel_values"])
            batch = {key: value.to(model.device) for key, value in batch.items()}
            out = model(**batch, output_hidden_states=True, logits_to_keep=1)
            image_mask, text_mask = modality_masks(
                batch["input_ids"], batch["attention_mask"], model.config.image_token_id
            )
            if moments is None:
                dim = out.hidden_states[0].shape[-1]
                moments = [(RunningMoments(dim), RunningMoments(dim)) for _ in out.hidden_states]
            for (image, text), states in zip(moments, out.hidden_states):
                image.update(states[image_mask])
                text.update(states[text_mask])
            counts[0] += int(image_mask.sum())
            counts[1] += int(text_mask.sum())
    finally:
        model.train(was_training)
    return GapReport(
        layers=[layer_gap(image, text) for image, text in moments],
        n_pairs=len(pairs),
        n_image_tokens=counts[0],
        n_text_tokens=counts[1],
    )


__all__ = ["GapReport", "measure_gap", "plot_gaps"]
