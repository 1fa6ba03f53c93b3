"""Faces per second: `mattn extract-faces` against a naive extraction loop, on the same clips.

The clips are made here from tests/data/carphone_pristine.mp4 (a real talking head), scaled
to `--width` so that detection costs what it costs on dataset-sized video, and laid out as
plain real/fake folders. Both sides sample the same frame indices of the same clips, cut
crops with the same crop function at the same size, and write PNG files.

Naive loop (the common hand-written script): videos one after another; OpenCV reads the
frames one by one (`grab` to step over a frame, `retrieve` for a sampled one); facenet-pytorch
MTCNN with its default settings, called once per frame; every detection above 0.9 is cropped
and written. No tracking, no batching, no second process.

mattn: `extract_faces` with `--workers` processes (each with one torch thread per core
share), batched MTCNN with its frame-size-aware minimum face size, decoding with decord in a
worker process that reads ahead, and atomic writes plus done-records for resuming. Its time
includes starting the worker processes and loading MTCNN; so does the naive loop's.

The folders layout pairs no fakes with originals, so both sides detect faces in every video;
on FaceForensics++ or DFDC mattn also skips detection on fakes whose original it has.

Run it twice, with and without `--torch-threads 1`: on a busy machine torch's default of one
thread per core makes per-frame MTCNN many times slower (threads spin-wait on each other for
every small convolution), which flatters mattn; one thread is the fair comparison there.

    python benchmarks/extract_throughput.py --videos 8 --frames 32 --width 640 --workers 2
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
CARPHONE = REPO / "tests" / "data" / "carphone_pristine.mp4"


def make_clips(folder: Path, *, videos: int, width: int, clip_frames: int) -> list[Path]:
    """`videos` clips (half under real/, half under fake/), each `clip_frames` long."""
    capture = cv2.VideoCapture(str(CARPHONE))
    source_frames = []
    while True:
        frame_ok, frame = capture.read()
        if not frame_ok:
            break
        source_frames.append(frame)
    capture.release()
    source_height, source_width = source_frames[0].shape[:2]
    # Even sizes: some encoders refuse odd ones.
    height = 2 * round(width * source_height / source_width / 2)
    scaled = [
        cv2.resize(frame, (width, height), interpolation=cv2.INTER_CUBIC) for frame in source_frames
    ]
    paths = []
    for video_number in range(videos):
        label_folder = "real" if video_number % 2 == 0 else "fake"
        path = folder / label_folder / f"clip{video_number:03d}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (width, height))
        # Each clip starts elsewhere in the source (looping), so the clips are not identical.
        start = (video_number * 17) % len(scaled)
        for offset in range(clip_frames):
            frame = scaled[(start + offset) % len(scaled)]
            writer.write(
                frame if label_folder == "real" else np.ascontiguousarray(frame[..., ::-1])
            )
        writer.release()
        paths.append(path)
    return paths


def naive_extract(paths: list[Path], output_dir: Path, *, frames: int, crop_size: int) -> int:
    """The hand-written loop; returns how many face crops it wrote."""
    import torch
    from facenet_pytorch import MTCNN

    from deepfake_cli.crops import crop_face
    from deepfake_cli.video import sample_frame_indices

    mtcnn = MTCNN(keep_all=True, device=torch.device("cpu"))
    crops_written = 0
    for path in paths:
        capture = cv2.VideoCapture(str(path))
        num_frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        fps = capture.get(cv2.CAP_PROP_FPS)
        wanted = set(sample_frame_indices(num_frames, fps, frames))
        video_folder = output_dir / path.stem
        video_folder.mkdir(parents=True, exist_ok=True)
        for frame_index in range(num_frames):
            if not capture.grab():
                break
            if frame_index not in wanted:
                continue
            frame_ok, frame_bgr = capture.retrieve()
            if not frame_ok:
                continue
            frame_rgb = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB)
            boxes, probabilities = mtcnn.detect(frame_rgb)
            if boxes is None:
                continue
            for face_number, (box_xyxy, det_prob) in enumerate(
                zip(boxes, probabilities, strict=True)
            ):
                if det_prob < 0.9:
                    continue
                crop = crop_face(frame_rgb, box_xyxy, size=crop_size, margin_ratio=1.3)
                crop_path = video_folder / f"{face_number}_{frame_index}.png"
                cv2.imwrite(str(crop_path), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
                crops_written += 1
        capture.release()
    return crops_written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--clip-frames", type=int, default=120, help="frames per clip")
    parser.add_argument("--frames", type=int, default=32, help="frames sampled per clip")
    parser.add_argument("--width", type=int, default=640, help="clip width (carphone is 176)")
    parser.add_argument("--crop-size", type=int, default=440)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=None,
        help="torch threads in this process, for the naive loop and mattn --workers 1 alike "
        "(default: torch's own choice; worker processes always take cores / workers)",
    )
    arguments = parser.parse_args()
    if arguments.torch_threads is not None:
        import torch

        torch.set_num_threads(arguments.torch_threads)

    from deepfake_cli.extract import extract_faces

    work_folder = Path(tempfile.mkdtemp(prefix="mattn-extract-bench-"))
    try:
        dataset = work_folder / "dataset"
        paths = make_clips(
            dataset,
            videos=arguments.videos,
            width=arguments.width,
            clip_frames=arguments.clip_frames,
        )
        frame_height = cv2.VideoCapture(str(paths[0])).get(cv2.CAP_PROP_FRAME_HEIGHT)
        print(
            f"{arguments.videos} clips of {arguments.clip_frames} frames at "
            f"{arguments.width}x{int(frame_height)}, {arguments.frames} frames sampled each, "
            f"{arguments.crop_size}px PNG crops, {os.cpu_count()} CPU cores, "
            f"torch threads {arguments.torch_threads or 'default'}, load average "
            f"{os.getloadavg()[0]:.1f}"
        )

        started = time.perf_counter()
        naive_crops = naive_extract(
            paths, work_folder / "naive", frames=arguments.frames, crop_size=arguments.crop_size
        )
        naive_s = time.perf_counter() - started
        naive_rate = naive_crops / naive_s
        print(
            f"naive loop          : {naive_crops:5d} faces in {naive_s:6.1f} s = "
            f"{naive_rate:6.2f} faces/s"
        )

        rates = {}
        for workers in sorted({1, arguments.workers}):
            output_dir = work_folder / f"mattn-{workers}"
            started = time.perf_counter()
            summary = extract_faces(
                dataset,
                output_dir,
                frames=arguments.frames,
                crop_size=arguments.crop_size,
                workers=workers,
                progress=False,
            )
            mattn_s = time.perf_counter() - started
            rates[workers] = summary.crops / mattn_s
            print(
                f"mattn --workers {workers:<3d}: {summary.crops:5d} faces in {mattn_s:6.1f} s = "
                f"{rates[workers]:6.2f} faces/s ({rates[workers] / naive_rate:.2f}x naive)"
            )
        best_workers = max(rates, key=rates.get)
        print(f"ratio (best mattn / naive): {rates[best_workers] / naive_rate:.2f}x")
    finally:
        shutil.rmtree(work_folder, ignore_errors=True)


if __name__ == "__main__":
    main()
