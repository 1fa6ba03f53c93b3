"""Decode workers on the CPU: scan speed with 1 and 2 decoding processes on a decode-bound batch.

The case where more decoding processes can help on a CPU: many short clips with small faces, a
tiny detector (a random EfficientNet-B0 at 64 px) and few sampled frames, so that judging a
video is cheap and decoding it is not. The clips are the carphone talking head (tests/data,
176x144) scaled by `--scale` on a grey `--size` canvas (at 1280x720, a face some 60 px tall),
encoded with PyAV as H.264 with one keyframe every `--keyint` frames, so that decord decodes
most of a clip to reach its sampled frames.

Timed, best of `--repeats` (each configuration in turn, so all see the same load; on a shared
machine other processes only add time), after the models are loaded and the workers started:

- decode only: `FrameReader.read_ahead` over the clips, nothing judged, per worker count;
- judge only: `VideoScanner.judge` over frames decoded beforehand (the floor for a scan);
- scan: `VideoScanner.scan_many`, as `mattn scan` runs once its models are loaded, for every
  `--workers` count and every `--video-batches` size.

It prints videos/s for each and the speed-up of every scan over the first one (1 worker, 1
video per batch: today's CPU default).

    python benchmarks/decode_workers.py                         # 12 clips of 8 s 720p
    python benchmarks/decode_workers.py --clips 6 --repeats 2   # a quick look
    python benchmarks/decode_workers.py --workers 1,2,4 --video-batches 1,4
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from deepfake_cli.device import prefer_passive_openmp
from deepfake_cli.frame_reader import FrameReader
from deepfake_cli.pyav_video import load_av

REPO = Path(__file__).resolve().parent.parent
CARPHONE = REPO / "tests" / "data" / "carphone_pristine.mp4"
FPS = 25


def int_list(text: str) -> list[int]:
    return [int(value) for value in text.split(",")]


def talking_head_frames(size: tuple[int, int], scale: float, count: int) -> list[np.ndarray]:
    """`count` RGB frames: the carphone clip scaled by `scale`, centred on a grey canvas."""
    width, height = size
    capture = cv2.VideoCapture(str(CARPHONE))
    source = []
    while True:
        frame_ok, frame = capture.read()
        if not frame_ok:
            break
        source.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    capture.release()
    source_height, source_width = source[0].shape[:2]
    scaled_width = min(width, round(source_width * scale))
    scaled_height = min(height, round(source_height * scale))
    top, left = (height - scaled_height) // 2, (width - scaled_width) // 2
    canvases = []
    for frame in source + source[-2:0:-1]:  # back and forth: no jump at the loop
        canvas = np.full((height, width, 3), 110, np.uint8)
        canvas[top : top + scaled_height, left : left + scaled_width] = cv2.resize(
            frame, (scaled_width, scaled_height), interpolation=cv2.INTER_AREA
        )
        canvases.append(canvas)
    return [canvases[index % len(canvases)] for index in range(count)]


def write_clip(path: Path, frames: list[np.ndarray], keyint: int) -> Path:
    av = load_av()
    height, width = frames[0].shape[:2]
    options = {"preset": "veryfast", "crf": "23", "x264-params": f"keyint={keyint}"}
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=FPS, options=options)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for frame_rgb in frames:
            frame = av.VideoFrame.from_ndarray(frame_rgb, format="rgb24").reformat(format="yuv420p")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def make_scanner(folder: Path, frames: int, video_batch: int):
    import torch

    from deepfake_cli.faces import FaceDetector
    from deepfake_cli.model import (
        MATConfig,
        Preprocessing,
        Provenance,
        build_detector,
        save_weights,
    )
    from deepfake_cli.model.weights import load_detector
    from deepfake_cli.scan import ScanOptions, VideoScanner
    from deepfake_cli.scoring import FaceScorer

    torch.manual_seed(0)
    weights = folder / "tiny.safetensors"
    if not weights.exists():
        model = build_detector(MATConfig(backbone="efficientnet-b0", input_size=64))
        save_weights(
            model,
            weights,
            preprocessing=Preprocessing(input_size=64),
            provenance=Provenance(name="bench-tiny", demo=True),
        )
    scorer = FaceScorer(load_detector(weights), precision="fp32")
    return VideoScanner(scorer, FaceDetector(), ScanOptions(frames=frames), video_batch=video_batch)


def warm_reader(reader: FrameReader, path: str, frames: int) -> None:
    """Every worker started and each library loaded, so that no timing pays for start-up."""
    for pending in [reader.submit(path, count=frames) for _ in range(reader.workers)]:
        pending.result()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=12, help="clips in the batch")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each clip")
    parser.add_argument("--size", default="1280x720", help="clip size, WIDTHxHEIGHT")
    parser.add_argument("--scale", type=float, default=1.0, help="of the 176x144 talking head")
    parser.add_argument("--keyint", type=int, default=250, help="frames between keyframes")
    parser.add_argument("--frames", type=int, default=4, help="frames sampled per video")
    parser.add_argument("--workers", type=int_list, default=[1, 2], help="decode workers to try")
    parser.add_argument("--video-batches", type=int_list, default=[1], help="--video-batch sizes")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each; the best is kept")
    arguments = parser.parse_args()
    prefer_passive_openmp()  # before torch is imported, as `mattn scan` does
    with tempfile.TemporaryDirectory(prefix="mattn-decode-workers-") as work_folder:
        run(arguments, Path(work_folder))


def run(arguments: argparse.Namespace, folder: Path) -> None:
    import torch

    size = tuple(int(value) for value in arguments.size.lower().split("x"))
    frame_count = round(arguments.seconds * FPS)
    started = time.perf_counter()
    frames = talking_head_frames(size, arguments.scale, frame_count)
    first = write_clip(folder / "clip0.mp4", frames, arguments.keyint)
    paths = [str(first)]
    for number in range(1, arguments.clips):
        # Copies under other names: the same work, and no cache can tell them apart.
        copy = folder / f"clip{number}.mp4"
        copy.write_bytes(first.read_bytes())
        paths.append(str(copy))
    print(
        f"{len(paths)} clips of {arguments.seconds:g} s, {size[0]}x{size[1]}, keyint "
        f"{arguments.keyint}, {arguments.frames} frames sampled; made in "
        f"{time.perf_counter() - started:.1f} s; {os.cpu_count()} cores, torch threads "
        f"{torch.get_num_threads()}, load average {os.getloadavg()[0]:.2f}"
    )
    scanners = {
        batch: make_scanner(folder, arguments.frames, batch) for batch in arguments.video_batches
    }
    any_scanner = next(iter(scanners.values()))
    readers = {
        workers: FrameReader(timeout_s=120.0, workers=workers) for workers in arguments.workers
    }
    try:
        for reader in readers.values():
            warm_reader(reader, paths[0], arguments.frames)
        decoded = [
            readers[arguments.workers[0]].read(path, count=arguments.frames) for path in paths
        ]
        (warm,) = list(any_scanner.scan_many(paths[:1], readers[arguments.workers[0]]))
        assert warm.status == "ok", warm.error

        def decode_only(reader: FrameReader) -> None:
            for _path, pending in reader.read_ahead(paths, count=arguments.frames):
                pending.result()

        def judge_only() -> None:
            for path, sampled in zip(paths, decoded, strict=True):
                any_scanner.judge(path, sampled, time.perf_counter())

        def scan(scanner, reader: FrameReader) -> None:
            results = list(scanner.scan_many(paths, reader))
            assert all(result.status == "ok" for result in results), results[0].error

        timings: dict[str, float] = {}
        for _ in range(arguments.repeats):
            cases = {
                f"decode only, {workers} worker(s)": (decode_only, (reader,))
                for workers, reader in readers.items()
            }
            cases["judge only (decoded beforehand)"] = (judge_only, ())
            for workers, reader in readers.items():
                for batch, scanner in scanners.items():
                    cases[f"scan, {workers} worker(s), video batch {batch}"] = (
                        scan,
                        (scanner, reader),
                    )
            for name, (function, function_arguments) in cases.items():
                started = time.perf_counter()
                function(*function_arguments)
                elapsed = time.perf_counter() - started
                timings[name] = min(timings.get(name, float("inf")), elapsed)
    finally:
        for reader in readers.values():
            reader.close()

    print(f"best of {arguments.repeats}; videos/s over {len(paths)} clips")
    baseline = None
    for name, elapsed in timings.items():
        line = f"  {name:42} {elapsed:7.2f} s {len(paths) / elapsed:7.2f} videos/s"
        if name.startswith("scan"):
            baseline = baseline or elapsed
            line += f"   speed-up x{baseline / elapsed:.2f}"
        print(line)


if __name__ == "__main__":
    main()
