"""Faithful synthetic variants of real images by SDEdit (TADA, Nguyen et al., ICLR 2026, arXiv 2505.21574).

SDEdit (Meng et al., ICLR 2022, arXiv 2108.01073): noise the real image x_0 to step t_s = strength * T,

    x_{t_s} = sqrt(abar_{t_s}) x_0 + sqrt(1 - abar_{t_s}) eps,

then denoise from t_s to 0 with the diffusion model, so the class features are kept and the details
change. TADA used GLIDE; here any diffusers text-conditioned img2img pipeline (class-name prompt) or a
``UNet2DModel`` + scheduler (class-conditional through its class embedding, or unconditional).
"""

from __future__ import annotations

import inspect

import numpy as np
import torch
from PIL import Image as PILImage

from hfdc.models.images import pixel_values, to_pil


def check_strength(strength: float) -> float:
    if not 0.0 < strength <= 1.0:
        raise ValueError(f"strength must be in (0, 1] (the fraction of the diffusion that is re-run), got {strength}")
    return strength


class UNetGenerator:
    """SDEdit with a ``UNet2DModel`` and a diffusers scheduler; class-conditional when the UNet has class embeddings."""

    def __init__(
        self, unet, scheduler, strength: float = 0.4, num_inference_steps: int = 50, images_per_example: int = 1
    ):
        from diffusers import UNet2DModel

        if not isinstance(unet, UNet2DModel):
            raise TypeError(f"unet must be a diffusers UNet2DModel, got {type(unet).__name__}")
        self.unet, self.scheduler = unet.eval(), scheduler
        self.strength, self.num_inference_steps = check_strength(strength), num_inference_steps
        self.images_per_example = images_per_example
        self.conditional = unet.config.num_class_embeds is not None or unet.config.class_embed_type is not None

    @torch.no_grad()
    def generate(self, images: list, labels: list[int], class_names: list[str], seed: int) -> list:
        """``images_per_example`` variants of every image (example-major order), in the images' own mode."""
        mode = images[0].mode if images[0].mode in ("L", "RGB") else "RGB"
        size = self.unet.config.sample_size
        size = size if isinstance(size, int) else size[0]
        x0 = pixel_values(images, mode, size)
        if x0.shape[1] != self.unet.config.in_channels:
            raise ValueError(
                f"images have {x0.shape[1]} channels but the UNet takes in_channels={self.unet.config.in_channels}"
            )
        x0 = x0.repeat_interleave(self.images_per_example, dim=0).to(self.unet.device, self.unet.dtype)
        classes = torch.tensor(labels, device=self.unet.device).repeat_interleave(self.images_per_example)
        generator = torch.Generator().manual_seed(seed)
        self.scheduler.set_timesteps(self.num_inference_steps)
        steps = max(1, round(self.num_inference_steps * self.strength))
        timesteps = self.scheduler.timesteps[-steps:]
        noise = torch.randn(x0.shape, generator=generator).to(x0)
        x = self.scheduler.add_noise(x0, noise, timesteps[:1].repeat(len(x0)))
        for t in timesteps:
            kwargs = {"class_labels": classes} if self.conditional else {}
            eps = self.unet(x, t, **kwargs).sample
            x = self.scheduler.step(eps, t, x, generator=generator).prev_sample
        return [to_pil(im, mode).resize(images[i // self.images_per_example].size) for i, im in enumerate(x.float())]


def check_img2img(pipeline) -> None:
    """Raise a ValueError unless ``pipeline`` is an image-to-image pipeline (its call takes ``image`` and ``strength``)."""
    params = inspect.signature(type(pipeline).__call__).parameters if callable(pipeline) else {}
    if "image" not in params or "strength" not in params:
        raise ValueError(
            f"{type(pipeline).__name__} is not an img2img pipeline (its __call__ needs `image` and `strength`); "
            "load one with diffusers.AutoPipelineForImage2Image.from_pretrained(...) or pass a UNet2DModel"
        )


class PipelineGenerator:
    """SDEdit through any diffusers text-conditioned img2img pipeline, prompted with the class name; ``image_size``
    resizes inputs first (e.g. 32x32 CIFAR images to Stable Diffusion's 512), outputs return to the source size.

    An image the pipeline's safety checker flags (``nsfw_content_detected``; Stable Diffusion blackens it) comes
    back as ``None``: :func:`hfdc.tada.augment` drops and counts it, so it is never trained on with a class label.
    """

    def __init__(
        self,
        pipeline,
        prompt_template: str = "a photo of a {label}",
        strength: float = 0.4,
        guidance_scale: float = 7.5,
        num_inference_steps: int = 50,
        images_per_example: int = 1,
        image_size: int | None = None,
    ):
        check_img2img(pipeline)
        if "{label}" not in prompt_template:
            raise ValueError(f"prompt_template must contain {{label}} (the class name), got {prompt_template!r}")
        self.pipeline, self.prompt_template = pipeline, prompt_template
        self.strength, self.guidance_scale = check_strength(strength), guidance_scale
        self.num_inference_steps, self.images_per_example = num_inference_steps, images_per_example
        self.image_size = image_size
        pipeline.set_progress_bar_config(disable=True)

    def _prepare(self, image):
        image = image.convert("RGB")
        return image.resize((self.image_size, self.image_size), PILImage.BICUBIC) if self.image_size else image

    def generate(self, images: list, labels: list[int], class_names: list[str], seed: int) -> list:
        """``images_per_example`` variants of every image (example-major order), in the images' own mode and size;
        ``None`` where the safety checker flagged the output."""
        k = self.images_per_example
        prompts = [self.prompt_template.format(label=class_names[y]) for y in labels for _ in range(k)]
        out = self.pipeline(
            prompt=prompts,
            image=[self._prepare(im) for im in images for _ in range(k)],
            strength=self.strength,
            guidance_scale=self.guidance_scale,
            num_inference_steps=self.num_inference_steps,
            generator=torch.Generator().manual_seed(seed),
            output_type="np",
        )
        flagged = getattr(out, "nsfw_content_detected", None) or [False] * len(prompts)
        results = []
        for i, array in enumerate(np.asarray(out.images)):
            if flagged[i]:
                results.append(None)
                continue
            source = images[i // self.images_per_example]
            image = PILImage.fromarray((array * 255).round().astype(np.uint8)).resize(source.size)
            results.append(image.convert(source.mode) if source.mode in ("L", "RGB") else image)
        return results
