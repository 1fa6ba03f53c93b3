"""Score a faces folder's split with a detector and report detection metrics.

Which crops are scored is the protocol (`protocols.py`: every crop, or the authors' 20 frames
per video); each is cut to the model's own crop geometry first (`crops.recrop` of the stored,
larger crop), so evaluate feeds the model what scan feeds it. Frame level (the scored crops)
and video level (a video's frame probabilities combined by an aggregation strategy; the mean,
as the paper). Overall, and per manipulation method as FF++ papers report: each method's fake
videos against all the real videos of the split. Every video's score is in the report, so a
scan and an evaluation can be compared video by video.

Also here: validation during training (`validate`), the same metrics on the val split after
every epoch, each process scoring its shard.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from deepfake_cli.aggregate import STRATEGIES
from deepfake_cli.crops import recrop, recrop_refusal
from deepfake_cli.device import resolve_device
from deepfake_cli.errors import UsageError
from deepfake_cli.manifest import FAKE, REAL, SPLITS, SUMMARY_NAME, CropRecord, read_manifest
from deepfake_cli.model.config import Preprocessing
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
    load_crop,
    make_input,
    make_loader,
    normalize,
)
from deepfake_cli.training.protocols import (
    AUTHORS_MIN_FACE_FRAMES,
    SHORT_VIDEO_SCORE,
    check_protocol,
    per_video_scores,
    select_videos,
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


def report_metrics(
    frame_labels: Sequence[int],
    frame_methods: Sequence[str],
    frame_probabilities: Sequence[float],
    videos: Sequence[dict],
) -> dict:
    """{"overall": {"frame", "video"}, "per_method": {method: {"frame", "video"}}}.

    Frames are the scored crops, `videos` the per-video entries (`protocols.per_video_scores`,
    short videos included). Per method: that method's fakes against all the split's reals.
    """

    def both_levels(keep_method) -> dict:
        frames = [
            (label, probability)
            for label, method, probability in zip(
                frame_labels, frame_methods, frame_probabilities, strict=True
            )
            if label == REAL or keep_method(method)
        ]
        kept_videos = [v for v in videos if v["label"] == REAL or keep_method(v["method"])]
        return {
            "frame": metric_functions.binary_metrics(
                [label for label, _ in frames], [probability for _, probability in frames]
            ),
            "video": metric_functions.binary_metrics(
                [v["label"] for v in kept_videos], [v["fake_probability"] for v in kept_videos]
            ),
        }

    methods = sorted({v["method"] for v in videos if v["label"] == FAKE})
    return {
        "overall": both_levels(lambda method: True),
        "per_method": {
            method: both_levels(lambda m, chosen=method: m == chosen) for method in methods
        },
    }


class ModelCrops(Dataset):
    """Stored crops -> the model's input tensors, cut to the model's crop geometry.

    A crop whose margin the manifest records is re-cut with `crops.recrop` (centre square of
    the model's margin, resized to its input); one whose margin is unknown (a hand-written
    manifest) is centre-cut to the input size as training's validation does.
    """

    def __init__(
        self,
        records: Sequence[CropRecord],
        samples: Sequence[Sample],
        preprocessing: Preprocessing,
    ) -> None:
        self.records = records
        self.samples = list(samples)
        self.geometry = preprocessing.crop_geometry
        self.mean, self.std = preprocessing.mean, preprocessing.std
        self.legacy = Transform(
            input_size=preprocessing.input_size, mean=preprocessing.mean, std=preprocessing.std
        )

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, position: int) -> tuple[torch.Tensor, int, int]:
        sample = self.samples[position]
        record = self.records[sample.record]
        if record.margin_ratio is None:
            image = make_input(record, False, self.legacy, np.random.default_rng(0))
        else:
            stored = load_crop(record.path)
            image = normalize(
                recrop(stored, record.margin_ratio, self.geometry, record.box),
                self.mean,
                self.std,
            )
        return image, sample.label(self.records), position


def crop_geometry_report(
    records: Sequence[CropRecord],
    indices: Sequence[int],
    preprocessing: Preprocessing,
    data_dir: Path,
    weights: str | Path,
) -> dict:
    """How the stored crops become the model's; UsageError if some cannot.

    The stored alignment comes from the manifest's `align` column, else summary.json's
    options, else upright (what extract-faces cuts unless told otherwise).
    """
    geometry = preprocessing.crop_geometry
    fallback_align = _summary_align(data_dir)
    stored: dict[tuple[float | None, bool], int] = {}
    for index in indices:
        record = records[index]
        align = record.align if record.align is not None else fallback_align
        key = (record.margin_ratio, align)
        stored[key] = stored.get(key, 0) + 1
    wanted = f"margin {geometry.margin_ratio:g}, {'aligned' if geometry.align else 'upright'}"
    for (margin, align), _count in sorted(stored.items(), key=lambda item: -item[1]):
        reason = None
        if margin is not None:
            reason = recrop_refusal(margin, align, geometry)
        elif align != geometry.align:
            reason = recrop_refusal(float("inf"), align, geometry)
        if reason is not None:
            raise UsageError(
                f"The crops in {data_dir} cannot be cut to what {weights} expects ({wanted}): "
                f"{reason}; extract them again with `mattn extract-faces --weights {weights}`."
            )
    return {
        "model": {
            "input_size": preprocessing.input_size,
            "margin_ratio": geometry.margin_ratio,
            "align": geometry.align,
            "detector": preprocessing.detector,
        },
        "stored": [
            {"margin_ratio": margin, "align": align, "crops": count}
            for (margin, align), count in sorted(
                stored.items(), key=lambda item: (item[0][0] is None, item[0][0] or 0.0, item[0][1])
            )
        ],
    }


def _summary_align(data_dir: Path) -> bool:
    """summary.json's `align` option (folders from before the manifest's `align` column)."""
    try:
        options = json.loads((data_dir / SUMMARY_NAME).read_text(encoding="utf-8"))["options"]
        return bool(options.get("align", False))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def evaluate(
    data_dir: str | Path,
    weights: str | Path,
    *,
    split: str = "test",
    protocol: str = "all",
    aggregate: str = "mean",
    batch_size: int = 32,
    device: str = "auto",
    roc_png: str | Path | None = None,
    workers: int = 0,
) -> dict:
    """Metrics of `weights` on `split` of a faces folder, as a JSON-ready dict.

    Keys: weights, model, data, split, protocol, aggregate, frames, videos, short_videos,
    geometry (the model's crop geometry and the stored crops'), overall {frame, video},
    per_method {method: {frame, video}}, per_video (one entry per video: score, frame indices,
    frame probabilities, short), notes (why a metric is null), roc_png.
    """
    if split not in SPLITS:
        raise UsageError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}.")
    if aggregate not in STRATEGIES:
        raise UsageError(f"unknown aggregation {aggregate!r}; use one of {', '.join(STRATEGIES)}.")
    check_protocol(protocol)
    if batch_size < 1:
        raise UsageError("--batch-size must be at least 1.")
    data_dir = Path(data_dir)
    records = read_manifest(data_dir)
    selections = select_videos(records, split, protocol)
    if not selections:
        present = sorted({record.split for record in records})
        raise UsageError(
            f"{data_dir} has no crops in the {split!r} split (it has: {', '.join(present)})."
        )
    torch_device = resolve_device(device)
    model = load_detector(weights, device=torch_device)
    preprocessing = model.preprocessing
    scored = [index for selection in selections for index in selection.records]
    geometry = crop_geometry_report(records, scored, preprocessing, data_dir, weights)

    samples = [Sample(index) for index in scored]
    loader = make_loader(
        ModelCrops(records, samples, preprocessing),
        range(len(samples)),
        batch_size=batch_size,
        workers=workers,
        drop_last=False,
    )
    positions, probabilities = predict(model, loader, torch_device) if samples else ([], [])
    probability_of = {
        samples[position].record: probability
        for position, probability in zip(positions, probabilities, strict=True)
    }
    videos = per_video_scores(records, selections, probability_of, aggregate)
    frame_labels = [records[index].label for index in scored]
    frame_methods = [records[index].method for index in scored]
    frame_probabilities = [probability_of[index] for index in scored]
    report = report_metrics(frame_labels, frame_methods, frame_probabilities, videos)
    provenance = model.provenance
    short_videos = sum(video["short"] for video in videos)
    result = {
        "weights": str(weights),
        "model": provenance.name,
        "data": str(data_dir),
        "split": split,
        "protocol": protocol,
        "aggregate": aggregate,
        "frames": len(scored),
        "videos": len(videos),
        "short_videos": short_videos,
        "geometry": geometry,
        **report,
        "per_video": videos,
        "notes": _notes(report, geometry, short_videos, len(videos)),
        "roc_png": None,
    }
    if roc_png is not None:
        result["roc_png"] = str(
            metric_functions.plot_roc(
                frame_labels,
                frame_probabilities,
                videos,
                roc_png,
                title=f"{provenance.name} on {split}",
            )
        )
    return result


def _notes(report: dict, geometry: dict, short_videos: int, video_count: int) -> list[str]:
    notes = []
    for level in ("frame", "video"):
        note = report["overall"][level].get("note")
        if note:
            notes.append(f"overall {level} level: {note}")
    if not report["per_method"] and report["overall"]["video"]["fake"] == 0:
        notes.append("no fake videos in this split: no per-method results")
    if short_videos:
        notes.append(
            f"{short_videos} of {video_count} videos have fewer than {AUTHORS_MIN_FACE_FRAMES} "
            f"face crops and score {SHORT_VIDEO_SCORE} unseen, as in the authors' evaluation "
            "(extract with `mattn extract-faces --frames paper` to score them)"
        )
    if any(stored["margin_ratio"] is None for stored in geometry["stored"]):
        notes.append(
            "the manifest does not record the margin of some crops: they were centre-cut to "
            "the input size, not re-cut to the model's margin"
        )
    return notes
