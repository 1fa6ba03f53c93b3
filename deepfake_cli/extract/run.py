"""`extract_faces`: options -> plan -> resume -> extract what is left -> manifest and summary."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from rich.console import Console

from deepfake_cli.datasets import detect_layout, list_videos
from deepfake_cli.device import resolve_device
from deepfake_cli.errors import UsageError
from deepfake_cli.extract.outputs import (
    SkippedVideo,
    summary_document,
    write_manifest,
    write_summary,
)
from deepfake_cli.extract.plan import (
    FRAME_PRESETS,
    check_run_options,
    checked_settings,
    default_crop_size,
    plan_videos,
    resolve_frames,
    weights_crop_geometry,
)
from deepfake_cli.extract.records import make_output_folders, read_record
from deepfake_cli.extract.video_crops import Outcome
from deepfake_cli.extract.workers import RunOptions, run_in_pool, run_in_process
from deepfake_cli.manifest import MANIFEST_NAME, SUMMARY_NAME
from deepfake_cli.model.config import DEFAULT_MARGIN_RATIO, CropGeometry
from deepfake_cli.model.weights import read_preprocessing
from deepfake_cli.progress import ScanProgress
from deepfake_cli.shards import parse_shard


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


def extract_faces(
    dataset_root: Path,
    output_dir: Path,
    *,
    layout: str = "auto",
    compression: str = "c23",
    splits_dir: Path | None = None,
    frames: int | str = 32,
    every: int | None = None,
    crop_size: int | None = None,
    margin_ratio: float | None = None,
    align: bool = False,
    weights: str | Path | None = None,
    image_format: str = "png",
    jpeg_quality: int = 95,
    workers: int = 1,
    limit: int | None = None,
    shard: str | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
    group_by: str = "file",
    device: str = "cpu",
    timeout_s: float | None = 120.0,
    progress: bool = True,
    on_video_done: Callable[[str, str], None] | None = None,
) -> ExtractSummary:
    """Extract face crops of every selected video of a dataset and write the manifest.

    `frames` is a number or a name of `FRAME_PRESETS` ("paper": every frame, at most 500).
    `crop_size` None means `default_crop_size()` (440), `margin_ratio` None 1.3. With
    `weights`, the crops are those weights' geometry (`weights_crop_geometry`): the centre
    input-size pixels of every crop are what scan feeds that model, and `margin_ratio` must be
    None. `shard` "K/N" (1-based) keeps the
    videos whose pairing key (the original's video_id for a paired fake, else its own) hashes
    to K of N, so an original and its fakes are always in the same shard; `limit` then keeps
    the first N videos in processing order. Still images in plain folders are one-frame
    videos (`frames` and `every` do not apply to them); `group_by` "name-prefix" puts plain
    folders' files whose names start alike ("001_a.jpg", "001_b.jpg") in one identity group,
    hence one split. `on_video_done(video_id, "done" | "skipped")` is
    called after each video's outcome is final (its done-record is on disk); an exception it
    raises stops the run, as an interruption would.

    Raises:
        UsageError: options that make no sense, or a dataset folder that does not exist.
        LayoutError: the folder does not match the (detected or given) layout.
        MattnError: the output folder cannot be written.
    """
    started = time.perf_counter()
    # --- options ---
    frame_count, frame_step = resolve_frames(frames, every)
    model_preprocessing = None
    if weights is not None:
        model_preprocessing = read_preprocessing(weights)
        geometry = weights_crop_geometry(
            model_preprocessing,
            crop_size=crop_size,
            margin_ratio=margin_ratio,
            align=align,
            weights_name=str(weights),
        )
    else:
        geometry = CropGeometry(
            default_crop_size() if crop_size is None else crop_size,
            DEFAULT_MARGIN_RATIO if margin_ratio is None else margin_ratio,
            align,
        )
    settings = checked_settings(
        frames=frame_count,
        every=frame_step,
        crop_size=geometry.size,
        margin_ratio=geometry.margin_ratio,
        align=geometry.align,
        image_format=image_format,
        jpeg_quality=jpeg_quality,
    )
    check_run_options(workers=workers, limit=limit, timeout_s=timeout_s)
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

    # --- what to extract ---
    entries = list_videos(
        dataset_root,
        layout=layout,
        compression=compression,
        splits_dir=splits_dir,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        seed=seed,
        group_by=group_by,
    )
    resolved_layout = layout if layout != "auto" else detect_layout(dataset_root)
    plan = plan_videos(entries, shard=shard_index_count, limit=limit)

    # --- resume: what an earlier run finished ---
    make_output_folders(output_dir)
    fingerprint = settings.fingerprint()
    # Only ids are kept in memory: a done-record is read again when a fake or the manifest
    # needs it, so a dataset of 100k videos does not hold millions of rows at once.
    done_ids = {
        entry.video_id
        for entry in plan.entries
        if read_record(output_dir, entry, fingerprint) is not None
    }
    videos_resumed = len(done_ids)
    skipped: dict[str, str] = {}
    run_options = RunOptions(
        settings=settings, output_dir=output_dir, device=str(torch_device), timeout_s=timeout_s
    )

    # --- extract the rest ---
    to_do_count = len(plan.entries) - len(done_ids)
    with ScanProgress(to_do_count, Console(stderr=True), progress) as progress_bar:
        progress_bar.set_current("Extracting faces")

        def finish(outcome: Outcome) -> None:
            if outcome.done:
                done_ids.add(outcome.video_id)
            else:
                skipped[outcome.video_id] = outcome.skip_reason or "it failed for an unknown reason"
            progress_bar.advance(outcome.video_id)
            if on_video_done is not None:
                on_video_done(outcome.video_id, "done" if outcome.done else "skipped")

        if workers_used == 1 or to_do_count <= 1:
            run_in_process(plan, done_ids, run_options, finish)
        else:
            run_in_pool(plan, done_ids, run_options, workers_used, finish)

    # --- manifest and summary, from the done-records ---
    skipped_videos = [
        SkippedVideo(video=plan.entry_by_id[video_id].relative_path, reason=reason)
        for video_id, reason in sorted(skipped.items())
    ]
    manifest_path = output_dir / MANIFEST_NAME
    crops_per_video = write_manifest(manifest_path, plan.entries, done_ids, settings, output_dir)
    options_used = {
        "layout": resolved_layout,
        "compression": compression,
        "splits_dir": None if splits_dir is None else os.path.abspath(splits_dir),
        # What decides the splits, so a faces folder says how its split was made.
        "group_by": group_by,
        "val_fraction": val_fraction,
        "test_fraction": test_fraction,
        "split_seed": seed,
        **asdict(settings),
        "frames_preset": frames.strip()
        if isinstance(frames, str) and frames.strip() in FRAME_PRESETS
        else None,
        # The weights whose crop geometry this run cut, and what they ask for.
        "weights": None if weights is None else os.path.abspath(weights),
        "model_preprocessing": None
        if model_preprocessing is None
        else model_preprocessing.to_dict(),
        "limit": limit,
        "shard": shard,
        "device": str(torch_device),
        "workers": workers_used,
        "timeout_s": timeout_s,
    }
    document = summary_document(
        dataset_root, plan.entries, crops_per_video, skipped_videos, options_used
    )
    summary_path = output_dir / SUMMARY_NAME
    write_summary(summary_path, document)

    return ExtractSummary(
        output_dir=output_dir,
        manifest_path=manifest_path,
        summary_path=summary_path,
        layout=resolved_layout,
        videos_selected=len(plan.entries),
        videos_extracted=document["videos_extracted"],
        videos_resumed=videos_resumed,
        crops=document["crops"],
        videos_by_split={
            split: split_counts["videos"]
            for split, split_counts in document["by_split"].items()
            if split_counts["videos"]
        },
        crops_by_split={
            split: split_counts["crops"]
            for split, split_counts in document["by_split"].items()
            if split_counts["crops"]
        },
        skipped=skipped_videos,
        workers=workers_used,
        elapsed_s=time.perf_counter() - started,
    )
