"""mattn: is the face in this video a deepfake? The multi-attentional detector (MAT) as a tool.

Public API: `load_detector(path, device="cpu")` returns a detector in eval mode whose forward
maps normalised (B, 3, H, W) crops to (B, 2) logits (index 1 = fake); `fake_probabilities`
turns logits into probabilities. Imports are lazy so that `mattn --help` and the decoding
worker process do not pay for importing torch.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "fake_probabilities", "load_detector"]


def __getattr__(name: str) -> Any:
    if name in ("load_detector", "fake_probabilities"):
        from deepfake_cli import model

        return getattr(model, name)
    raise AttributeError(f"module 'deepfake_cli' has no attribute {name!r}")
