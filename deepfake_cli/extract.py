"""`mattn extract-faces`: a deepfake dataset -> face crops + a manifest that `mattn train` reads.

The crops come from the same stages as `mattn scan` (video -> frames -> faces -> persons ->
crops), so a model is trained on exactly the kind of crop it is later asked to judge:

    datasets.list_videos   labelled, split list of videos (one module per dataset layout)
    video.FrameReader      sampled frames, decoded in a killable worker process
    faces.FaceDetector     MTCNN boxes, probabilities and 5-point landmarks
    faces.link_tracks      one track per person, as scan links them
    crops.crop_face        the one crop function scan, extract and train share

Pairing (as the DFDC winner did): a fake made from a real video that is in the dataset is
cropped with the real video's boxes, at the same frame indices, so the real and the fake crop
show the same square of the same frame. Originals are therefore extracted before their fakes.

Resume: every crop is written to a temporary file and renamed; once all crops of a video are
on disk, a done-record `.progress/<hash of video_id>.json` holding the video's manifest rows
(and its face tracks, for its fakes) is written the same way. A rerun skips videos with a
done-record made with the same settings and redoes the rest, so a run that is killed at any
moment and restarted ends with the same manifest.csv as one that never stopped; manifest.csv
and summary.json are assembled from the done-records at the end. Videos that fail (no face,
undecodable) get no done-record: a rerun tries them again, and they are listed with their
reason in summary.json.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import multiprocessing
import os
import re
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from deepfake_cli import __version__
from deepfake_cli.crops import crop_face, landmarks_in_crop
from deepfake_cli.datasets import SPLITS, VideoEntry, list_videos
from deepfake_cli.errors import MattnError, UsageError
from deepfake_cli.faces import Detection, FaceDetector, link_tracks
from deepfake_cli.files import PendingFile, write_atomically
from deepfake_cli.video import FrameReader, PendingFrames, SampledFrames

#: Default crops are this much larger than the model's input, so training can random-crop (or
#: shift and rescale) and still see the whole face square.
CROP_SIZE_OVER_INPUT = 1.15
IMAGE_FORMATS = ("png", "jpg")
#: At most this many faces per frame are kept (largest first), as `mattn scan` does.
MAX_FACES_PER_FRAME = 4

MANIFEST_NAME = "manifest.csv"
SUMMARY_NAME = "summary.json"
CROPS_FOLDER = "crops"
PROGRESS_FOLDER = ".progress"
MANIFEST_COLUMNS = (
    "crop_path",
    "video_path",
    "video_id",
    "label",
    "method",
    "compression",
    "split",
    "group",
    "frame_index",
    "time_s",
    "person",
    "box",
    "landmarks",
    "det_prob",
    "boxes_from",
    "crop_size",
    "margin_ratio",
)
#: Bumped when a done-record's content changes meaning; older records are redone.
RECORD_VERSION = 1

BOXES_FROM_SELF = "self"
BOXES_FROM_ORIGINAL = "original"

# A crop file name as this module writes it: <person>_<frame index>.<format>.
_CROP_FILE_NAME = re.compile(r"^\d+_\d+\.(png|jpg)$")
# Characters kept as they are in crop folder names; anything else becomes "_".
_UNSAFE_PATH_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True)
class CropSettings:
    """Everything that decides which crops a video yields; done-records carry its fingerprint."""

    # Frames sampled evenly over each video, or with `every` the first `frames` of every k-th.
    frames: int
    every: int | None
    # Crop side in pixels, and the square around the box as a multiple of its longer side.
    crop_size: int
    margin_ratio: float
    # Rotate crops so the eyes are level (must match the weights' preprocessing).
    align: bool
    # "png" (lossless) or "jpg" at `jpeg_quality`.
    image_format: str
    jpeg_quality: int
    # Largest faces kept per frame before tracking, as in scan.
    max_faces: int | None = MAX_FACES_PER_FRAME

    def fingerprint(self) -> str:
        """Short hash of the settings: a done-record made with other settings is redone."""
        canonical = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class SkippedVideo:
    """A video that gave no crops, and why (one sentence)."""

    video: str  # relative to the dataset root
    reason: str


@dataclass(frozen=True)
class ExtractSummary:
    """What one `extract_faces` call produced."""

    output_dir: Path
    manifest_path: Path
    summary_path: Path
    layout: str
    # Videos chosen after sharding and --limit.
    videos_selected: int
    # Videos with crops in the manifest, of which `videos_resumed` were done by an earlier run.
    videos_extracted: int
    videos_resumed: int
    crops: int
    videos_by_split: dict[str, int]
    crops_by_split: dict[str, int]
    skipped: list[SkippedVideo]
    # Processes that ran detection (a CUDA device always uses one).
    workers: int
    elapsed_s: float


@dataclass(frozen=True)
class _OriginalFaces:
    """A real video's sampled frames and face tracks, which its fakes reuse."""

    num_frames: int
    frame_indices: tuple[int, ...]
    frame_size: tuple[int, int]  # (width, height)
    # person -> frame_index -> detection.
    tracks: dict[int, dict[int, Detection]]


