"""A codec corpus made on the spot: tiny clips in every common container, each frame numbered.

Written with PyAV (which ships its own FFmpeg), so the corpus is the same wherever the tests
run. Every frame carries its own index as black/white 16 px blocks (one bit per block, 11 bits)
plus a red top-left block, which survive lossy codecs, chroma subsampling and rotation: "the
frame at index k" can be checked on the pixels. The corpus is used by tests/test_codec_corpus.py,
benchmarks/decode_speed.py and scripts/fuzz_decode.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from tests.test_video import set_mp4_rotation

BLOCK_PX = 16
INDEX_BITS = 11  # frame indices up to 2047


def numbered_frame(frame_index: int, width: int, height: int) -> np.ndarray:
    """An RGB frame: grey, `frame_index` in binary as blocks after a red top-left block."""
    frame = np.full((height, width, 3), 128, np.uint8)
    frame[:BLOCK_PX, :BLOCK_PX] = (255, 0, 0)
    for bit in range(INDEX_BITS):
        top, left = _bit_block(bit, width)
        if top + BLOCK_PX > height:
            break
        frame[top : top + BLOCK_PX, left : left + BLOCK_PX] = 255 if (frame_index >> bit) & 1 else 0
    return frame


def frame_number(frame_rgb: np.ndarray) -> int:
    """The index drawn by `numbered_frame`, read back from an upright RGB frame."""
    height, width = frame_rgb.shape[:2]
    frame_index = 0
    for bit in range(INDEX_BITS):
        top, left = _bit_block(bit, width)
        if top + BLOCK_PX > height:
            break
        inner = frame_rgb[top + 4 : top + BLOCK_PX - 4, left + 4 : left + BLOCK_PX - 4]
        if inner.mean() > 128:
            frame_index |= 1 << bit
    return frame_index


def _bit_block(bit: int, width: int) -> tuple[int, int]:
    """(top, left) of the block that holds `bit`: row by row, after the red corner block."""
    row, column = divmod(bit + 1, width // BLOCK_PX)
    return row * BLOCK_PX, column * BLOCK_PX


@dataclass(frozen=True)
class Clip:
    """One corpus entry: how to write it, and what it is for."""

    name: str
    file_name: str
    container: str  # FFmpeg muxer name
    codec: str  # FFmpeg encoder name
    options: dict[str, str] = field(default_factory=dict)
    pixel_format: str = "yuv420p"
    num_frames: int = 40
    fps: int = 25
    width: int = 64
    height: int = 48
    rotation: int = 0  # display rotation, degrees clockwise (MP4 and MOV only)
    # Frame durations in milliseconds, repeated (variable frame rate); None: constant rate.
    durations_ms: tuple[int, ...] | None = None


# x264 at near-lossless quality, GOPs of 10 frames with 3 B-frames, no scene-cut keyframes.
_GOP_10 = "bframes=3:keyint=10:min-keyint=10:scenecut=0"
_X264 = {"crf": "1", "x264-params": _GOP_10}
_X264_OPEN_GOP = {"crf": "1", "x264-params": _GOP_10 + ":open-gop=1"}
# As phones and screen recorders often write it: no B-frames, so packets come in display order.
_X264_NO_B = {"crf": "1", "x264-params": "bframes=0:keyint=10:min-keyint=10:scenecut=0"}
# MPEG-1/2/4 Part 2 and friends: quantiser 2, 12-frame GOPs, 2 B-frames (FFmpeg's GOPs are open).
_MPEG = {"qscale": "2", "g": "12", "bf": "2"}

CORPUS: tuple[Clip, ...] = (
    Clip("mp4-h264-bframes", "h264.mp4", "mp4", "libx264", _X264),
    Clip("mp4-h264-no-bframes", "h264_no_b.mp4", "mp4", "libx264", _X264_NO_B),
    Clip("mpeg1-ps", "mpeg1.mpg", "mpeg", "mpeg1video", _MPEG, num_frames=75),
    Clip("mpeg2-ps", "mpeg2.mpg", "vob", "mpeg2video", _MPEG, num_frames=75),
    Clip("mpeg2-ts", "mpeg2.ts", "mpegts", "mpeg2video", _MPEG),
    Clip("h264-ts", "h264.ts", "mpegts", "libx264", _X264),
    Clip("avi-mpeg4-part2", "mpeg4.avi", "avi", "mpeg4", _MPEG),
    Clip("mp4-mpeg4-part2", "mpeg4.mp4", "mp4", "mpeg4", _MPEG),
    Clip("avi-h264", "h264.avi", "avi", "libx264", _X264),
    Clip("avi-mjpeg", "mjpeg.avi", "avi", "mjpeg", {"qscale": "2"}, pixel_format="yuvj420p"),
    Clip("webm-vp9", "vp9.webm", "webm", "libvpx-vp9", {"crf": "10", "b": "0", "g": "10"}),
    Clip("mkv-h264", "h264.mkv", "matroska", "libx264", _X264),
    Clip("mkv-mpeg2", "mpeg2.mkv", "matroska", "mpeg2video", _MPEG),
    Clip("mov-h264", "h264.mov", "mov", "libx264", _X264),
    Clip("mp4-vfr", "vfr.mp4", "mp4", "libx264", _X264, durations_ms=(90, 20, 20, 40)),
    Clip("mp4-rotated-90", "rotated.mp4", "mp4", "libx264", _X264, width=96, height=64,
         rotation=90),
    Clip("mov-rotated-270", "rotated.mov", "mov", "libx264", _X264, width=96, height=64,
         rotation=270),
    Clip("mp4-open-gop", "open_gop.mp4", "mp4", "libx264", _X264_OPEN_GOP),
    Clip("mkv-open-gop", "open_gop.mkv", "matroska", "libx264", _X264_OPEN_GOP),
    Clip("wmv2-asf", "wmv2.wmv", "asf", "wmv2", {"qscale": "2"}),
    Clip("flv-h264", "h264.flv", "flv", "libx264", _X264),
    Clip("mp4-av1", "av1.mp4", "mp4", "libsvtav1", {"crf": "20", "g": "10"}),
)  # fmt: skip


def clip_named(name: str) -> Clip:
    return next(clip for clip in CORPUS if clip.name == name)


def write_clip(clip: Clip, folder: Path, *, num_frames: int | None = None) -> Path:
    """Write `clip` into `folder` (optionally with another frame count); returns its path."""
    path = Path(folder) / clip.file_name
    frame_count = clip.num_frames if num_frames is None else num_frames
    with av.open(str(path), "w", format=clip.container) as container:
        stream = container.add_stream(clip.codec, rate=clip.fps, options=dict(clip.options))
        stream.width, stream.height, stream.pix_fmt = clip.width, clip.height, clip.pixel_format
        if clip.durations_ms is not None:
            stream.codec_context.time_base = stream.time_base = Fraction(1, 1000)
        pts_ms = 0
        for frame_index in range(frame_count):
            frame = av.VideoFrame.from_ndarray(
                numbered_frame(frame_index, clip.width, clip.height), format="rgb24"
            ).reformat(format=clip.pixel_format)
            if clip.durations_ms is not None:
                frame.pts, frame.time_base = pts_ms, Fraction(1, 1000)
                pts_ms += clip.durations_ms[frame_index % len(clip.durations_ms)]
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    if clip.rotation:
        set_mp4_rotation(path, clip.rotation)
    return path


def write_corpus(folder: Path) -> dict[str, Path]:
    """Every clip of the corpus written into `folder`: name -> path."""
    return {clip.name: write_clip(clip, folder) for clip in CORPUS}
