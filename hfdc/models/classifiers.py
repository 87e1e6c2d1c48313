"""Small image classifiers as `PreTrainedModel`s: the dataset-distillation ConvNet and a BasicBlock ResNet."""

import torch
from huggingface_hub.dataclasses import strict
from torch import nn
from transformers import AutoConfig, AutoModelForImageClassification, PreTrainedConfig, PreTrainedModel
from transformers.modeling_outputs import ImageClassifierOutput


@strict
class ConvNetConfig(PreTrainedConfig):
    """ConvNet of `depth` blocks [conv3x3(width) -> instance norm -> ReLU -> avg-pool 2] and a linear head."""

    model_type = "hfdc_convnet"

    num_channels: int = 3
    image_size: int = 32
    width: int = 16
    depth: int = 2


@strict
class ResNetConfig(PreTrainedConfig):
    """CIFAR-style ResNet: conv3x3 stem, BasicBlock stages (`depths`, width doubling, stride 2), linear head.

    depths=(1, 1, 1) is ResNet-8; depths=(2, 2, 2, 2) with width=64 is ResNet-18 (He et al., 2016).
    """

    model_type = "hfdc_resnet"

    num_channels: int = 3
    image_size: int = 32
    width: int = 16
    depths: list[int] | tuple[int, ...] = (1, 1, 1)

    def __post_init__(self, **kwargs):
        self.depths = list(self.depths)
        super().__post_init__(**kwargs)


class _ImageClassifier(PreTrainedModel):
    """Shared head: `embed` gives the penultimate features, `forward` the logits and cross-entropy loss."""

    main_input_name = "pixel_values"
    input_modalities = "image"

    def embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Penultimate features [batch, feature_dim] (the input of the linear classifier)."""
        return torch.flatten(self.features(pixel_values), 1)

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None) -> ImageClassifierOutput:
        """logits = classifier(embed(pixel_values)); loss = cross-entropy(logits, labels) when labels are given."""
        if pixel_values.shape[1] != self.config.num_channels:
            raise ValueError(
                f"pixel_values has {pixel_values.shape[1]} channels but the model expects "
                f"num_channels={self.config.num_channels}; convert the images or set num_channels."
            )
        logits = self.classifier(self.embed(pixel_values))
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return ImageClassifierOutput(loss=loss, logits=logits)


class ConvNetForImageClassification(_ImageClassifier):
    """The ConvNet of dataset distillation (Zhao et al., 2021 "Dataset Condensation with Gradient Matching")."""

    config_class = ConvNetConfig
    base_model_prefix = "convnet"

    def __init__(self, config: ConvNetConfig):
        super().__init__(config)
        if config.image_size % 2**config.depth:
            raise ValueError(f"image_size={config.image_size} must be divisible by 2**depth={2**config.depth}.")
        layers, channels = [], config.num_channels
        for _ in range(config.depth):
            layers += [
                nn.Conv2d(channels, config.width, kernel_size=3, padding=1),
                nn.GroupNorm(config.width, config.width, affine=True),
                nn.ReLU(),
                nn.AvgPool2d(2),
            ]
            channels = config.width
        self.features = nn.Sequential(*layers)
        side = config.image_size // 2**config.depth
        self.classifier = nn.Linear(config.width * side * side, config.num_labels)
        self.post_init()


class BasicBlock(nn.Module):
    """out = ReLU(BN(conv(ReLU(BN(conv(x))))) + shortcut(x)) (He et al., 2016)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNetForImageClassification(_ImageClassifier):
    """Small ResNet classifier with global average pooling (He et al., 2016 "Deep Residual Learning")."""

    config_class = ResNetConfig
    base_model_prefix = "resnet"

    def __init__(self, config: ResNetConfig):
        super().__init__(config)
        layers = [
            nn.Conv2d(config.num_channels, config.width, 3, padding=1, bias=False),
            nn.BatchNorm2d(config.width),
            nn.ReLU(),
        ]
        channels = config.width
        for stage, depth in enumerate(config.depths):
            out_channels = config.width * 2**stage
            for block in range(depth):
                layers.append(BasicBlock(channels, out_channels, stride=2 if stage > 0 and block == 0 else 1))
                channels = out_channels
        layers.append(nn.AdaptiveAvgPool2d(1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(channels, config.num_labels)
        self.post_init()


for _config, _model in [
    (ConvNetConfig, ConvNetForImageClassification),
    (ResNetConfig, ResNetForImageClassification),
]:
    AutoConfig.register(_config.model_type, _config, exist_ok=True)
    AutoModelForImageClassification.register(_config, _model, exist_ok=True)
