"""The exact path: PyAV, decoding in order from the first packet and keeping the sampled frames.

PyAV ships its own FFmpeg. Decoding from the first packet, frame k is by definition the k-th
frame the decoder shows (in presentation order), and its time is its own timestamp, so there is
no seek that can land on the wrong frame and no index that can disagree with the decoder. The
cost is decoding every frame up to the last sampled one (only the sampled ones are converted to
RGB and kept). `video` uses this path where decord's seeks are not exact, and where the sampled
frames are so dense that reading in order costs less than seeking.

Where packets come in presentation order (no B-frames, and every packet's timestamp later than
the one before it), packet k is frame k, and a group of pictures is decoded only up to its last
sampled frame: the packets after it, up to the next keyframe, are demuxed but never decoded (no
frame decoded later depends on them, since decoding restarts at that keyframe). The frames are
the same as from decoding every packet (tests/test_codec_corpus.py checks it bit for bit); should
the stream turn out to reorder after all, it is decoded again packet by packet.

`probe_stream` also tells `video` which decoder a file needs: it opens the container and reads
the first packets (demuxing only, no decoding) to see whether keyframes start closed groups of
pictures.

This module must stay free of torch imports (the decoding worker imports it).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from deepfake_cli.errors import VideoError
from deepfake_cli.video_container import normalized_rotation, rotate_frames

if TYPE_CHECKING:
    import av

# Packets read by `probe_stream` to judge the groups of pictures: enough for a few keyframes
# at the usual 1-10 s keyframe intervals, small enough to cost milliseconds.
_PROBE_PACKETS = 600
_PROBE_KEYFRAMES = 4

_DAMAGED = "it is damaged and some of its frames cannot be decoded"

# Demuxing a packet that is not decoded costs about this many frames decoded (720p MPEG-4 Part 2:
# 5 us per packet against 0.7 ms per frame on two threads; rounded up for holding packets back).
DEMUX_FRAMES = 0.01
# Packets held back while reading in order (see `_needed_frames`): at most this many bytes.
HELD_BYTES_MAX = 64 * 2**20

_av_module: Any = None


def load_av() -> Any:
    """PyAV, imported once (it takes a tenth of a second: not at import) with FFmpeg quiet.

    FFmpeg's own messages about damaged packets would reach stderr; the VideoError says it once.
    """
    global _av_module
    if _av_module is None:
        import av

        av.logging.set_level(None)
        _av_module = av
    return _av_module


@dataclass(frozen=True)
class StreamFacts:
    """What the container and its first packets say about a video stream."""

    format_name: str  # FFmpeg's demuxer, e.g. "mov,mp4,m4a,3gp,3g2,mj2", "mpeg", "matroska,webm"
    codec_name: str  # FFmpeg's decoder, e.g. "h264", "mpeg2video"
    intra_only: bool  # every frame is a keyframe (MJPEG and the like)
    frame_count: int  # as the container states it; 0 when it does not
    fps: float  # average frame rate; 0.0 when unknown
    # A packet after a keyframe (in decoding order) shows before it: an open group of pictures,
    # whose leading frames cannot be decoded from that keyframe alone.
    open_gop: bool
    pts_missing: bool  # some packets have no presentation time
    # Frames from one keyframe to the next (the median over the first packets); where only one
    # keyframe was seen, the number of packets read (the interval is at least that).
    keyframe_interval: int = 1
    duration_s: float = 0.0  # of the stream, or else the container; 0.0 when neither says
    # Every packet read had a timestamp later than the one before it, and the decoder holds no
    # frames back for B-frames: decoding order is presentation order (packet k is frame k), so
    # groups of pictures can be decoded only as far as they are needed. (AVI's timestamps rise
    # even with B-frames: the demuxer numbers packets in decoding order.)
    in_presentation_order: bool = False


@dataclass
class ExactFrames:
    """Frames read by sequential decoding, upright."""

    frames: np.ndarray  # (N, H, W, 3) uint8 RGB, upright
    frame_indices: list[int]
    times_s: list[float]  # presentation times, seconds after frame 0
    num_frames: int  # as counted (packets) or, once decoding ran out early, as decoded
    fps: float
    rotation: int  # degrees clockwise, already applied to `frames`
    frames_decoded: int = 0  # the sampled ones and those decoded to reach them


def pyav_cost_frames(frame_indices: list[int], facts: StreamFacts) -> float:
    """About what `read_exact` costs for these frames, in frames decoded (to weigh it against
    `decord_video.decord_cost_frames`): every frame up to the last wanted one, or, where packets
    come in presentation order, each group of pictures up to its last wanted frame (keyframes
    taken to come every `facts.keyframe_interval` frames) plus demuxing the rest."""
    if not frame_indices:
        return 0.0
    frames_read = max(frame_indices) + 1
    if not facts.in_presentation_order:
        return float(frames_read)
    interval = max(1, facts.keyframe_interval)
    last_wanted_after: dict[int, int] = {}  # keyframe -> the last wanted frame of its group
    for index in frame_indices:
        keyframe = index - index % interval
        last_wanted_after[keyframe] = max(last_wanted_after.get(keyframe, index), index)
    decoded = sum(last - keyframe + 1 for keyframe, last in last_wanted_after.items())
    return decoded + DEMUX_FRAMES * (frames_read - decoded)


def describe_open_error(path_text: str, error: BaseException) -> str:
    """One sentence for a file FFmpeg cannot open."""
    errors = load_av().error
    if isinstance(error, errors.InvalidDataError | errors.EOFError):
        reason = "it is not a video file FFmpeg can open, or it is truncated"
    else:
        detail = getattr(error, "strerror", None) or str(error) or type(error).__name__
        reason = f"FFmpeg cannot open it ({detail})"
    return f"Cannot read video '{path_text}': {reason}."


def _is_still_image(container: av.container.InputContainer) -> bool:
    # Image demuxers ("png_pipe", "image2", ...) read one picture: no frame rate, no frame count.
    name = container.format.name
    return name == "image2" or name.endswith("_pipe")


def probe_stream(path_text: str) -> StreamFacts:
    """Open the video and read its first packets; VideoError (one sentence) if it is no video."""
    container, stream = _open(path_text)
    with container:
        if _is_still_image(container):
            raise VideoError(
                f"Cannot read video '{path_text}': its frame count cannot be determined "
                f"(a still image or a damaged container)."
            )
        open_gop, pts_missing, pts_rising, keyframe_interval = _scan_first_packets(
            container, stream
        )
        descriptor = stream.codec_context.codec
        return StreamFacts(
            format_name=container.format.name,
            codec_name=stream.codec_context.name,
            intra_only=bool(getattr(descriptor, "intra_only", False)),
            frame_count=max(0, int(stream.frames or 0)),
            fps=_average_rate(stream),
            open_gop=open_gop,
            pts_missing=pts_missing,
            keyframe_interval=keyframe_interval,
            duration_s=_duration_s(container, stream),
            in_presentation_order=pts_rising and not stream.codec_context.has_b_frames,
        )


def _scan_first_packets(
    container: av.container.InputContainer, stream: av.VideoStream
) -> tuple[bool, bool, bool, int]:
    """(open GOP seen, a packet without pts seen, every pts later than the one before,
    keyframe interval) over the first packets, demuxing only."""
    keyframe_positions: list[int] = []  # in packets (one per frame), decoding order
    keyframe_pts: int | None = None
    previous_pts: int | None = None
    open_gop = pts_missing = False
    pts_rising = True
    packets = 0
    try:
        for packet in container.demux(stream):
            if packet.size == 0:
                continue  # the flush packet at the end
            if packet.is_keyframe:
                keyframe_positions.append(packets)
            packets += 1
            if packet.pts is None or (previous_pts is not None and packet.pts <= previous_pts):
                pts_rising = False
            previous_pts = packet.pts
            if packet.pts is None:
                pts_missing = True
            elif packet.is_keyframe:
                keyframe_pts = packet.pts
            elif keyframe_pts is not None and packet.pts < keyframe_pts:
                open_gop = True
            if open_gop or len(keyframe_positions) > _PROBE_KEYFRAMES or packets >= _PROBE_PACKETS:
                break
    except load_av().error.FFmpegError:
        pts_rising = False  # a damaged file: reading it shows that, and names it
    gaps = np.diff(keyframe_positions)
    keyframe_interval = int(np.median(gaps)) if len(gaps) else packets
    return open_gop, pts_missing, pts_rising and packets > 0, max(1, keyframe_interval)


def _duration_s(container: av.container.InputContainer, stream: av.VideoStream) -> float:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / 1_000_000  # in FFmpeg's AV_TIME_BASE
    return 0.0


def _average_rate(stream: av.VideoStream) -> float:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate is not None and rate > 0 and math.isfinite(float(rate)):
            return float(rate)
    return 0.0


def read_exact(
    path_text: str,
    facts: StreamFacts,
    choose_indices: Callable[[int, float], list[int]],
    *,
    rotation_hint: int = 0,
    fallback_fps: float = 0.0,
    skip_unneeded: bool = True,
) -> ExactFrames:
    """Decode from the start, keeping the frames `choose_indices(num_frames, fps)` names.

    The frame count is the container's (`facts`), or else its number of video packets
    (demuxing only). Should the decoder show fewer frames than that before the last wanted
    one, the count is corrected to what it showed and the frames are chosen and decoded again.
    `rotation_hint` (degrees clockwise) is used when frames carry no display matrix themselves.
    Where `facts.in_presentation_order` (and `skip_unneeded`), packets no wanted frame depends
    on are not decoded (see the module's docstring); the frames are the same.

    Raises:
        VideoError: the file cannot be decoded (a decoder error or a corrupt frame before the
            last wanted frame), it has no frames, or no usable frame rate.
        UsageError: from `choose_indices` (an empty time range).
    """
    fps = facts.fps or fallback_fps
    if not (fps > 0 and math.isfinite(fps)):
        raise VideoError(f"Cannot read video '{path_text}': it has no usable frame rate.")
    num_frames = facts.frame_count or _count_packets(path_text)
    skipping = skip_unneeded and facts.in_presentation_order
    for _attempt in range(2):
        frame_indices = choose_indices(num_frames, fps)
        decoded = None
        if skipping:
            try:
                decoded = _decode_wanted(
                    path_text, frame_indices, fps, rotation_hint, _needed_frames
                )
            except _CannotSkip:
                skipping = False
        if decoded is None:
            decoded = _decode_wanted(path_text, frame_indices, fps, rotation_hint, _every_frame)
        if isinstance(decoded, ExactFrames):
            decoded.num_frames = num_frames
            return decoded
        num_frames = decoded  # the decoder showed only this many frames
        if num_frames < 1:
            break
    raise VideoError(f"Cannot read video '{path_text}': {_DAMAGED}.")


def _open(path_text: str) -> tuple[av.container.InputContainer, av.VideoStream]:
    try:
        container = load_av().open(path_text)
    except Exception as error:  # av.error.FFmpegError and its subclasses, OSError
        raise VideoError(describe_open_error(path_text, error)) from error
    if not container.streams.video:
        container.close()
        raise VideoError(f"Cannot read video '{path_text}': it has no video stream.")
    stream = container.streams.video[0]
    if stream.codec_context is None:  # FFmpeg found no decoder for what the stream claims to be
        container.close()
        raise VideoError(
            f"Cannot read video '{path_text}': FFmpeg has no decoder for its video stream "
            f"(an unknown codec, or a damaged file)."
        )
    return container, stream


def _count_packets(path_text: str) -> int:
    """The number of video packets: one per frame (demuxers with parsers split them so)."""
    container, stream = _open(path_text)
    with container:
        try:
            count = sum(1 for packet in container.demux(stream) if packet.size)
        except load_av().error.FFmpegError as error:
            raise VideoError(f"Cannot read video '{path_text}': {_DAMAGED}.") from error
    if count < 1:
        raise VideoError(f"Cannot read video '{path_text}': it has no frames.")
    return count


class _CannotSkip(Exception):
    """The stream reorders frames or drops one after all: decode it packet by packet."""


# (path, container, stream, wanted frame indices, shown timestamps to fill) ->
# (frame index, frame) in presentation order, up to the last wanted frame at least.
FrameSource = Callable[..., Iterator[tuple[int, "av.VideoFrame"]]]


def _every_frame(
    path_text: str, container, stream, frame_indices: list[int], shown_pts: list[int | None]
) -> Iterator[tuple[int, av.VideoFrame]]:
    """Every frame in presentation order; VideoError at the first decoder error."""
    position = 0
    try:
        for packet in container.demux(stream):
            for frame in stream.decode(packet):
                _check_intact(path_text, frame)
                shown_pts.append(frame.pts)
                yield position, frame
                position += 1
    except load_av().error.FFmpegError as error:
        raise VideoError(f"Cannot read video '{path_text}': {_DAMAGED}.") from error


def _needed_frames(
    path_text: str, container, stream, frame_indices: list[int], shown_pts: list[int | None]
) -> Iterator[tuple[int, av.VideoFrame]]:
    """The wanted frames and those decoded to reach them, for a stream whose packets come in
    presentation order (packet k is frame k); `shown_pts` gets every packet's timestamp.

    Packets are held back until a wanted one arrives (then all of them are decoded) or a
    keyframe does (then none is: nothing after the keyframe refers to them). Past
    `HELD_BYTES_MAX` the held packets are decoded anyway, so that long stretches without a
    keyframe cost decoding time rather than memory.
    """
    wanted, last_wanted = set(frame_indices), frame_indices[-1]
    wanted_left = deque(sorted(wanted))  # the wanted frames not yet out of the decoder
    index_of_pts: dict[int, int] = {}
    held: list[av.Packet] = []  # packets since the last decoded one, back to a keyframe
    held_bytes = 0
    previous_index = -1

    def indexed(frames: list[av.VideoFrame]) -> Iterator[tuple[int, av.VideoFrame]]:
        """Each decoded frame with its index, the index of the packet with its timestamp."""
        nonlocal previous_index
        for frame in frames:
            _check_intact(path_text, frame)
            # Popped: a timestamp shown twice is not found the second time.
            frame_index = index_of_pts.pop(frame.pts, -1)
            # Frames out of packet order, or past a wanted one that never came out: the
            # stream reorders or drops frames after all.
            if frame_index <= previous_index or frame_index > wanted_left[0]:
                raise _CannotSkip
            if frame_index == wanted_left[0]:
                wanted_left.popleft()
            previous_index = frame_index
            yield frame_index, frame

    try:
        for packet in container.demux(stream):
            if not packet.size:
                continue  # the flush packet at the end: the decoder is drained below
            packet_index = len(shown_pts)
            if packet.pts is None or (shown_pts and packet.pts <= shown_pts[-1]):
                raise _CannotSkip
            shown_pts.append(packet.pts)
            index_of_pts[packet.pts] = packet_index
            if packet.is_keyframe:
                held.clear()
                held_bytes = 0
            held.append(packet)
            held_bytes += packet.size
            if packet_index in wanted or held_bytes > HELD_BYTES_MAX:
                for needed in held:
                    yield from indexed(stream.decode(needed))
                held.clear()
                held_bytes = 0
                if packet_index == last_wanted:
                    break
        yield from indexed(stream.decode(None))
    except load_av().error.FFmpegError as error:
        raise VideoError(f"Cannot read video '{path_text}': {_DAMAGED}.") from error
    if len(shown_pts) > last_wanted:
        raise _CannotSkip  # the demuxer had the last wanted packet; the decoder dropped it


def _check_intact(path_text: str, frame: av.VideoFrame) -> None:
    if getattr(frame, "is_corrupt", False):
        raise VideoError(f"Cannot read video '{path_text}': {_DAMAGED}.")


def _decode_wanted(
    path_text: str,
    frame_indices: list[int],
    fps: float,
    rotation_hint: int,
    frame_source: FrameSource,
) -> ExactFrames | int:
    """The wanted frames, or how many frames the decoder showed if it ran out before them."""
    wanted = set(frame_indices)
    kept: list[np.ndarray] = []
    shown_pts: list[int | None] = []  # every shown frame's timestamp, up to the last wanted
    rotation = rotation_hint
    size: tuple[int, int] | None = None
    frames_decoded = 0
    container, stream = _open(path_text)
    with container:
        stream.thread_type = "AUTO"  # frame threads: same frames, decoded on every core
        time_base = stream.time_base
        frames = frame_source(path_text, container, stream, frame_indices, shown_pts)
        for frame_index, frame in frames:
            if frames_decoded == 0:
                frame_rotation = getattr(frame, "rotation", None)
                if frame_rotation is not None:
                    # PyAV reports the display matrix counter-clockwise; mattn's is clockwise.
                    rotation = normalized_rotation(-float(frame_rotation))
            frames_decoded += 1
            if frame_index in wanted:
                # A stream may change resolution; frames come out at the first kept one's size.
                size = size or (frame.width, frame.height)
                kept.append(frame.to_ndarray(format="rgb24", width=size[0], height=size[1]))
            if frame_index == frame_indices[-1]:
                break
        frames.close()
    if len(kept) < len(frame_indices):
        return len(shown_pts)
    return ExactFrames(
        frames=rotate_frames(np.stack(kept), rotation),
        frame_indices=list(frame_indices),
        times_s=_frame_times(shown_pts, time_base, frame_indices, fps),
        num_frames=len(shown_pts),
        fps=fps,
        rotation=rotation,
        frames_decoded=frames_decoded,
    )


def _frame_times(
    shown_pts: list[int | None], time_base, frame_indices: list[int], fps: float
) -> list[float]:
    """The frames' own times after frame 0, if the shown frames' timestamps rise; else index/fps.

    AVI stores no presentation times (FFmpeg numbers packets in decoding order, so reordered
    frames come out with falling "times"), and some program streams repeat a timestamp; there
    the nominal time from the average rate is the better statement of when a frame is shown.
    """
    rising = all(
        earlier is not None and later is not None and later > earlier
        for earlier, later in zip(shown_pts, shown_pts[1:], strict=False)
    )
    if not rising or shown_pts[0] is None or time_base is None:
        return [index / fps for index in frame_indices]
    first_pts = shown_pts[0]
    return [float((shown_pts[index] - first_pts) * time_base) for index in frame_indices]