@dataclass(frozen=True)
class _VideoTask:
    """One video to extract: picklable, so it can go to a worker process."""

    video_id: str
    relative_path: str
    video_path: str
    crop_folder: str  # relative to the output folder, POSIX
    # The original's faces when this is a fake paired with an original that has them.
    original: _OriginalFaces | None = None


@dataclass(frozen=True)
class _Outcome:
    """A finished video: done (its done-record is on disk), or why it was skipped."""

    video_id: str
    done: bool
    skip_reason: str | None = None


@dataclass
class _Plan:
    """The selected videos, in processing order, and who waits for whom."""

    entries: list[VideoEntry]  # processing order: each original before its fakes
    # video_id of the selected original whose boxes a fake reuses.
    original_of: dict[str, str] = field(default_factory=dict)
    entry_by_id: dict[str, VideoEntry] = field(default_factory=dict)


def extract_faces(
    dataset_root: Path,
    output_dir: Path,
    *,
    layout: str = "auto",
    compression: str = "c23",
    splits_dir: Path | None = None,
    frames: int = 32,
    every: int | None = None,
    crop_size: int | None = None,
    margin_ratio: float = 1.3,
    align: bool = False,
    image_format: str = "png",
    jpeg_quality: int = 95,
    workers: int = 1,
    limit: int | None = None,
    shard: str | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
    device: str = "cpu",
    timeout_s: float | None = 120.0,
    progress: bool = True,
    on_video_done: Callable[[str, str], None] | None = None,
) -> ExtractSummary:
    """Extract face crops of every selected video of a dataset and write the manifest.

    `crop_size` None means `default_crop_size()` (440). `shard` "K/N" (1-based) keeps the
    videos whose pairing key (the original's video_id for a paired fake, else its own) hashes
    to K of N, so an original and its fakes are always in the same shard; `limit` then keeps
    the first N videos in processing order. `on_video_done(video_id, "done" | "skipped")` is
    called after each video's outcome is final (its done-record is on disk); an exception it
    raises stops the run, as an interruption would.

    Raises:
        UsageError: options that make no sense, or a dataset folder that does not exist.
        LayoutError: the folder does not match the (detected or given) layout.
        MattnError: the output folder cannot be written.
    """
    started = time.perf_counter()
    settings = _checked_settings(
        frames=frames,
        every=every,
        crop_size=default_crop_size() if crop_size is None else crop_size,
        margin_ratio=margin_ratio,
        align=align,
        image_format=image_format,
        jpeg_quality=jpeg_quality,
    )
    if workers < 1:
        raise UsageError(f"--workers must be at least 1, got {workers}.")
    if limit is not None and limit < 1:
        raise UsageError(f"--limit must be at least 1, got {limit}.")
    if timeout_s is not None and not timeout_s > 0:
        raise UsageError(f"--timeout must be a positive number of seconds, got {timeout_s:g}.")
    # Imported here: scan and scoring pull in the model, which worker processes do not need.
    from deepfake_cli.device import resolve_device
    from deepfake_cli.shards import parse_shard

    shard_index_count = parse_shard(shard)
    torch_device = resolve_device(device)
    # One CUDA device is kept busy by one process; several would only fight over it.
    workers_used = workers if torch_device.type == "cpu" else 1

    dataset_root = Path(os.path.abspath(dataset_root))
    output_dir = Path(os.path.abspath(output_dir))
    if output_dir == dataset_root or dataset_root in output_dir.parents:
        # Crops inside the dataset would be listed as videos' neighbours and confuse layouts.
        raise UsageError(
            f"The output folder {output_dir} is inside the dataset folder; choose one outside it."
        )
    entries = list_videos(
        dataset_root,
        layout=layout,
        compression=compression,
        splits_dir=splits_dir,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        seed=seed,
    )
    resolved_layout = layout if layout != "auto" else _layout_of(dataset_root)
    plan = _plan(entries, shard=shard_index_count, limit=limit)

    _make_output_folders(output_dir)
    fingerprint = settings.fingerprint()
    # Only ids are kept in memory: a done-record is read again when a fake or the manifest
    # needs it, so a dataset of 100k videos does not hold millions of rows at once.
    done_ids = {
        entry.video_id
        for entry in plan.entries
        if _read_record(output_dir, entry, fingerprint) is not None
    }
    videos_resumed = len(done_ids)
    skipped: dict[str, str] = {}
    run_options = _RunOptions(
        settings=settings, output_dir=output_dir, device=str(torch_device), timeout_s=timeout_s
    )

    from rich.console import Console

    from deepfake_cli.report import ScanProgress

    to_do_count = len(plan.entries) - len(done_ids)
    with ScanProgress(to_do_count, Console(stderr=True), progress) as progress_bar:
        progress_bar.set_current("Extracting faces")

        def finish(outcome: _Outcome) -> None:
            if outcome.done:
                done_ids.add(outcome.video_id)
            else:
                skipped[outcome.video_id] = outcome.skip_reason or "it failed for an unknown reason"
            progress_bar.advance(outcome.video_id)
            if on_video_done is not None:
                on_video_done(outcome.video_id, "done" if outcome.done else "skipped")

        if workers_used == 1 or to_do_count <= 1:
            _run_in_process(plan, done_ids, run_options, finish)
        else:
            _run_in_pool(plan, done_ids, run_options, workers_used, finish)

    skipped_videos = [
        SkippedVideo(video=plan.entry_by_id[video_id].relative_path, reason=reason)
        for video_id, reason in sorted(skipped.items())
    ]
    manifest_path = output_dir / MANIFEST_NAME
    crops_per_video = _write_manifest(manifest_path, plan.entries, done_ids, run_options)
    options_used = {
        "layout": resolved_layout,
        "compression": compression,
        "splits_dir": None if splits_dir is None else os.path.abspath(splits_dir),
        **asdict(settings),
        "limit": limit,
        "shard": shard,
        "device": str(torch_device),
        "workers": workers_used,
        "timeout_s": timeout_s,
    }
    summary_document = _summary_document(
        dataset_root, plan.entries, crops_per_video, skipped_videos, options_used
    )
    summary_path = output_dir / SUMMARY_NAME
    summary_text = json.dumps(summary_document, indent=2, ensure_ascii=False) + "\n"
    write_atomically(summary_path, summary_text.encode("utf-8"))

    return ExtractSummary(
        output_dir=output_dir,
        manifest_path=manifest_path,
        summary_path=summary_path,
        layout=resolved_layout,
        videos_selected=len(plan.entries),
        videos_extracted=summary_document["videos_extracted"],
        videos_resumed=videos_resumed,
        crops=summary_document["crops"],
        videos_by_split={
            split: split_counts["videos"]
            for split, split_counts in summary_document["by_split"].items()
            if split_counts["videos"]
        },
        crops_by_split={
            split: split_counts["crops"]
            for split, split_counts in summary_document["by_split"].items()
            if split_counts["crops"]
        },
        skipped=skipped_videos,
        workers=workers_used,
        elapsed_s=time.perf_counter() - started,
    )


