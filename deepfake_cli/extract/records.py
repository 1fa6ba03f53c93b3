"""Done-records: what makes a run resumable, and how a fake gets its original's faces.

Once all crops of a video are on disk, a done-record `.progress/<hash of video_id>.json` is
written atomically, holding the video's crop rows and its face tracks (at full precision, so a
fake that reuses them crops exactly as from the original). A record made with other settings,
by another record version, or for another file is treated as absent: the video is redone.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepfake_cli.datasets import VideoEntry
from deepfake_cli.errors import MattnError
from deepfake_cli.faces import Detection
from deepfake_cli.files import write_atomically
from deepfake_cli.manifest import CROPS_FOLDER
from deepfake_cli.tracks import Track
from deepfake_cli.video import SampledFrames

#: Where done-records go, inside the output folder (hidden: it is extract's own bookkeeping).
PROGRESS_FOLDER = ".progress"
#: Bumped when a done-record's content changes meaning; older records are redone.
RECORD_VERSION = 1


@dataclass(frozen=True)
class OriginalFaces:
    """A real video's sampled frames and face tracks, which its fakes reuse."""

    num_frames: int
    frame_indices: tuple[int, ...]
    frame_size: tuple[int, int]  # (width, height)
    # One track per person, detections keyed by position among `frame_indices`.
    tracks: tuple[Track, ...]


def done_record_path(output_dir: Path, video_id: str) -> Path:
    """Where the done-record of a video goes: named by a hash, since ids may hold "/"."""
    digest = hashlib.sha256(video_id.encode("utf-8")).hexdigest()[:24]
    return output_dir / PROGRESS_FOLDER / f"{digest}.json"


def make_output_folders(output_dir: Path) -> None:
    """The output folder with its `.progress/` and `crops/` folders."""
    try:
        (output_dir / PROGRESS_FOLDER).mkdir(parents=True, exist_ok=True)
        (output_dir / CROPS_FOLDER).mkdir(exist_ok=True)
    except OSError as error:
        raise MattnError(
            f"Cannot create the output folder {output_dir}: {error.strerror or error}."
        ) from error


def read_record(output_dir: Path, entry: VideoEntry, fingerprint: str) -> dict[str, Any] | None:
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


def write_record(
    output_dir: Path,
    *,
    video_id: str,
    relative_path: str,
    fingerprint: str,
    sampled: SampledFrames,
    tracks: Sequence[Track],
    boxes_from: str,
    crop_rows: list[dict[str, str]],
) -> None:
    """Write the done-record of a video whose crops are all on disk (written last, atomically).

    `crop_rows` hold the video's crop columns of the manifest; tracks are stored with frame
    indices (not positions) so a record reads the same whatever sampled it.
    """
    record = {
        "record_version": RECORD_VERSION,
        "settings": fingerprint,
        "video_id": video_id,
        "relative_path": relative_path,
        "num_frames": sampled.info.num_frames,
        "frame_size": [sampled.info.width, sampled.info.height],
        "frame_indices": list(sampled.frame_indices),
        "boxes_from": boxes_from,
        # Full precision, so a fake reusing these boxes crops exactly as from the original.
        "tracks": [
            {
                "person": track.person_id,
                "faces": [
                    _detection_to_json(sampled.frame_indices[position], track.detections[position])
                    for position in track.frame_positions
                ],
            }
            for track in sorted(tracks, key=lambda track: track.person_id)
        ],
        "crops": crop_rows,
    }
    # Its presence means every crop it lists is complete on disk.
    write_atomically(
        done_record_path(output_dir, video_id),
        json.dumps(record, separators=(",", ":")).encode("utf-8"),
    )


def original_faces_from_record(record: dict[str, Any]) -> OriginalFaces:
    """The frames and tracks a fake needs from its original's done-record."""
    frame_indices = tuple(int(index) for index in record["frame_indices"])
    position_of_index = {index: position for position, index in enumerate(frame_indices)}
    tracks = tuple(
        Track(
            person_id=int(track["person"]),
            detections={
                position_of_index[int(face["frame_index"])]: _detection_from_json(face)
                for face in track["faces"]
            },
        )
        for track in record["tracks"]
    )
    width, height = record["frame_size"]
    return OriginalFaces(
        num_frames=int(record["num_frames"]),
        frame_indices=frame_indices,
        frame_size=(int(width), int(height)),
        tracks=tracks,
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


def _detection_from_json(face: dict[str, Any]) -> Detection:
    x_min, y_min, x_max, y_max = (float(value) for value in face["box_xyxy"])
    return Detection(
        box_xyxy=(x_min, y_min, x_max, y_max),
        det_prob=float(face["det_prob"]),
        landmarks=None
        if face["landmarks"] is None
        else tuple((float(point[0]), float(point[1])) for point in face["landmarks"]),
    )
