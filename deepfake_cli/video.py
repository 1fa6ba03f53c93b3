"""Which frames of a video to read, and reading them with decord.

This is the first stage of the pipeline (video -> frames -> faces -> crops -> detector -> verdict).

Two ways to decode:

* `read_frames` decodes in this process. It reads only the sampled frames (decord seeks to the
  nearest keyframe and decodes forward), so memory stays flat however long the video is.
* `FrameReader` decodes in a separate worker process that it can kill, because decord is known to
  hang forever on some damaged containers; a hung file becomes a `VideoError` and the next file
  gets a fresh worker. The worker never imports torch (nor the `deepfake_cli` package
  `__init__`): it starts as a plain `python -c` child that imports only this module, `errors`,
  numpy, decord and OpenCV.

Rotation: phones store portrait video as landscape frames plus a rotation in the container.
decord 0.6.0 applies that rotation itself (a transpose filter in its decoder), so its frames are
already upright; OpenCV reads the rotation for `VideoInfo.rotation`, and `rotate_frames` is applied
only if the decoded frames are visibly still in stored orientation (a decord build that ignores
rotation), so frames are never rotated twice.

This module must stay free of torch imports (see `FrameReader`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import pickle
import queue
import struct
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import asdict, dataclass
from typing import IO, Any

import numpy as np

from deepfake_cli.errors import LayoutError, MattnError, UsageError, VideoError, WeightsError

logger = logging.getLogger(__name__)

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


def _decord() -> Any:
    """decord, imported once with its FFmpeg logging silenced.

    On bad files FFmpeg prints lines like "moov atom not found" to stderr; our `VideoError` says
    the same thing in one sentence. decord's own C++ warnings ("ERROR opening: ...") cannot be
    switched off from Python; `FrameReader`'s worker sends its stderr to /dev/null instead.
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
class _ContainerMetadata:
    """What OpenCV reads from the container that decord does not expose."""

    rotation: int
    codec: str | None
    stored_size: tuple[int, int] | None  # (width, height) as encoded, before rotation
    fps: float


def _normalized_rotation(degrees: float) -> int:
    """0, 90, 180 or 270: display matrices only ever hold quarter turns in practice."""
    if not math.isfinite(degrees):
        return 0
    return (round(degrees / 90.0) * 90) % 360


def _fourcc_text(fourcc_value: float) -> str | None:
    fourcc = int(fourcc_value)
    if fourcc <= 0:
        return None
    text = fourcc.to_bytes(4, "little").decode("latin-1").strip("\x00 ")
    return text if text and text.isprintable() else None


def _container_metadata(path_text: str) -> _ContainerMetadata:
    """Rotation, codec and stored size via OpenCV; neutral values if OpenCV cannot open it."""
    import cv2

    capture = cv2.VideoCapture(path_text)
    try:
        if not capture.isOpened():
            return _ContainerMetadata(rotation=0, codec=None, stored_size=None, fps=0.0)
        rotation = _normalized_rotation(capture.get(cv2.CAP_PROP_ORIENTATION_META))
        codec = _fourcc_text(capture.get(cv2.CAP_PROP_FOURCC))
        fps = float(capture.get(cv2.CAP_PROP_FPS))
        # With auto-orientation on (the default) OpenCV reports the displayed size; switched off
        # it reports the size as stored, which tells whether decord's frames are rotated yet.
        capture.set(cv2.CAP_PROP_ORIENTATION_AUTO, 0)
        stored_width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        stored_height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        stored_size = (stored_width, stored_height) if stored_width > 0 < stored_height else None
        return _ContainerMetadata(rotation=rotation, codec=codec, stored_size=stored_size, fps=fps)
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


def _upright(frames: np.ndarray, metadata: _ContainerMetadata) -> np.ndarray:
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


def _open_video(path_text: str) -> tuple[Any, int, float, _ContainerMetadata]:
    """decord reader, frame count, frame rate and container metadata; VideoError if unusable."""
    decord = _decord()
    try:
        reader = decord.VideoReader(path_text, ctx=decord.cpu(0), fault_tol=DECORD_FAULT_TOLERANCE)
        num_frames = len(reader)
        fps = float(reader.get_avg_fps())
    except Exception as error:  # decord raises RuntimeError, DECORDError, AssertionError
        raise VideoError(_describe_decord_error(path_text, error)) from error
    if num_frames < 1:
        raise VideoError(f"Cannot read video '{path_text}': it has no frames.")
    metadata = _container_metadata(path_text)
    if not (math.isfinite(fps) and fps > 0):
        fps = metadata.fps
    if not (math.isfinite(fps) and fps > 0):
        raise VideoError(f"Cannot read video '{path_text}': it has no usable frame rate.")
    return reader, num_frames, fps, metadata