# --------------------------------------------------------------------------------------------
# Options and selection
# --------------------------------------------------------------------------------------------


def default_crop_size() -> int:
    """The default model input (380) times CROP_SIZE_OVER_INPUT (437), up to a multiple of 8."""
    # The input size is read from the weights' preprocessing defaults, not repeated here.
    from deepfake_cli.model.config import Preprocessing

    return 8 * math.ceil(CROP_SIZE_OVER_INPUT * Preprocessing().input_size / 8)


def _checked_settings(**values: Any) -> CropSettings:
    settings = CropSettings(**values)
    if settings.frames < 1:
        raise UsageError(f"--frames must be at least 1, got {settings.frames}.")
    if settings.every is not None and settings.every < 1:
        raise UsageError(f"--every must be at least 1, got {settings.every}.")
    if settings.crop_size < 8:
        raise UsageError(f"--crop-size must be at least 8 pixels, got {settings.crop_size}.")
    if not (math.isfinite(settings.margin_ratio) and settings.margin_ratio >= 1.0):
        raise UsageError(
            f"--margin must be at least 1 (the square's side over the face box's longer side), "
            f"got {settings.margin_ratio:g}."
        )
    if settings.image_format not in IMAGE_FORMATS:
        raise UsageError(
            f"--format must be {' or '.join(IMAGE_FORMATS)}, got {settings.image_format!r}."
        )
    if not 1 <= settings.jpeg_quality <= 100:
        raise UsageError(f"--quality must be between 1 and 100, got {settings.jpeg_quality}.")
    return settings


def _layout_of(dataset_root: Path) -> str:
    from deepfake_cli.datasets import detect_layout

    return detect_layout(dataset_root)


def _plan(
    entries: Sequence[VideoEntry], *, shard: tuple[int, int] | None, limit: int | None
) -> _Plan:
    """Order videos so each original comes right before its fakes, then shard and limit."""
    from deepfake_cli.shards import in_shard

    entry_by_path = {entry.relative_path: entry for entry in entries}

    def original_of(entry: VideoEntry) -> VideoEntry | None:
        if entry.label != 1 or entry.source_relative_path is None:
            return None
        original = entry_by_path.get(entry.source_relative_path)
        return original if original is not None and original.label == 0 else None

    def pairing_key(entry: VideoEntry) -> str:
        original = original_of(entry)
        return entry.video_id if original is None else original.video_id

    ordered = sorted(
        entries,
        key=lambda entry: (pairing_key(entry), original_of(entry) is not None, entry.video_id),
    )
    selected = [entry for entry in ordered if in_shard(pairing_key(entry), shard)]
    if limit is not None:
        selected = selected[:limit]
    selected_ids = {entry.video_id for entry in selected}
    originals = {}
    for entry in selected:
        original = original_of(entry)
        # A fake pairs only with an original of this run: one cut off by --limit is not read.
        if original is not None and original.video_id in selected_ids:
            originals[entry.video_id] = original.video_id
    return _Plan(
        entries=selected,
        original_of=originals,
        entry_by_id={entry.video_id: entry for entry in selected},
    )


def crop_folder_for(video_id: str) -> str:
    """Folder of a video's crops below `crops/`: its id, made safe as a relative path.

    Each "/"-separated part keeps letters, digits, ".", "_" and "-"; anything else (and a
    leading dot, which would hide the folder) becomes "_", and a changed id gets a short hash
    of the original id appended so that two ids never share a folder.
    """
    parts = []
    for part in video_id.split("/"):
        safe_part = _UNSAFE_PATH_CHARACTERS.sub("_", part)
        if not safe_part or safe_part.startswith("."):
            safe_part = "_" + safe_part
        parts.append(safe_part)
    safe_path = "/".join(parts)
    if safe_path != video_id:
        safe_path += "-" + hashlib.sha256(video_id.encode("utf-8")).hexdigest()[:8]
    return safe_path


def done_record_path(output_dir: Path, video_id: str) -> Path:
    """Where the done-record of a video goes: named by a hash, since ids may hold "/"."""
    digest = hashlib.sha256(video_id.encode("utf-8")).hexdigest()[:24]
    return output_dir / PROGRESS_FOLDER / f"{digest}.json"


def _make_output_folders(output_dir: Path) -> None:
    try:
        (output_dir / PROGRESS_FOLDER).mkdir(parents=True, exist_ok=True)
        (output_dir / CROPS_FOLDER).mkdir(exist_ok=True)
    except OSError as error:
        raise MattnError(
            f"Cannot create the output folder {output_dir}: {error.strerror or error}."
        ) from error


