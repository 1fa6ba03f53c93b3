"""Configuration that travels with a MAT model's weights.

`MATConfig` says how to build the network; `Preprocessing` says what crops it expects. Both are
stored as JSON in the metadata of every mattn `.safetensors` file, so a file alone rebuilds the
model and feeds it the crops it was trained on (timm's "pretrained config", nanoGPT's
self-describing checkpoint).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: EfficientNet's native input sizes (Tan & Le, 2019); MAT uses the backbone's own size.
NATIVE_INPUT_SIZE = {
    "efficientnet-b0": 224,
    "efficientnet-b1": 240,
    "efficientnet-b2": 260,
    "efficientnet-b3": 300,
    "efficientnet-b4": 380,
    "efficientnet-b5": 456,
    "efficientnet-b6": 528,
    "efficientnet-b7": 600,
}

#: Dropout before EfficientNet's own classifier in the authors' EfficientNet copy: the
#: efficientnet-pytorch values, except B4 and B5, which the authors set to 0 (from 0.4). Only the
#: stage-1 classifier (variant "backbone") uses it; the full MAT never calls that classifier.
AUTHORS_BACKBONE_DROPOUT = {
    "efficientnet-b0": 0.2,
    "efficientnet-b1": 0.2,
    "efficientnet-b2": 0.3,
    "efficientnet-b3": 0.3,
    "efficientnet-b4": 0.0,
    "efficientnet-b5": 0.0,
    "efficientnet-b6": 0.5,
    "efficientnet-b7": 0.5,
}

#: The authors' input normalisation, (x/255 - 0.5) / 0.5: (mean, std) per RGB channel on [0, 1].
AUTHORS_NORMALIZATION = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
#: (mean, std) that each kind of efficientnet-pytorch ImageNet weights was trained with: the
#: standard files ImageNet's statistics, the AdvProp files (the authors' choice) 0.5 / 0.5.
BACKBONE_NORMALIZATIONS = {
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "advprop": AUTHORS_NORMALIZATION,
}


def imagenet_normalization_hint(path: str) -> str:
    """The kind of ImageNet weights a file's name says: "advprop" for efficientnet-pytorch's
    AdvProp names (`adv-efficientnet-...`), else "imagenet". Only a default: both kinds hold the
    same tensor names, shapes and dtypes, so their content does not tell them apart
    (`--backbone-normalization` does)."""
    return "advprop" if Path(path).name.lower().startswith("adv-") else "imagenet"


TAP_NAMES = ("b0", "b1", "b2", "b3", "b4", "b5", "b6", "b7", "final", "logits")


@dataclass(frozen=True)
class MATConfig:
    """How to build a multi-attentional detector. Defaults = the authors' released model."""

    # EfficientNet variant (efficientnet-pytorch naming); B4 in the paper.
    backbone: str = "efficientnet-b4"
    # Square input side in pixels; 380 is B4's native size and the released model's.
    input_size: int = 380
    # Backbone tap the attention maps are computed from (deep: semantic regions).
    attention_tap: str = "b5"
    # Backbone tap the texture branch enhances (shallow: blending artifacts live there).
    texture_tap: str = "b2"
    # Number of attention maps M, each meant to lock onto one facial region.
    num_attentions: int = 4
    # Width of the projection layers in the head.
    hidden_dims: int = 256
    # Training-time channel dropout over the M attention rows.
    attention_dropout: float = 0.25
    # Training-time dropout on the globally pooled deep vector.
    final_dropout: float = 0.5
    # Dropout of EfficientNet's own classifier (used by the stage-1 `logits` model). This
    # default is what files that do not record it were built with; `mattn train` sets the
    # authors' value per backbone (AUTHORS_BACKBONE_DROPOUT).
    backbone_dropout: float = 0.4
    # The authors' padding: their EfficientNet copy computes "same" padding once, from the
    # backbone's native input size, and uses it at every stage; efficientnet-pytorch recomputes
    # it per stage (False). The authors' checkpoint and networks trained by `mattn train`'s
    # default (`padding = "authors"`) need it; the default stays False so that files which do
    # not record it load as they were built.
    legacy_padding: bool = False
    # "mat" = the full detector; "backbone" = plain EfficientNet classifier (stage 1 of the
    # recipe), scored through the backbone's own `logits` tap.
    variant: str = "mat"
    # RIL state kept with the weights so training can continue from a file.
    ril_alpha: float = 0.05
    ril_margin: float = 0.8
    ril_inner_margins: tuple[float, float] = (0.2, -0.8)
    num_classes: int = 2

    def __post_init__(self) -> None:
        if self.backbone not in NATIVE_INPUT_SIZE:
            raise ValueError(
                f"unknown backbone {self.backbone!r}; use one of {', '.join(NATIVE_INPUT_SIZE)}"
            )
        for name in (self.attention_tap, self.texture_tap):
            if name not in TAP_NAMES[:8] and name != "final":
                raise ValueError(f"unknown tap {name!r}; use one of b0..b7 or final")
        if self.variant not in ("mat", "backbone"):
            raise ValueError(f"unknown variant {self.variant!r}; use 'mat' or 'backbone'")
        if self.num_attentions < 1:
            raise ValueError("num_attentions must be at least 1")

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["ril_inner_margins"] = list(self.ril_inner_margins)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MATConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown model config keys: {', '.join(unknown)}")
        values = dict(data)
        if "ril_inner_margins" in values:
            values["ril_inner_margins"] = tuple(values["ril_inner_margins"])
        return cls(**values)