def _decode_frames(reader: Any, path_text: str, frame_indices: list[int]) -> np.ndarray:
    """The requested frames as (N, H, W, 3) uint8, or VideoError."""
    try:
        batch = reader.get_batch(frame_indices)
        # A decord bridge set elsewhere (e.g. torch) changes the return type; accept any of them.
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


def _video_info(
    path_text: str, num_frames: int, fps: float, metadata: _ContainerMetadata, frames: np.ndarray
) -> VideoInfo:
    return VideoInfo(
        path=path_text,
        num_frames=num_frames,
        fps=fps,
        duration_s=num_frames / fps,
        width=int(frames.shape[2]),
        height=int(frames.shape[1]),
        rotation=metadata.rotation,
        codec=metadata.codec,
    )


def probe_video(path: str | os.PathLike[str]) -> VideoInfo:
    """Frame count, frame rate, upright size, rotation and codec of a video.

    Decodes the first frame, so a file that opens but cannot be decoded fails here already.

    Raises:
        VideoError: the file is missing, empty, not a video, has no video stream or is damaged.
    """
    path_text = _checked_path(path)
    reader, num_frames, fps, metadata = _open_video(path_text)
    first_frame = _upright(_decode_frames(reader, path_text, [0]), metadata)
    return _video_info(path_text, num_frames, fps, metadata, first_frame)


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
    files; use `FrameReader` where that must not block the program.

    Raises:
        VideoError: the file is missing, empty, not a video, has no video stream or is damaged.
        UsageError: `count` or `every` < 1, or the time range is empty or past the end.
    """
    path_text = _checked_path(path)
    reader, num_frames, fps, metadata = _open_video(path_text)
    if every is None:
        frame_indices = sample_frame_indices(num_frames, fps, count, start_s=start_s, end_s=end_s)
    else:
        frame_indices = every_kth_frame_indices(
            num_frames, fps, every, start_s=start_s, end_s=end_s, limit=count
        )
    frames = _upright(_decode_frames(reader, path_text, frame_indices), metadata)
    return SampledFrames(
        info=_video_info(path_text, num_frames, fps, metadata, frames),
        frame_indices=frame_indices,
        times_s=[frame_index / fps for frame_index in frame_indices],
        frames=frames,
    )


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
    path_text = _checked_path(path)
    reader, num_frames, fps, metadata = _open_video(path_text)
    if wanted[-1] >= num_frames:
        raise VideoError(
            f"Cannot read frame {wanted[-1]} of video '{path_text}': it has {num_frames} frames "
            "(was the file replaced since it was scanned?)."
        )
    frames = _upright(_decode_frames(reader, path_text, wanted), metadata)
    return SampledFrames(
        info=_video_info(path_text, num_frames, fps, metadata, frames),
        frame_indices=wanted,
        times_s=[frame_index / fps for frame_index in wanted],
        frames=frames,
    )


# --------------------------------------------------------------------------------------------
# Reading frames in a killable worker process
# --------------------------------------------------------------------------------------------

# Messages between FrameReader and its worker: an 8-byte length, then a pickle. Frames follow a
# "frames" reply as raw bytes, read straight into the destination array (no pickle copy).
_MESSAGE_LENGTH = struct.Struct("<Q")

# Started with `python -c`, not multiprocessing: multiprocessing's spawn and forkserver re-import
# the parent's __main__ in the child (the `mattn` console script, which imports the CLI and,
# through it, torch), and unpickling a function from `deepfake_cli.video` would run the package
# `__init__`, which need not stay torch-free. A stand-in package module lets `deepfake_cli.video`
# and `deepfake_cli.errors` be imported without running that `__init__`.
_WORKER_BOOTSTRAP = """
import json, os, sys, types
package_name, package_dir, parent_sys_path = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
replies = os.fdopen(os.dup(1), "wb")
os.dup2(2, 1)  # stray prints from C libraries must not corrupt the reply stream
sys.path[:] = parent_sys_path
package = types.ModuleType(package_name)
package.__path__ = [package_dir]
sys.modules[package_name] = package
from importlib import import_module
import_module(package_name + ".video")._serve_decode_requests(sys.stdin.buffer, replies)
"""

# Error classes the worker may report by name; anything else arrives as a VideoError.
_ERROR_CLASSES: dict[str, type[MattnError]] = {
    error_class.__name__: error_class
    for error_class in (MattnError, VideoError, UsageError, WeightsError, LayoutError)
}

# The worker needs a few seconds at most to import numpy, decord and OpenCV; this only guards
# against a worker that never comes up at all.
_WORKER_START_TIMEOUT_S = 120.0


def _write_message(stream: IO[bytes], message: object) -> None:
    payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_MESSAGE_LENGTH.pack(len(payload)))
    stream.write(payload)


def _read_into(stream: IO[bytes], buffer: memoryview) -> None:
    """Fill `buffer` from `stream`; EOFError if the stream ends first."""
    filled = 0
    while filled < len(buffer):
        received = stream.readinto(buffer[filled:])  # type: ignore[attr-defined]
        if not received:
            raise EOFError("stream ended")
        filled += received


def _read_message(stream: IO[bytes]) -> Any:
    header = bytearray(_MESSAGE_LENGTH.size)
    _read_into(stream, memoryview(header))
    (payload_length,) = _MESSAGE_LENGTH.unpack(header)
    payload = bytearray(payload_length)
    _read_into(stream, memoryview(payload))
    return pickle.loads(payload)


def _exit_when_orphaned(parent_pid: int) -> None:
    """Exit the worker once its parent is gone, even while decord hangs in C code.

    decord is called through ctypes, which releases the GIL, so this thread keeps running while a
    decode hangs. Without it a hung worker would outlive a parent that was killed.
    """
    while True:
        time.sleep(1.0)
        if os.getppid() != parent_pid:
            os._exit(1)


def _serve_decode_requests(requests: IO[bytes], replies: IO[bytes]) -> None:
    """The worker's loop: decode each request and reply, until the request stream closes.

    The first message is the decode function (None: `read_frames`). It is unpickled, and so
    its module imported, before the worker reports "ready", so that no request's timeout pays
    for imports.
    """
    import signal

    # Ctrl-C reaches the whole process group; the parent decides when the worker stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_when_orphaned, args=(os.getppid(),), daemon=True).start()
    try:
        decode_function = _read_message(requests) or read_frames
        _decord()
        import cv2  # noqa: F401
    except EOFError:
        return
    except Exception as error:  # e.g. the decode function's module cannot be imported here
        _write_message(replies, ("failed", f"{type(error).__name__}: {error}"))
        replies.flush()
        return
    _write_message(replies, ("ready", os.getpid()))
    replies.flush()
    while True:
        try:
            working_dir, path, options = _read_message(requests)
        except EOFError:
            return
        try:
            os.chdir(working_dir)  # relative paths mean what they meant in the parent
            sampled = decode_function(path, **options)
            frames = np.ascontiguousarray(sampled.frames)
            header = (
                "frames",
                asdict(sampled.info),
                list(sampled.frame_indices),
                list(sampled.times_s),
                frames.shape,
                frames.dtype.str,
            )
        except MattnError as error:
            _write_message(replies, ("error", type(error).__name__, error.message))
        except Exception as error:
            _write_message(
                replies, ("crash", f"{type(error).__name__}: {error}", traceback.format_exc())
            )
        else:
            _write_message(replies, header)
            if frames.nbytes:
                replies.write(memoryview(frames).cast("B"))
        replies.flush()


@dataclass
class _DecodeRequest:
    path: str
    options: dict[str, Any]
    future: Future[SampledFrames]


class PendingFrames:
    """Frames that a `FrameReader` is decoding or will decode; `result()` waits for them."""

    def __init__(self, path: str, future: Future[SampledFrames]) -> None:
        self.path = path
        self._future = future

    def done(self) -> bool:
        """True once `result()` would return or raise without waiting."""
        return self._future.done()

    def result(self) -> SampledFrames:
        """The decoded frames; raises VideoError (or UsageError for bad options) on failure."""
        return self._future.result()


class FrameReader:
    """Decodes videos in a worker process that is killed when a file takes too long.

    decord can hang forever on some damaged containers, and a hung C call cannot be interrupted
    inside a process; a separate process can be killed. Requests are decoded one at a time in
    submission order, so `submit()` can queue the next videos while the caller works on the
    current one::

        with FrameReader(timeout_s=60.0) as reader:
            frames = reader.read(path, count=32)      # blocking; VideoError on failure or timeout
            pending = reader.submit(next_path)        # non-blocking: prefetch
            frames = pending.result()                 # VideoError on failure or timeout

    `timeout_s` limits each video's decoding, counted from when the worker starts on it (not
    while it waits in the queue); None disables it. After a timeout or crash the worker is
    replaced and the next request proceeds normally.

    `decode_function` replaces `read_frames` inside the worker (for tests, e.g. one that sleeps).
    It is sent by pickle, so it must be a module-level function importable in the worker, which
    uses the parent's `sys.path` (its module is imported when a worker starts, outside any
    request's timeout); it is called as `decode_function(path, count=..., every=...,
    start_s=..., end_s=...)` and must return `SampledFrames`.
    """

    def __init__(
        self,
        timeout_s: float | None = 60.0,
        *,
        decode_function: Callable[..., SampledFrames] | None = None,
    ) -> None:
        if timeout_s is not None and not timeout_s > 0:
            raise ValueError(f"timeout_s must be positive or None, got {timeout_s}")
        if not sys.executable:
            raise RuntimeError("cannot start a decoding worker: sys.executable is not known")
        self.timeout_s = timeout_s
        self._decode_function = decode_function
        self._requests: queue.SimpleQueue[_DecodeRequest | None] = queue.SimpleQueue()
        self._worker_lock = threading.Lock()  # guards _worker and _closed
        self._worker: subprocess.Popen[bytes] | None = None
        self._closed = False
        # The dispatcher starts the worker right away, so its start overlaps the caller's setup.
        self._dispatcher = threading.Thread(
            target=self._dispatch_requests, name="mattn-frame-reader", daemon=True
        )
        self._dispatcher.start()

    def __enter__(self) -> FrameReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def submit(
        self,
        path: str | os.PathLike[str],
        *,
        count: int = 32,
        every: int | None = None,
        start_s: float | None = None,
        end_s: float | None = None,
    ) -> PendingFrames:
        """Queue a video for decoding (same options as `read_frames`) and return at once."""
        path_text = os.fsdecode(os.fspath(path))
        future: Future[SampledFrames] = Future()
        options = {"count": count, "every": every, "start_s": start_s, "end_s": end_s}
        with self._worker_lock:
            if self._closed:
                raise RuntimeError("this FrameReader is closed")
            self._requests.put(_DecodeRequest(path_text, options, future))
        return PendingFrames(path_text, future)

    def read(
        self,
        path: str | os.PathLike[str],
        *,
        count: int = 32,
        every: int | None = None,
        start_s: float | None = None,
        end_s: float | None = None,
    ) -> SampledFrames:
        """Decode a video (same options as `read_frames`), waiting for the result."""
        return self.submit(path, count=count, every=every, start_s=start_s, end_s=end_s).result()

    def close(self) -> None:
        """Stop the worker; requests not finished yet fail with VideoError."""
        with self._worker_lock:
            if self._closed:
                return
            self._closed = True
            self._requests.put(None)
            # Only kill here: the dispatcher thread is the one that reads the worker's pipes, so
            # it also reaps the worker and closes them once its read ends.
            if self._worker is not None and self._worker.poll() is None:
                self._worker.kill()
        self._dispatcher.join()

    # -- dispatcher thread ---------------------------------------------------------------------

    def _dispatch_requests(self) -> None:
        try:
            self._start_worker_if_needed()
        except VideoError as error:
            # Reported again, to the first request, when it tries to start a worker itself.
            logger.debug("decoding worker did not start: %s", error)
        while True:
            request = self._requests.get()
            if request is None:
                break
            if not request.future.set_running_or_notify_cancel():
                continue
            try:
                request.future.set_result(self._decode_in_worker(request))
            except BaseException as error:  # any failure belongs to the caller, not this thread
                request.future.set_exception(error)
        with self._worker_lock:
            worker, self._worker = self._worker, None
        if worker is not None:
            _kill_and_reap(worker)

    def _closed_error(self, path: str) -> VideoError:
        return VideoError(f"Decoding '{path}' was cancelled because the frame reader was closed.")

    def _start_worker_if_needed(self) -> subprocess.Popen[bytes]:
        with self._worker_lock:
            if self._closed:
                raise self._closed_error("the next video")
            if self._worker is not None and self._worker.poll() is None:
                return self._worker
            package_name = __name__.rpartition(".")[0]
            package_dir = os.path.dirname(os.path.abspath(__file__))
            worker = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    _WORKER_BOOTSTRAP,
                    package_name,
                    package_dir,
                    # The parent's import path, so that a decode_function can be imported.
                    json.dumps([entry for entry in sys.path if isinstance(entry, str)]),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                # decord prints C++ warnings for damaged files that cannot be turned off;
                # the VideoError says what went wrong.
                stderr=subprocess.DEVNULL,
            )
            self._worker = worker
        start_timer = _KillTimer(_WORKER_START_TIMEOUT_S, worker)
        try:
            _write_message(worker.stdin, self._decode_function)  # type: ignore[arg-type]
            worker.stdin.flush()  # type: ignore[union-attr]
            reply = _read_message(worker.stdout)  # type: ignore[arg-type]
        except (EOFError, OSError, ValueError) as error:
            self._discard_worker(worker)
            if self._closed:
                raise self._closed_error("the next video") from None
            raise VideoError(
                f"The frame-decoding worker process could not start (exit code {worker.poll()})."
            ) from error
        finally:
            start_timer.cancel()
        if reply[0] != "ready":
            self._discard_worker(worker)
            raise VideoError(f"The frame-decoding worker process could not start ({reply[-1]}).")
        return worker

    def _send_request(self, request: _DecodeRequest) -> subprocess.Popen[bytes]:
        """Send `request` to a live worker, replacing one that died while idle."""
        message = (os.getcwd(), request.path, request.options)
        for attempt in range(2):
            worker = self._start_worker_if_needed()
            try:
                _write_message(worker.stdin, message)  # type: ignore[arg-type]
                worker.stdin.flush()  # type: ignore[union-attr]
                return worker
            except (OSError, ValueError):
                self._discard_worker(worker)
                if attempt == 1 or self._closed:
                    raise
        raise AssertionError("unreachable")

    def _decode_in_worker(self, request: _DecodeRequest) -> SampledFrames:
        if self._closed:
            raise self._closed_error(request.path)
        try:
            worker = self._send_request(request)
        except (OSError, ValueError) as error:
            if self._closed:
                raise self._closed_error(request.path) from None
            raise VideoError(
                f"Decoding '{request.path}' failed because the decoding worker process "
                f"could not be reached."
            ) from error
        timer = _KillTimer(self.timeout_s, worker) if self.timeout_s is not None else None
        try:
            reply = _read_message(worker.stdout)  # type: ignore[arg-type]
            if reply[0] == "frames":
                _, info_fields, frame_indices, times_s, shape, dtype_text = reply
                frames = np.empty(shape, dtype=np.dtype(dtype_text))
                if frames.nbytes:
                    _read_into(worker.stdout, memoryview(frames).cast("B"))  # type: ignore[arg-type]
        except (EOFError, OSError, ValueError) as error:
            self._discard_worker(worker)
            if timer is not None and timer.fired:
                raise VideoError(
                    f"Decoding '{request.path}' did not finish within {self.timeout_s:g} s "
                    f"(the file is probably damaged)."
                ) from None
            if self._closed:
                raise self._closed_error(request.path) from None
            raise VideoError(
                f"Decoding '{request.path}' stopped because the decoding worker process exited "
                f"unexpectedly (exit code {worker.poll()})."
            ) from error
        finally:
            if timer is not None:
                timer.cancel()
        if timer is not None and timer.fired:
            # Killed just after it replied: the reply is complete, only the worker is gone.
            self._discard_worker(worker)
        if reply[0] == "frames":
            return SampledFrames(
                info=VideoInfo(**info_fields),
                frame_indices=frame_indices,
                times_s=times_s,
                frames=frames,
            )
        if reply[0] == "error":
            _, class_name, message = reply
            raise _ERROR_CLASSES.get(class_name, VideoError)(message)
        _, summary, worker_traceback = reply
        logger.debug("decoding worker failed on %s:\n%s", request.path, worker_traceback)
        raise VideoError(f"Decoding '{request.path}' failed in the worker process: {summary}.")

    def _discard_worker(self, worker: subprocess.Popen[bytes]) -> None:
        """Kill and reap `worker`; the next request starts a fresh one."""
        with self._worker_lock:
            if self._worker is worker:
                self._worker = None
        _kill_and_reap(worker)


def _kill_and_reap(worker: subprocess.Popen[bytes]) -> None:
    if worker.poll() is None:
        worker.kill()
    worker.wait()
    for stream in (worker.stdin, worker.stdout):
        if stream is not None:
            # A broken pipe to a dead worker has nothing left to flush.
            with contextlib.suppress(OSError):
                stream.close()


class _KillTimer(threading.Timer):
    """Kills a worker after a delay unless cancelled; `fired` tells afterwards whether it did.

    Started on creation.
    """

    def __init__(self, timeout_s: float, worker: subprocess.Popen[bytes]) -> None:
        super().__init__(timeout_s, self._kill)
        self.daemon = True
        self.fired = False
        self._worker_to_kill = worker
        self.start()

    def _kill(self) -> None:
        self.fired = True
        if self._worker_to_kill.poll() is None:
            self._worker_to_kill.kill()
