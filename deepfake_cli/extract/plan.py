"""What to extract: the crop settings, and which videos in which order.

The plan puts each real original right before the fakes made from it, so the original's faces
are on disk when its fakes come up and they can reuse its boxes. Sharding is by the pairing key
(the original's id for a paired fake), so an original and its fakes land in the same shard.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from deepfake_cli.datasets import VideoEntry
from deepfake_cli.errors import UsageError
from deepfake_cli.manifest import CROPS_FOLDER, FAKE, REAL
from deepfake_cli.model.config import CropGeometry, Preprocessing
from deepfake_cli.shards import in_shard

#: Default crops are this much larger than the model's input, so training can random-crop (or
#: shift and rescale) and still see the whole face square.
CROP_SIZE_OVER_INPUT = 1.15
IMAGE_FORMATS = ("png", "jpg")
#: At most this many faces per frame are kept (largest first), as `mattn scan` does.
MAX_FACES_PER_FRAME = 4
#: `--frames NAME`: (frames, every) of a named recipe. "paper" is what the authors' recipe
#: reads (MAT.md §6): training takes every 10th of the first 500 frames, shifted by one frame
#: each epoch, so ten epochs use every one of frames 0..499; evaluation takes 20 at stride 5
#: from the first 100 face frames, which are among them. So: every frame, at most 500.
FRAME_PRESETS: dict[str, tuple[int, int]] = {"paper": (500, 1)}

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

    @property
    def crop_geometry(self) -> CropGeometry:
        return CropGeometry(self.crop_size, self.margin_ratio, self.align)

    def fingerprint(self) -> str:
        """Short hash of the settings: a done-record made with other settings is redone."""
        canonical = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def default_crop_size(input_size: int | None = None) -> int:
    """The model input (default 380) times CROP_SIZE_OVER_INPUT (437), up to a multiple of 8."""
    # The default input size is read from the weights' preprocessing defaults, not repeated.
    size = Preprocessing().input_size if input_size is None else input_size
    return 8 * math.ceil(CROP_SIZE_OVER_INPUT * size / 8)


def resolve_frames(frames: int | str, every: int | None) -> tuple[int, int | None]:
    """(frames, every) from `--frames` (a number, or a name of FRAME_PRESETS) and `--every`."""
    if isinstance(frames, int):
        return frames, every
    text = frames.strip()
    if text in FRAME_PRESETS:
        if every is not None:
            raise UsageError(f"--frames {text} sets the frame step itself; leave out --every.")
        return FRAME_PRESETS[text]
    try:
        return int(text), every
    except ValueError:
        presets = ", ".join(FRAME_PRESETS)
        raise UsageError(f"--frames must be a number or {presets}, got {frames!r}.") from None


def weights_crop_geometry(
    preprocessing: Preprocessing,
    *,
    crop_size: int | None,
    margin_ratio: float | None,
    align: bool,
    weights_name: str,
) -> CropGeometry:
    """The stored crops for a model: their centre `input_size` pixels are its crops, unresized.

    A crop of side S cut with margin m_w * S / I holds, in its centre I x I pixels, the crop
    of margin m_w the model is fed, at the scale it is fed (up to where the two squares snap to
    whole frame pixels, which `crops.recrop` accounts for), while the rest is the slack training
    random-crops in, as the authors centre-cut their larger face images.
    """
    if margin_ratio is not None:
        raise UsageError(
            f"--margin and --weights both set the crop margin; leave out --margin (the weights "
            f"{weights_name} ask for {preprocessing.margin_ratio:g})."
        )
    if align and not preprocessing.align:
        raise UsageError(
            f"--align asks for aligned crops, but the weights {weights_name} were trained on "
            "upright ones; leave out --align."
        )
    input_size = preprocessing.input_size
    side = default_crop_size(input_size) if crop_size is None else crop_size
    if side < input_size:
        raise UsageError(
            f"--crop-size must be at least the weights' input size ({input_size}) with "
            f"--weights, got {side}."
        )
    # Six significant digits, as manifest.csv writes it, so the file says exactly this margin.
    stored_margin = float(f"{preprocessing.margin_ratio * side / input_size:.6g}")
    return CropGeometry(side, stored_margin, preprocessing.align)


def checked_settings(**values: Any) -> CropSettings:
    """CropSettings from the command's options; UsageError for a value that makes no sense."""
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


def check_run_options(*, workers: int, limit: int | None, timeout_s: float | None) -> None:
    """UsageError for a worker count, limit or timeout that makes no sense."""
    if workers < 1:
        raise UsageError(f"--workers must be at least 1, got {workers}.")
    if limit is not None and limit < 1:
        raise UsageError(f"--limit must be at least 1, got {limit}.")
    if timeout_s is not None and not timeout_s > 0:
        raise UsageError(f"--timeout must be a positive number of seconds, got {timeout_s:g}.")


@dataclass
class Plan:
    """The selected videos, in processing order, and who waits for whom."""

    entries: list[VideoEntry]  # processing order: each original before its fakes
    # video_id of the selected original whose boxes a fake reuses.
    original_of: dict[str, str] = field(default_factory=dict)
    entry_by_id: dict[str, VideoEntry] = field(default_factory=dict)


def plan_videos(
    entries: Sequence[VideoEntry], *, shard: tuple[int, int] | None, limit: int | None
) -> Plan:
    """Order videos so each original comes right before its fakes, then shard and limit."""
    entry_by_path = {entry.relative_path: entry for entry in entries}

    def original_of(entry: VideoEntry) -> VideoEntry | None:
        if entry.label != FAKE or entry.source_relative_path is None:
            return None
        original = entry_by_path.get(entry.source_relative_path)
        return original if original is not None and original.label == REAL else None

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
    return Plan(
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


def crop_folder_in_output(video_id: str) -> str:
    """The crop folder relative to the output folder, POSIX: what `crop_path` starts with."""
    return f"{CROPS_FOLDER}/{crop_folder_for(video_id)}"