#: The crop margin of FaceForensics++ and of mattn's own models: the default everywhere a
#: margin is not read from the weights or a faces folder.
DEFAULT_MARGIN_RATIO = 1.3


@dataclass(frozen=True)
class CropGeometry:
    """How a face crop is cut from a frame: the part of `Preprocessing` that `crops.py` needs."""

    # Side of the square output crop in pixels.
    size: int
    # Side of the square around the detector box, as a multiple of the box's longer side.
    margin_ratio: float = DEFAULT_MARGIN_RATIO
    # Rotate so the eyes are level (needs the detector's landmarks).
    align: bool = False


@dataclass(frozen=True)
class Preprocessing:
    """What a face crop must look like before it reaches the model."""

    # Square side of the crop fed to the model.
    input_size: int = 380
    # Per-channel mean and std on [0, 1] RGB: (x/255 - 0.5)/0.5 for the authors' model.
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    # Side of the square crop around the detector box, as a multiple of the box's longer
    # side (1.3 as FaceForensics++).
    margin_ratio: float = DEFAULT_MARGIN_RATIO
    # Whether crops are rotated so the eyes are level (5-point alignment).
    align: bool = False
    color: str = "RGB"
    # The face detector whose boxes `margin_ratio` is measured on. mattn always detects with
    # MTCNN; an imported model whose crops came from another detector (the authors' used
    # RetinaFace) records it, so a user can see that its margin is an estimate for MTCNN boxes.
    detector: str = "mtcnn"

    @property
    def crop_geometry(self) -> CropGeometry:
        """The crops this model is fed: its input size, margin and alignment."""
        return CropGeometry(self.input_size, self.margin_ratio, self.align)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["mean"] = list(self.mean)
        data["std"] = list(self.std)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocessing:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        for key in ("mean", "std"):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values)


@dataclass(frozen=True)
class Provenance:
    """Where weights came from, so a user can decide whether to trust them."""

    name: str = "unnamed"
    # e.g. "imported from the authors' checkpoint" or "trained by mattn train on ...".
    source: str = "unknown"
    trained_on: str = "unknown"
    # True for models that only demonstrate the pipeline (not validated on a deepfake benchmark).
    demo: bool = False
    metrics: dict[str, Any] = field(default_factory=dict)
    # The fake probability at or above which a video is FAKE, calibrated on validation data
    # (the best balanced accuracy over its videos); `mattn scan`'s default --threshold for
    # these weights. None: not calibrated, and scan uses 0.5.
    decision_threshold: float | None = None
    notes: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Provenance:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})


def dumps(data: dict[str, Any]) -> str:
    """Stable JSON for metadata: sorted keys so identical configs give identical files."""
    return json.dumps(data, sort_keys=True)
