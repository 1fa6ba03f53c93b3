"""The GPU suite's in-process measurements (gpu_suite.py sections 4-6), on one device.

- detector: the detector alone (`FaceScorer`, the scan's inference form) on random crops at
  each batch size and precision: faces/s (speed does not depend on what the crops show).
- mtcnn: `FaceDetector.detect` (batched MTCNN) on a clip's sampled frames: frames/s.
- stages: each stage's work, one video after another with nothing overlapping (decode, MTCNN,
  tracks and crops, detector), as shares of their sum: where a scan's time goes.

Each line ends with the peak GPU memory torch allocated for it (on CUDA).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from gpu_suite import Settings


def say(section: str, text: str) -> None:
    print(f"{section:8} {text}", flush=True)


#: The peak GPU memory torch allocated in each section that ran (MiB), for the memory line.
PEAKS_MIB: dict[str, float] = {}


def peak_mib(device: torch.device, section: str) -> str:
    """ "; peak N MiB allocated" since the last reset (recorded in PEAKS_MIB), or "" off CUDA."""
    if device.type != "cuda":
        return ""
    peak = torch.cuda.max_memory_allocated(device) / 2**20
    PEAKS_MIB[section] = max(PEAKS_MIB.get(section, 0.0), peak)
    return f"; peak {peak:.0f} MiB allocated"


def detector_only(weights: Path, device: torch.device, settings: Settings) -> None:
    from deepfake_cli.model.weights import load_detector
    from deepfake_cli.scoring import FaceScorer

    model = load_detector(weights, device=device)
    size = settings.input_size
    faces = max(settings.batch_sizes) * (4 if device.type == "cuda" else 2)
    crops = np.random.default_rng(0).integers(0, 256, (faces, size, size, 3), dtype=np.uint8)
    for precision in settings.precisions:
        if precision == "fp16" and device.type == "cpu":
            say("detector", "fp16: not on the CPU")
            continue
        scorer = FaceScorer(model, device=device, precision=precision)
        for batch_size in settings.batch_sizes:
            scorer.batch_size = batch_size
            scorer.score(crops[:batch_size])  # warm-up: inference form, kernel choice
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            started = time.perf_counter()
            scorer.score(crops)  # the probabilities come back to the host: synchronised
            seconds = time.perf_counter() - started
            say(
                "detector",
                f"{settings.backbone} {size} px, {precision}, batch {batch_size:3d}: "
                f"{faces / seconds:8.1f} faces/s ({faces} faces){peak_mib(device, 'detector')}",
            )


def mtcnn(first_clip: Path, device: torch.device, settings: Settings) -> None:
    from deepfake_cli.faces import FaceDetector
    from deepfake_cli.video import read_frames

    frames = read_frames(first_clip, count=settings.frames).frames  # (N, H, W, 3)
    detector = FaceDetector(device=device)
    detector.detect(frames[:2])  # warm-up
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    detections = detector.detect(frames)
    seconds = time.perf_counter() - started
    height, width = frames.shape[1:3]
    faces = sum(len(frame_faces) for frame_faces in detections)
    say(
        "mtcnn",
        f"{len(frames) / seconds:8.1f} frames/s ({len(frames)} frames of {width}x{height}, seen "
        f"at {detector.detection_size(height, width)}; {faces} faces){peak_mib(device, 'mtcnn')}",
    )


def stage_shares(
    clips: list[Path], weights: Path, device: torch.device, settings: Settings
) -> None:
    """Seconds of each stage's work, one video after another, with nothing overlapping."""
    from deepfake_cli.crops import crop_tracks
    from deepfake_cli.faces import FaceDetector
    from deepfake_cli.scoring import open_scorer
    from deepfake_cli.tracks import link_tracks
    from deepfake_cli.video import read_frames

    scorer = open_scorer(weights, backend="torch", device=device)
    detector = FaceDetector(device=device)
    geometry = scorer.preprocessing.crop_geometry
    size = settings.input_size
    detector.detect(np.zeros((2, size, size, 3), np.uint8))  # warm-up, as the scan's
    scorer.score(np.zeros((1, size, size, 3), np.uint8))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    seconds = dict.fromkeys(("decode", "MTCNN", "tracks + crops", "detector"), 0.0)
    faces = 0
    for path in clips[: settings.stage_videos]:
        mark = time.perf_counter()
        sampled = read_frames(path, count=settings.frames)
        seconds["decode"] += time.perf_counter() - mark
        mark = time.perf_counter()
        detections = detector.detect(sampled.frames)
        seconds["MTCNN"] += time.perf_counter() - mark
        mark = time.perf_counter()
        tracks = link_tracks(detections, max_faces=4)
        track_crops = crop_tracks(sampled.frames, tracks, geometry)
        seconds["tracks + crops"] += time.perf_counter() - mark
        mark = time.perf_counter()
        scorer.score(track_crops.crops)
        seconds["detector"] += time.perf_counter() - mark
        faces += len(track_crops.keys)
    total = sum(seconds.values())
    shares = ", ".join(
        f"{name} {100 * value / total:.0f} % ({value:.2f} s)" for name, value in seconds.items()
    )
    videos = min(settings.stage_videos, len(clips))
    say(
        "stages",
        f"{shares}; {videos} video(s), {faces} faces, {total:.2f} s{peak_mib(device, 'stages')}",
    )
