"""The multi-attentional detector: backbone taps, attention, texture, pooling, losses, AGDA."""

from deepfake_cli.model.config import MATConfig, Preprocessing, Provenance
from deepfake_cli.model.mat import MATDetector, MATFeatures, build_detector, fake_probabilities
from deepfake_cli.model.weights import load_detector, save_weights

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
