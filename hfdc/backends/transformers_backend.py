"""Local transformers backend: a causal LM with its tokenizer, or a vision-language model with its processor."""

from collections.abc import Iterator

import torch
import transformers
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForImageTextToText,
    AutoProcessor,
    AutoTokenizer,
)

from .base import Backend, Job, Sample, message_text, run_sequentially


class TransformersBackend(Backend):
    """``model.generate`` on a local checkpoint, one call per sample after ``transformers.set_seed(sample seed)``.

    Prompts go through the tokenizer's/processor's chat template when it has one, else the message texts
    are joined by newlines (image parts become the processor's ``image_token``). Temperature 0 is greedy.
    A config with a ``vision_config`` loads as ``AutoModelForImageTextToText`` + ``AutoProcessor``.
    """

    kind = "transformers"

    def __init__(
        self,
        path: str,
        device: str | None = None,
        dtype: str | torch.dtype = "auto",
        cache_dir=None,
        use_cache: bool = True,
        progress: bool = True,
    ):
        super().__init__(str(path), cache_dir=cache_dir, use_cache=use_cache, progress=progress)
        config = AutoConfig.from_pretrained(path)
        self.is_vision = hasattr(config, "vision_config")
        if self.is_vision:
            self.processor = AutoProcessor.from_pretrained(path)
            self.tokenizer = self.processor.tokenizer
            model_class = AutoModelForImageTextToText
        else:
            self.processor = self.tokenizer = AutoTokenizer.from_pretrained(path)
            model_class = AutoModelForCausalLM
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.network = model_class.from_pretrained(path, dtype=dtype).to(self.device).eval()

    def encode(self, messages: list[dict]) -> dict:
        """Model inputs for one prompt (chat template when available, else newline-joined texts)."""
        parts = [part for m in messages if not isinstance(m["content"], str) for part in m["content"]]
        if not self.is_vision and any(part["type"] == "image" for part in parts):
            raise ValueError(
                f"{self.model} is a text-only model; remove the image parts or load a vision-language model"
            )
        if getattr(self.processor, "chat_template", None):
            if not self.is_vision:
                messages = [{"role": m["role"], "content": message_text(m)} for m in messages]
            inputs = self.processor.apply_chat_template(
                messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
            )
        elif self.is_vision:
            texts, images = [], []
            for message in messages:
                content = message["content"]
                parts = [{"type": "text", "text": content}] if isinstance(content, str) else content
                for part in parts:
                    if part["type"] == "image":
                        images.append(part["image"])
                        texts.append(self.processor.image_token)
                    else:
                        texts.append(part["text"])
            inputs = self.processor(text="\n".join(texts), images=images or None, return_tensors="pt")
        else:
            inputs = self.tokenizer("\n".join(message_text(m) for m in messages), return_tensors="pt")
        return {key: value.to(self.device) for key, value in inputs.items()}

    @torch.inference_mode()
    def _generate_one(self, inputs: dict, seed: int, temperature: float, max_new_tokens: int) -> Sample:
        transformers.set_seed(seed)
        sampling = {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}
        pad_token_id = self.tokenizer.pad_token_id
        if pad_token_id is None:
            pad_token_id = self.tokenizer.eos_token_id
        output = self.network.generate(**inputs, max_new_tokens=max_new_tokens, pad_token_id=pad_token_id, **sampling)
        prompt_length = inputs["input_ids"].shape[1]
        new_tokens = output[0, prompt_length:]
        text = self.tokenizer.decode(new_tokens, skip_special_tokens=True)
        return Sample(text, prompt_tokens=prompt_length, completion_tokens=int(new_tokens.numel()))

    def _run(self, jobs: list[Job], temperature: float, max_new_tokens: int) -> Iterator[tuple[Job, Sample]]:
        encoded = {}

        def generate_one(job: Job) -> Sample:
            if job.prompt_index not in encoded:
                encoded.clear()
                encoded[job.prompt_index] = self.encode(job.messages)
            return self._generate_one(encoded[job.prompt_index], job.seed, temperature, max_new_tokens)

        return run_sequentially(jobs, generate_one)
