"""`mattn train` and `mattn evaluate`: the work is `training.loop` and `training.evaluate`."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from deepfake_cli.commands._errors import user_errors
from deepfake_cli.commands._help import WEIGHTS_ENV, epilog
from deepfake_cli.errors import UsageError

TRAIN_EPILOG = epilog(
    [
        "# The authors' recipe: stage 1 (backbone), then stage 2 (MAT):",
        "mattn train --data faces/ --out runs/b4",
        "mattn train --data faces/ --out runs/b4 --config b4.toml --lr 5e-5",
        "mattn train --data faces/ --out runs/b4 --resume",
        "# The authors' start: efficientnet-pytorch's AdvProp ImageNet weights:",
        "mattn train --data faces --out b4 --backbone-weights adv-efficientnet-b4.pth",
        "# No ImageNet weights: the settings a network from scratch needs to learn:",
        "mattn train --data faces/ --out runs/scratch --preset from-scratch",
        "# Only real videos: self-blended fakes made on the fly:",
        "mattn train --data faces/ --out runs/sbi --synthetic-fakes self-blend",
        "# Several GPUs, one process each:",
        "torchrun --nproc_per_node=4 -m deepfake_cli train --data faces --out runs/b4",
    ],
    notes=[
        "Settings: defaults = the authors' recipe; --preset replaces some defaults; a --config "
        "TOML file overrides both; options override the file. --epochs, --batch-size and --lr "
        "apply to every stage this command trains (set the stages apart with [stage1] / "
        "[stage2] tables in the TOML file).",
        "RUN_DIR gets last.safetensors, best.safetensors (by validation video AUC), state/, "
        "log.csv, log.jsonl, tensorboard/ and config.toml.",
    ],
)
EVALUATE_EPILOG = epilog(
    [
        "mattn evaluate --data faces/ --weights runs/b4/best.safetensors",
        "mattn evaluate --data faces/ --weights b4.safetensors --format json",
        "mattn evaluate --data faces/ --weights b4.safetensors --roc roc.png",
        "# The authors' protocol: 20 frames at stride 5 of each video's first 100:",
        "mattn evaluate --data faces/ --weights b4.pth --protocol authors --per-video",
    ],
    notes=[
        "Video scores aggregate the frame scores of each video (--aggregate); methods are the "
        "manipulation methods of the manifest (Deepfakes, Face2Face, ...).",
        "Stored crops are re-cut to the weights' crop geometry (margin, alignment, size); a faces "
        "folder whose crops are narrower than the weights need is refused (exit code 2).",
    ],
)


@user_errors
def train_command(
    *,
    data: Annotated[
        Path | None,
        typer.Option(help="Faces folder written by `mattn extract-faces` (manifest.csv)."),
    ] = None,
    out: Annotated[Path, typer.Option(help="Run directory for weights, training state and logs.")],
    config: Annotated[
        Path | None, typer.Option("--config", help="TOML file with training settings.")
    ] = None,
    resume: Annotated[
        bool,
        typer.Option("--resume", help="Continue the run in --out from its last finished epoch."),
    ] = False,
    recipe: Annotated[
        str | None,
        typer.Option(help="paper = stage 1 (backbone) then stage 2 (MAT); single = one stage."),
    ] = None,
    stage: Annotated[
        int | None,
        typer.Option(help="Train only this stage: 1 = backbone classifier, 2 = MAT."),
    ] = None,
    init: Annotated[
        Path | None,
        typer.Option(help="Initialise from these weights (tensors with matching names)."),
    ] = None,
    backbone: Annotated[
        str | None, typer.Option(help="efficientnet-b0 .. efficientnet-b7 (default b4).")
    ] = None,
    input_size: Annotated[
        int | None, typer.Option(help="Model input side in pixels (default: native size).")
    ] = None,
    backbone_weights: Annotated[
        Path | None,
        typer.Option(help="efficientnet-pytorch ImageNet or AdvProp .pth (never downloaded)."),
    ] = None,
    backbone_normalization: Annotated[
        str | None,
        typer.Option(
            help="imagenet or advprop: what --backbone-weights were trained on "
            "(default: advprop for adv-* file names)."
        ),
    ] = None,
    preset: Annotated[
        str | None,
        typer.Option(
            help="from-scratch: lr 1e-3 / 3e-4 and BN momentum 0.1, for a backbone without "
            "ImageNet weights (a file or option value still wins)."
        ),
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs per stage (paper: 20 and 30).")] = None,
    batch_size: Annotated[
        int | None, typer.Option(help="Images per batch per process (paper: 16 and 15).")
    ] = None,
    lr: Annotated[float | None, typer.Option(help="AdamW learning rate (paper: 1e-4).")] = None,
    frames_per_video: Annotated[
        int | None, typer.Option(help="Training frames per video and epoch (paper: 50).")
    ] = None,
    synthetic_fakes: Annotated[
        str | None,
        typer.Option(help="none, or self-blend: add a self-blended fake of every real crop."),
    ] = None,
    class_weighted: Annotated[
        bool | None,
        typer.Option(
            "--class-weighted/--oversample",
            help="Balance classes by loss weights instead of oversampling.",
        ),
    ] = None,
    augment: Annotated[
        bool | None,
        typer.Option(
            "--augment/--no-augment",
            help="Robustness augmentation: JPEG, blur, noise, colour jitter.",
        ),
    ] = None,
    degradations: Annotated[
        str | None,
        typer.Option(help="none, or video: degrade training crops like compressed video frames."),
    ] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = None,
    amp: Annotated[
        bool | None,
        typer.Option("--amp/--no-amp", help="Mixed precision (default: on for CUDA only)."),
    ] = None,
    amp_dtype: Annotated[
        str | None,
        typer.Option(help="auto (bf16 where supported, else fp16 with loss scaling), bf16, fp16."),
    ] = None,
    workers: Annotated[int | None, typer.Option(help="DataLoader worker processes.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of everything random.")] = None,
    deterministic: Annotated[
        bool | None,
        typer.Option(
            "--deterministic/--no-deterministic",
            help="Deterministic algorithms (bit-identical resume on CPU).",
        ),
    ] = None,
    name: Annotated[str | None, typer.Option(help="Model name stored with the weights.")] = None,
    demo: Annotated[
        bool | None,
        typer.Option("--demo/--no-demo", help="Mark the weights as a demonstration only."),
    ] = None,
) -> None:
    """Train a MAT detector on a faces folder (the authors' two-stage recipe by default)."""
    # Imported here so that `mattn --help` does not load torch.
    from deepfake_cli.training.loop import run_training
    from deepfake_cli.training.settings import resolve_run_config

    # Only what was given (None = not given); settings are TOML values, so paths become text.
    given = {
        "data": data,
        "out": out,
        "recipe": recipe,
        "stage": stage,
        "init": init,
        "backbone": backbone,
        "input_size": input_size,
        "backbone_weights": backbone_weights,
        "backbone_normalization": backbone_normalization,
        "preset": preset,
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "frames_per_video": frames_per_video,
        "synthetic_fakes": synthetic_fakes,
        "class_weighted": class_weighted,
        "augment": augment,
        "degradations": degradations,
        "device": device,
        "amp": amp,
        "amp_dtype": amp_dtype,
        "workers": workers,
        "seed": seed,
        "deterministic": deterministic,
        "name": name,
        "demo": demo,
    }
    options = {
        key: str(value) if isinstance(value, Path) else value for key, value in given.items()
    }
    settings = resolve_run_config(options, config_file=config, resume=resume)
    run_training(settings, resume=resume)


@user_errors
def evaluate_command(
    *,
    data: Annotated[
        Path, typer.Option(help="Faces folder written by `mattn extract-faces` (manifest.csv).")
    ],
    weights: Annotated[
        Path,
        typer.Option(envvar=WEIGHTS_ENV, help="mattn .safetensors weights (or the authors' .pth)."),
    ],
    split: Annotated[str, typer.Option(help="Split to evaluate: train, val or test.")] = "test",
    protocol: Annotated[
        str,
        typer.Option(
            help="all = every crop; authors = 20 frames at stride 5 of each video's first 100 "
            "face frames (fewer: the video scores 0.5)."
        ),
    ] = "all",
    per_video: Annotated[
        bool,
        typer.Option("--per-video", help="Also print every video's score (always in the JSON)."),
    ] = False,
    aggregate: Annotated[
        str, typer.Option(help="Frame-to-video aggregation: mean (paper), median, topk, ...")
    ] = "mean",
    batch_size: Annotated[int, typer.Option(help="Crops per batch.")] = 32,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
    output_format: Annotated[
        str, typer.Option("--format", help="table (for people) or json (for scripts).")
    ] = "table",
    roc: Annotated[
        Path | None, typer.Option(help="Write ROC curves (video and frame level) to this PNG.")
    ] = None,
    output: Annotated[Path | None, typer.Option(help="Also write the JSON report here.")] = None,
    workers: Annotated[int, typer.Option(help="DataLoader worker processes.")] = 0,
) -> None:
    """Frame- and video-level AUC, ACC, log-loss, EER and AP, overall and per method."""
    from deepfake_cli.files import write_atomically
    from deepfake_cli.training.evaluate import evaluate

    if output_format not in ("table", "json"):
        raise UsageError(f"unknown --format {output_format!r}; use table or json.")
    report = evaluate(
        data,
        weights,
        split=split,
        protocol=protocol,
        aggregate=aggregate,
        batch_size=batch_size,
        device=device,
        roc_png=roc,
        workers=workers,
    )
    text = json.dumps(report, indent=2, allow_nan=False)
    if output is not None:
        write_atomically(output, text + "\n")
    if output_format == "json":
        print(text)
    else:
        console = Console()
        if per_video:
            print_per_video(report, console)
        print_report(report, console)


def print_per_video(report: dict, console: Console) -> None:
    """One row per video: label, method, frames scored, score (short videos marked)."""
    table = Table(title=f"videos of {report['split']} ({report['protocol']} protocol)")
    for name in ("video", "label", "method", "frames", "fake p", ""):
        table.add_column(name, justify="right" if name in ("frames", "fake p") else "left")
    for video in report["per_video"]:
        table.add_row(
            video["video_id"],
            "fake" if video["label"] else "real",
            video["method"],
            str(video["frames"]),
            _number(video["fake_probability"]),
            "short: 0.5 unseen" if video["short"] else "",
        )
    console.print(table)


def print_report(report: dict, console: Console) -> None:
    """The evaluation as a table: video and frame rows for all methods, then per method."""
    short = f", {report['short_videos']} short" if report.get("short_videos") else ""
    table = Table(
        title=f"{report['model']} on {report['split']}, {report['protocol']} protocol "
        f"({report['videos']} videos{short}, {report['frames']} frames; "
        f"video score = {report['aggregate']} of frames)"
    )
    table.add_column("methods")
    table.add_column("level")
    for name in ("AUC", "ACC", "AP", "EER", "log-loss", "real/fake"):
        table.add_column(name, justify="right")
    rows = [("all", report["overall"])] + sorted(report["per_method"].items())
    for method, metrics in rows:
        for level in ("video", "frame"):
            values = metrics[level]
            table.add_row(
                method if level == "video" else "",
                level,
                *[_number(values[key]) for key in ("auc", "acc", "ap", "eer", "log_loss")],
                f"{values['real']}/{values['fake']}",
                end_section=level == "frame",
            )
    console.print(table)
    for note in report["notes"]:
        console.print(f"note: {note}")
    if report.get("roc_png"):
        console.print(f"ROC curves: {report['roc_png']}")


def _number(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.4f}"
