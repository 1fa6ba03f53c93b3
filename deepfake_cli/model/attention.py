"""Attention maps: M positive maps over the face, each meant to lock onto one region (MAT.md §3)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: The authors' fixed border mask: a 24x24 grid of ones with a 2-pixel zero border, resized
#: (nearest) to the map size, so attention never sits on the crop's edge.
MASK_GRID = 24
MASK_BORDER = 2


class AttentionMaps(nn.Module):
    """3x3 conv -> BN -> ReLU -> 1x1 conv to M maps -> BN -> ELU+1, times the border mask."""

    def __init__(self, in_channels: int, num_attentions: int) -> None:
        super().__init__()
        mask = torch.zeros(1, 1, MASK_GRID, MASK_GRID)
        mask[..., MASK_BORDER:-MASK_BORDER, MASK_BORDER:-MASK_BORDER] = 1
        # A buffer, not a constant: the authors' checkpoint stores it as `attentions.mask`.
        self.register_buffer("mask", mask)
        self.num_attentions = num_attentions
        self.conv_extract = nn.Conv2d(in_channels, in_channels, kernel_size=3, padding=1)
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv2 = nn.Conv2d(in_channels, num_attentions, kernel_size=1, bias=False)
        self.bn2 = nn.BatchNorm2d(num_attentions)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) backbone features -> (B, M, h, w) non-negative attention maps."""
        x = F.relu(self.bn1(self.conv_extract(features)))
        x = self.bn2(self.conv2(x))
        maps = F.elu(x) + 1  # strictly positive before masking
        mask = F.interpolate(self.mask, size=maps.shape[-2:], mode="nearest")
        return maps * mask