def _read_record(output_dir: Path, entry: VideoEntry, fingerprint: str) -> dict[str, Any] | None:
    """The video's done-record if it is complete and made with these settings, else None."""
    path = done_record_path(output_dir, entry.video_id)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if (
        not isinstance(record, dict)
        or record.get("record_version") != RECORD_VERSION
        or record.get("settings") != fingerprint
        or record.get("video_id") != entry.video_id
        # FF++ ids do not name the compression level; the path does.
        or record.get("relative_path") != entry.relative_path
    ):
        return None
    return record


# --------------------------------------------------------------------------------------------
# Running: in this process, or in a pool of worker processes
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _RunOptions:
    """What every worker needs besides the video itself; picklable."""

    settings: CropSettings
    output_dir: Path
    device: str
    timeout_s: float | None


def _task_for(
    entry: VideoEntry, plan: _Plan, done_ids: set[str], run_options: _RunOptions
) -> _VideoTask:
    """The task for `entry`, with its original's faces when the original is done."""
    original_faces = None
    original_id = plan.original_of.get(entry.video_id)
    if original_id is not None and original_id in done_ids:
        record = _read_record(
            run_options.output_dir,
            plan.entry_by_id[original_id],
            run_options.settings.fingerprint(),
        )
        if record is not None:
            original_faces = _original_faces_from_record(record)
    return _VideoTask(
        video_id=entry.video_id,
        relative_path=entry.relative_path,
        video_path=str(entry.video_path),
        crop_folder=f"{CROPS_FOLDER}/{crop_folder_for(entry.video_id)}",
        original=original_faces,
    )


def _run_in_process(
    plan: _Plan,
    done_ids: set[str],
    run_options: _RunOptions,
    finish: Callable[[_Outcome], None],
) -> None:
    """One detector here; the decoding worker reads the next video while this one is cropped.

    The plan's order puts every original before its fakes, so an original is done (or has
    failed) by the time its fakes come up.
    """
    to_do = [entry for entry in plan.entries if entry.video_id not in done_ids]
    if not to_do:
        return
    detector = FaceDetector(device=run_options.device)
    settings = run_options.settings
    read_options = {"count": settings.frames, "every": settings.every}
    with FrameReader(timeout_s=run_options.timeout_s) as reader:
        pending: dict[str, PendingFrames] = {}
        for position, entry in enumerate(to_do):
            # Keep one video decoding ahead of the one being cropped.
            for ahead in to_do[position : position + 2]:
                if ahead.video_id not in pending:
                    pending[ahead.video_id] = reader.submit(ahead.video_path, **read_options)
            task = _task_for(entry, plan, done_ids, run_options)
            finish(_extract_video(task, pending.pop(entry.video_id), detector, run_options))


# Per worker process: created by the pool's initializer, used by every task it runs.
_worker_detector: FaceDetector | None = None
_worker_reader: FrameReader | None = None


def _init_worker(device: str, timeout_s: float | None, threads_per_worker: int) -> None:
    global _worker_detector, _worker_reader
    import signal

    import torch

    # Ctrl-C reaches the whole process group; the parent stops the run, workers finish their
    # current video so that no crop is left half-written.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # N processes on N cores: torch threads beyond a worker's share only contend.
    torch.set_num_threads(threads_per_worker)
    cv2.setNumThreads(1)
    _worker_detector = FaceDetector(device=device)
    _worker_reader = FrameReader(timeout_s=timeout_s)


def _extract_in_worker(task: _VideoTask, run_options: _RunOptions) -> _Outcome:
    if _worker_detector is None or _worker_reader is None:
        raise RuntimeError("worker process was not initialised")
    settings = run_options.settings
    pending = _worker_reader.submit(task.video_path, count=settings.frames, every=settings.every)
    return _extract_video(task, pending, _worker_detector, run_options)


