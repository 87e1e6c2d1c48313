"""A causal LM and its tokenizer by name: ``tiny:llama`` (the random tiny Llama) or a Hub id / local folder."""

TINY_LLAMA = "tiny:llama"


def load_causal_lm(name_or_path: str, seed: int = 0, dtype: str | None = None):
    """(model, tokenizer) for ``name_or_path``; ``seed`` initialises ``tiny:llama``; ``dtype`` ("auto": as stored,
    or a torch dtype name; None: transformers' default) is the weights' dtype. A tokenizer without a pad token gets
    its EOS token as pad token (batching needs one)."""
    if name_or_path == TINY_LLAMA:
        from hfdc.models.factories import tiny
        from hfdc.models.processors import tiny_processor

        model, tokenizer = tiny("llama", seed=seed), tiny_processor("llama")
        if dtype not in (None, "auto"):
            import torch

            model.to(getattr(torch, dtype))
    else:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model = AutoModelForCausalLM.from_pretrained(name_or_path, **({} if dtype is None else {"dtype": dtype}))
        tokenizer = AutoTokenizer.from_pretrained(name_or_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer
