"""What a training run does, as one frozen dataclass; defaults = the authors' recipe (MAT.md §6).

Settings come from these layers, in rising precedence: these defaults, a named preset
(`--preset`: more defaults), on `--resume` the run's own saved `config.toml`, a TOML file
(`--config FILE.toml`), and the command-line options. `training/settings.py`'s
`resolve_config` is the one place where they are merged. The resolved config is written as
`RUN_DIR/config.toml` and stored in every checkpoint, so a run can always be explained and
repeated.

TOML layout: top-level keys are `TrainConfig` fields; the tables `[stage1]` and `[stage2]` are
the two stages' `StageConfig`. Keys whose value is "unset" (None) are simply left out.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepfake_cli.errors import UsageError
from deepfake_cli.model.config import (
    AUTHORS_BACKBONE_DROPOUT,
    AUTHORS_NORMALIZATION,
    BACKBONE_NORMALIZATIONS,
    NATIVE_INPUT_SIZE,
    MATConfig,
    Preprocessing,
    imagenet_normalization_hint,
)
from deepfake_cli.training.degradations import DEGRADATIONS
from deepfake_cli.training.toml_text import plain_toml_data

RECIPES = ("paper", "single")
SYNTHETIC_FAKES = ("none", "self-blend")
#: "authors": "same" padding computed once for the native input size (MAT.md §7);
#: "per-stage": efficientnet-pytorch's, recomputed from each stage's own size.
PADDINGS = ("authors", "per-stage")
TRAIN_CROPS = ("center", "random")
AMP_DTYPES = ("auto", "bf16", "fp16")
#: Named sets of defaults (`--preset`). "from-scratch": what a backbone without ImageNet
#: weights needs to learn in a short run: BatchNorm statistics that settle within a few hundred
#: steps (momentum 0.1, not EfficientNet's 0.01), and learning rates above the paper's 1e-4
#: (1e-3 for the stage-1 classifier, 3e-4 for the MAT), as mattn's bundled models were trained.
PRESETS: dict[str, dict[str, Any]] = {
    "from-scratch": {"bn_momentum": 0.1, "stage1": {"lr": 1e-3}, "stage2": {"lr": 3e-4}},
}
STAGE_NAMES = {1: "stage 1 (backbone classifier)", 2: "stage 2 (MAT)"}


@dataclass(frozen=True)
class StageConfig:
    """Optimisation settings of one stage (each stage gets a fresh optimiser and schedule)."""

    # Stage 1: 20 epochs; stage 2: 30 (the authors configure 50 but continue the epoch counter
    # of stage 1's checkpoint, so 20..49 run).
    epochs: int
    # Images per batch per process: 16 for stage 1, 15 per GPU for stage 2.
    batch_size: int
    # AdamW as the authors: lr 1e-4, betas (0.9, 0.999), weight decay 1e-6.
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 1e-6
    # StepLR: the learning rate is halved every 5 epochs.
    lr_step_epochs: int = 5
    lr_gamma: float = 0.5

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise UsageError(f"epochs must be at least 1, got {self.epochs}.")
        if self.batch_size < 2:
            # BatchNorm cannot train on a batch of one image.
            raise UsageError(f"batch size must be at least 2, got {self.batch_size}.")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise UsageError(f"learning rate must be a positive number, got {self.lr}.")
        if self.lr_step_epochs < 1:
            raise UsageError(f"lr_step_epochs must be at least 1, got {self.lr_step_epochs}.")


STAGE1_DEFAULTS = StageConfig(epochs=20, batch_size=16)
STAGE2_DEFAULTS = StageConfig(epochs=30, batch_size=15)


@dataclass(frozen=True)
class TrainConfig:
    """Everything `mattn train` needs to know. Paths are strings so the config is plain TOML."""

    # Faces folder written by `mattn extract-faces` (manifest.csv + crops).
    data: str
    # Run directory: weights, training state, logs, TensorBoard events, config.toml.
    out: str

    # --- What to train -------------------------------------------------------------------
    # "paper": stage 1 (plain backbone classifier) then stage 2 (MAT initialised from stage
    # 1's backbone), as the authors trained their released model; "single": one stage only.
    recipe: str = "paper"
    # Run only this stage (1 or 2); unset = what the recipe says ("single" runs stage 2).
    stage: int | None = None
    # A mattn weights file (or the authors' .pth) to initialise from: every tensor whose name
    # and shape match is copied. Overrides ImageNet and stage-1 initialisation.
    init: str | None = None
    # efficientnet-pytorch ImageNet or AdvProp weights (a .pth state dict) for the backbone of
    # the first stage unless `init` is set; unset = torch hub's cache (~/.cache/torch/hub/
    # checkpoints/adv-efficientnet-bX-*.pth, the authors' AdvProp, else efficientnet-bX-*.pth).
    # Nothing is ever downloaded: without a file the backbone starts from random weights.
    backbone_weights: str | None = None
    # What input the backbone weights were trained on: "imagenet" (ImageNet mean/std) or
    # "advprop" (0.5 / 0.5); unset = from the file name (adv-... = AdvProp), as the files'
    # contents do not tell. Sets `mean`/`std` unless they are given.
    backbone_normalization: str | None = None
    # A named set of defaults (PRESETS), below any value given in a file or as an option.
    preset: str | None = None

    # --- Model (MATConfig; defaults = the released B4 model) ------------------------------
    backbone: str = "efficientnet-b4"
    # Square model input in pixels; unset = the backbone's native size (380 for B4).
    input_size: int | None = None
    num_attentions: int = MATConfig.num_attentions
    attention_tap: str = MATConfig.attention_tap
    texture_tap: str = MATConfig.texture_tap
    # Dropout before the stage-1 classifier; unset = the authors' value for the backbone
    # (0.2 for B0/B1, 0.3 B2/B3, 0.0 B4/B5, 0.5 B6/B7).
    backbone_dropout: float | None = None
    # "authors" (MAT.md §7), so that the network trained is the paper's: e.g. B4 at 380 px has
    # 23x23 attention maps, 24x24 with "per-stage". The two are the same network whenever every
    # stride-2 layer sees an even size, i.e. for inputs that are multiples of 32 px.
    padding: str = "authors"

    # --- Data ------------------------------------------------------------------------------
    # Frames per training video and epoch (50 for FF++, as the authors); all if fewer. A video
    # stored frame by frame (every frame's crop in the manifest) gets the authors' frames:
    # every `frame_stride`-th of its first frames_per_video x frame_stride (500), shifted by one
    # frame each epoch; other videos (and all with frame_stride 0) get frames spread over the
    # whole video, also shifted.
    frames_per_video: int = 50
    frame_stride: int = 10
    # Frames per validation video (the authors evaluate 20 per video); 0 = all.
    val_frames_per_video: int = 20
    # "self-blend": every real training crop also yields a self-blended fake (Shiohara &
    # Yamasaki 2022), so training works even on real videos only.
    synthetic_fakes: str = "none"
    # Balance classes by weighting the loss instead of oversampling the minority class (the
    # authors oversample real videos).
    class_weighted: bool = False
    # Random horizontal flip (the authors' only augmentation).
    hflip: bool = True
    # "center": training crops are centre-cropped to the input, as the authors'; "random": a
    # random crop of the input size (more variety, e.g. for small data sets).
    train_crop: str = "center"
    # Robustness augmentation: JPEG re-compression, blur, noise and colour jitter (OpenCV).
    augment: bool = False
    # "video": training crops (real and self-blended alike) are degraded as if cut out of a
    # compressed video frame (resolution loss, blur, noise, H.264-like blocks; see
    # training/degradations.py), so a model trained on photographs scores video frames;
    # "none": crops as stored. Validation crops are never degraded.
    degradations: str = "none"
    # Crops larger than input_size * this are first resized down, so a random crop of
    # input_size still shows the whole face (crops are stored "a little larger" than the input).
    # (extract-faces stores crops 15 % larger than the input, rounded up: 440 for 380.)
    max_crop_slack: float = 1.2
    # The margin extract-faces cut the crops with (side = margin_ratio x the detector box's
    # longer side; FF++ uses 1.3); unset = the manifest's margin_ratio column, else 1.3. The
    # weights record the margin of the centre crop the model actually sees, so that scanning
    # crops faces at the scale the model was trained on.
    margin_ratio: float | None = None
    # Input normalisation (x/255 - mean)/std per RGB channel; unset = what the backbone weights
    # the run starts from expect (`backbone_normalization`; mattn weights given as `init`: their
    # own), else the authors' 0.5 / 0.5.
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None

    # --- Losses (MAT.md §4-5) -------------------------------------------------------------
    # Total = ce * CE + ril * RIL + agda_ce * CE(AGDA) + match * match loss.
    loss_ce: float = 1.0
    loss_ril: float = 0.5
    loss_agda_ce: float = 1.0
    loss_match: float = 0.1
    # Attention-guided data augmentation (the second forward pass) in stage 2.
    agda: bool = True
    # The RIL centre update rate alpha is multiplied by this after every epoch.
    ril_alpha_decay: float = 0.9

    # --- Optimisation, per stage -------------------------------------------------------------
    stage1: StageConfig = STAGE1_DEFAULTS
    stage2: StageConfig = STAGE2_DEFAULTS
    # Images per batch when predicting the validation split.
    eval_batch_size: int = 32
    # Momentum of every BatchNorm's running statistics; unset = the backbone's own (0.01 in
    # efficientnet-pytorch, TensorFlow's 0.99), which needs hundreds of steps to settle. Raise
    # it (e.g. 0.1) for short runs, or validation in eval mode sees unsettled statistics.
    bn_momentum: float | None = None

    # --- Engineering ----------------------------------------------------------------------------
    # "auto" = CUDA if available (under torchrun: the local rank's GPU), else MPS, else CPU.
    device: str = "auto"
    # Mixed precision: bf16 autocast on CUDA when supported, else fp16 with a gradient scaler;
    # unset = on for CUDA, off elsewhere.
    amp: bool | None = None
    # The autocast dtype when AMP is on: "auto" (bf16 where supported, else fp16), "bf16" or
    # "fp16" (fp16 always runs with the gradient scaler).
    amp_dtype: str = "auto"
    # DataLoader worker processes (decoding and augmenting crops); 0 = in the main process.
    workers: int = 2
    # Everything random (frame choice, order, augmentation, AGDA, dropout) derives from this.
    seed: int = 0
    # Deterministic algorithms only (slower on GPU); on CPU, an interrupted and resumed run
    # gives bit-identical weights.
    deterministic: bool = False

    # --- Provenance -----------------------------------------------------------------------------
    # Model name stored with the weights; unset = "mattn-<backbone>-<data folder name>".
    name: str | None = None
    # Mark the weights as a demonstration only (not validated on a deepfake benchmark).
    demo: bool = False

    def __post_init__(self) -> None:
        choices = (
            ("recipe", self.recipe, RECIPES),
            ("backbone", self.backbone, NATIVE_INPUT_SIZE),
            ("--synthetic-fakes", self.synthetic_fakes, SYNTHETIC_FAKES),
            ("--degradations", self.degradations, DEGRADATIONS),
            ("padding", self.padding, PADDINGS),
            ("train_crop", self.train_crop, TRAIN_CROPS),
            ("--backbone-normalization", self.backbone_normalization, BACKBONE_NORMALIZATIONS),
            ("--preset", self.preset, PRESETS),
            ("--amp-dtype", self.amp_dtype, AMP_DTYPES),
        )
        for name, value, known in choices:
            if value is not None and value not in known:
                raise UsageError(f"unknown {name} {value!r}; use one of {', '.join(known)}.")
        if self.stage not in (None, 1, 2):
            raise UsageError(f"stage must be 1 or 2, got {self.stage!r}.")
        if self.input_size is not None and self.input_size < 32:
            raise UsageError(f"input size must be at least 32 pixels, got {self.input_size}.")
        if self.frames_per_video < 1:
            raise UsageError(f"frames per video must be at least 1, got {self.frames_per_video}.")
        if self.val_frames_per_video < 0:
            raise UsageError("val_frames_per_video must be 0 (all) or more.")
        if self.workers < 0:
            raise UsageError(f"workers must be 0 or more, got {self.workers}.")
        if self.margin_ratio is not None and self.margin_ratio <= 0:
            raise UsageError("margin_ratio must be positive.")
        if self.bn_momentum is not None and not 0 < self.bn_momentum <= 1:
            raise UsageError("bn_momentum must be in (0, 1].")
        if self.max_crop_slack < 1:
            raise UsageError("max_crop_slack must be at least 1.")
        if self.frame_stride < 0:
            raise UsageError(f"frame_stride must be 0 or more, got {self.frame_stride}.")
        if self.backbone_dropout is not None and not 0 <= self.backbone_dropout < 1:
            raise UsageError("backbone_dropout must be in [0, 1).")

    # --- derived values ---------------------------------------------------------------------

    @property
    def stages(self) -> tuple[int, ...]:
        """The stages this run trains, in order."""
        if self.stage is not None:
            return (self.stage,)
        return (1, 2) if self.recipe == "paper" else (2,)

    def stage_config(self, stage: int) -> StageConfig:
        return self.stage1 if stage == 1 else self.stage2

    @property
    def model_input_size(self) -> int:
        return self.input_size or NATIVE_INPUT_SIZE[self.backbone]

    def model_config(self, stage: int) -> MATConfig:
        """The network of a stage: stage 1 = the plain backbone classifier, stage 2 = MAT."""
        return MATConfig(
            backbone=self.backbone,
            input_size=self.model_input_size,
            num_attentions=self.num_attentions,
            attention_tap=self.attention_tap,
            texture_tap=self.texture_tap,
            backbone_dropout=self.model_backbone_dropout,
            legacy_padding=self.padding == "authors",
            variant="backbone" if stage == 1 else "mat",
        )

    @property
    def model_backbone_dropout(self) -> float:
        if self.backbone_dropout is not None:
            return self.backbone_dropout
        return AUTHORS_BACKBONE_DROPOUT[self.backbone]

    @property
    def weights_normalization(self) -> str | None:
        """What the backbone weights the run starts from expect; None without such weights."""
        if self.backbone_normalization or self.init or not self.backbone_weights:
            return self.backbone_normalization
        return imagenet_normalization_hint(self.backbone_weights)

    def input_normalization(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """(mean, std) of the model input: as set, else what the backbone weights expect."""
        kind = self.weights_normalization
        mean, std = BACKBONE_NORMALIZATIONS[kind] if kind else AUTHORS_NORMALIZATION
        return self.mean or mean, self.std or std

    def preprocessing(self, margin_ratio: float) -> Preprocessing:
        """What scanning must feed the model; `margin_ratio` = that of the crops it saw
        (data.model_input_margin)."""
        mean, std = self.input_normalization()
        return Preprocessing(
            input_size=self.model_input_size, mean=mean, std=std, margin_ratio=margin_ratio
        )

    def model_name(self) -> str:
        return self.name or f"mattn-{self.backbone}-{Path(self.data).name}"

    def resolved(self) -> TrainConfig:
        """The same config with defaults that depend on other fields filled in, so that the
        saved config.toml says every value the run used."""
        mean, std = self.input_normalization()
        return dataclasses.replace(
            self,
            input_size=self.model_input_size,
            name=self.model_name(),
            backbone_dropout=self.model_backbone_dropout,
            backbone_normalization=self.weights_normalization,
            mean=mean,
            std=std,
        )

    # --- plain data ---------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Nested plain dict (tuples as lists, unset values left out), as written to TOML."""
        return plain_toml_data(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        values = _checked_keys(cls, data, where="")
        for name, defaults in (("stage1", STAGE1_DEFAULTS), ("stage2", STAGE2_DEFAULTS)):
            if name in values:
                if not isinstance(values[name], dict):
                    raise UsageError(f"[{name}] must be a TOML table.")
                stage_values = _checked_keys(StageConfig, values[name], where=f"[{name}] ")
                values[name] = replace_stage(defaults, stage_values)
        missing = [name for name in ("data", "out") if not values.get(name)]
        if missing:
            option = missing[0]
            raise UsageError(f"--{option} is required (give it as an option or in the TOML file).")
        for name in ("mean", "std"):
            if name in values:
                values[name] = tuple(values[name])
        return cls(**values)


def _checked_keys(cls, data: dict[str, Any], where: str) -> dict[str, Any]:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise UsageError(
            f"unknown training setting {where}{unknown[0]!r}; known: {', '.join(sorted(known))}."
        )
    return dict(data)


def replace_stage(stage: StageConfig, values: dict[str, Any]) -> StageConfig:
    if "betas" in values:
        values = {**values, "betas": tuple(values["betas"])}
    try:
        return dataclasses.replace(stage, **values)
    except TypeError as error:
        raise UsageError(f"bad stage setting ({error}).") from None


__all__ = [
    "PADDINGS",
    "PRESETS",
    "RECIPES",
    "STAGE1_DEFAULTS",
    "STAGE2_DEFAULTS",
    "StageConfig",
    "TrainConfig",
    "replace_stage",
]