def _run_in_pool(
    plan: _Plan,
    done_ids: set[str],
    run_options: _RunOptions,
    workers: int,
    finish: Callable[[_Outcome], None],
) -> None:
    """`workers` processes over videos; a fake is queued once its original has finished."""
    fakes_waiting: dict[str, list[VideoEntry]] = {}
    ready: deque[VideoEntry] = deque()
    for entry in plan.entries:
        if entry.video_id in done_ids:
            continue
        original_id = plan.original_of.get(entry.video_id)
        if original_id is not None and original_id not in done_ids:
            fakes_waiting.setdefault(original_id, []).append(entry)
        else:
            ready.append(entry)

    threads_per_worker = max(1, (os.cpu_count() or 1) // workers)
    executor = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_worker,
        initargs=(run_options.device, run_options.timeout_s, threads_per_worker),
    )
    running: dict[Future[_Outcome], VideoEntry] = {}
    try:
        while ready or running:
            # A few tasks per worker in flight keep them busy without queueing every video, so
            # the fakes a finished original releases start soon.
            while ready and len(running) < 2 * workers:
                entry = ready.popleft()
                task = _task_for(entry, plan, done_ids, run_options)
                running[executor.submit(_extract_in_worker, task, run_options)] = entry
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                entry = running.pop(future)
                finish(future.result())
                # Its fakes go first, while its done-record is fresh in the page cache.
                ready.extendleft(reversed(fakes_waiting.pop(entry.video_id, [])))
    finally:
        # On an error or Ctrl-C, videos not started are dropped; started ones finish.
        executor.shutdown(wait=True, cancel_futures=True)


# --------------------------------------------------------------------------------------------
# One video
# --------------------------------------------------------------------------------------------


def _extract_video(
    task: _VideoTask, pending: PendingFrames, detector: FaceDetector, run_options: _RunOptions
) -> _Outcome:
    """Decode, find faces (or take the original's), write the crops, then the done-record."""
    try:
        sampled = pending.result()
    except MattnError as error:
        return _Outcome(task.video_id, done=False, skip_reason=error.message)

    tracks = _tracks_from_original(task.original, sampled)
    boxes_from = BOXES_FROM_ORIGINAL
    if tracks is None:
        boxes_from = BOXES_FROM_SELF
        try:
            detections = detector.detect(sampled.frames)
        except Exception as error:  # MTCNN failing on one odd video must not end a long run
            reason = f"Face detection failed ({type(error).__name__}: {error})."
            return _Outcome(task.video_id, done=False, skip_reason=reason)
        # The same linking as scan: person ids by first appearance, at most 4 faces a frame.
        linked = link_tracks(detections, max_faces=run_options.settings.max_faces)
        tracks = {
            track.person_id: {
                sampled.frame_indices[position]: detection
                for position, detection in track.detections.items()
            }
            for track in linked
        }
    if not tracks:
        return _Outcome(
            task.video_id,
            done=False,
            skip_reason=f"No face was found in the {len(sampled.frame_indices)} sampled frames.",
        )
    _write_crops_and_record(task, sampled, tracks, boxes_from, run_options)
    return _Outcome(task.video_id, done=True)


def _tracks_from_original(
    original: _OriginalFaces | None, sampled: SampledFrames
) -> dict[int, dict[int, Detection]] | None:
    """The original's tracks if they fit this video frame for frame, else None."""
    if original is None:
        return None
    frame_size = (sampled.info.width, sampled.info.height)
    if (
        original.num_frames != sampled.info.num_frames
        or original.frame_indices != tuple(sampled.frame_indices)
        or original.frame_size != frame_size
    ):
        return None
    return original.tracks


