"""The multi-attentional deepfake detector (MAT).

H. Zhao, W. Zhou, D. Chen, T. Wei, W. Zhang, N. Yu, "Multi-attentional Deepfake Detection",
CVPR 2021. An EfficientNet backbone grows M attention maps from a deep tap; a texture branch
enhances a shallow tap; bilinear attention pooling turns each map into a descriptor; a small
MLP combines them with an attention-weighted global vector into real/fake logits.

Reads top-down: the head, the model, then the factory. The training losses (regional
independence loss, AGDA) live in `losses.py`, `augmentation.py` and `step.py`; `forward` only
ever computes logits.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from deepfake_cli.model.attention import AttentionMaps
from deepfake_cli.model.backbone import TappedEfficientNet
from deepfake_cli.model.config import MATConfig
from deepfake_cli.model.losses import RegionalIndependenceLoss
from deepfake_cli.model.pooling import attention_average, attention_pool
from deepfake_cli.model.texture import TextureEnhancement


class MATFeatures(NamedTuple):
    """Everything one forward pass computes, for scoring, training and visualisation.

    A NamedTuple so that DistributedDataParallel can find the tensors in it.
    """

    logits: torch.Tensor  # (B, 2), index 1 = fake
    attention_maps: torch.Tensor | None = None  # (B, M, h, w), before channel dropout
    texture_matrix: torch.Tensor | None = None  # (B, M, N) BAP of the texture, rows unit-norm
    low_freq: torch.Tensor | None = None  # (B, N, h, w) local average of the texture tap


class MATDetector(nn.Module):
    """MAT as the authors released it, or (variant "backbone") the plain stage-1 classifier."""

    def __init__(self, config: MATConfig) -> None:
        super().__init__()
        self.config = config
        self.backbone = TappedEfficientNet.build(
            config.backbone,
            input_size=config.input_size,
            num_classes=config.num_classes,
            dropout=config.backbone_dropout,
            legacy_padding=config.legacy_padding,
        )
        if config.variant == "backbone":
            return
        # The full MAT never uses the backbone's own classifier; freezing it keeps "every
        # trainable parameter gets a gradient" true (and DDP needs no unused-parameter search).
        # The tensors stay in the state dict, as in the authors' checkpoint.
        self.backbone._fc.requires_grad_(False)
        channels = self._tap_channels(config.input_size)
        texture_channels = channels[config.texture_tap]
        m, hidden = config.num_attentions, config.hidden_dims
        self.attentions = AttentionMaps(channels[config.attention_tap], m)
        self.texture_enhance = TextureEnhancement(texture_channels, m)
        # Module names and Sequential indices match the authors' checkpoint keys.
        self.projection_local = nn.Sequential(
            nn.Linear(m * texture_channels, hidden), nn.Hardswish(), nn.Linear(hidden, hidden)
        )
        self.project_final = nn.Linear(self.backbone.final_channels, hidden)
        self.ensemble_classifier_fc = nn.Sequential(
            nn.Linear(2 * hidden, hidden), nn.Hardswish(), nn.Linear(hidden, config.num_classes)
        )
        # The RIL's feature centres are model state (they travel with the weights so training
        # can continue from a file), but the loss is only ever computed by the training step.
        self.regional_loss = RegionalIndependenceLoss(
            num_attentions=m,
            num_features=texture_channels,
            alpha=config.ril_alpha,
            margin=config.ril_margin,
            inner_margins=config.ril_inner_margins,
        )

    def _tap_channels(self, input_size: int) -> dict[str, int]:
        # Probe with a tiny batch rather than hard-coding channel tables for B0..B7.
        was_training = self.backbone.training
        self.backbone.eval()
        with torch.no_grad():
            taps = self.backbone.forward_taps(torch.zeros(1, 3, input_size, input_size))
        self.backbone.train(was_training)
        return {name: value.shape[1] for name, value in taps.items()}

    def forward_features(self, images: torch.Tensor) -> MATFeatures:
        """(B, 3, H, W) normalised images -> logits plus the intermediate results."""
        config = self.config
        if config.variant == "backbone":
            return MATFeatures(logits=self.backbone.forward_taps(images, {"logits"})["logits"])
        taps = self.backbone.forward_taps(
            images, {config.attention_tap, config.texture_tap, "final"}
        )
        attention_maps = self.attentions(taps[config.attention_tap])  # (B, M, h, w)
        texture, low_freq = self.texture_enhance(taps[config.texture_tap], attention_maps)
        texture_matrix = attention_pool(texture, attention_maps)  # (B, M, N)

        # Channel dropout over the M regions (training only): a dropped region contributes
        # neither its descriptor nor its share of the global attention.
        pooled_maps = attention_maps
        local_matrix = texture_matrix
        if self.training and config.attention_dropout > 0:
            keep = 1.0 - config.attention_dropout
            region_mask = (
                torch.bernoulli(
                    torch.full(texture_matrix.shape[:2] + (1,), keep, device=images.device)
                )
                / keep
            )  # (B, M, 1)
            local_matrix = texture_matrix * region_mask
            pooled_maps = attention_maps * region_mask.unsqueeze(-1)

        batch = images.shape[0]
        local_vector = F.hardswish(self.projection_local(local_matrix.reshape(batch, -1)))
        global_vector = attention_average(taps["final"], pooled_maps.sum(dim=1, keepdim=True))
        global_vector = F.dropout(global_vector, config.final_dropout, self.training)
        global_vector = F.hardswish(self.project_final(global_vector))
        logits = self.ensemble_classifier_fc(torch.cat([local_vector, global_vector], dim=1))
        return MATFeatures(
            logits=logits,
            attention_maps=attention_maps,
            texture_matrix=texture_matrix,
            low_freq=low_freq,
        )

    def forward(
        self, images: torch.Tensor, return_features: bool = False
    ) -> torch.Tensor | MATFeatures:
        """(B, 3, H, W) normalised images -> (B, 2) logits, index 1 = fake.

        `return_features=True` returns the whole `MATFeatures` instead; the training step uses
        it under DistributedDataParallel, which only synchronises gradients through `forward`.
        """
        features = self.forward_features(images)
        return features if return_features else features.logits


def fake_probabilities(logits: torch.Tensor) -> torch.Tensor:
    """(B, 2) logits -> (B,) probability that each face is fake."""
    return torch.softmax(logits.float(), dim=1)[:, 1]


def build_detector(config: MATConfig | None = None) -> MATDetector:
    """A randomly initialised detector (the authors' released configuration by default)."""
    return MATDetector(config or MATConfig())
