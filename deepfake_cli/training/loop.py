"""The training loop of `mattn train`: the recipe's stages, then epochs, then batches.

Read `run_training` and `train_stage` top to bottom; each block says why it is there:
data -> forward and losses -> backward -> step -> end of epoch -> validate -> checkpoint -> log.
The loop does not know what it trains beyond `mat_training_step`, which returns named losses.

Recipe (MAT.md §6): stage 1 trains the plain EfficientNet classifier, stage 2 the MAT
initialised from stage 1's backbone, each with a fresh AdamW + StepLR.

Reproducibility: everything random in an epoch derives from (seed, stage, epoch, rank): the data
plan and augmentation (data.py), and the global RNGs that dropout and AGDA draw from, reseeded at
the start of every epoch. The state saved after each epoch holds everything else (weights,
RIL centres and rate, optimiser, schedule, scaler, RNG states), so an interrupted run resumed
with `--resume` continues exactly as if it had never stopped.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import random
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from rich.console import Console

from deepfake_cli.errors import UsageError
from deepfake_cli.model.config import Provenance
from deepfake_cli.model.mat import MATDetector
from deepfake_cli.model.step import LossWeights, mat_training_step
from deepfake_cli.shards import rank_positions
from deepfake_cli.training import distributed
from deepfake_cli.training.checkpoint import (
    find_imagenet_weights,
    init_from_weights,
    load_imagenet_backbone,
    load_training_state,
    rng_state,
    save_model_file,
    save_training_state,
    set_rng_state,
    state_path,
)
from deepfake_cli.training.config import STAGE_NAMES, TrainConfig, save_config
from deepfake_cli.training.data import (
    FAKE,
    REAL,
    CropDataset,
    FacesData,
    Sample,
    Transform,
    class_weights,
    epoch_plan,
    make_loader,
    model_input_margin,
)
from deepfake_cli.training.evaluate import predict
from deepfake_cli.training.metrics import flatten, frame_and_video_metrics

LOSS_PARTS = ("loss", "ce", "ril", "agda_ce", "match")
#: Validation metric that picks best.safetensors (never computed on a test split).
BEST_METRIC = "val_video_auc"


@dataclass
class TrainingResult:
    """What a run produced."""

    run_dir: Path
    last: Path | None = None
    best: Path | None = None
    best_metric: float | None = None
    history: list[dict] = field(default_factory=list)


def run_training(
    config: TrainConfig, *, resume: bool = False, console: Console | None = None
) -> TrainingResult:
    """Train as `config` says (under torchrun: as one of its processes)."""
    runtime = distributed.setup(config.device)
    try:
        # soft_wrap: long lines (paths) stay whole in log files instead of breaking at 80.
        return _run(config, runtime, resume, console or Console(soft_wrap=True))
    finally:
        distributed.teardown(runtime)


def _run(config: TrainConfig, runtime, resume: bool, console: Console) -> TrainingResult:
    run_dir = Path(config.out)
    if not runtime.is_main:
        console = Console(quiet=True)  # rank 0 alone prints
    say = console.print
    if config.deterministic:
        _use_deterministic_algorithms()
    elif runtime.device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input size: let cuDNN pick the fastest

    state = load_training_state(run_dir) if resume else None
    if state is None and state_path(run_dir).exists():
        raise UsageError(
            f"{run_dir} already holds a training run; continue it with --resume or choose "
            "another --out."
        )
    data = FacesData.load(config.data)
    _check_training_data(data, config)
    if runtime.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(config, run_dir / "config.toml")
    log = RunLog(run_dir, enabled=runtime.is_main, resume_after=_resume_point(state))
    say(f"[bold]mattn train[/bold]: {data.describe()}; {_describe_runtime(config, runtime)}")

    result = TrainingResult(run_dir=run_dir)
    epoch_offset = 0  # epochs of earlier stages, so TensorBoard's x axis runs on (as the authors')
    try:
        for stage in config.stages:
            stage_epochs = config.stage_config(stage).epochs
            if state is not None and stage < state["stage"]:
                epoch_offset += stage_epochs  # finished before the interruption
                continue
            resume_state = state if state is not None and state["stage"] == stage else None
            result = train_stage(
                config,
                stage,
                data,
                runtime,
                log,
                console,
                resume_state=resume_state,
                epoch_offset=epoch_offset,
                result=result,
            )
            epoch_offset += stage_epochs
    finally:
        log.close()
    say(
        f"done: {result.last}"
        + (
            f", best {BEST_METRIC} = {result.best_metric:.4f} in {result.best}"
            if result.best_metric is not None
            else ""
        )
    )
    return result


def train_stage(
    config: TrainConfig,
    stage: int,
    data: FacesData,
    runtime: distributed.Runtime,
    log: RunLog,
    console: Console,
    *,
    resume_state: dict | None,
    epoch_offset: int,
    result: TrainingResult,
) -> TrainingResult:
    """One stage of the recipe, from its first (or resumed) epoch to its last."""
    stage_config = config.stage_config(stage)
    device = runtime.device
    say = console.print
    result.last = result.best = result.best_metric = None  # this stage's files from now on
    # The last stage writes into RUN_DIR; an earlier one into RUN_DIR/stage<N>/.
    out_dir = result.run_dir if stage == config.stages[-1] else result.run_dir / f"stage{stage}"

    # --- model: the stage's network, and where its weights start -----------------------------
    torch.manual_seed(config.seed)  # identical initial weights on every rank
    model = MATDetector(config.model_config(stage))
    if resume_state is None:
        say(f"{STAGE_NAMES[stage]}: {_initialise(model, config, stage, result.run_dir)}")
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
    channels_last = device.type == "cuda"
    model.to(device, memory_format=torch.channels_last if channels_last else torch.preserve_format)
    train_model = distributed.wrap_model(model, runtime)
    model = train_model.module if runtime.distributed else train_model

    # --- optimiser and schedule: fresh for every stage, as the authors -------------------------
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad],
        lr=stage_config.lr,
        betas=stage_config.betas,
        weight_decay=stage_config.weight_decay,
    )
    scheduler = torch.optim.lr_scheduler.StepLR(
        optimizer, step_size=stage_config.lr_step_epochs, gamma=stage_config.lr_gamma
    )
    precision = Precision.choose(config.amp, device)
    # fp16 needs loss scaling against underflowing gradients; bf16 and fp32 do not.
    scaler = torch.amp.GradScaler(device.type, enabled=precision.dtype == torch.float16)
    start_epoch, best_metric = 0, None
    if resume_state is not None:
        optimizer.load_state_dict(resume_state["optimizer"])
        scheduler.load_state_dict(resume_state["scheduler"])
        scaler.load_state_dict(resume_state["scaler"])
        start_epoch, best_metric = resume_state["epoch"] + 1, resume_state["best_metric"]
        rngs = resume_state["rng"]
        if len(rngs) == runtime.world_size:
            set_rng_state(rngs[runtime.rank])
        say(f"{STAGE_NAMES[stage]}: resuming after epoch {start_epoch} of {stage_config.epochs}")

    loss_weights = LossWeights(
        cross_entropy=config.loss_ce,
        regional_independence=config.loss_ril,
        agda_cross_entropy=config.loss_agda_ce,
        match=config.loss_match,
    )
    train_transform = Transform(
        input_size=config.model_input_size,
        mean=config.mean,
        std=config.std,
        train=True,
        hflip=config.hflip,
        augment=config.augment,
        max_crop_slack=config.max_crop_slack,
    )
    val_samples = _validation_samples(data, config)
    if not val_samples:
        say("[yellow]note: no 'val' split: no validation metrics and no best.safetensors[/yellow]")
    preprocessing = config.preprocessing(
        model_input_margin(
            data.stored_margin() or config.margin_ratio or 1.3,
            data.stored_side(),
            config.model_input_size,
            config.max_crop_slack,
        )
    )

    for epoch in range(start_epoch, stage_config.epochs):
        started = time.perf_counter()
        _seed_epoch(config.seed, stage, epoch, runtime.rank)

        # --- data: this epoch's frames per video, balanced and shuffled; this rank's shard
        plan = epoch_plan(
            data.records,
            split="train",
            frames_per_video=config.frames_per_video,
            epoch=epoch,
            seed=config.seed,
            self_blend=config.synthetic_fakes == "self-blend",
            balance=not config.class_weighted,
            shuffle=True,
        )
        step_options = {}
        if config.class_weighted:
            step_options["class_weights"] = class_weights(plan, data.records).to(device)
        positions = rank_positions(len(plan), runtime.rank, runtime.world_size)
        loader = make_loader(
            CropDataset(data.records, plan, train_transform, seed=config.seed, epoch=epoch),
            positions,
            batch_size=stage_config.batch_size,
            workers=config.workers,
            # Equal batch counts on every rank (DDP), and no batch of one image (BatchNorm).
            drop_last=len(positions) >= stage_config.batch_size,
            pin_memory=device.type == "cuda",
        )
        lr = optimizer.param_groups[0]["lr"]
        progress = EpochProgress(
            console,
            enabled=runtime.is_main,
            total=len(loader),
            title=f"stage {stage} epoch {epoch + 1}/{stage_config.epochs}",
        )

        # --- forward, losses, backward, step
        model.train()
        sums: dict[str, float] = {}
        seen = 0
        for images, labels, _ in loader:
            images = images.to(device, non_blocking=True)
            if channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            labels = labels.to(device, non_blocking=True)
            with precision.autocast():
                parts = mat_training_step(
                    train_model,
                    images,
                    labels,
                    weights=loss_weights,
                    use_agda=config.agda,
                    **step_options,
                )
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(parts["loss"]).backward()
            scaler.step(optimizer)
            scaler.update()

            batch = labels.shape[0]
            seen += batch
            for name in LOSS_PARTS:
                if name in parts:
                    sums[name] = sums.get(name, 0.0) + float(parts[name].detach()) * batch
            progress.advance(
                {name: value / seen for name, value in sums.items()},
                images=batch * runtime.world_size,
            )
        progress.close()
        train_seconds = time.perf_counter() - started

        # --- end of epoch: the schedule steps, the RIL centres move more slowly
        scheduler.step()
        if model.config.variant == "mat":
            model.regional_loss.decay_alpha(config.ril_alpha_decay)
        losses, images_total = distributed.mean_over_ranks(sums, seen, runtime)

        # --- validate: frame- and video-level AUC, accuracy, log-loss on the val split
        val_metrics = _validate(model, data, val_samples, config, runtime, precision, channels_last)
        metric = val_metrics.get(BEST_METRIC)
        improved = metric is not None and (best_metric is None or metric > best_metric)
        if improved:
            best_metric = metric

        # --- checkpoint and log: weights, then the log row, then the training state, which
        # is the resume point (a resumed run drops log rows after it). Rank 0 writes.
        rngs = distributed.gather_objects(rng_state(), runtime)
        sync = _rank_digests(model, runtime)
        row = {
            "stage": stage,
            "epoch": epoch + 1,
            "global_epoch": epoch_offset + epoch + 1,
            "lr": lr,
            **losses,
            **val_metrics,
            "images_per_s": images_total / max(train_seconds, 1e-9),
            "seconds": time.perf_counter() - started,
            "best": improved,
            **sync,
        }
        if runtime.is_main:
            provenance = _provenance(config, data, stage, epoch, val_metrics)
            weights = dict(
                preprocessing=preprocessing, provenance=provenance, training_config=config.to_dict()
            )
            result.last = save_model_file(model, out_dir / "last.safetensors", **weights)
            if improved:
                result.best = save_model_file(model, out_dir / "best.safetensors", **weights)
                result.best_metric = best_metric
            log.write(row)
            save_training_state(
                result.run_dir,
                model=model,
                optimizer=optimizer,
                scheduler=scheduler,
                scaler=scaler,
                stage=stage,
                epoch=epoch,
                best_metric=best_metric,
                config=config.to_dict(),
                rng_states=rngs,
            )
        result.history.append(row)
        say(_epoch_line(row))
        distributed.barrier(runtime)
    # A resumed stage may have written its files before the interruption.
    for name in ("last", "best"):
        if getattr(result, name) is None and (out_dir / f"{name}.safetensors").exists():
            setattr(result, name, out_dir / f"{name}.safetensors")
    if result.best_metric is None:
        result.best_metric = best_metric
    return result


# --- the blocks the loop calls ------------------------------------------------------------------


def _initialise(model: MATDetector, config: TrainConfig, stage: int, run_dir: Path) -> str:
    """Where a fresh stage's weights come from; returns one line saying so."""
    first_stage = stage == config.stages[0]
    if config.init and first_stage:
        return init_from_weights(model, config.init)
    if stage == 2 and not first_stage:
        # The recipe: MAT starts from stage 1's backbone (its last epoch, as the authors).
        return init_from_weights(model, run_dir / "stage1" / "last.safetensors")
    path = config.backbone_weights or find_imagenet_weights(config.backbone)
    if path:
        return load_imagenet_backbone(model, path)
    return (
        "[yellow]no ImageNet weights given or found in torch hub's cache: the backbone starts "
        "from RANDOM weights[/yellow] (pass --backbone-weights PATH to an efficientnet-pytorch "
        f"{config.backbone} .pth; nothing is downloaded)"
    )


