"""manifest.csv and summary.json, assembled from the done-records at the end of a run.

Both are rebuilt from scratch every run, so a run that was interrupted and resumed ends with
the same files, byte for byte, as one that never stopped. The columns and file names are the
faces folder's contract with training (`deepfake_cli.manifest`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from deepfake_cli import __version__
from deepfake_cli.datasets import VideoEntry
from deepfake_cli.errors import MattnError
from deepfake_cli.extract.plan import CropSettings
from deepfake_cli.extract.records import read_record
from deepfake_cli.files import write_atomically
from deepfake_cli.manifest import ALIGNED, MANIFEST_NAME, SPLITS, UPRIGHT, ManifestWriter


@dataclass(frozen=True)
class SkippedVideo:
    """A video that gave no crops, and why (one sentence)."""

    video: str  # relative to the dataset root
    reason: str


def write_manifest(
    manifest_path: Path,
    entries: Sequence[VideoEntry],
    done_ids: set[str],
    settings: CropSettings,
    output_dir: Path,
) -> dict[str, int]:
    """Write manifest.csv from the done-records, atomically; the crop count of each video.

    One row per crop, sorted by (video_id, person, frame_index). The dataset columns come from
    this run's listing (so they follow the current labels and splits), the crop columns from
    the done-records. Records are read one at a time, so memory does not grow with the dataset.
    """
    fingerprint = settings.fingerprint()
    crops_per_video: dict[str, int] = {}
    done_entries = [entry for entry in entries if entry.video_id in done_ids]
    with ManifestWriter(manifest_path) as writer:
        for entry in sorted(done_entries, key=lambda entry: entry.video_id):
            record = read_record(output_dir, entry, fingerprint)
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
                writer.write_row(
                    {
                        **crop_row,
                        "video_path": entry.relative_path,
                        "video_id": entry.video_id,
                        "label": entry.label,
                        "method": entry.method,
                        "compression": entry.compression,
                        "split": entry.split,
                        "group": entry.group,
                        "crop_size": settings.crop_size,
                        "margin_ratio": f"{settings.margin_ratio:g}",
                        "align": ALIGNED if settings.align else UPRIGHT,
                    }
                )
            crops_per_video[entry.video_id] = len(crop_rows)
    return crops_per_video


def summary_document(
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


def write_summary(summary_path: Path, document: dict[str, Any]) -> None:
    """summary.json, indented, UTF-8, atomically."""
    write_atomically(summary_path, json.dumps(document, indent=2, ensure_ascii=False) + "\n")


def _split_order(name: str) -> tuple[int, str]:
    """Splits in train, val, test order; other keys (labels, methods) by name after them."""
    return (SPLITS.index(name), "") if name in SPLITS else (len(SPLITS), name)
