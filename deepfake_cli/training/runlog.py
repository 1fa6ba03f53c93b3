"""What a run reports: log.csv, log.jsonl and TensorBoard, the progress bar, the console lines.

Rank 0 writes and prints; the other ranks' logs are switched off.
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

from rich.console import Console

from deepfake_cli.training import distributed
from deepfake_cli.training.config import STAGE_NAMES, TrainConfig
from deepfake_cli.training.setup import Precision

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


def describe_run(config: TrainConfig, runtime: distributed.Runtime) -> str:
    """The device, processes, precision and stages of a run, for its first console line."""
    precision = Precision.choose(config.amp, runtime.device, config.amp_dtype)
    text = f"device {runtime.device}"
    if runtime.distributed:
        text += f" x {runtime.world_size} processes"
        # distributed.wrap_model converts BatchNorm to SyncBatchNorm on CUDA only.
        text += ", SyncBatchNorm" if runtime.device.type == "cuda" else ", per-process BatchNorm"
    text += f", {precision.name}"
    stages = " + ".join(
        f"{STAGE_NAMES[s]} {config.stage_config(s).epochs} epochs" for s in config.stages
    )
    return f"{text}; {stages}"


def epoch_line(row: dict) -> str:
    """An epoch's log row as one console line: loss parts, validation, speed."""
    parts = [f"stage {row['stage']} epoch {row['epoch']}", f"loss {row['loss']:.4f}"]
    for name in ("ce", "ril", "agda_ce", "match"):
        if name in row:
            parts.append(f"{name} {row[name]:.4f}")
    for name in ("val_frame_auc", "val_video_auc", "val_video_acc"):
        if row.get(name) is not None:
            parts.append(f"{name} {row[name]:.4f}")
    parts.append(f"{row['images_per_s']:.1f} img/s, {row['seconds']:.0f} s")
    return " | ".join(parts) + (" [green](best)[/green]" if row["best"] else "")
