"""Which frames of a video to read, and reading exactly those frames.

This is the first stage of the pipeline (video -> frames -> faces -> crops -> detector -> verdict).

Frame k of a video is the k-th frame a decoder shows when it decodes the file from the start
(presentation order), and its time is that frame's own timestamp. Two decoders read them:
decord (`decord_video`), which seeks to the keyframe before each sampled frame, where its seeks
are exact (`decord_exact_reason`: indexed containers whose keyframes start closed GOPs), and
PyAV (`pyav_video`), which decodes every frame in order up to the last sampled one, everywhere
else, wherever decord fails, and where the sampled frames are so dense that decoding them all
costs less than decord's seeks (`sequential_is_cheaper_reason`; the same frames). The codec
corpus in the tests checks the rules on every common container and codec. Either way the
frames are exact or the video is refused: a decoder error or a corrupt frame is a `VideoError`
("it is damaged"), never a substituted frame.
`SampledFrames.decode` records which decoder read the frames and why.

`read_frames` decodes in this process, holding only the sampled frames in memory. decord is
known to hang forever on some damaged containers: where that must not block the program, decode
with `frame_reader.FrameReader`, which runs `read_frames` in a worker process it can kill.
Frames come out upright; OpenCV reads rotation, codec and stored size (`video_container`).

This module must stay free of torch imports (the decoding worker imports it).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypedDict

import numpy as np

from deepfake_cli.decord_video import DecordFailed, DecordVideo, decord_cost_frames
from deepfake_cli.errors import UsageError, VideoError
from deepfake_cli.pyav_video import StreamFacts, probe_stream, pyav_cost_frames, read_exact
from deepfake_cli.results import CHEAPER_IN_ORDER, DecodeInfo
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

#: FFmpeg demuxers in whose packet index decord seeks frame-exactly (given closed GOPs), as the
#: codec corpus (tests/test_codec_corpus.py) shows; AVI qualifies only with intra-only codecs.
DECORD_EXACT_FORMATS = ("mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", "flv")

#: Names for the demuxers that need the exact path, as a reason says them.
_CONTAINER_NAMES = {
    "mpeg": "MPEG program stream",
    "mpegts": "MPEG transport stream",
    "mpegvideo": "raw MPEG video",
    "asf": "ASF/WMV",
    "avi": "AVI with reordered frames",
}

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
    times_s: list[float]  # presentation times, seconds after frame 0 (index / fps if unknown)
    frames: np.ndarray  # (N, H, W, 3) uint8 RGB, upright (rotation already applied)
    decode: DecodeInfo | None = None  # which decoder read them; None for a still image


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
# Which decoder reads a video
# --------------------------------------------------------------------------------------------


def decord_exact_reason(facts: StreamFacts) -> str | None:
    """None if decord's frames are exact on this stream; else why the exact path reads it.

    decord seeks through its packet index to the keyframe before a frame and decodes forward.
    That lands on the right frame only where the container indexes every frame with its
    presentation time, and where decoding from a keyframe needs nothing before it (closed GOPs:
    an open GOP's leading frames refer to the previous GOP, so decord substitutes or shifts).
    """
    if facts.format_name == "avi" and facts.intra_only:
        return None  # every frame is a keyframe: nothing is reordered or referenced
    if facts.format_name not in DECORD_EXACT_FORMATS:
        container = _CONTAINER_NAMES.get(facts.format_name, facts.format_name)
        return f"{container}: decord's seeks are not frame-exact there"
    if facts.pts_missing:
        return "frames without presentation times: decord's seeks are not frame-exact"
    if facts.open_gop:
        return "open GOPs: decord's seeks are not frame-exact"
    return None


# --------------------------------------------------------------------------------------------
# Reading frames in this process
# --------------------------------------------------------------------------------------------

#: Given (frame count, frame rate) as the decoder sees them, the frame indices to read.
ChooseIndices = Callable[[int, float], list[int]]


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


def _usable_fps(path_text: str, *rates: float) -> float:
    for rate in rates:
        if math.isfinite(rate) and rate > 0:
            return rate
    raise VideoError(f"Cannot read video '{path_text}': it has no usable frame rate.")


def _read(path: str | os.PathLike[str], choose_indices: ChooseIndices) -> SampledFrames:
    """The chosen frames, by decord where it is exact, else (or if it fails) by PyAV."""
    path_text = _checked_path(path)
    facts = probe_stream(path_text)
    metadata = container_metadata(path_text)
    reason = decord_exact_reason(facts) or sequential_is_cheaper_reason(facts, choose_indices)
    if reason is None:
        try:
            return _read_with_decord(path_text, facts, metadata, choose_indices)
        except DecordFailed as failure:
            reason = failure.reason
    exact = read_exact(
        path_text,
        facts,
        choose_indices,
        rotation_hint=metadata.rotation,
        fallback_fps=metadata.fps,
    )
    decode = DecodeInfo("pyav", reason, len(exact.frame_indices), len(exact.frame_indices))
    # The rotation PyAV read from the frames' own display matrix (and applied).
    info = _video_info(
        path_text, exact.num_frames, exact.fps, exact.frames, exact.rotation, metadata.codec
    )
    return SampledFrames(info, exact.frame_indices, exact.times_s, exact.frames, decode)


def sequential_is_cheaper_reason(facts: StreamFacts, choose_indices: ChooseIndices) -> str | None:
    """Why PyAV reads a video decord could read exactly, or None: reading in order
    (`pyav_video.pyav_cost_frames`) costs less than decord's seeks (`decord_cost_frames`), as
    it does for densely sampled frames, and for any sampling where packets come in presentation
    order (then only the frames the samples need are decoded, and no seek is paid).

    Both decoders give the same frames there (the codec corpus checks it); the container's
    frame count (or its duration times its rate) and its rate stand in for decord's, which are
    not known before decord opens it.
    """
    if not (facts.fps > 0 and math.isfinite(facts.fps)):
        return None
    frame_count = facts.frame_count or round(facts.duration_s * facts.fps)
    if frame_count < 1:
        return None
    try:
        frame_indices = choose_indices(frame_count, facts.fps)
    except UsageError:
        return None  # the path that reads the video says so
    if not frame_indices:
        return None
    if pyav_cost_frames(frame_indices, facts) > decord_cost_frames(
        frame_indices, facts.keyframe_interval
    ):
        return None
    keyframes = f"keyframes every {facts.keyframe_interval} frames"
    if facts.in_presentation_order:
        return (
            f"{CHEAPER_IN_ORDER}: with no B-frames, only the frames the samples need are "
            f"decoded ({keyframes})"
        )
    return f"{CHEAPER_IN_ORDER} for frames this dense ({keyframes})"


def _read_with_decord(
    path_text: str,
    facts: StreamFacts,
    metadata: ContainerMetadata,
    choose_indices: ChooseIndices,
) -> SampledFrames:
    video = DecordVideo.open(path_text)
    fps = _usable_fps(path_text, video.fps, facts.fps, metadata.fps)
    frame_indices = choose_indices(video.num_frames, fps)
    frames = upright(video.decode(frame_indices), metadata)
    nominal_times_s = [index / fps for index in frame_indices]
    times_s = video.times_s(frame_indices) or nominal_times_s
    if all(
        math.isclose(time_s, nominal, rel_tol=1e-6, abs_tol=1e-6)
        for time_s, nominal in zip(times_s, nominal_times_s, strict=True)
    ):
        times_s = nominal_times_s  # a constant rate: free of decord's float32 rounding
    decode = DecodeInfo("decord", None, len(frame_indices), len(frame_indices))
    info = _video_info(path_text, video.num_frames, fps, frames, metadata.rotation, metadata.codec)
    return SampledFrames(info, frame_indices, times_s, frames, decode)


def _video_info(
    path_text: str,
    num_frames: int,
    fps: float,
    frames: np.ndarray,
    rotation: int,
    codec: str | None,
) -> VideoInfo:
    """What the video is, with the size of its upright frames."""
    return VideoInfo(
        path=path_text,
        num_frames=num_frames,
        fps=fps,
        duration_s=num_frames / fps,
        width=int(frames.shape[2]),
        height=int(frames.shape[1]),
        rotation=rotation,
        codec=codec,
    )


def probe_video(path: str | os.PathLike[str]) -> VideoInfo:
    """Frame count, frame rate, upright size, rotation and codec of a video.

    Decodes the first frame, so a file that opens but cannot be decoded fails here already.

    Raises:
        VideoError: the file is missing, empty, not a video, has no video stream or is damaged.
    """
    return _read(path, lambda num_frames, fps: [0]).info


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

    Only the sampled frames are held in memory. decord can hang on some damaged files; use
    `frame_reader.FrameReader` where that must not block the program.

    Raises:
        VideoError: the file is missing, empty, not a video, has no video stream or is damaged.
        UsageError: `count` or `every` < 1, or the time range is empty or past the end.
    """

    def choose_indices(num_frames: int, fps: float) -> list[int]:
        if every is None:
            return sample_frame_indices(num_frames, fps, count, start_s=start_s, end_s=end_s)
        return every_kth_frame_indices(
            num_frames, fps, every, start_s=start_s, end_s=end_s, limit=count
        )

    return _read(path, choose_indices)


def read_frame_indices(path: str | os.PathLike[str], frame_indices: list[int]) -> SampledFrames:
    """Decode exactly the given frames of a video (upright, as `read_frames` returns them).

    For going back to frames a scan already chose (the HTML report re-reads the frames whose
    boxes a result records); the same rule picks the same decoder, so they are the same frames.
    The indices are sorted and deduplicated; `frame_indices` of the result says which frames
    came back. Decodes in this process, like `read_frames`.

    Raises:
        VideoError: the file cannot be decoded, or an index is past the video's last frame.
        UsageError: no index given, or a negative index.
    """
    wanted = sorted({int(frame_index) for frame_index in frame_indices})
    if not wanted:
        raise UsageError("At least one frame index is needed to read frames.")
    if wanted[0] < 0:
        raise UsageError(f"Frame indices start at 0, got {wanted[0]}.")
    path_text = os.fsdecode(os.fspath(path))

    def choose_indices(num_frames: int, fps: float) -> list[int]:
        if wanted[-1] >= num_frames:
            raise VideoError(
                f"Cannot read frame {wanted[-1]} of video '{path_text}': it has "
                f"{num_frames} frames (was the file replaced since it was scanned?)."
            )
        return wanted

    return _read(path, choose_indices)
