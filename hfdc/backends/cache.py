"""On-disk response cache: one JSON file per key, written atomically so concurrent processes can share it."""

import hashlib
import json
import os
import tempfile
from pathlib import Path

from PIL import Image


def default_cache_dir() -> Path:
    """``$HF_HOME/hfdc/generations`` (``~/.cache/huggingface/hfdc/generations`` when HF_HOME is unset)."""
    hf_home = os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface")
    return Path(hf_home) / "hfdc" / "generations"


def _canonical(value):
    """JSON-able form of a prompt: images become the sha256 of their mode, size and pixel bytes."""
    if isinstance(value, Image.Image):
        digest = hashlib.sha256(f"{value.mode}:{value.size}".encode())
        digest.update(value.tobytes())
        return {"image_sha256": digest.hexdigest()}
    if isinstance(value, dict):
        return {str(key): _canonical(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(item) for item in value]
    return value


def cache_key(**fields) -> str:
    """sha256 over the canonical JSON of ``fields`` (backend kind, model, prompt, params, sample seed)."""
    text = json.dumps(_canonical(fields), sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class ResponseCache:
    """A folder of ``<key[:2]>/<key>.json`` files; writes land by ``os.replace``: readers never see half a file."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict | None:
        """The stored record for ``key``, or None when absent."""
        try:
            return json.loads(self._path(key).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None

    def put(self, key: str, record: dict) -> None:
        """Store ``record`` under ``key`` (atomic rename of a temporary file in the same folder)."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{key}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(record, handle, ensure_ascii=False)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
