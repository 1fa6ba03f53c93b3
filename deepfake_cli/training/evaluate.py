"""Score a faces folder's split with a detector and report detection metrics.

Frame level (every crop) and video level (a video's frame probabilities combined by an
aggregation strategy; the mean, as the paper). Overall, and per manipulation method as FF++
papers report: each method's fake videos against all the real videos of the split.

Also here: validation during training (`validate`), the same metrics on the val split after
every epoch, each process scoring its shard.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch

from deepfake_cli.aggregate import STRATEGIES
from deepfake_cli.device import resolve_device
from deepfake_cli.errors import UsageError
from deepfake_cli.manifest import FAKE, SPLITS, read_manifest
from deepfake_cli.model.mat import fake_probabilities
from deepfake_cli.model.weights import load_detector
from deepfake_cli.shards import rank_positions
from deepfake_cli.training import distributed
from deepfake_cli.training import metrics as metric_functions
from deepfake_cli.training.config import TrainConfig
from deepfake_cli.training.data import (
    CropDataset,
    FacesData,
    Sample,
    Transform,
    epoch_plan,
    make_loader,
)
from deepfake_cli.training.setup import Trainee, crop_transform


@torch.no_grad()
def predict(
    model: torch.nn.Module,
    loader,
    device: torch.device,
    *,
    autocast_dtype: torch.dtype | None = None,
    channels_last: bool = False,
) -> tuple[list[int], list[float]]:
    """Fake probability of every item of `loader` -> (positions, probabilities)."""
    was_training = model.training
    model.eval()
    positions: list[int] = []
    probabilities: list[float] = []
    autocast = (
        torch.autocast(device.type, dtype=autocast_dtype) if autocast_dtype else nullcontext()
    )
    try:
        for images, _, batch_positions in loader:
            images = images.to(device, non_blocking=True)
            if channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            with autocast:
                logits = model(images)
            probabilities += fake_probabilities(logits).cpu().tolist()
            positions += batch_positions.tolist()
    finally:
        model.train(was_training)
    return positions, probabilities


def validation_samples(data: FacesData, config: TrainConfig) -> list[Sample]:
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


def validate(
    trainee: Trainee,
    data: FacesData,
    samples: list[Sample],
    config: TrainConfig,
    runtime: distributed.Runtime,
) -> dict:
    """Frame- and video-level metrics of the trainee on `samples`, as flat `val_*` log fields.

    Every rank scores its shard; the scores are gathered so every rank gets the same metrics.
    """
    if not samples:
        return {}
    loader = make_loader(
        CropDataset(data.records, samples, crop_transform(config, train=False), seed=config.seed),
        rank_positions(len(samples), runtime.rank, runtime.world_size),
        batch_size=config.eval_batch_size,
        workers=config.workers,
        drop_last=False,
    )
    positions, probabilities = predict(
        trainee.model,
        loader,
        runtime.device,
        autocast_dtype=trainee.precision.dtype,
        channels_last=trainee.channels_last,
    )
    scores: dict[int, float] = {}
    mine = list(zip(positions, probabilities, strict=True))
    for part in distributed.gather_objects(mine, runtime):
        scores.update(part)  # the padding of the shards repeats a few positions: same scores
    order = sorted(scores)
    video_ids = [samples[i].video(data.records) for i in order]
    labels = [samples[i].label(data.records) for i in order]
    probabilities = [scores[i] for i in order]
    metrics = metric_functions.frame_and_video_metrics(video_ids, labels, probabilities)
    flat = metric_functions.flatten(metrics, prefix="val_")
    # The threshold that best separates this split's videos: the weights' calibrated default.
    _, video_labels, video_probabilities = metric_functions.video_scores(
        video_ids, labels, probabilities
    )
    flat["val_video_threshold"] = metric_functions.balanced_threshold(
        video_labels, video_probabilities
    )
    return flat


def split_report(
    video_ids: Sequence[str],
    labels: Sequence[int],
    methods: Sequence[str],
    fake_probabilities: Sequence[float],
    aggregate: str = "mean",
) -> dict:
    """{"overall": {"frame", "video"}, "per_method": {method: {"frame", "video"}}}."""
    overall = metric_functions.frame_and_video_metrics(
        video_ids, labels, fake_probabilities, aggregate
    )
    per_method = {}
    is_real = [label == 0 for label in labels]
    for method in sorted({m for m, label in zip(methods, labels, strict=True) if label == 1}):
        keep = [real or m == method for real, m in zip(is_real, methods, strict=True)]
        per_method[method] = metric_functions.frame_and_video_metrics(
            [v for v, k in zip(video_ids, keep, strict=True) if k],
            [y for y, k in zip(labels, keep, strict=True) if k],
            [p for p, k in zip(fake_probabilities, keep, strict=True) if k],
            aggregate,
        )
    return {"overall": overall, "per_method": per_method}


def evaluate(
    data_dir: str | Path,
    weights: str | Path,
    *,
    split: str = "test",
    aggregate: str = "mean",
    batch_size: int = 32,
    device: str = "auto",
    roc_png: str | Path | None = None,
    workers: int = 0,
) -> dict:
    """Metrics of `weights` on `split` of a faces folder, as a JSON-ready dict.

    Keys: weights, model, data, split, aggregate, frames, videos, overall {frame, video},
    per_method {method: {frame, video}}, notes (why a metric is null), roc_png.
    """
    if split not in SPLITS:
        raise UsageError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}.")
    if aggregate not in STRATEGIES:
        raise UsageError(f"unknown aggregation {aggregate!r}; use one of {', '.join(STRATEGIES)}.")
    if batch_size < 1:
        raise UsageError("--batch-size must be at least 1.")
    records = read_manifest(data_dir)
    chosen = [index for index, record in enumerate(records) if record.split == split]
    if not chosen:
        present = sorted({record.split for record in records})
        raise UsageError(
            f"{data_dir} has no crops in the {split!r} split (it has: {', '.join(present)})."
        )
    torch_device = resolve_device(device)
    model = load_detector(weights, device=torch_device)
    preprocessing = model.preprocessing

    samples = [Sample(index) for index in chosen]
    transform = Transform(
        input_size=preprocessing.input_size, mean=preprocessing.mean, std=preprocessing.std
    )
    loader = make_loader(
        CropDataset(records, samples, transform),
        range(len(samples)),
        batch_size=batch_size,
        workers=workers,
        drop_last=False,
    )
    positions, probabilities = predict(model, loader, torch_device)
    by_position = dict(zip(positions, probabilities, strict=True))
    probabilities = [by_position[i] for i in range(len(samples))]

    video_ids = [sample.video(records) for sample in samples]
    labels = [sample.label(records) for sample in samples]
    methods = [sample.method(records) for sample in samples]
    report = split_report(video_ids, labels, methods, probabilities, aggregate)
    provenance = model.provenance
    result = {
        "weights": str(weights),
        "model": provenance.name,
        "data": str(data_dir),
        "split": split,
        "aggregate": aggregate,
        "frames": len(samples),
        "videos": len(set(video_ids)),
        **report,
        "notes": _notes(report),
        "roc_png": None,
    }
    if roc_png is not None:
        result["roc_png"] = str(
            plot_roc(
                video_ids,
                labels,
                methods,
                probabilities,
                aggregate,
                roc_png,
                title=f"{provenance.name} on {split}",
            )
        )
    return result


def _notes(report: dict) -> list[str]:
    notes = []
    for level in ("frame", "video"):
        note = report["overall"][level].get("note")
        if note:
            notes.append(f"overall {level} level: {note}")
    if not report["per_method"] and report["overall"]["frame"]["fake"] == 0:
        notes.append("no fake videos in this split: no per-method results")
    return notes


def plot_roc(
    video_ids: Sequence[str],
    labels: Sequence[int],
    methods: Sequence[str],
    fake_probabilities: Sequence[float],
    aggregate: str,
    path: str | Path,
    *,
    title: str = "",
) -> Path:
    """Video-level ROC curves (overall and per method) and the frame-level one, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed; set here, never at import time
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure, axes = plt.subplots(figsize=(6, 6))
    curves = [("frames, all methods", video_ids, labels, fake_probabilities, False)]
    curves.insert(0, ("videos, all methods", video_ids, labels, fake_probabilities, True))
    for method in sorted({m for m, y in zip(methods, labels, strict=True) if y == 1}):
        keep = [y == 0 or m == method for m, y in zip(methods, labels, strict=True)]
        curves.append(
            (
                f"videos, {method}",
                [v for v, k in zip(video_ids, keep, strict=True) if k],
                [y for y, k in zip(labels, keep, strict=True) if k],
                [p for p, k in zip(fake_probabilities, keep, strict=True) if k],
                True,
            )
        )
    plotted = 0
    for name, videos, ys, ps, per_video in curves:
        if per_video:
            _, ys, ps = metric_functions.video_scores(videos, ys, ps, aggregate)
        if len(set(ys)) < 2:
            continue
        fpr, tpr, _ = roc_curve(np.asarray(ys), np.asarray(ps))
        auc = metric_functions.binary_metrics(ys, ps)["auc"]
        style = "--" if not per_video else "-"
        axes.plot(fpr, tpr, style, label=f"{name} (AUC {auc:.3f})")
        plotted += 1
    axes.plot([0, 1], [0, 1], ":", color="grey", linewidth=1)
    axes.set_xlabel("false positive rate (real judged fake)")
    axes.set_ylabel("true positive rate (fake judged fake)")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.01)
    axes.set_title(title or "ROC")
    if plotted:
        axes.legend(loc="lower right", fontsize="small")
    else:
        axes.text(0.5, 0.5, "one class only: no ROC curve", ha="center")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
