"""Decode time per video: decord alone (before) against mattn's exact frames (after), one run.

The same clips, the same sampled frames, in this process (no worker), best of `--repeats`:

1. MP4/H.264 (x264 defaults: closed GOPs, B-frames), the container most videos come in:
   - before: what `read_frames` did before exact frames, decord only: OpenCV's container
     metadata, a decord reader with the strictest fault tolerance, `get_batch` of the sampled
     frames, turned upright.
   - after: `read_frames` as it is now: PyAV opens the file and demuxes its first packets to
     choose the decoder (`video.decord_exact_reason`), then the same decord read.
   The target is after / before <= 1.10: the exact path may cost at most 10% on MP4.
2. The containers that need the fallback (MPEG-1 and MPEG-2 program streams, an MPEG transport
   stream, MPEG-4 Part 2 in AVI, open-GOP H.264 in MP4): `read_frames` (PyAV decoding every frame
   up to the last sampled one) against decord's read of the same file with decord's default
   fault tolerance (which substitutes frames silently; its frames are not the ones named), so
   the table says what exactness costs there.

"choosing" is the part of mattn's time spent deciding the decoder (PyAV opening the file and
demuxing its first packets). The clips are the carphone talking head (tests/data) scaled to
`--size`, played back and forth for `--seconds` (and a `--long-seconds` MPEG-2 program stream,
since the exact path's cost grows with a video's length), encoded with PyAV. On a shared
machine other processes only add time, hence best-of-N.

    python benchmarks/decode_speed.py                          # 2 clips of 10 s 720p
    python benchmarks/decode_speed.py --seconds 60 --clips 1   # one long clip
    python benchmarks/decode_speed.py --video a.mp4 --video b.mpg   # your own files
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

# OpenCV before decord: with decord loaded first, OpenCV's libpng breaks (see decode_worker).
import cv2
import numpy as np

from deepfake_cli.decord_video import DecordFailed, DecordVideo, load_decord
from deepfake_cli.pyav_video import load_av, probe_stream
from deepfake_cli.video import read_frames, sample_frame_indices
from deepfake_cli.video_container import container_metadata, upright

REPO = Path(__file__).resolve().parent.parent
CARPHONE = REPO / "tests" / "data" / "carphone_pristine.mp4"

#: (name, file ending, muxer, encoder, encoder options): the clips each run encodes.
MP4_H264 = ("mp4-h264", ".mp4", "mp4", "libx264", {"preset": "veryfast", "crf": "23"})
FALLBACK_CONTAINERS = (
    ("mpeg1-ps", ".mpg", "mpeg", "mpeg1video", {"qscale": "4", "g": "12", "bf": "2"}),
    ("mpeg2-ps", ".mpg", "vob", "mpeg2video", {"qscale": "4", "g": "12", "bf": "2"}),
    ("h264-ts", ".ts", "mpegts", "libx264", {"preset": "veryfast", "crf": "23"}),
    ("avi-mpeg4-part2", ".avi", "avi", "mpeg4", {"qscale": "4", "g": "12", "bf": "2"}),
    (
        "mp4-h264-open-gop",
        ".mp4",
        "mp4",
        "libx264",
        {"preset": "veryfast", "crf": "23", "x264-params": "open-gop=1:keyint=50"},
    ),
)


def talking_head_frames(size: tuple[int, int], count: int) -> list[np.ndarray]:
    """`count` RGB frames of the carphone clip at `size` (width, height), back and forth."""
    width, height = size
    capture = cv2.VideoCapture(str(CARPHONE))
    source = []
    while True:
        frame_ok, frame = capture.read()
        if not frame_ok:
            break
        frame = cv2.resize(frame, size, interpolation=cv2.INTER_CUBIC)
        source.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    capture.release()
    ping_pong = source + source[-2:0:-1]
    return [ping_pong[index % len(ping_pong)] for index in range(count)]


def write_clip(path: Path, frames: list[np.ndarray], muxer: str, encoder: str, options: dict):
    av = load_av()
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w", format=muxer) as container:
        stream = container.add_stream(encoder, rate=25, options=dict(options))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for frame_rgb in frames:
            frame = av.VideoFrame.from_ndarray(frame_rgb, format="rgb24").reformat(format="yuv420p")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def decord_only(path: str, count: int, *, strict: bool = True) -> np.ndarray:
    """The read before exact frames: OpenCV metadata, then decord's keyframe seeks.

    `strict`: decord's strictest fault tolerance, as `read_frames` used it; else decord's
    default, which substitutes frames silently (to time decord on files it reads wrongly).
    """
    metadata = container_metadata(path)
    if strict:
        video = DecordVideo.open(path)
    else:
        decord = load_decord()
        reader = decord.VideoReader(path, ctx=decord.cpu(0))
        video = DecordVideo(reader, len(reader), float(reader.get_avg_fps()))
    indices = sample_frame_indices(video.num_frames, video.fps, count)
    return upright(video.decode(indices), metadata)


def seconds(function) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def measure(path: Path, count: int, repeats: int, *, strict: bool = True) -> dict:
    """Best-of-`repeats` seconds of both reads, taken in turn so that both see the same load."""
    before: float | None = float("inf")
    after = probe = float("inf")
    sampled = read_frames(path, count=count)  # warm: the file in the page cache, libraries loaded
    for _ in range(repeats):
        probe = min(probe, seconds(lambda: probe_stream(str(path))))
        if before is not None:
            try:
                before = min(before, seconds(lambda: decord_only(str(path), count, strict=strict)))
            except DecordFailed:  # decord cannot read it at all
                before = None
        after = min(after, seconds(lambda: read_frames(path, count=count)))
    return {
        "video": path.name,
        "frames": sampled.info.num_frames,
        "size": f"{sampled.info.width}x{sampled.info.height}",
        "decoder": sampled.decode.decoder,
        "decord_only_s": None if before is None else round(before, 4),
        "mattn_s": round(after, 4),
        "choosing_s": round(probe, 4),
        "ratio": None if before is None else round(after / before, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="1280x720", help="clip size, WIDTHxHEIGHT")
    parser.add_argument("--seconds", type=float, default=10.0, help="clip length at 25 fps")
    parser.add_argument("--clips", type=int, default=2, help="MP4/H.264 clips (different starts)")
    parser.add_argument("--frames", type=int, default=32, help="frames sampled per video")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--long-seconds", type=float, default=60.0, help="a long MPEG-2 program stream (0: none)"
    )
    parser.add_argument("--video", action="append", default=[], help="your own video (repeat)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    arguments = parser.parse_args()
    size = tuple(int(value) for value in arguments.size.lower().split("x"))
    frame_count = round(arguments.seconds * 25)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="mattn-decode-speed-") as folder:
        frames = talking_head_frames(size, frame_count + 25 * arguments.clips)
        name, ending, muxer, encoder, options = MP4_H264
        mp4_paths = [
            write_clip(
                Path(folder) / f"{name}-{clip}{ending}",
                frames[25 * clip : 25 * clip + frame_count],
                muxer,
                encoder,
                options,
            )
            for clip in range(arguments.clips)
        ]
        fallback_paths = [
            write_clip(Path(folder) / f"{name}{ending}", frames[:frame_count], *rest)
            for name, ending, *rest in FALLBACK_CONTAINERS
        ]
        if arguments.long_seconds > 0:
            # The exact path's cost grows with the video's length; decord's with the samples.
            name, ending, *rest = FALLBACK_CONTAINERS[1]
            long_frames = talking_head_frames(size, round(arguments.long_seconds * 25))
            long_path = Path(folder) / f"{name}-{arguments.long_seconds:g}s{ending}"
            fallback_paths.append(write_clip(long_path, long_frames, *rest))
            del long_frames
        for path in [*mp4_paths, *map(Path, arguments.video)]:
            rows.append(measure(path, arguments.frames, arguments.repeats))
        for path in fallback_paths:
            rows.append(measure(path, arguments.frames, arguments.repeats, strict=False))
    if arguments.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{arguments.frames} frames sampled per video; best of {arguments.repeats}; seconds")
    print("(fallback rows: decord with its default fault tolerance, frames not exact)")
    print(
        f"{'video':24} {'frames':>6} {'size':>9} {'decoder':>7} {'decord':>8} {'mattn':>8} "
        f"{'ratio':>5} {'of which choosing':>17}"
    )
    for row in rows:
        decord_text = "fails" if row["decord_only_s"] is None else f"{row['decord_only_s']:.3f}"
        ratio_text = "" if row["ratio"] is None else f"{row['ratio']:.2f}"
        print(
            f"{row['video']:24} {row['frames']:>6} {row['size']:>9} {row['decoder']:>7} "
            f"{decord_text:>8} {row['mattn_s']:>8.3f} {ratio_text:>5} {row['choosing_s']:>17.4f}"
        )
    mp4_rows = rows[: len(mp4_paths)]
    mattn_total = sum(row["mattn_s"] for row in mp4_rows)
    overhead = mattn_total / sum(row["decord_only_s"] for row in mp4_rows)
    verdict = "within" if overhead <= 1.10 else "OVER"
    print(f"MP4/H.264: mattn / decord only = {overhead:.3f} ({verdict} the 1.10 target)")


if __name__ == "__main__":
    main()
