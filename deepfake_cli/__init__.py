"""mattn: is the face in this video a deepfake? The multi-attentional detector (MAT) as a tool."""

from deepfake_cli.model import fake_probabilities, load_detector

__version__ = "0.1.0"

__all__ = ["__version__", "fake_probabilities", "load_detector"]