def _validation_samples(data: FacesData, config: TrainConfig) -> list[Sample]:
    """The val split's crops (fixed frames); with self-blend and no real fakes in val, a fixed
    self-blended fake of every real crop, so validation AUC means something and stays stable."""
    counts = data.count_videos("val")
    self_blend = config.synthetic_fakes == "self-blend" and counts[FAKE] == 0
    return epoch_plan(
        data.records,
        split="val",
        frames_per_video=config.val_frames_per_video or 1 << 30,
        epoch=0,
        seed=config.seed,
        self_blend=self_blend,
        balance=False,
        shuffle=False,
    )


def _validate(model, data, samples, config, runtime, precision, channels_last) -> dict:
    if not samples:
        return {}
    transform = Transform(
        input_size=config.model_input_size,
        mean=config.mean,
        std=config.std,
        max_crop_slack=config.max_crop_slack,
    )
    loader = make_loader(
        CropDataset(data.records, samples, transform, seed=config.seed),
        rank_positions(len(samples), runtime.rank, runtime.world_size),
        batch_size=config.eval_batch_size,
        workers=config.workers,
        drop_last=False,
    )
    positions, probabilities = predict(
        model, loader, runtime.device, autocast_dtype=precision.dtype, channels_last=channels_last
    )
    scores: dict[int, float] = {}
    mine = list(zip(positions, probabilities, strict=True))
    for part in distributed.gather_objects(mine, runtime):
        scores.update(part)  # the padding of the shards repeats a few positions: same scores
    order = sorted(scores)
    metrics = frame_and_video_metrics(
        [samples[i].video(data.records) for i in order],
        [samples[i].label(data.records) for i in order],
        [scores[i] for i in order],
    )
    return flatten(metrics, prefix="val_")


