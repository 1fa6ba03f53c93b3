"""One video: decoded frames -> faces (its own, or its original's) -> crop files -> done-record.

The stages are scan's: `FaceDetector` boxes, `link_tracks` persons, `crops.crop_tracks` crops,
so training sees the crops scanning later cuts. A failure that belongs to the video (it cannot
be decoded, the detector fails on it, it has no face) is an outcome with a one-sentence reason,
never an exception: one odd video must not end a long run.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from deepfake_cli.crops import crop_tracks, landmarks_in_crop
from deepfake_cli.errors import MattnError
from deepfake_cli.extract.plan import CropSettings
from deepfake_cli.extract.records import OriginalFaces, write_record
from deepfake_cli.faces import Detection, FaceDetector
from deepfake_cli.files import write_atomically
from deepfake_cli.frame_reader import PendingFrames
from deepfake_cli.manifest import BOXES_FROM_ORIGINAL, BOXES_FROM_SELF
from deepfake_cli.stills import is_still_path
from deepfake_cli.tracks import Track, link_tracks
from deepfake_cli.video import SampledFrames

# A crop file name as this module writes it: <person>_<frame index>.<format>.
_CROP_FILE_NAME = re.compile(r"^\d+_\d+\.(png|jpg)$")


@dataclass(frozen=True)
class VideoTask:
    """One video to extract: picklable, so it can go to a worker process."""

    video_id: str
    relative_path: str
    video_path: str
    crop_folder: str  # relative to the output folder, POSIX
    # The original's faces when this is a fake paired with an original that has them.
    original: OriginalFaces | None = None


@dataclass(frozen=True)
class Outcome:
    """A finished video: done (its done-record is on disk), or why it was skipped."""

    video_id: str
    done: bool
    skip_reason: str | None = None


def extract_video(
    task: VideoTask,
    pending: PendingFrames,
    detector: FaceDetector,
    settings: CropSettings,
    output_dir: Path,
) -> Outcome:
    """Decode, find faces (or take the original's), write the crops, then the done-record."""
    try:
        sampled = pending.result()
    except MattnError as error:
        return Outcome(task.video_id, done=False, skip_reason=error.message)

    tracks = _tracks_from_original(task.original, sampled)
    boxes_from = BOXES_FROM_ORIGINAL
    if tracks is None:
        boxes_from = BOXES_FROM_SELF
        try:
            detections = detector.detect(sampled.frames)
        except Exception as error:  # MTCNN failing on one odd video must not end a long run
            reason = f"Face detection failed ({type(error).__name__}: {error})."
            return Outcome(task.video_id, done=False, skip_reason=reason)
        # The same linking as scan: person ids by first appearance, at most 4 faces a frame.
        tracks = link_tracks(detections, max_faces=settings.max_faces)
    if not tracks:
        where = f"the {len(sampled.frame_indices)} sampled frames"
        if is_still_path(task.video_path):
            where = "the image"
        return Outcome(task.video_id, done=False, skip_reason=f"No face was found in {where}.")
    crop_rows = _write_crops(task, sampled, tracks, boxes_from, settings, output_dir)
    write_record(
        output_dir,
        video_id=task.video_id,
        relative_path=task.relative_path,
        fingerprint=settings.fingerprint(),
        sampled=sampled,
        tracks=tracks,
        boxes_from=boxes_from,
        crop_rows=crop_rows,
    )
    return Outcome(task.video_id, done=True)


def _tracks_from_original(
    original: OriginalFaces | None, sampled: SampledFrames
) -> list[Track] | None:
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
    # Same frame indices, so the original's frame positions are this video's too.
    return list(original.tracks)


def _write_crops(
    task: VideoTask,
    sampled: SampledFrames,
    tracks: Sequence[Track],
    boxes_from: str,
    settings: CropSettings,
    output_dir: Path,
) -> list[dict[str, str]]:
    """Write every (person, frame) crop of the video; the crop columns of its manifest rows."""
    crop_folder = output_dir / task.crop_folder
    _empty_crop_folder(crop_folder)
    # Person order, then frame order: the order of the rows in the manifest.
    tracks = sorted(tracks, key=lambda track: track.person_id)
    detections_of = {track.person_id: track.detections for track in tracks}
    track_crops = crop_tracks(sampled.frames, tracks, settings.crop_geometry)
    crop_rows = []
    for crop, (person, position) in zip(track_crops.crops, track_crops.keys, strict=True):
        detection = detections_of[person][position]
        frame_index = sampled.frame_indices[position]
        crop_name = f"{person}_{frame_index}.{settings.image_format}"
        write_atomically(crop_folder / crop_name, _encode_image(crop, settings))
        crop_rows.append(
            {
                "crop_path": f"{task.crop_folder}/{crop_name}",
                "frame_index": str(frame_index),
                "time_s": f"{sampled.times_s[position]:.3f}",
                "person": str(person),
                # Three decimals: evaluate places the crop's pixel squares from it as crop_face
                # did (`crops.recrop`), so it must round to the same whole pixels.
                "box": _format_numbers(detection.box_xyxy, decimals=3),
                "landmarks": _crop_landmarks_text(detection, settings),
                "det_prob": f"{detection.det_prob:.4f}",
                "boxes_from": boxes_from,
            }
        )
    return crop_rows


def _empty_crop_folder(crop_folder: Path) -> None:
    """Create the folder, removing crops of an earlier, unfinished attempt (or other settings).

    So the folder holds exactly what the done-record lists.
    """
    try:
        crop_folder.mkdir(parents=True, exist_ok=True)
        for stale in crop_folder.iterdir():
            if stale.is_file() and (
                _CROP_FILE_NAME.match(stale.name) or stale.name.endswith(".tmp")
            ):
                stale.unlink()
    except OSError as error:
        raise MattnError(
            f"Cannot write crops to {crop_folder}: {error.strerror or error}."
        ) from error


def _crop_landmarks_text(detection: Detection, settings: CropSettings) -> str:
    """The 5 landmarks in crop pixels, as the manifest writes them; "" when unknown."""
    if detection.landmarks is None:
        return ""
    crop_landmarks = landmarks_in_crop(
        detection.landmarks,
        detection.box_xyxy,
        size=settings.crop_size,
        margin_ratio=settings.margin_ratio,
        align=settings.align,
    )
    return _format_numbers([value for point in crop_landmarks for value in point])


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


def _format_numbers(values: Sequence[float], decimals: int = 1) -> str:
    """Space-separated, `decimals` decimals; -0 is written 0 so equal crops give equal text."""
    texts = []
    for value in values:
        text = f"{value:.{decimals}f}"
        texts.append(text[1:] if text.startswith("-") and float(text) == 0 else text)
    return " ".join(texts)
