"""What the training loop builds before it trains: the model, its optimiser, the data it reads.

Each builder does one thing the loop names: the backends (`configure_backends`), the stage's
model and its first weights (`build_model`), its optimiser, schedule and gradient scaler
(`build_trainee`), the state a resumed stage continues from (`restore_training_state`), every
epoch's global seeds (`seed_epoch`) and batches (`epoch_loader`), and the preprocessing the
weights will record (`model_preprocessing`).
"""

from __future__ import annotations

import os
import random
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from deepfake_cli.errors import UsageError
from deepfake_cli.manifest import FAKE, REAL
from deepfake_cli.model.backbone import read_imagenet_weights
from deepfake_cli.model.config import DEFAULT_MARGIN_RATIO, Preprocessing
from deepfake_cli.model.mat import MATDetector
from deepfake_cli.model.step import LossWeights
from deepfake_cli.shards import rank_positions
from deepfake_cli.training import distributed
from deepfake_cli.training.checkpoint import init_from_weights, set_rng_state
from deepfake_cli.training.config import PRESETS, STAGE1_DEFAULTS, StageConfig, TrainConfig
from deepfake_cli.training.data import (
    CropDataset,
    FacesData,
    Transform,
    class_weights,
    epoch_plan,
    make_loader,
    model_input_margin,
)

# --- the run -------------------------------------------------------------------------------------


def configure_backends(config: TrainConfig, device: torch.device) -> None:
    """Deterministic kernels if asked for; otherwise let cuDNN pick the fastest ones."""
    if config.deterministic:
        # cuBLAS needs a fixed workspace for reproducible matrix products.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        # warn_only: some CUDA kernels (e.g. bilinear upsampling's backward) have no
        # deterministic version; they warn instead of stopping the run. On CPU every op here
        # is deterministic.
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input size: let cuDNN pick the fastest


def check_training_data(data: FacesData, config: TrainConfig) -> None:
    """UsageError unless the train split has real videos, and fakes or a way to make them."""
    counts = data.count_videos("train")
    if counts[REAL] + counts[FAKE] == 0:
        raise UsageError(f"{data.root} has no crops in the 'train' split.")
    self_blend = config.synthetic_fakes == "self-blend"
    if counts[FAKE] == 0 and not self_blend:
        raise UsageError(
            f"the train split of {data.root} has only real videos; add fake videos or pass "
            "--synthetic-fakes self-blend."
        )
    if counts[REAL] == 0:
        raise UsageError(f"the train split of {data.root} has no real videos.")


@dataclass(frozen=True)
class Precision:
    """Autocast dtype (None = fp32) for a device."""

    device_type: str
    dtype: torch.dtype | None = None

    @classmethod
    def choose(cls, amp: bool | None, device: torch.device, amp_dtype: str = "auto") -> Precision:
        if amp is None:
            amp = device.type == "cuda"  # AMP on CPU is slower than fp32 on most CPUs
        if not amp:
            return cls(device.type)
        if amp_dtype != "auto":
            return cls(device.type, torch.bfloat16 if amp_dtype == "bf16" else torch.float16)
        if device.type == "cuda":
            bf16 = torch.cuda.is_bf16_supported()
            return cls("cuda", torch.bfloat16 if bf16 else torch.float16)
        return cls(device.type, torch.bfloat16 if device.type == "cpu" else torch.float16)

    @property
    def name(self) -> str:
        """The autocast dtype's name, or fp32: "fp32", "bfloat16" or "float16"."""
        return "fp32" if self.dtype is None else str(self.dtype).split(".")[-1]

    def autocast(self) -> AbstractContextManager[Any]:
        return torch.autocast(self.device_type, dtype=self.dtype) if self.dtype else nullcontext()


def loss_weights(config: TrainConfig) -> LossWeights:
    """The weights of the MAT's loss parts, as the config sets them."""
    return LossWeights(
        cross_entropy=config.loss_ce,
        regional_independence=config.loss_ril,
        agda_cross_entropy=config.loss_agda_ce,
        match=config.loss_match,
    )


