"""Shared fixtures. Tests use tiny models (EfficientNet-B0 at 64-128 px) unless marked slow."""

from __future__ import annotations

import os

# Before torch loads OpenMP: idle threads sleep instead of spinning on the 2 shared cores.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402
import torch  # noqa: E402

# Two cores on CI: keep torch from oversubscribing them when pytest runs.
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture
def tiny_config():
    from deepfake_cli.model.config import MATConfig

    return MATConfig(
        backbone="efficientnet-b0", input_size=96, attention_tap="b5", texture_tap="b2"
    )
