"""The multi-attentional detector: backbone taps, attention, texture, pooling, losses, AGDA.

The names below load on first use (PEP 562), so that importing `deepfake_cli.model.config`
(the command line's defaults, such as `DEFAULT_MARGIN_RATIO`) does not import torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deepfake_cli.model.config import MATConfig, Preprocessing, Provenance
    from deepfake_cli.model.mat import (
        MATDetector,
        MATFeatures,
        build_detector,
        fake_probabilities,
    )
    from deepfake_cli.model.weights import load_detector, save_weights

#: Public name -> the module of this package that defines it.
_HOMES = {
    "MATConfig": "config",
    "Preprocessing": "config",
    "Provenance": "config",
    "MATDetector": "mat",
    "MATFeatures": "mat",
    "build_detector": "mat",
    "fake_probabilities": "mat",
    "load_detector": "weights",
    "save_weights": "weights",
}

__all__ = [
    "MATConfig",
    "MATDetector",
    "MATFeatures",
    "Preprocessing",
    "Provenance",
    "build_detector",
    "fake_probabilities",
    "load_detector",
    "save_weights",
]


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(import_module(f"deepfake_cli.model.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'deepfake_cli.model' has no attribute {name!r}")