def _write_crops_and_record(
    task: _VideoTask,
    sampled: SampledFrames,
    tracks: dict[int, dict[int, Detection]],
    boxes_from: str,
    run_options: _RunOptions,
) -> None:
    settings = run_options.settings
    output_dir = run_options.output_dir
    crop_folder = output_dir / task.crop_folder
    try:
        crop_folder.mkdir(parents=True, exist_ok=True)
        # Crops of an earlier, unfinished attempt (or other settings) are removed, so the folder
        # holds exactly what the done-record lists.
        for stale in crop_folder.iterdir():
            if stale.is_file() and (
                _CROP_FILE_NAME.match(stale.name) or stale.name.endswith(".tmp")
            ):
                stale.unlink()
    except OSError as error:
        raise MattnError(
            f"Cannot write crops to {crop_folder}: {error.strerror or error}."
        ) from error

    position_of_index = {index: position for position, index in enumerate(sampled.frame_indices)}
    crop_rows = []
    for person, detections in sorted(tracks.items()):
        for frame_index, detection in sorted(detections.items()):
            position = position_of_index[frame_index]
            crop = crop_face(
                sampled.frames[position],
                detection.box_xyxy,
                size=settings.crop_size,
                margin_ratio=settings.margin_ratio,
                landmarks=detection.landmarks,
                align=settings.align,
            )
            crop_name = f"{person}_{frame_index}.{settings.image_format}"
            write_atomically(crop_folder / crop_name, _encode_image(crop, settings))
            crop_landmarks = None
            if detection.landmarks is not None:
                crop_landmarks = landmarks_in_crop(
                    detection.landmarks,
                    detection.box_xyxy,
                    size=settings.crop_size,
                    margin_ratio=settings.margin_ratio,
                    align=settings.align,
                )
            crop_rows.append(
                {
                    "crop_path": f"{task.crop_folder}/{crop_name}",
                    "frame_index": str(frame_index),
                    "time_s": f"{sampled.times_s[position]:.3f}",
                    "person": str(person),
                    "box": _format_numbers(detection.box_xyxy),
                    "landmarks": (
                        ""
                        if crop_landmarks is None
                        else _format_numbers([value for point in crop_landmarks for value in point])
                    ),
                    "det_prob": f"{detection.det_prob:.4f}",
                    "boxes_from": boxes_from,
                }
            )

    record = {
        "record_version": RECORD_VERSION,
        "settings": settings.fingerprint(),
        "video_id": task.video_id,
        "relative_path": task.relative_path,
        "num_frames": sampled.info.num_frames,
        "frame_size": [sampled.info.width, sampled.info.height],
        "frame_indices": list(sampled.frame_indices),
        "boxes_from": boxes_from,
        # Full precision, so a fake reusing these boxes crops exactly as from the original.
        "tracks": [
            {
                "person": person,
                "faces": [
                    _detection_to_json(frame_index, detection)
                    for frame_index, detection in sorted(detections.items())
                ],
            }
            for person, detections in sorted(tracks.items())
        ],
        "crops": crop_rows,
    }
    # Written last: its presence means every crop above is complete on disk.
    write_atomically(
        done_record_path(output_dir, task.video_id),
        json.dumps(record, separators=(",", ":")).encode("utf-8"),
    )


def _detection_to_json(frame_index: int, detection: Detection) -> dict[str, Any]:
    return {
        "frame_index": frame_index,
        "box_xyxy": list(detection.box_xyxy),
        "det_prob": detection.det_prob,
        "landmarks": None
        if detection.landmarks is None
        else [list(point) for point in detection.landmarks],
    }


def _original_faces_from_record(record: dict[str, Any]) -> _OriginalFaces:
    tracks: dict[int, dict[int, Detection]] = {}
    for track in record["tracks"]:
        tracks[int(track["person"])] = {
            int(face["frame_index"]): Detection(
                box_xyxy=tuple(float(value) for value in face["box_xyxy"]),  # type: ignore[arg-type]
                det_prob=float(face["det_prob"]),
                landmarks=None
                if face["landmarks"] is None
                else tuple((float(point[0]), float(point[1])) for point in face["landmarks"]),
            )
            for face in track["faces"]
        }
    width, height = record["frame_size"]
    return _OriginalFaces(
        num_frames=int(record["num_frames"]),
        frame_indices=tuple(int(index) for index in record["frame_indices"]),
        frame_size=(int(width), int(height)),
        tracks=tracks,
    )


def _encode_image(crop_rgb: np.ndarray, settings: CropSettings) -> bytes:
    crop_bgr = cv2.cvtColor(crop_rgb, cv2.COLOR_RGB2BGR)  # OpenCV writes BGR
    if settings.image_format == "jpg":
        parameters = [cv2.IMWRITE_JPEG_QUALITY, settings.jpeg_quality]
    else:
        parameters = []
    encoded_ok, encoded = cv2.imencode("." + settings.image_format, crop_bgr, parameters)
    if not encoded_ok:
        raise RuntimeError(f"OpenCV could not encode a {settings.image_format} image")
    return encoded.tobytes()


def _format_numbers(values: Sequence[float]) -> str:
    """Space-separated, one decimal; -0.0 is written 0.0 so equal crops give equal text."""
    texts = []
    for value in values:
        text = f"{value:.1f}"
        texts.append("0.0" if text == "-0.0" else text)
    return " ".join(texts)


