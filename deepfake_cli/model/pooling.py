"""Bilinear attention pooling (BAP): one feature vector per attention map (MAT.md §3)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: Added to the summed map before the weighted average, as the authors do, so an all-zero
#: map (possible after channel dropout) does not divide by zero.
AVERAGE_EPS = 1e-8


def resize_maps(attention_maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear (align_corners=True) resize of (B, M, h, w) maps to `size`, if needed."""
    if tuple(attention_maps.shape[-2:]) == tuple(size):
        return attention_maps
    return F.interpolate(attention_maps, size=size, mode="bilinear", align_corners=True)


def attention_pool(features: torch.Tensor, attention_maps: torch.Tensor) -> torch.Tensor:
    """Attention-weighted spatial sums, each row L2-normalised.

    features: (B, N, H, W) shared by all maps, or (B, M, N, H, W) one copy per map.
    attention_maps: (B, M, h, w), resized to (H, W).
    Returns (B, M, N) with unit-norm rows, so no single region dominates the descriptor.
    """
    attention_maps = resize_maps(attention_maps, features.shape[-2:])
    if features.dim() == 4:
        matrix = torch.einsum("bmhw,bnhw->bmn", attention_maps, features)
    else:
        matrix = torch.einsum("bmhw,bmnhw->bmn", attention_maps, features)
    return F.normalize(matrix, p=2, dim=-1)


def attention_average(features: torch.Tensor, attention_map: torch.Tensor) -> torch.Tensor:
    """Normalised average pooling of (B, N, H, W) features with one (B, 1, h, w) map -> (B, N).

    The weights are the map (plus a tiny epsilon) divided by its sum, so the result is a
    weighted average of feature vectors.
    """
    attention_map = resize_maps(attention_map, features.shape[-2:]) + AVERAGE_EPS
    pooled = torch.einsum("bmhw,bnhw->bmn", attention_map, features)  # (B, 1, N)
    pooled = pooled / attention_map.sum(dim=(2, 3)).unsqueeze(-1)
    return pooled.squeeze(1)
