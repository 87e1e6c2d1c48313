"""The two-layer CNN of the USEFUL analysis (Nguyen et al., NeurIPS 2024, arXiv 2404.17768) as a PreTrainedModel.

For patches x = (x_1, ..., x_P) and J filters per class, the logit of class c is

    f_c(x) = sum_{r=1..J} sum_{p=1..P} sigma(<w_{c,r}, x_p>)

with sigma(z) = z^3 in the paper (``activation="cubic"``) or ReLU(z)^3 (``"relu_cubed"``). For two
classes this is the paper's f(x) = f_{+1}(x) - f_{-1}(x) read through a softmax.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, PreTrainedConfig, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

ACTIVATIONS = {
    "cubic": lambda z: z**3,
    "relu_cubed": lambda z: torch.relu(z) ** 3,
}


class TwoLayerCNNConfig(PreTrainedConfig):
    """Patch dimension ``dim``, ``filters`` per class, ``activation`` (cubic | relu_cubed), ``init_std`` of the weights."""

    model_type = "hfdc_two_layer_cnn"

    dim: int = 32
    filters: int = 4
    activation: str = "cubic"
    init_std: float = 0.05

    def __post_init__(self, **kwargs):
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}")
        super().__post_init__(**kwargs)


class TwoLayerCNN(PreTrainedModel):
    """f_c(x) = sum_r sum_p sigma(<w_{c,r}, x_p>); forward(x [batch, P, dim], labels) -> logits and cross-entropy."""

    config_class = TwoLayerCNNConfig
    main_input_name = "x"
    # forward returns a per-batch mean loss; without this, Trainer reads **kwargs as accepting num_items_in_batch
    # and multiplies the loss by the number of processes (2 DDP processes then stepped twice as far as one)
    accepts_loss_kwargs = False

    def __init__(self, config: TwoLayerCNNConfig):
        super().__init__(config)
        self.weight = nn.Parameter(torch.empty(config.num_labels, config.filters, config.dim))
        self.post_init()

    def _init_weights(self, module):
        if module is self:
            nn.init.normal_(self.weight, std=self.config.init_std)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None, **kwargs) -> SequenceClassifierOutput:
        if x.ndim != 3 or x.shape[-1] != self.config.dim:
            raise ValueError(f"x must be [batch, patches, dim={self.config.dim}], got shape {tuple(x.shape)}")
        pre = torch.einsum("bpd,cjd->bcjp", x, self.weight)
        logits = ACTIVATIONS[self.config.activation](pre).sum(dim=(2, 3))
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)


AutoConfig.register(TwoLayerCNNConfig.model_type, TwoLayerCNNConfig, exist_ok=True)
AutoModel.register(TwoLayerCNNConfig, TwoLayerCNN, exist_ok=True)
AutoModelForSequenceClassification.register(TwoLayerCNNConfig, TwoLayerCNN, exist_ok=True)