def crop_transform(config: TrainConfig, *, train: bool) -> Transform:
    """Stored crop -> model input: centre (or random) crop, flip and augmentation in training,
    else centre."""
    mean, std = config.input_normalization()
    return Transform(
        input_size=config.model_input_size,
        mean=mean,
        std=std,
        train=train,
        random_crop=config.train_crop == "random",
        hflip=config.hflip,
        augment=config.augment,
        max_crop_slack=config.max_crop_slack,
        degradations=config.degradations,
    )


def model_preprocessing(config: TrainConfig, data: FacesData) -> Preprocessing:
    """What scanning must feed the model: the margin of the centre crop the model sees.

    The stored crops' margin is the manifest's, else the config's, else the default one.
    """
    stored_margin = data.stored_margin() or config.margin_ratio or DEFAULT_MARGIN_RATIO
    return config.preprocessing(
        model_input_margin(
            stored_margin, data.stored_side(), config.model_input_size, config.max_crop_slack
        )
    )


# --- one stage's model and what updates it -------------------------------------------------------


@dataclass
class Trainee:
    """One stage's network and everything that updates it, built before its first epoch."""

    model: MATDetector  # what is validated and saved
    train_model: nn.Module  # what the training step calls: `model`, or DDP around it
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.StepLR
    scaler: torch.amp.GradScaler  # loss scaling: on for fp16 only
    precision: Precision
    channels_last: bool  # images and weights in channels_last memory format (CUDA)


def build_model(
    config: TrainConfig, stage: int, *, resume_state: dict | None, run_dir: Path
) -> tuple[MATDetector, str | None]:
    """The stage's network with its first weights, and a line saying where they came from.

    On resume the weights are the saved ones and there is no line to say.
    """
    torch.manual_seed(config.seed)  # identical initial weights on every rank
    model = MATDetector(config.model_config(stage))
    initialised = None
    if resume_state is None:
        initialised = initialise(model, config, stage, run_dir)
    else:
        model.load_state_dict(resume_state["model"])
    if config.bn_momentum is not None:
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.momentum = config.bn_momentum
    if model.config.variant == "mat":
        # The backbone's own classifier is only stage 1's head; frozen, it is left out of the
        # optimiser and of DDP's gradient reduction (no find_unused_parameters needed).
        model.backbone._fc.requires_grad_(False)
    return model, initialised


def initialise(model: MATDetector, config: TrainConfig, stage: int, run_dir: Path) -> str:
    """Where a fresh stage's weights come from; returns one line saying so."""
    first_stage = stage == config.stages[0]
    if config.init and first_stage:
        return init_from_weights(model, config.init)
    if stage == 2 and not first_stage:
        # The recipe: MAT starts from stage 1's backbone (its last epoch, as the authors).
        return init_from_weights(model, run_dir / "stage1" / "last.safetensors")
    if config.backbone_weights:  # given, or found in torch hub's cache by resolve_config
        state = read_imagenet_weights(config.backbone_weights, config.backbone)
        copied = model.backbone.load_imagenet(state)
        kind = "AdvProp" if config.weights_normalization == "advprop" else "standard"
        mean, std = (", ".join(f"{v:g}" for v in values) for values in config.input_normalization())
        return (
            f"backbone initialised from {kind} ImageNet weights "
            f"{Path(config.backbone_weights).name} ({copied} tensors; input normalised with "
            f"mean ({mean}), std ({std}))"
        )
    return from_scratch_notice(config, stage)


def from_scratch_notice(config: TrainConfig, stage: int) -> str:
    """The one line a run without any starting weights prints, with a hint when its learning
    rate is the paper's (which is for a backbone that starts from ImageNet weights)."""
    text = (
        "[yellow]no backbone weights given or found in torch hub's cache: training from "
        "scratch (random initialisation)[/yellow]; --backbone-weights takes an "
        f"efficientnet-pytorch {config.backbone} ImageNet or AdvProp .pth (never downloaded)"
    )
    if config.stage_config(stage).lr == STAGE1_DEFAULTS.lr:
        preset = PRESETS["from-scratch"]
        text += (
            f"; at the paper's lr {STAGE1_DEFAULTS.lr:g} a network from scratch learns slowly: "
            f"try --preset from-scratch (lr {preset['stage1']['lr']:g} / "
            f"{preset['stage2']['lr']:g}, bn_momentum {preset['bn_momentum']:g})"
        )
    return text