def _check_training_data(data: FacesData, config: TrainConfig) -> None:
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


def _provenance(
    config: TrainConfig, data: FacesData, stage: int, epoch: int, val_metrics: dict
) -> Provenance:
    counts = data.count_videos("train")
    fakes = f"{counts[FAKE]} fake"
    if config.synthetic_fakes == "self-blend":
        fakes += " + self-blended fakes of the real crops"
    stage_config = config.stage_config(stage)
    return Provenance(
        name=config.model_name(),
        source=(
            f"trained by mattn train on {data.root.name}, {counts[REAL] + counts[FAKE]} "
            f"videos ({counts[REAL]} real, {fakes})"
        ),
        trained_on=data.describe(),
        demo=config.demo,
        metrics={
            "stage": stage,
            "epoch": epoch + 1,
            **{key: value for key, value in val_metrics.items() if value is not None},
        },
        notes=(
            f"recipe {config.recipe}, {STAGE_NAMES[stage]}: epoch {epoch + 1} of "
            f"{stage_config.epochs}, batch {stage_config.batch_size}, AdamW lr "
            f"{stage_config.lr:g}, seed {config.seed}"
        ),
    )


def _rank_digests(model: MATDetector, runtime) -> dict:
    """Under DDP: every rank's digest of its RIL centres and parameters (they must agree)."""
    if not runtime.distributed:
        return {}
    digests = {"parameters": _digest([p for p in model.parameters()])}
    if model.config.variant == "mat":
        digests["ril_centers"] = _digest([model.regional_loss.feature_centers])
    gathered = distributed.gather_objects(digests, runtime)
    row = {f"{name}_sha256_per_rank": [g[name] for g in gathered] for name in digests}
    row["ranks_in_sync"] = all(g == gathered[0] for g in gathered)
    return row