# --------------------------------------------------------------------------------------------
# Manifest and summary
# --------------------------------------------------------------------------------------------


def _write_manifest(
    manifest_path: Path,
    entries: Sequence[VideoEntry],
    done_ids: set[str],
    run_options: _RunOptions,
) -> dict[str, int]:
    """Write manifest.csv from the done-records, atomically; the crop count of each video.

    One row per crop, sorted by (video_id, person, frame_index). The dataset columns come from
    this run's listing (so they follow the current labels and splits), the crop columns from
    the done-records. Records are read one at a time, so memory does not grow with the dataset.
    """
    settings = run_options.settings
    fingerprint = settings.fingerprint()
    crops_per_video: dict[str, int] = {}
    with (
        PendingFile(manifest_path) as pending,
        open(pending.temporary, "w", newline="", encoding="utf-8") as manifest_file,
    ):
        writer = csv.writer(manifest_file, lineterminator="\n")
        writer.writerow(MANIFEST_COLUMNS)
        done_entries = [entry for entry in entries if entry.video_id in done_ids]
        for entry in sorted(done_entries, key=lambda entry: entry.video_id):
            record = _read_record(run_options.output_dir, entry, fingerprint)
            if record is None:
                raise MattnError(
                    f"The done-record of {entry.relative_path} disappeared during the run; "
                    f"run the same command again to redo that video."
                )
            crop_rows = sorted(
                record["crops"],
                key=lambda crop_row: (int(crop_row["person"]), int(crop_row["frame_index"])),
            )
            for crop_row in crop_rows:
                writer.writerow(
                    [
                        crop_row["crop_path"],
                        entry.relative_path,
                        entry.video_id,
                        entry.label,
                        entry.method,
                        entry.compression,
                        entry.split,
                        entry.group,
                        crop_row["frame_index"],
                        crop_row["time_s"],
                        crop_row["person"],
                        crop_row["box"],
                        crop_row["landmarks"],
                        crop_row["det_prob"],
                        crop_row["boxes_from"],
                        settings.crop_size,
                        f"{settings.margin_ratio:g}",
                    ]
                )
            crops_per_video[entry.video_id] = len(crop_rows)
    return crops_per_video


def _split_order(name: str) -> tuple[int, str]:
    """Splits in train, val, test order; other keys (labels, methods) by name after them."""
    return (SPLITS.index(name), "") if name in SPLITS else (len(SPLITS), name)


def _summary_document(
    dataset_root: Path,
    entries: Sequence[VideoEntry],
    crops_per_video: dict[str, int],
    skipped: Sequence[SkippedVideo],
    options_used: dict[str, Any],
) -> dict[str, Any]:
    """summary.json: counts per split, label and method, the skipped videos, the options."""
    skipped_paths = {video.video for video in skipped}

    def breakdown(key: Callable[[VideoEntry], str]) -> dict[str, dict[str, int]]:
        table: dict[str, dict[str, int]] = {}
        for entry in entries:
            counts = table.setdefault(key(entry), {"videos": 0, "crops": 0, "skipped": 0})
            if entry.video_id in crops_per_video:
                counts["videos"] += 1
                counts["crops"] += crops_per_video[entry.video_id]
            elif entry.relative_path in skipped_paths:
                counts["skipped"] += 1
        return dict(sorted(table.items(), key=lambda pair: _split_order(pair[0])))

    return {
        "mattn_version": __version__,
        "dataset_root": str(dataset_root),
        "manifest": MANIFEST_NAME,
        "videos_selected": len(entries),
        "videos_extracted": len(crops_per_video),
        "videos_skipped": len(skipped),
        "crops": sum(crops_per_video.values()),
        "by_split": breakdown(lambda entry: entry.split),
        "by_label": breakdown(lambda entry: str(entry.label)),
        "by_method": breakdown(lambda entry: entry.method),
        "skipped": [asdict(video) for video in skipped],
        "options": options_used,
    }


def iter_manifest(path: Path) -> Iterator[dict[str, str]]:
    """The rows of a manifest.csv, as dictionaries keyed by MANIFEST_COLUMNS."""
    with open(path, newline="", encoding="utf-8") as manifest_file:
        yield from csv.DictReader(manifest_file)
