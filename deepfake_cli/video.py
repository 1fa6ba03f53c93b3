"""Which frames of a video to read, and reading them with decord.

This is the first stage of the pipeline (video -> frames -> faces -> crops -> detector -> verdict).

`read_frames` decodes in this process. It reads only the sampled frames (decord seeks to the
nearest keyframe and decodes forward), so memory stays flat however long the video is. decord is
known to hang forever on some damaged containers: where that must not block the program, decode
with `frame_reader.FrameReader`, which runs `read_frames` in a worker process it can kill.

Frames come out upright: rotation, codec and the stored frame size are read from the container
with OpenCV (`video_container`), since decord does not expose them.

This module must stay free of torch imports (the decoding worker imports it).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, TypedDict

import numpy as np

from deepfake_cli.errors import UsageError, VideoError
from deepfake_cli.video_container import ContainerMetadata, container_metadata, upright

VIDEO_EXTENSIONS = (
    ".mp4",
    ".avi",
    ".mov",
    ".mkv",
    ".webm",
    ".m4v",
    ".mpg",
    ".mpeg",
    ".wmv",
    ".flv",
    ".3gp",
)

# decord's `fault_tol`: when a frame cannot be decoded, decord silently substitutes the nearest
# decoded frame unless the number of substitutions exceeds the threshold. 0 would mean "off"
# (decord tests the parsed integer for truthiness), so the strictest setting is a tiny fraction:
# threshold = fraction * frame count < 1, and the first substituted frame raises.
DECORD_FAULT_TOLERANCE = 1e-9

# Frame times are computed as time_s * fps; this absorbs float error such as 0.1 * 30 = 3.0000000004
# so that a range starting at 0.1 s at 30 fps includes frame 3.
_FRAME_TIME_EPSILON = 1e-6


@dataclass(frozen=True)
class VideoInfo:
    """What a video is: frame count, rate and size as the frames come out of `read_frames`."""

    path: str
    num_frames: int
    fps: float
    duration_s: float
    width: int  # after rotation is applied
    height: int  # after rotation is applied
    rotation: int  # degrees clockwise from the container metadata (0, 90, 180 or 270)
    codec: str | None  # FourCC as OpenCV reports it (e.g. "avc1", "FMP4", "VP90"), None if unknown


@dataclass
class SampledFrames:
    """The frames that were read, with where they are in the video."""

    info: VideoInfo
    frame_indices: list[int]  # indices into the video's frames, sorted and unique
    times_s: list[float]  # frame_index / fps: nominal times from the average frame rate
    frames: np.ndarray  # (N, H, W, 3) uint8 RGB, upright (rotation already applied)


# --------------------------------------------------------------------------------------------
# Which frames to read
# --------------------------------------------------------------------------------------------


def _frame_range(num_frames: int, fps: float, start_s: float | None, end_s: float | None) -> range:
    """The frames whose start time lies in [start_s, end_s), clipped to the video."""
    if num_frames < 1:
        raise ValueError(f"num_frames must be at least 1, got {num_frames}")
    if start_s is None and end_s is None:
        return range(num_frames)
    if not (fps > 0 and math.isfinite(fps)):
        raise ValueError(f"a start or end time needs a positive frame rate, got fps={fps}")
    duration_s = num_frames / fps
    first_time_s = 0.0 if start_s is None else float(start_s)
    if not math.isfinite(first_time_s) or first_time_s < 0:
        raise UsageError(f"The start time must be 0 s or later, got {start_s} s.")
    if end_s is not None and not (math.isfinite(end_s) and end_s > first_time_s):
        raise UsageError(
            f"The end time ({end_s:g} s) must come after the start time ({first_time_s:g} s)."
        )
    first_index = math.ceil(first_time_s * fps - _FRAME_TIME_EPSILON)
    stop_index = num_frames
    if end_s is not None:
        stop_index = min(num_frames, math.ceil(end_s * fps - _FRAME_TIME_EPSILON))
    if first_index >= num_frames:
        raise UsageError(
            f"The start time {first_time_s:g} s is at or past the end of the video "
            f"({duration_s:g} s)."
        )
    if stop_index <= first_index:
        raise UsageError(
            f"No frame starts between {first_time_s:g} s and {end_s:g} s "
            f"(the video has {fps:g} frames per second)."
        )
    return range(first_index, stop_index)


def sample_frame_indices(
    num_frames: int,
    fps: float,
    count: int,
    *,
    start_s: float | None = None,
    end_s: float | None = None,
) -> list[int]:
    """`count` frame indices evenly spaced over [start_s, end_s) of a video.

    The range is cut into `count` equal segments and the frame at the centre of each is taken,
    so the samples cover the whole range without favouring its start or end. The result is
    deterministic, sorted and unique; it has fewer than `count` indices only when the range has
    fewer frames (then every frame in it). `fps` is only used to turn times into frame indices.

    Raises:
        UsageError: `count` < 1, or the time range is empty, negative or past the end.
        ValueError: `num_frames` < 1, or times given with a non-positive `fps`.
    """
    if count < 1:
        raise UsageError(f"The number of frames to sample must be at least 1, got {count}.")
    frames_in_range = _frame_range(num_frames, fps, start_s, end_s)
    range_length = len(frames_in_range)
    if count >= range_length:
        return list(frames_in_range)
    # Centre of segment k is at (k + 0.5) * length / count; integer arithmetic keeps it exact.
    # Consecutive centres are more than one frame apart (length > count), so they stay unique.
    return [
        frames_in_range.start + ((2 * segment + 1) * range_length) // (2 * count)
        for segment in range(count)
    ]


def every_kth_frame_indices(
    num_frames: int,
    fps: float,
    every: int,
    *,
    start_s: float | None = None,
    end_s: float | None = None,
    limit: int | None = None,
) -> list[int]:
    """Every `every`-th frame index over [start_s, end_s), starting with the first frame in it.

    `limit` keeps only the first `limit` of them (None: all).

    Raises:
        UsageError: `every` < 1, `limit` < 1, or the time range is empty, negative or past the end.
        ValueError: `num_frames` < 1, or times given with a non-positive `fps`.
    """
    if every < 1:
        raise UsageError(f"The frame step must be at least 1, got {every}.")
    if limit is not None and limit < 1:
        raise UsageError(f"The frame limit must be at least 1, got {limit}.")
    frames_in_range = _frame_range(num_frames, fps, start_s, end_s)
    indices = list(frames_in_range[::every])
    return indices if limit is None else indices[:limit]


# --------------------------------------------------------------------------------------------
# Reading frames in this process
# --------------------------------------------------------------------------------------------

_decord_module: Any = None


def load_decord() -> Any:
    """decord, imported once with its FFmpeg logging silenced.

    On bad files FFmpeg prints lines like "moov atom not found" to stderr; our `VideoError` says
    the same thing in one sentence. decord's own C++ warnings ("ERROR opening: ...") cannot be
    switched off from Python; the decoding worker sends its stderr to /dev/null instead.
    """
    global _decord_module
    if _decord_module is None:
        import decord

        decord.logging.set_level(decord.logging.QUIET)
        _decord_module = decord
    return _decord_module


def _checked_path(path: str | os.PathLike[str]) -> str:
    """The path as a string, after the checks that give clearer errors than FFmpeg's."""
    path_text = os.fsdecode(os.fspath(path))
    if not os.path.exists(path_text):
        raise VideoError(f"Cannot read video '{path_text}': the file does not exist.")
    if os.path.isdir(path_text):
        raise VideoError(f"Cannot read video '{path_text}': it is a folder, not a file.")
    if not os.path.isfile(path_text):
        raise VideoError(f"Cannot read video '{path_text}': it is not a regular file.")
    if os.path.getsize(path_text) == 0:
        raise VideoError(f"Cannot read video '{path_text}': the file is empty (0 bytes).")
    if not os.access(path_text, os.R_OK):
        raise VideoError(f"Cannot read video '{path_text}': permission denied.")
    return path_text