def _digest(tensors) -> str:
    digest = hashlib.sha256()
    for tensor in tensors:
        digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


# --- precision, seeding, determinism -------------------------------------------------------------


@dataclass(frozen=True)
class Precision:
    """Autocast dtype (None = fp32) for a device."""

    device_type: str
    dtype: torch.dtype | None = None

    @classmethod
    def choose(cls, amp: bool | None, device: torch.device) -> Precision:
        if amp is None:
            amp = device.type == "cuda"  # AMP on CPU is slower than fp32 on most CPUs
        if not amp:
            return cls(device.type)
        if device.type == "cuda":
            bf16 = torch.cuda.is_bf16_supported()
            return cls("cuda", torch.bfloat16 if bf16 else torch.float16)
        return cls(device.type, torch.bfloat16 if device.type == "cpu" else torch.float16)

    def autocast(self):
        return torch.autocast(self.device_type, dtype=self.dtype) if self.dtype else nullcontext()


def _seed_epoch(seed: int, stage: int, epoch: int, rank: int) -> None:
    """Reseed the global RNGs (dropout, AGDA) from (seed, stage, epoch, rank)."""
    value = int(np.random.SeedSequence([seed, stage, epoch, rank]).generate_state(1)[0])
    random.seed(value)
    np.random.seed(value)
    torch.manual_seed(value)


