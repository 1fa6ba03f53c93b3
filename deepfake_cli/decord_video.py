"""The fast path: decord, which seeks to the keyframe before each sampled frame and decodes on.

Only the sampled frames (and the frames between their keyframes and them) are decoded, so a
long video costs a few GOPs per sample rather than a full decode. decord names frames by its
packet index sorted by presentation time; on the containers and streams where that index and
its seeks agree with a sequential decode (`video.decord_is_exact` says which), its frames are
exact. Everywhere else, or when decord fails, `video` reads with `pyav_video` instead: every
failure here is a `DecordFailed`, which says why in a few words and is never shown as an error.

This module must stay free of torch imports (the decoding worker imports it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

# decord's `fault_tol`: when a frame cannot be decoded, decord silently substitutes the nearest
# decoded frame unless the number of substitutions exceeds the threshold. 0 would mean "off"
# (decord tests the parsed integer for truthiness), so the strictest setting is a tiny fraction:
# threshold = fraction * frame count < 1, and the first substituted frame raises.
DECORD_FAULT_TOLERANCE = 1e-9


#: What one of decord's seeks costs, in frames decoded. Fitted to decord and PyAV reading 32
#: frames of 720p H.264 clips on 2 cores (10 s and 60 s, keyframes every 12, 30 or 250 frames:
#: decord 0.81-3.29 s, PyAV 0.71-3.64 s): both decode a frame in about 1.5 ms and convert a
#: sampled one in about 11 ms; each of decord's seeks adds about 15 ms.
DECORD_SEEK_FRAMES = 10


def decord_cost_frames(frame_indices: list[int], keyframe_interval: int) -> int:
    """About what decord's reading of these frames costs, in frames decoded.

    decord decodes on from its position when the next frame's keyframe is behind it, and else
    seeks to that keyframe (at `DECORD_SEEK_FRAMES`); keyframes are taken to come every
    `keyframe_interval` frames.
    """
    position = -1  # the last frame decoded
    cost = 0
    for index in sorted(set(frame_indices)):
        keyframe = index - index % max(1, keyframe_interval)
        if keyframe > position:
            cost += DECORD_SEEK_FRAMES + index - keyframe + 1
        else:
            cost += index - position
        position = index
    return cost


class DecordFailed(Exception):
    """decord could not give the requested frames exactly; `reason` says why, in a few words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_decord_module: Any = None


def load_decord() -> Any:
    """decord, imported once with its FFmpeg logging silenced.

    On bad files FFmpeg prints lines like "moov atom not found" to stderr; mattn's `VideoError`
    says the same thing in one sentence. decord's own C++ warnings ("ERROR opening: ...") cannot
    be switched off from Python; the decoding worker sends its stderr to /dev/null instead.
    """
    global _decord_module
    if _decord_module is None:
        import decord

        decord.logging.set_level(decord.logging.QUIET)
        _decord_module = decord
    return _decord_module


def _failure_reason(error: BaseException) -> str:
    """A few words from a decord exception (whose text is a C++ log line)."""
    detail = str(error)
    if "corrupted and recovered" in detail:
        return "decord substituted neighbouring frames for frames it could not decode"
    if "must exactly match" in detail or "from_size" in detail:
        # decord 0.6.0 mis-sizes frames whose padded row length is a multiple of their width
        # (output widths of 16, 32 or 48 pixels).
        return "decord cannot decode frames of this size"
    if "ERROR opening" in detail or "Error reading" in detail or "cannot find video" in detail:
        return "decord cannot open it"
    last_line = detail.strip().splitlines()[-1].strip() if detail.strip() else ""
    return f"decord failed ({last_line or type(error).__name__})"


@dataclass(frozen=True)
class DecordVideo:
    """A decord reader on a video, with the frame count and rate decord sees."""

    reader: Any  # decord.VideoReader
    num_frames: int
    fps: float  # NaN or 0 when decord knows no rate

    @classmethod
    def open(cls, path_text: str) -> DecordVideo:
        decord = load_decord()
        try:
            reader = decord.VideoReader(
                path_text, ctx=decord.cpu(0), fault_tol=DECORD_FAULT_TOLERANCE
            )
            num_frames = len(reader)
            fps = float(reader.get_avg_fps())
        except Exception as error:  # decord raises RuntimeError, DECORDError, AssertionError
            raise DecordFailed(_failure_reason(error)) from error
        if num_frames < 1:
            raise DecordFailed("decord found no frames")
        return cls(reader, num_frames, fps)

    def decode(self, frame_indices: list[int]) -> np.ndarray:
        """The requested frames as decord returns them: (N, H, W, 3) uint8 RGB."""
        try:
            batch = self.reader.get_batch(frame_indices)
            # A decord bridge set elsewhere (e.g. torch) changes the return type; accept any.
            frames = batch.asnumpy() if hasattr(batch, "asnumpy") else np.asarray(batch)
        except Exception as error:
            raise DecordFailed(_failure_reason(error)) from error
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
            raise DecordFailed(f"decord returned frames of shape {tuple(frames.shape)}")
        if frames.shape[0] != len(frame_indices):
            raise DecordFailed(f"decord returned {frames.shape[0]} of {len(frame_indices)} frames")
        return frames

    def times_s(self, frame_indices: list[int]) -> list[float] | None:
        """Presentation times of the frames, seconds after frame 0; None if decord has none.

        decord reads them from its packet index; on some containers they are garbage (huge
        negative numbers), which is why None is returned for anything not finite and rising.
        """
        try:
            starts = self.reader.get_frame_timestamp([0, *frame_indices])[:, 0]
        except Exception:
            return None
        times = [float(start - starts[0]) for start in starts[1:]]
        rising = all(later > earlier for earlier, later in zip(times, times[1:], strict=False))
        if not (rising and all(math.isfinite(time_s) and time_s >= 0 for time_s in times)):
            return None
        return times
