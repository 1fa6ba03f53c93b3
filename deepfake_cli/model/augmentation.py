"""Attention-guided data augmentation (AGDA, "soft" mode; MAT.md §5).

The model's most attended region is degraded (downscaled, blurred, noised) in a soft blend, so
the next forward pass has to find evidence elsewhere, which pushes the M maps apart.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torchvision.transforms.functional import gaussian_blur


@dataclass(frozen=True)
class AGDAConfig:
    """The authors' released settings."""

    # The soft weight w = (sigmoid((a - threshold) * zoom) - sigmoid(-threshold * zoom))
    # / (1 - sigmoid(-threshold * zoom)),
    # with threshold and zoom drawn once per batch from these ranges.
    threshold_range: tuple[float, float] = (0.4, 0.6)
    zoom_range: tuple[float, float] = (3.0, 5.0)
    # The degraded copy: downscale, Gaussian blur, additive noise, upscale back.
    scale_factor: float = 0.5
    blur_kernel: int = 11
    blur_sigma: float = 7.0
    noise_std: float = 0.1


def choose_regions(attention_maps: torch.Tensor, generator: torch.Generator | None = None):
    """One map index per sample, with probability proportional to sqrt(map sum + 1): (B,)."""
    weights = torch.sqrt(attention_maps.sum(dim=(2, 3)).float() + 1)  # (B, M)
    return torch.multinomial(weights, 1, generator=generator).squeeze(1)


def soft_weight(normalised_map: torch.Tensor, threshold: float, zoom: float) -> torch.Tensor:
    """Map an attention map scaled to [0, 1] to a blending weight in [0, 1] (0 stays 0)."""
    # The same float ops as for the map itself, so a zero map value gives exactly zero weight.
    bottom = torch.sigmoid((torch.zeros((), dtype=normalised_map.dtype) - threshold) * zoom)
    return (torch.sigmoid((normalised_map - threshold) * zoom) - bottom) / (1 - bottom)


def degrade(images: torch.Tensor, config: AGDAConfig) -> torch.Tensor:
    """The degraded copy of a (B, 3, H, W) batch that attended regions are blended towards."""
    height, width = images.shape[-2:]
    small = F.interpolate(
        images, scale_factor=config.scale_factor, mode="bilinear", align_corners=True
    )
    small = gaussian_blur(small, [config.blur_kernel] * 2, [config.blur_sigma] * 2)
    small = small + torch.randn_like(small) * config.noise_std
    return F.interpolate(small, size=(height, width), mode="bilinear", align_corners=True)


@torch.no_grad()
def attention_guided_augment(
    images: torch.Tensor,
    attention_maps: torch.Tensor,
    config: AGDAConfig | None = None,
    *,
    rng: random.Random | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Soft AGDA of (B, 3, H, W) images with (B, M, h, w) maps.

    Returns (augmented images, chosen map index per sample (B,), blending weight (B, 1, H, W)).
    Pixels where the weight is 0 are returned unchanged.
    """
    config = config or AGDAConfig()
    rng = rng or random
    index = choose_regions(attention_maps)
    chosen = attention_maps.gather(
        1, index.view(-1, 1, 1, 1).expand(-1, 1, *attention_maps.shape[-2:])
    )  # (B, 1, h, w)
    chosen = F.interpolate(
        chosen.float(), size=images.shape[-2:], mode="bilinear", align_corners=True
    )
    chosen = chosen / (chosen.amax(dim=(2, 3), keepdim=True) + 1e-8)
    weight = soft_weight(
        chosen, rng.uniform(*config.threshold_range), rng.uniform(*config.zoom_range)
    ).to(images.dtype)
    augmented = images * (1 - weight) + degrade(images, config) * weight
    # Exactly the input where the weight is 0 (the blend above can differ in the last bit).
    augmented = torch.where(weight == 0, images, augmented)
    return augmented, index, weight
