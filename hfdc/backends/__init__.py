"""Text and vision-language generation backends behind one ``generate`` call, with an on-disk response cache.

Specs for ``get``: ``"transformers:<local path>"``, ``"openai:<model>@<base_url>"``, ``"scripted"``.
"""

from .base import Backend, Usage, sample_seed
from .cache import ResponseCache, default_cache_dir

__all__ = ["Backend", "ResponseCache", "Usage", "default_cache_dir", "get", "sample_seed"]


def get(spec: str, **kwargs) -> Backend:
    """The backend a spec names; ``kwargs`` go to its constructor (e.g. ``cache_dir``, ``max_workers``, ``responses``).

    - ``"transformers:<path>"``: local checkpoint folder (``TransformersBackend``);
    - ``"openai:<model>@<base_url>"``: OpenAI-compatible server, e.g. ``openai:gpt-4o-mini@https://api.openai.com/v1``
      (``OpenAIBackend``; key from HFDC_API_KEY, then HF_TOKEN for Hugging Face endpoints only, else OPENAI_API_KEY);
    - ``"scripted"``: deterministic test responses (``ScriptedBackend``).
    """
    if not isinstance(spec, str):
        raise TypeError(f"backend spec must be a str, got {type(spec).__name__}")
    kind, _, rest = spec.partition(":")
    if kind == "scripted" and not rest:
        from .scripted import ScriptedBackend

        return ScriptedBackend(**kwargs)
    if kind == "transformers" and rest:
        from .transformers_backend import TransformersBackend

        return TransformersBackend(rest, **kwargs)
    if kind == "openai" and rest:
        model, _, base_url = rest.partition("@")
        if model and base_url:
            from .openai import OpenAIBackend

            return OpenAIBackend(model, base_url, **kwargs)
    raise ValueError(
        f"unknown backend spec {spec!r}; use 'transformers:<local path>', 'openai:<model>@<base_url>' or 'scripted'"
    )
