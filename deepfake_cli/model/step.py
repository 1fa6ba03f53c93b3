"""One training step of MAT, returning the named losses (MAT.md §4-5).

Total = 1 * CE + 0.5 * RIL + 1 * CE(AGDA) + 0.1 * match. The step is a plain function of
(model, images, labels) so the training loop does not need to know which model it trains;
the stage-1 backbone classifier gets its own step with the cross-entropy alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from deepfake_cli.model.augmentation import AGDAConfig, attention_guided_augment
from deepfake_cli.model.losses import regional_descriptors
from deepfake_cli.model.mat import MATDetector


@dataclass(frozen=True)
class LossWeights:
    cross_entropy: float = 1.0
    regional_independence: float = 0.5
    agda_cross_entropy: float = 1.0
    match: float = 0.1


def _unwrap(model: torch.nn.Module) -> MATDetector:
    # DistributedDataParallel wraps the detector; its config and RIL live on `.module`.
    return model.module if hasattr(model, "module") else model


def mat_training_step(
    model: torch.nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    weights: LossWeights | None = None,
    agda: AGDAConfig | None = None,
    use_agda: bool = True,
    class_weights: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Forward passes and losses for one batch; the caller runs backward on `loss`.

    Returns the total `loss`, its parts (`ce`, `ril`, `agda_ce`, `match`), and the `logits`
    of the first pass. The model must be in train mode; RIL centres move with real samples.
    `class_weights` (2,) weights the cross-entropies, an alternative to oversampling.
    """
    weights = weights or LossWeights()
    detector = _unwrap(model)
    if detector.config.variant == "backbone":
        logits = model(images)
        loss = F.cross_entropy(logits, labels, weight=class_weights)
        return {"loss": loss, "ce": loss.detach(), "logits": logits.detach()}

    features = detector.forward_features(images) if model is detector else None
    if features is None:
        # Under DDP the forward must go through the wrapper for gradient synchronisation.
        features = model(images, return_features=True)
    ce = F.cross_entropy(features.logits, labels, weight=class_weights)
    descriptors = regional_descriptors(features.low_freq, features.attention_maps)
    ril = detector.regional_loss(descriptors, labels, update_centers=True)
    parts = {"ce": ce, "ril": ril}
    total = weights.cross_entropy * ce + weights.regional_independence * ril

    if use_agda:
        augmented, chosen, _ = attention_guided_augment(
            images, features.attention_maps.detach(), agda
        )
        features_aug = (
            detector.forward_features(augmented)
            if model is detector
            else model(augmented, return_features=True)
        )
        parts["agda_ce"] = F.cross_entropy(features_aug.logits, labels, weight=class_weights)
        descriptors_aug = regional_descriptors(features_aug.low_freq, features_aug.attention_maps)
        # As in the authors' code, the augmented pass moves the centres too (its RIL value is
        # not part of the total).
        detector.regional_loss(descriptors_aug, labels, update_centers=True)
        # Other regions should describe the same face before and after augmentation; the
        # degraded region is exempt.
        keep = 1 - F.one_hot(chosen, descriptors.shape[1]).to(descriptors.dtype)  # (B, M)
        distances = torch.linalg.vector_norm(descriptors_aug - descriptors, dim=-1)  # (B, M)
        parts["match"] = (distances * keep).mean()
        total = (
            total + weights.agda_cross_entropy * parts["agda_ce"] + weights.match * parts["match"]
        )

    result = {name: value.detach() for name, value in parts.items()}
    result["loss"] = total
    result["logits"] = features.logits.detach()
    return result