def build_trainee(
    model: MATDetector, config: TrainConfig, stage_config: StageConfig, runtime: distributed.Runtime
) -> Trainee:
    """`model` on this process's device (under DDP when distributed), with a fresh AdamW and
    StepLR for the stage (as the authors) and a gradient scaler for its precision."""
    device = runtime.device
    channels_last = device.type == "cuda"
    model.to(device, memory_format=torch.channels_last if channels_last else torch.preserve_format)
    train_model = distributed.wrap_model(model, runtime)
    model = train_model.module if runtime.distributed else train_model
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad],
        lr=stage_config.lr,
        betas=stage_config.betas,
        weight_decay=stage_config.weight_decay,
    )
    scheduler = torch.optim.lr_scheduler.StepLR(
        optimizer, step_size=stage_config.lr_step_epochs, gamma=stage_config.lr_gamma
    )
    precision = Precision.choose(config.amp, device, config.amp_dtype)
    # fp16 needs loss scaling against underflowing gradients; bf16 and fp32 do not.
    scaler = torch.amp.GradScaler(device.type, enabled=precision.dtype == torch.float16)
    return Trainee(model, train_model, optimizer, scheduler, scaler, precision, channels_last)


def restore_training_state(
    trainee: Trainee, resume_state: dict, runtime: distributed.Runtime
) -> tuple[int, float | None]:
    """Optimiser, schedule, scaler and RNGs as saved -> (first epoch to train, best metric)."""
    trainee.optimizer.load_state_dict(resume_state["optimizer"])
    trainee.scheduler.load_state_dict(resume_state["scheduler"])
    trainee.scaler.load_state_dict(resume_state["scaler"])
    rngs = resume_state["rng"]
    if len(rngs) == runtime.world_size:  # one entry per rank; another world size reseeds anyway
        set_rng_state(rngs[runtime.rank])
    return resume_state["epoch"] + 1, resume_state["best_metric"]


# --- every epoch ---------------------------------------------------------------------------------


def seed_epoch(seed: int, stage: int, epoch: int, rank: int) -> None:
    """Reseed the global RNGs (dropout, AGDA) from (seed, stage, epoch, rank)."""
    value = int(np.random.SeedSequence([seed, stage, epoch, rank]).generate_state(1)[0])
    random.seed(value)
    np.random.seed(value)
    torch.manual_seed(value)


def epoch_loader(
    config: TrainConfig,
    data: FacesData,
    runtime: distributed.Runtime,
    epoch: int,
    batch_size: int,
) -> tuple[DataLoader, torch.Tensor | None]:
    """This rank's batches of the epoch, and the class weights for its loss (or None).

    The epoch's frames per video, balanced by oversampling the smaller class and shuffled, or,
    with `class_weighted`, left unbalanced and the loss weighted instead.
    """
    plan = epoch_plan(
        data.records,
        split="train",
        frames_per_video=config.frames_per_video,
        frame_stride=config.frame_stride,
        epoch=epoch,
        seed=config.seed,
        self_blend=config.synthetic_fakes == "self-blend",
        balance=not config.class_weighted,
        shuffle=True,
    )
    loss_class_weights = None
    if config.class_weighted:
        loss_class_weights = class_weights(plan, data.records).to(runtime.device)
    positions = rank_positions(len(plan), runtime.rank, runtime.world_size)
    transform = crop_transform(config, train=True)
    loader = make_loader(
        CropDataset(data.records, plan, transform, seed=config.seed, epoch=epoch),
        positions,
        batch_size=batch_size,
        workers=config.workers,
        # Equal batch counts on every rank (DDP), and no batch of one image (BatchNorm).
        drop_last=len(positions) >= batch_size,
        pin_memory=runtime.device.type == "cuda",
    )
    return loader, loss_class_weights
