"""Texture enhancement (the paper's "v2" block): high-frequency residuals per attention map.

Shallow features minus their local average keep the fine texture where blending artifacts
live. The residual is gated by each (detached) attention map and the M gated copies go
through a grouped dense block, one group per map (MAT.md §3).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class TextureEnhancement(nn.Module):
    """(B, N, H, W) features + (B, M, h, w) maps -> (B, M, N, H, W) texture and low-freq map."""

    def __init__(self, num_features: int, num_attentions: int) -> None:
        super().__init__()
        n, m = num_features, num_attentions
        self.num_attentions = m
        self.conv_extract = nn.Conv2d(n, n, kernel_size=3, padding=1)
        self.conv0 = nn.Conv2d(n * m, n * m, kernel_size=5, padding=2, groups=m)
        # Dense block: layer k sees k*N channels per group and adds N more.
        self.bn1 = nn.BatchNorm2d(n * m)
        self.conv1 = nn.Conv2d(n * m, n * m, kernel_size=3, padding=1, groups=m)
        self.bn2 = nn.BatchNorm2d(2 * n * m)
        self.conv2 = nn.Conv2d(2 * n * m, n * m, kernel_size=3, padding=1, groups=m)
        self.bn3 = nn.BatchNorm2d(3 * n * m)
        self.conv3 = nn.Conv2d(3 * n * m, n * m, kernel_size=3, padding=1, groups=m)
        self.bn4 = nn.BatchNorm2d(4 * n * m)
        self.conv_last = nn.Conv2d(4 * n * m, n * m, kernel_size=1, groups=m)
        self.bn_last = nn.BatchNorm2d(n * m)

    def _concat_per_group(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        """Concatenate channels group by group, so each map's group keeps its own channels."""
        batch, _, height, width = first.shape
        m = self.num_attentions
        joined = torch.cat(
            [
                first.reshape(batch, m, -1, height, width),
                second.reshape(batch, m, -1, height, width),
            ],
            dim=2,
        )  # (B, M, C1 + C2, H, W)
        return joined.reshape(batch, -1, height, width)

    def forward(
        self, features: torch.Tensor, attention_maps: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        batch, channels, height, width = features.shape
        gated, low_freq = self.gated_residual(features, attention_maps)
        out = self.dense_block(gated)
        return out.reshape(batch, -1, channels, height, width), low_freq  # (B, M, N, H, W)

    def gated_residual(
        self, features: torch.Tensor, attention_maps: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, N, H, W) features -> (B, M*N, H, W) residual gated per map, and the low-freq map."""
        batch, _, height, width = features.shape
        features = self.conv_extract(features)
        # The local average at the attention maps' resolution is the "low-frequency" map that
        # the regional independence loss pools.
        low_freq = F.adaptive_avg_pool2d(features, attention_maps.shape[-2:])  # (B, N, h, w)
        if height > low_freq.shape[2]:
            features = features - F.interpolate(low_freq, size=(height, width), mode="nearest")
        # Gate by tanh of each map; detached so the texture branch does not train the maps.
        gates = torch.tanh(
            F.interpolate(
                attention_maps.detach(), size=(height, width), mode="bilinear", align_corners=True
            )
        ).unsqueeze(2)  # (B, M, 1, H, W)
        gated = (features.unsqueeze(1) * gates).reshape(batch, -1, height, width)  # (B, M*N, H, W)
        return gated, low_freq

    def dense_block(self, x: torch.Tensor) -> torch.Tensor:
        """(B, M*N, H, W) -> (B, M*N, H, W): the grouped dense block, one group per map."""
        x0 = self.conv0(x)
        x1 = self.conv1(F.relu(self.bn1(x0)))
        x01 = self._concat_per_group(x0, x1)
        x2 = self.conv2(F.relu(self.bn2(x01)))
        x012 = self._concat_per_group(x01, x2)
        x3 = self.conv3(F.relu(self.bn3(x012)))
        x0123 = self._concat_per_group(x012, x3)
        return F.relu(self.bn_last(self.conv_last(F.relu(self.bn4(x0123)))))
