"""Training losses of MAT: the regional independence loss (RIL), as the authors compute it.

RIL keeps one feature centre per attention map, learned from REAL faces only, and pulls real
faces' regional descriptors within a small margin of the centres while pushing fakes away;
a second term keeps the centres of different maps apart, so the maps attend to different
regions (MAT.md §4). The paper writes squared distances; the released code (and mattn) uses
plain norms.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from deepfake_cli.model.pooling import attention_pool


def regional_descriptors(low_freq: torch.Tensor, attention_maps: torch.Tensor) -> torch.Tensor:
    """(B, N, h, w) low-frequency map + (B, M, h', w') maps -> (B, M, N) unit-norm rows.

    Each channel is standardised over space first (mean 0, std 1), so the descriptors compare
    patterns rather than brightness.
    """
    centred = low_freq - low_freq.mean(dim=(2, 3), keepdim=True)
    standardised = centred / (torch.std(centred, dim=(2, 3), keepdim=True) + 1e-8)
    return attention_pool(standardised, attention_maps)


class RegionalIndependenceLoss(nn.Module):
    """Centre-based loss on (B, M, N) regional descriptors; holds the centres as buffers."""

    def __init__(
        self,
        num_attentions: int,
        num_features: int,
        alpha: float = 0.05,
        margin: float = 0.8,
        inner_margins: tuple[float, float] = (0.2, -0.8),
    ) -> None:
        super().__init__()
        # Buffer names match the authors' checkpoint (`auxiliary_loss.*`).
        self.register_buffer("feature_centers", torch.zeros(num_attentions, num_features))
        # The centre update rate; the recipe multiplies it by 0.9 after every epoch.
        self.register_buffer("alpha", torch.tensor(alpha))
        # Per-class margins, indexed by label: m_real > 0 pulls within, m_fake < 0 pushes away.
        self.register_buffer("inner_margin", torch.tensor(list(inner_margins)))
        self.margin = margin

    def forward(
        self, descriptors: torch.Tensor, labels: torch.Tensor, update_centers: bool
    ) -> torch.Tensor:
        """RIL for a batch; with `update_centers`, the moved centres replace the stored ones."""
        num_attentions = descriptors.shape[1]
        centers = self.feature_centers
        is_real = (labels == 0).view(-1, 1, 1).to(descriptors.dtype)
        # Mean over the whole batch (fakes contribute zero), as the authors' code does.
        moved = centers + self.alpha * torch.mean((descriptors - centers) * is_real, dim=0)
        if update_centers:
            with torch.no_grad():
                new_centers = moved.detach().clone()
                if dist.is_available() and dist.is_initialized():
                    # Every rank must keep identical centres under DDP.
                    dist.all_reduce(new_centers, op=dist.ReduceOp.SUM)
                    new_centers /= dist.get_world_size()
                self.feature_centers.copy_(new_centers)

        margins = self.inner_margin[labels]  # (B,)
        distances = torch.linalg.vector_norm(descriptors - moved, dim=(1, 2))  # (B,)
        intra = F.relu(distances * torch.sign(margins) - margins).mean()

        inter = descriptors.new_zeros(())
        for first in range(num_attentions):
            for second in range(first + 1, num_attentions):
                gap = torch.linalg.vector_norm(moved[first] - moved[second])
                inter = inter + F.relu(self.margin - gap)
        inter = inter / num_attentions / self.alpha
        return intra + inter

    @torch.no_grad()
    def decay_alpha(self, factor: float = 0.9) -> None:
        """Slow the centre updates down; the recipe calls this after every epoch."""
        self.alpha.mul_(factor)