def _describe_decord_error(path_text: str, error: BaseException) -> str:
    """One sentence for the user from a decord exception (whose text is a C++ log line)."""
    detail = str(error)
    if "cannot find video stream" in detail:
        reason = "it has no video stream"
    elif "Error reading" in detail or "ERROR opening" in detail:
        reason = "it is not a video file FFmpeg can open, or it is truncated"
    elif "frame-count" in detail or "Invalid frame count" in detail:
        reason = "its frame count cannot be determined (a still image or a damaged container)"
    elif (
        "corrupted" in detail
        or "Error sending packet" in detail
        or "decoding" in detail
        # A damaged frame decodes at another size than the stream's, and decord's scaling
        # filter refuses it.
        or "feeding the filter graph" in detail
    ):
        reason = "it is damaged and some of its frames cannot be decoded"
    elif "must exactly match" in detail:
        # decord 0.6.0 mis-sizes frames whose padded row length is a multiple of their width
        # (output widths of 16, 32 or 48 pixels).
        reason = "decord cannot decode frames of this size"
    else:
        last_line = detail.strip().splitlines()[-1] if detail.strip() else type(error).__name__
        reason = f"decoding failed ({last_line.strip()})"
    return f"Cannot read video '{path_text}': {reason}."


@dataclass(frozen=True)
class _OpenedVideo:
    """A decord reader on a video, with what is known about the video before decoding."""

    path_text: str
    reader: Any  # decord.VideoReader
    num_frames: int
    fps: float
    metadata: ContainerMetadata

    def decode(self, frame_indices: list[int]) -> SampledFrames:
        """The given frames, upright, with where they are in the video; VideoError if damaged."""
        frames = upright(self._decode_rgb(frame_indices), self.metadata)
        info = VideoInfo(
            path=self.path_text,
            num_frames=self.num_frames,
            fps=self.fps,
            duration_s=self.num_frames / self.fps,
            width=int(frames.shape[2]),
            height=int(frames.shape[1]),
            rotation=self.metadata.rotation,
            codec=self.metadata.codec,
        )
        return SampledFrames(
            info=info,
            frame_indices=frame_indices,
            times_s=[frame_index / self.fps for frame_index in frame_indices],
            frames=frames,
        )

    def _decode_rgb(self, frame_indices: list[int]) -> np.ndarray:
        """The requested frames as decord returns them: (N, H, W, 3) uint8, or VideoError."""
        path_text = self.path_text
        try:
            batch = self.reader.get_batch(frame_indices)
            # A decord bridge set elsewhere (e.g. torch) changes the return type; accept any.
            frames = batch.asnumpy() if hasattr(batch, "asnumpy") else np.asarray(batch)
        except Exception as error:
            raise VideoError(_describe_decord_error(path_text, error)) from error
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
            raise VideoError(
                f"Cannot read video '{path_text}': decord returned frames of shape "
                f"{tuple(frames.shape)} instead of RGB images."
            )
        if frames.shape[0] != len(frame_indices):
            raise VideoError(
                f"Cannot read video '{path_text}': decord returned {frames.shape[0]} frames "
                f"instead of the {len(frame_indices)} requested."
            )
        return frames