def _use_deterministic_algorithms() -> None:
    # cuBLAS needs a fixed workspace for reproducible matrix products.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    # warn_only: some CUDA kernels (e.g. bilinear upsampling's backward) have no deterministic
    # version; they warn instead of stopping the run. On CPU every op here is deterministic.
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False


def _resume_point(state: dict | None) -> tuple[int, int] | None:
    return None if state is None else (state["stage"], state["epoch"] + 1)


def _describe_runtime(config: TrainConfig, runtime) -> str:
    precision = Precision.choose(config.amp, runtime.device)
    text = f"device {runtime.device}"
    if runtime.distributed:
        text += f" x {runtime.world_size} processes"
    text += f", {'fp32' if precision.dtype is None else str(precision.dtype).split('.')[-1]}"
    stages = " + ".join(
        f"{STAGE_NAMES[s]} {config.stage_config(s).epochs} epochs" for s in config.stages
    )
    return f"{text}; {stages}"


def _epoch_line(row: dict) -> str:
    parts = [f"stage {row['stage']} epoch {row['epoch']}", f"loss {row['loss']:.4f}"]
    for name in ("ce", "ril", "agda_ce", "match"):
        if name in row:
            parts.append(f"{name} {row[name]:.4f}")
    for name in ("val_frame_auc", "val_video_auc", "val_video_acc"):
        if row.get(name) is not None:
            parts.append(f"{name} {row[name]:.4f}")
    parts.append(f"{row['images_per_s']:.1f} img/s, {row['seconds']:.0f} s")
    return " | ".join(parts) + (" [green](best)[/green]" if row["best"] else "")


