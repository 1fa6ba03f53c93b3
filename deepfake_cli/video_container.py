"""What a video's container says that decord does not tell, and turning frames upright.

Rotation: phones store portrait video as landscape frames plus a rotation in the container.
decord 0.6.0 applies that rotation itself (a transpose filter in its decoder), so its frames are
already upright; OpenCV reads the rotation for `VideoInfo.rotation`, and `rotate_frames` is applied
only if the decoded frames are visibly still in stored orientation (a decord build that ignores
rotation), so frames are never rotated twice. PyAV leaves frames as stored; `pyav_video` turns
them with `rotate_frames` by the display matrix each frame carries.

This module must stay free of torch imports (the decoding worker imports it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ContainerMetadata:
    """What OpenCV reads from a video's container that decord does not expose."""

    rotation: int
    codec: str | None
    stored_size: tuple[int, int] | None  # (width, height) as encoded, before rotation
    fps: float


def normalized_rotation(degrees: float) -> int:
    """0, 90, 180 or 270 (clockwise): display matrices only ever hold quarter turns in practice."""
    if not math.isfinite(degrees):
        return 0
    return (round(degrees / 90.0) * 90) % 360


def _fourcc_text(fourcc_value: float) -> str | None:
    fourcc = int(fourcc_value)
    if fourcc <= 0:
        return None
    text = fourcc.to_bytes(4, "little").decode("latin-1").strip("\x00 ")
    return text if text and text.isprintable() else None


def container_metadata(path_text: str) -> ContainerMetadata:
    """Rotation, codec and stored size via OpenCV; neutral values if OpenCV cannot open it."""
    import cv2

    capture = cv2.VideoCapture(path_text)
    try:
        if not capture.isOpened():
            return ContainerMetadata(rotation=0, codec=None, stored_size=None, fps=0.0)
        rotation = normalized_rotation(capture.get(cv2.CAP_PROP_ORIENTATION_META))
        codec = _fourcc_text(capture.get(cv2.CAP_PROP_FOURCC))
        fps = float(capture.get(cv2.CAP_PROP_FPS))
        # With auto-orientation on (the default) OpenCV reports the displayed size; switched off
        # it reports the size as stored, which tells whether decord's frames are rotated yet.
        capture.set(cv2.CAP_PROP_ORIENTATION_AUTO, 0)
        stored_width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        stored_height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        stored_size = (stored_width, stored_height) if stored_width > 0 < stored_height else None
        return ContainerMetadata(rotation=rotation, codec=codec, stored_size=stored_size, fps=fps)
    finally:
        capture.release()


def rotate_frames(frames: np.ndarray, rotation: int) -> np.ndarray:
    """Turn frames stored with a container rotation of `rotation` degrees clockwise upright.

    Works on one frame (H, W, C) or a batch (N, H, W, C); returns a C-contiguous array (torch
    and OpenCV both want positive strides).
    """
    if rotation % 90 != 0:
        raise ValueError(f"rotation must be a multiple of 90 degrees, got {rotation}")
    # np.rot90 turns counter-clockwise for positive k; the metadata says how far to turn clockwise.
    quarter_turns = (rotation // 90) % 4
    if quarter_turns == 0:
        return frames
    return np.ascontiguousarray(np.rot90(frames, k=-quarter_turns, axes=(-3, -2)))


def upright(frames: np.ndarray, metadata: ContainerMetadata) -> np.ndarray:
    """decord's frames, rotated by us only when decord evidently did not rotate them.

    decord 0.6.0 applies the container rotation itself. For a quarter turn of a non-square video
    the frame shape shows whether that happened; for 180 degrees it cannot, and decord's own
    handling is trusted.
    """
    if metadata.rotation not in (90, 270) or metadata.stored_size is None:
        return frames
    stored_width, stored_height = metadata.stored_size
    decoded_height, decoded_width = frames.shape[1], frames.shape[2]
    if stored_width != stored_height and (decoded_width, decoded_height) == metadata.stored_size:
        return rotate_frames(frames, metadata.rotation)
    return frames