def _open_video(path: str | os.PathLike[str]) -> _OpenedVideo:
    """A decord reader with the video's frame count, rate and metadata; VideoError if unusable."""
    path_text = _checked_path(path)
    decord = load_decord()
    try:
        reader = decord.VideoReader(path_text, ctx=decord.cpu(0), fault_tol=DECORD_FAULT_TOLERANCE)
        num_frames = len(reader)
        fps = float(reader.get_avg_fps())
    except Exception as error:  # decord raises RuntimeError, DECORDError, AssertionError
        raise VideoError(_describe_decord_error(path_text, error)) from error
    if num_frames < 1:
        raise VideoError(f"Cannot read video '{path_text}': it has no frames.")
    metadata = container_metadata(path_text)
    if not (math.isfinite(fps) and fps > 0):
        fps = metadata.fps
    if not (math.isfinite(fps) and fps > 0):
        raise VideoError(f"Cannot read video '{path_text}': it has no usable frame rate.")
    return _OpenedVideo(path_text, reader, num_frames, fps, metadata)


def probe_video(path: str | os.PathLike[str]) -> VideoInfo:
    """Frame count, frame rate, upright size, rotation and codec of a video.

    Decodes the first frame, so a file that opens but cannot be decoded fails here already.

    Raises:
        VideoError: the file is missing, empty, not a video, has no video stream or is damaged.
    """
    return _open_video(path).decode([0]).info


class ReadOptions(TypedDict, total=False):
    """Which frames to read: the options of `read_frames` (its defaults apply to those not given).

    Every decode function the reader may call takes exactly these (`stills.read_video_or_still`).
    """

    count: int
    every: int | None
    start_s: float | None
    end_s: float | None


def read_frames(
    path: str | os.PathLike[str],
    *,
    count: int = 32,
    every: int | None = None,
    start_s: float | None = None,
    end_s: float | None = None,
) -> SampledFrames:
    """Decode `count` frames evenly spaced over [start_s, end_s) of a video, in this process.

    With `every`, reads every `every`-th frame of the range instead, at most `count` of them
    (the first ones), so that memory stays bounded on long videos.

    Only the sampled frames are decoded and held in memory. decord can hang on some damaged
    files; use `frame_reader.FrameReader` where that must not block the program.

    Raises:
        VideoError: the file is missing, empty, not a video, has no video stream or is damaged.
        UsageError: `count` or `every` < 1, or the time range is empty or past the end.
    """
    video = _open_video(path)
    num_frames, fps = video.num_frames, video.fps
    if every is None:
        frame_indices = sample_frame_indices(num_frames, fps, count, start_s=start_s, end_s=end_s)
    else:
        frame_indices = every_kth_frame_indices(
            num_frames, fps, every, start_s=start_s, end_s=end_s, limit=count
        )
    return video.decode(frame_indices)


def read_frame_indices(path: str | os.PathLike[str], frame_indices: list[int]) -> SampledFrames:
    """Decode exactly the given frames of a video (upright, as `read_frames` returns them).

    For going back to frames a scan already chose (the HTML report re-reads the frames whose
    boxes a result records). The indices are sorted and deduplicated; `frame_indices` of the
    result says which frames came back. Decodes in this process, like `read_frames`.

    Raises:
        VideoError: the file cannot be decoded, or an index is past the video's last frame.
        UsageError: no index given, or a negative index.
    """
    wanted = sorted({int(frame_index) for frame_index in frame_indices})
    if not wanted:
        raise UsageError("At least one frame index is needed to read frames.")
    if wanted[0] < 0:
        raise UsageError(f"Frame indices start at 0, got {wanted[0]}.")
    video = _open_video(path)
    if wanted[-1] >= video.num_frames:
        raise VideoError(
            f"Cannot read frame {wanted[-1]} of video '{video.path_text}': it has "
            f"{video.num_frames} frames (was the file replaced since it was scanned?)."
        )
    return video.decode(wanted)
