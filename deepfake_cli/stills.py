"""Still photographs as one-frame videos, so that face extraction reads photo datasets too.

Self-blended (SBI) and FFHQ-style training sets come as photographs. A still image is read as
a video of one frame: frame index 0 at time 0.0 s, so every later stage (MTCNN, tracks,
`crops.crop_tracks`, done-records, manifest rows) treats it as it treats a video. Sampling
options (`count`, `every`, a time range) do not apply: a still has one frame.

`read_video_or_still` is the decode function `frame_reader.FrameReader` runs in its worker
process for a list that mixes videos and stills; it sends each file to `video.read_frames` or
`read_still` by its file ending.

This module must stay free of torch imports (the decoding worker imports it).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

# Imported at the top, not when first needed: in the decoding worker this module is imported
# before decord is loaded, and OpenCV loaded after decord fails on every PNG ("libpng error:
# bad parameters to zlib"; decord's bundled libraries shadow OpenCV's zlib).
import cv2
import numpy as np

from deepfake_cli.errors import VideoError
from deepfake_cli.video import ReadOptions, SampledFrames, VideoInfo, read_frames

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing.Unpack for **kwargs is Python 3.11+

#: File endings read as still images (compared case-insensitively).
STILL_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def is_still_path(path: str | os.PathLike[str]) -> bool:
    """True if the file's ending says it is a still image rather than a video."""
    return Path(os.fspath(path)).suffix.lower() in STILL_EXTENSIONS


def read_still(path: str | os.PathLike[str]) -> SampledFrames:
    """Decode a still image as a one-frame video: (1, H, W, 3) uint8 RGB, upright.

    OpenCV applies the EXIF orientation, drops an alpha channel, turns grey into RGB and 16-bit
    into 8-bit. `info.fps` is 0.0 and `info.duration_s` 0.0: a photograph has no frame rate.

    Raises:
        VideoError: the file is missing, empty, a folder, or not an image OpenCV can decode.
    """
    path_text = os.fsdecode(os.fspath(path))
    if not os.path.exists(path_text):
        raise VideoError(f"Cannot read image '{path_text}': the file does not exist.")
    if not os.path.isfile(path_text):
        raise VideoError(f"Cannot read image '{path_text}': it is not a regular file.")
    if os.path.getsize(path_text) == 0:
        raise VideoError(f"Cannot read image '{path_text}': the file is empty (0 bytes).")
    image_bgr = cv2.imread(path_text, cv2.IMREAD_COLOR)
    if image_bgr is None:
        raise VideoError(
            f"Cannot read image '{path_text}': it is not an image OpenCV can decode, or it is "
            f"damaged."
        )
    frame = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)
    height, width = frame.shape[:2]
    info = VideoInfo(
        path=path_text,
        num_frames=1,
        fps=0.0,
        duration_s=0.0,
        width=int(width),
        height=int(height),
        rotation=0,  # OpenCV has already turned it upright from its EXIF orientation
        codec=None,
    )
    return SampledFrames(
        info=info,
        frame_indices=[0],
        times_s=[0.0],
        frames=np.ascontiguousarray(frame[None]),  # (1, H, W, 3)
    )


def read_video_or_still(
    path: str | os.PathLike[str], **sampling: Unpack[ReadOptions]
) -> SampledFrames:
    """`read_still` for a still image, else `video.read_frames` with the sampling options."""
    if is_still_path(path):
        return read_still(path)
    return read_frames(path, **sampling)
