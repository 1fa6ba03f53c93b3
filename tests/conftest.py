"""Shared fixtures. Tests use tiny models (EfficientNet-B0 at 64-128 px) unless marked slow."""

from __future__ import annotations

import os

# Before torch loads OpenMP: idle threads sleep instead of spinning on the 2 shared cores.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402
import torch  # noqa: E402

# Two cores on CI: keep torch from oversubscribing them when pytest runs.
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def save_tiny_weights(path, *, seed: int = 0, input_size: int = 64):
    """A randomly initialised MAT B0 (64 px unless told) saved as mattn weights ("tiny-test",
    demo): the pipeline's logic, not its verdicts. The same seed gives the same file."""
    from deepfake_cli.model import (
        MATConfig,
        Preprocessing,
        Provenance,
        build_detector,
        save_weights,
    )

    torch.manual_seed(seed)
    model = build_detector(MATConfig(backbone="efficientnet-b0", input_size=input_size))
    save_weights(
        model,
        path,
        preprocessing=Preprocessing(input_size=input_size),
        provenance=Provenance(name="tiny-test", demo=True),
    )
    return path


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory):
    """`save_tiny_weights` once per test module."""
    return save_tiny_weights(tmp_path_factory.mktemp("weights") / "tiny.safetensors")


@pytest.fixture
def tiny_config():
    from deepfake_cli.model.config import MATConfig

    return MATConfig(
        backbone="efficientnet-b0", input_size=96, attention_tap="b5", texture_tap="b2"
    )
