"""The training loop of `mattn train`: the recipe's stages, then epochs, then batches.

Read `run_training`, `train_stage` and `train_one_epoch` top to bottom; each block says why it
is there: data -> forward and losses -> backward -> step -> log, then per epoch: schedule ->
evaluate -> checkpoint -> log. The loop does not know what it trains beyond
`mat_training_step`, which returns named losses. What it builds first (model, optimiser,
schedule, data loaders, resume state) is in `setup`; what it reports, in `runlog`.

Recipe (MAT.md §6): stage 1 trains the plain EfficientNet classifier, stage 2 the MAT
initialised from stage 1's backbone, each with a fresh AdamW + StepLR.

Reproducibility: everything random in an epoch derives from (seed, stage, epoch, rank): the data
plan and augmentation (data.py), and the global RNGs that dropout and AGDA draw from, reseeded at
the start of every epoch. The state saved after each epoch holds everything else (weights,
RIL centres and rate, optimiser, schedule, scaler, RNG states), so an interrupted run resumed
with `--resume` continues exactly as if it had never stopped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import torch
from rich.console import Console
from torch.utils.data import DataLoader

from deepfake_cli.errors import UsageError
from deepfake_cli.model.mat import MATDetector
from deepfake_cli.model.step import mat_training_step
from deepfake_cli.training import distributed
from deepfake_cli.training.checkpoint import (
    load_training_state,
    rng_state,
    save_model_file,
    save_training_state,
    state_path,
    training_provenance,
)
from deepfake_cli.training.config import STAGE_NAMES, TrainConfig
from deepfake_cli.training.data import FacesData
from deepfake_cli.training.evaluate import validate, validation_samples
from deepfake_cli.training.runlog import EpochProgress, RunLog, describe_run, epoch_line
from deepfake_cli.training.settings import save_config
from deepfake_cli.training.setup import (
    Trainee,
    build_model,
    build_trainee,
    check_training_data,
    configure_backends,
    epoch_loader,
    loss_weights,
    model_preprocessing,
    restore_training_state,
    seed_epoch,
)

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


def _run(
    config: TrainConfig, runtime: distributed.Runtime, resume: bool, console: Console
) -> TrainingResult:
    run_dir = Path(config.out)
    if not runtime.is_main:
        console = Console(quiet=True)  # rank 0 alone prints
    configure_backends(config, runtime.device)

    state = load_training_state(run_dir) if resume else None
    if state is None and state_path(run_dir).exists():
        raise UsageError(
            f"{run_dir} already holds a training run; continue it with --resume or choose "
            "another --out."
        )
    data = FacesData.load(config.data)
    check_training_data(data, config)
    if runtime.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(config, run_dir / "config.toml")
    # The last epoch whose state was saved, (stage, 1-based epoch): later log rows are dropped.
    resume_after = None if state is None else (state["stage"], state["epoch"] + 1)
    log = RunLog(run_dir, enabled=runtime.is_main, resume_after=resume_after)
    console.print(f"[bold]mattn train[/bold]: {data.describe()}; {describe_run(config, runtime)}")

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
    best = f", best {BEST_METRIC} = {result.best_metric:.4f} in {result.best}"
    console.print(f"done: {result.last}" + (best if result.best_metric is not None else ""))
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
    say = console.print
    result.last = result.best = result.best_metric = None  # this stage's files from now on
    # The last stage writes into RUN_DIR; an earlier one into RUN_DIR/stage<N>/.
    out_dir = result.run_dir if stage == config.stages[-1] else result.run_dir / f"stage{stage}"

    # --- setup: the stage's network and where its weights start; a fresh optimiser and
    # schedule (as the authors), or on resume the ones saved after the last finished epoch.
    model, initialised = build_model(
        config, stage, resume_state=resume_state, run_dir=result.run_dir
    )
    if initialised is not None:
        say(f"{STAGE_NAMES[stage]}: {initialised}")
    trainee = build_trainee(model, config, stage_config, runtime)
    model = trainee.model  # the network itself, also under DDP: validated, digested, saved
    start_epoch, best_metric = 0, None
    if resume_state is not None:
        start_epoch, best_metric = restore_training_state(trainee, resume_state, runtime)
        say(f"{STAGE_NAMES[stage]}: resuming after epoch {start_epoch} of {stage_config.epochs}")
    # The model's training step: (model, images, labels) -> the loss to minimise and its parts.
    model_step = partial(mat_training_step, weights=loss_weights(config), use_agda=config.agda)
    val_samples = validation_samples(data, config)
    if not val_samples:
        say("[yellow]note: no 'val' split: no validation metrics and no best.safetensors[/yellow]")
    preprocessing = model_preprocessing(config, data)

    for epoch in range(start_epoch, stage_config.epochs):
        started = time.perf_counter()
        # Every random draw of the epoch derives from (seed, stage, epoch, rank): resumable.
        seed_epoch(config.seed, stage, epoch, runtime.rank)
        lr = trainee.optimizer.param_groups[0]["lr"]  # the rate this epoch trains with

        # --- data: this epoch's frames per video, balanced and shuffled (or unbalanced, with
        # class weights for the loss); this rank's shard of them
        loader, class_weights = epoch_loader(config, data, runtime, epoch, stage_config.batch_size)

        # --- forward, losses, backward, step: batch by batch, see `train_one_epoch`
        title = f"stage {stage} epoch {epoch + 1}/{stage_config.epochs}"
        progress = EpochProgress(console, enabled=runtime.is_main, total=len(loader), title=title)
        step = partial(model_step, class_weights=class_weights)
        sums, seen = train_one_epoch(trainee, loader, step, runtime, progress)
        train_seconds = time.perf_counter() - started

        # --- end of epoch: the schedule steps, the RIL centres move more slowly
        trainee.scheduler.step()
        if model.config.variant == "mat":
            model.regional_loss.decay_alpha(config.ril_alpha_decay)
        losses, images_total = distributed.mean_over_ranks(sums, seen, runtime)

        # --- evaluate: frame- and video-level AUC, accuracy, log-loss on the val split
        val_metrics = validate(trainee, data, val_samples, config, runtime)
        metric = val_metrics.get(BEST_METRIC)
        improved = metric is not None and (best_metric is None or metric > best_metric)
        if improved:
            best_metric = metric

        # --- checkpoint and log: weights, then the log row, then the training state, which
        # is the resume point (a resumed run drops log rows after it). Rank 0 writes, but
        # every rank takes part in gathering the RNG states and the digests.
        rngs = distributed.gather_objects(rng_state(), runtime)
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
            **_rank_digests(model, runtime),
        }
        if runtime.is_main:
            provenance = training_provenance(config, data, stage, epoch, val_metrics)
            metadata = dict(
                preprocessing=preprocessing, provenance=provenance, training_config=config.to_dict()
            )
            result.last = save_model_file(model, out_dir / "last.safetensors", **metadata)
            if improved:
                result.best = save_model_file(model, out_dir / "best.safetensors", **metadata)
                result.best_metric = best_metric
            log.write(row)
            save_training_state(
                result.run_dir,
                model=model,
                optimizer=trainee.optimizer,
                scheduler=trainee.scheduler,
                scaler=trainee.scaler,
                stage=stage,
                epoch=epoch,
                best_metric=best_metric,
                config=config.to_dict(),
                rng_states=rngs,
            )
        result.history.append(row)
        say(epoch_line(row))
        distributed.barrier(runtime)
    # A resumed stage may have written its files before the interruption.
    for name in ("last", "best"):
        if getattr(result, name) is None and (out_dir / f"{name}.safetensors").exists():
            setattr(result, name, out_dir / f"{name}.safetensors")
    if result.best_metric is None:
        result.best_metric = best_metric
    return result


def train_one_epoch(
    trainee: Trainee,
    loader: DataLoader,
    step: Callable[..., dict[str, torch.Tensor]],
    runtime: distributed.Runtime,
    progress: EpochProgress,
) -> tuple[dict[str, float], int]:
    """One pass over this rank's batches -> (each loss part summed over its images, images).

    `step(model, images, labels)` returns the loss to minimise as "loss" and its named parts.
    """
    trainee.model.train()
    sums: dict[str, float] = {}
    seen = 0
    for images, labels, _ in loader:
        # --- data: the batch on the device, in the weights' memory format
        images = images.to(runtime.device, non_blocking=True)
        if trainee.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        labels = labels.to(runtime.device, non_blocking=True)

        # --- forward and losses, in the run's precision (autocast: bf16 or fp16, or fp32)
        with trainee.precision.autocast():
            parts = step(trainee.train_model, images, labels)

        # --- backward and step: under DDP backward also averages the gradients over ranks;
        # the scaler guards fp16 gradients against underflow (a no-op in bf16 and fp32).
        trainee.optimizer.zero_grad(set_to_none=True)
        trainee.scaler.scale(parts["loss"]).backward()
        trainee.scaler.step(trainee.optimizer)
        trainee.scaler.update()

        # --- log: running per-image means of the loss parts on the progress bar
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
    return sums, seen


def _rank_digests(model: MATDetector, runtime: distributed.Runtime) -> dict:
    """Under DDP: every rank's digest of its parameters and RIL centres (they must agree)."""
    groups: dict[str, Iterable[torch.Tensor]] = {"parameters": model.parameters()}
    if model.config.variant == "mat":
        groups["ril_centers"] = [model.regional_loss.feature_centers]
    return distributed.rank_digests(groups, runtime)