# --- logs: log.csv, log.jsonl, TensorBoard, the progress bar ------------------------------------

LOG_COLUMNS = (
    "stage",
    "epoch",
    "global_epoch",
    "lr",
    "loss",
    "ce",
    "ril",
    "agda_ce",
    "match",
    "val_frame_auc",
    "val_video_auc",
    "val_frame_acc",
    "val_video_acc",
    "val_frame_log_loss",
    "val_video_log_loss",
    "val_video_ap",
    "val_video_eer",
    "images_per_s",
    "seconds",
    "best",
)


class RunLog:
    """One row per epoch in log.csv and log.jsonl, scalars in RUN_DIR/tensorboard (rank 0).

    On resume, rows after the resume point (an epoch whose state was never saved) are dropped
    so the logs read as one uninterrupted run.
    """

    def __init__(self, run_dir: Path, *, enabled: bool, resume_after: tuple[int, int] | None):
        self.enabled = enabled
        self.csv_path = run_dir / "log.csv"
        self.jsonl_path = run_dir / "log.jsonl"
        self.writer = None
        if not enabled:
            return
        rows = self._read_rows() if resume_after else []
        rows = [r for r in rows if (r["stage"], r["epoch"]) <= resume_after] if rows else []
        with open(self.jsonl_path, "w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(row) + "\n" for row in rows)
        with open(self.csv_path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=LOG_COLUMNS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            print("note: the `tensorboard` package is not installed: no TensorBoard events")
            return
        purge = rows[-1]["global_epoch"] + 1 if rows else None
        self.writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"), purge_step=purge)

    def _read_rows(self) -> list[dict]:
        if not self.jsonl_path.is_file():
            return []
        with open(self.jsonl_path, encoding="utf-8") as handle:
            return [json.loads(line) for line in handle if line.strip()]

    def write(self, row: dict) -> None:
        if not self.enabled:
            return
        with open(self.jsonl_path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")
        with open(self.csv_path, "a", newline="", encoding="utf-8") as handle:
            csv.DictWriter(handle, fieldnames=LOG_COLUMNS, extrasaction="ignore").writerow(row)
        if self.writer is not None:
            for name, value in row.items():
                if (
                    name not in ("stage", "epoch", "global_epoch", "best")
                    and isinstance(value, int | float)
                    and value is not None
                ):
                    group = "val" if name.startswith("val_") else "train"
                    self.writer.add_scalar(
                        f"{group}/{name.removeprefix('val_')}", value, row["global_epoch"]
                    )
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class EpochProgress:
    """A rich progress bar (loss parts, images/s, ETA) when printing to a terminal."""

    def __init__(self, console: Console, *, enabled: bool, total: int, title: str) -> None:
        self.bar = None
        self.started = time.perf_counter()
        self.images = 0
        if not (enabled and console.is_terminal):
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[status]}"),
            console=console,
            transient=True,
        )
        self.task = self.bar.add_task(title, total=total, status="")
        self.bar.start()

    def advance(self, losses: dict[str, float], images: int) -> None:
        self.images += images
        if self.bar is None:
            return
        rate = self.images / max(time.perf_counter() - self.started, 1e-9)
        status = " ".join(f"{name} {value:.3f}" for name, value in losses.items())
        self.bar.update(self.task, advance=1, status=f"{status} | {rate:.1f} img/s")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
