"""Scan throughput: mattn's scan against a naive pipeline and against the detector alone.

All three are timed in one run, on the same clips, the same sampled frames and the same model:

1. mattn: `VideoScanner.scan_many` (the path `mattn scan` takes once the models are loaded):
   decord in a worker process that decodes the next video while this one is judged, batched
   MTCNN on the uint8 frames (pyramid and candidate crops from OpenCV halvings, a
   frame-size-aware minimum face), tracks, one crop per person and frame, the detector in
   batches (channels_last, tuned batch size). Its time is split by stage: MTCNN, tracks, crops,
   the detector (with normalising), and the rest (waiting for decoded frames, verdicts).
2. naive: the loop people write first. OpenCV seeks to each sampled frame
   (`CAP_PROP_POS_FRAMES`) and reads it; facenet-pytorch MTCNN with its default settings on
   the full frame, one frame at a time; every face above 0.9 cut with the same crop function
   and scored by the detector one face at a time; the mean of the scores.
3. detector only: the detector on exactly the crops mattn scored (recorded during its run),
   at the fastest of a few batch sizes. It is the floor for mattn: targets are naive/mattn >= 3
   and mattn/detector-only <= 1.3.

mattn is timed twice. Cold: the timer starts before the decoding worker does, so the first
video's whole decode is waited for. As `mattn scan` runs: the worker starts and the first
videos are requested, then the models load (the time this script measured loading them is
slept, the models being loaded already) and the timer starts; this is the time a user waits
after the models have loaded, and the second P2 figure. The lead is if anything short: it is
measured with torch and facenet-pytorch already imported, which a real `mattn scan` imports
(facenet-pytorch after its decoding worker has started) during its own lead.

Models are loaded before any timing (both pipelines share them); each pipeline is warmed up on
one frame first; the three run in turn `--repeats` times and the best time of each is kept
(on a shared machine other processes can only add time). OpenMP threads are told to sleep
rather than spin while waiting, as `mattn scan` does (see
`deepfake_cli.device.prefer_passive_openmp`); both pipelines get that.

Peak RSS (VmHWM) is reported for the benchmark process (both pipelines and their models) and
for mattn's decoding worker. `--long` also scans a 10-minute 16:9 clip (made at `--long-width`,
low so that writing it stays quick) in a fresh process that loads the models as `mattn scan`
does, and reports that process's peak RSS plus its decoding worker's: the target is < 1.5 GB.
On a CUDA machine the same script reports videos/s for all three (choose --videos and --frames
to suit; add --precision bf16 or fp16 to compare precisions).

    python benchmarks/scan_throughput.py                        # B4-380, 2 clips of 10 s 720p
    python benchmarks/scan_throughput.py --frames 8 --videos 1  # a quick look
    python benchmarks/scan_throughput.py --weights my.safetensors --video a.mp4 --video b.mp4
    python benchmarks/scan_throughput.py --long
    python benchmarks/scan_throughput.py --p2-only --repeats 6   # P2 alone, more repeats
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from deepfake_cli.device import prefer_passive_openmp
from deepfake_cli.frame_reader import FrameReader

REPO = Path(__file__).resolve().parent.parent
CARPHONE = REPO / "tests" / "data" / "carphone_pristine.mp4"
#: Sampled faces the naive pipeline keeps, as mattn's default face detector does.
MIN_DET_PROB = 0.9


# --- inputs -----------------------------------------------------------------------------------


def make_clip(path: Path, *, size: tuple[int, int], seconds: float, fps: float = 30.0) -> Path:
    """A `size` (width, height) clip of the carphone talking head, played back and forth.

    The 176x144 frames are scaled to the clip's height and centred (black bars at the sides),
    so the face keeps its shape at any aspect ratio.
    """
    width, height = size
    capture = cv2.VideoCapture(str(CARPHONE))
    source_frames = []
    while True:
        frame_ok, frame = capture.read()
        if not frame_ok:
            break
        source_frames.append(frame)
    capture.release()
    source_height, source_width = source_frames[0].shape[:2]
    scaled_width = min(width, round(height * source_width / source_height))
    left = (width - scaled_width) // 2
    canvases = []
    for frame in source_frames:
        canvas = np.zeros((height, width, 3), np.uint8)
        canvas[:, left : left + scaled_width] = cv2.resize(
            frame, (scaled_width, height), interpolation=cv2.INTER_CUBIC
        )
        canvases.append(canvas)
    # Forwards then backwards, so the face never jumps at the loop point.
    ping_pong = canvases + canvases[-2:0:-1]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    for frame_number in range(round(seconds * fps)):
        writer.write(ping_pong[frame_number % len(ping_pong)])
    writer.release()
    return path


def parse_size(text: str) -> tuple[int, int]:
    width, height = (int(value) for value in text.lower().split("x"))
    return width, height


def make_weights(path: Path, backbone: str, input_size: int) -> Path:
    """Randomly initialised weights (the authors' configuration unless told otherwise)."""
    from deepfake_cli.model import (
        MATConfig,
        Preprocessing,
        Provenance,
        build_detector,
        save_weights,
    )

    # The authors' padding, so that P0's reference is their arithmetic exactly.
    model = build_detector(MATConfig(backbone=backbone, input_size=input_size, legacy_padding=True))
    provenance = Provenance(name=f"random-{backbone}-{input_size}", demo=True)
    return save_weights(
        model, path, preprocessing=Preprocessing(input_size=input_size), provenance=provenance
    )


# --- the three pipelines ----------------------------------------------------------------------


def synchronize(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_mattn(
    scanner, paths: list[str], *, lead_s: float = 0.0
) -> tuple[float, list, list[np.ndarray], float, dict[str, float]]:
    """Seconds for `scan_many` over `paths`, the results, the crops it scored, the decoding
    worker's peak RSS in MiB, and seconds per stage (the rest: waiting for frames, verdicts).

    `lead_s` > 0 runs it as `mattn scan` does: the decoding worker starts and the first videos
    are requested, then the models load (`lead_s`, the measured load time, spent asleep here:
    the models are already loaded), and only then does the timer start.
    """
    import deepfake_cli.crops
    import deepfake_cli.tracks
    from deepfake_cli.scan import decode_ahead

    scored_crops: list[np.ndarray] = []
    scorer = scanner.scorer
    score = scorer.score
    stage_seconds = dict.fromkeys(("MTCNN", "tracks", "crops", "detector"), 0.0)

    def timed(stage: str, function):
        def timed_function(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                stage_seconds[stage] += time.perf_counter() - started

        return timed_function

    def recording_score(crops: np.ndarray) -> np.ndarray:
        scored_crops.append(crops)
        return score(crops)

    # Instance attributes (this scanner only) and the module attributes the scan looks up
    # when it runs; all put back afterwards.
    patched_modules = [
        (deepfake_cli.tracks, "link_tracks", "tracks"),
        (deepfake_cli.crops, "crop_tracks", "crops"),
    ]
    originals = [getattr(module, name) for module, name, _ in patched_modules]
    scorer.score = timed("detector", recording_score)
    scanner.face_detector.detect = timed("MTCNN", scanner.face_detector.detect)
    for (module, name, stage), original in zip(patched_modules, originals, strict=True):
        setattr(module, name, timed(stage, original))
    try:
        started = time.perf_counter()
        # Without a lead the decoding worker's start counts too.
        with FrameReader(timeout_s=scanner.options.timeout_s) as reader:
            decoding = decode_ahead(reader, paths, scanner.options, scanner.video_batch)
            if lead_s > 0:
                time.sleep(lead_s)
                started = time.perf_counter()
            results = list(scanner.judge_decoding(decoding))
            synchronize(scorer.device)
            seconds = time.perf_counter() - started
            worker_mib = children_peak_rss_mib()
    finally:
        del scorer.score
        del scanner.face_detector.detect
        for (module, name, _), original in zip(patched_modules, originals, strict=True):
            setattr(module, name, original)
    stage_seconds["decode wait + rest"] = seconds - sum(stage_seconds.values())
    return seconds, results, scored_crops, worker_mib, stage_seconds


def naive_scan(paths: list[str], model, device, frames: int) -> tuple[float, dict[str, float]]:
    """The naive loop over `paths`; returns (seconds, seconds per stage)."""
    import torch
    from facenet_pytorch import MTCNN

    from deepfake_cli.crops import crop_face, normalize_crops
    from deepfake_cli.model import fake_probabilities
    from deepfake_cli.video import sample_frame_indices

    preprocessing = model.preprocessing
    mtcnn = MTCNN(keep_all=True, device=device)
    stages = {"read (seek)": 0.0, "MTCNN": 0.0, "crop": 0.0, "detector": 0.0}

    def read(capture, frame_index: int) -> np.ndarray | None:
        capture.set(cv2.CAP_PROP_POS_FRAMES, frame_index)
        frame_ok, frame_bgr = capture.read()
        return cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB) if frame_ok else None

    # Warm-up on one frame, outside the timing (as mattn's models are warmed up).
    capture = cv2.VideoCapture(paths[0])
    mtcnn.detect(read(capture, 0))
    capture.release()

    started = time.perf_counter()
    for path in paths:
        capture = cv2.VideoCapture(path)
        num_frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        fps = capture.get(cv2.CAP_PROP_FPS)
        fake_probs = []
        for frame_index in sample_frame_indices(num_frames, fps, frames):
            mark = time.perf_counter()
            frame_rgb = read(capture, frame_index)
            stages["read (seek)"] += time.perf_counter() - mark
            if frame_rgb is None:
                continue
            mark = time.perf_counter()
            boxes, det_probs = mtcnn.detect(frame_rgb)
            stages["MTCNN"] += time.perf_counter() - mark
            if boxes is None:
                continue
            for box_xyxy, det_prob in zip(boxes, det_probs, strict=True):
                if det_prob < MIN_DET_PROB:
                    continue
                mark = time.perf_counter()
                crop = crop_face(
                    frame_rgb,
                    box_xyxy,
                    size=preprocessing.input_size,
                    margin_ratio=preprocessing.margin_ratio,
                )
                stages["crop"] += time.perf_counter() - mark
                mark = time.perf_counter()
                with torch.inference_mode():
                    image = normalize_crops(
                        crop[None], preprocessing.mean, preprocessing.std, device=device
                    )
                    fake_probs.append(float(fake_probabilities(model(image))[0]))
                stages["detector"] += time.perf_counter() - mark
        capture.release()
        # A real loop ends with a verdict: the mean over the faces.
        _verdict_score = sum(fake_probs) / len(fake_probs) if fake_probs else None
    synchronize(device)
    return time.perf_counter() - started, stages


def detector_only(
    scorer_for_batch_size, crops: np.ndarray, batch_sizes: list[int]
) -> dict[int, float]:
    """The scorer alone on `crops` (already cut), at each batch size: seconds per batch size.

    The same scorer mattn uses (backend, inference form, precision), so the gap to mattn is
    what is not the detector: decoding, MTCNN, tracks, crops and normalisation.
    """
    seconds_per_batch_size = {}
    for batch_size in batch_sizes:
        scorer = scorer_for_batch_size(batch_size)
        scorer.score(crops[:batch_size])  # warm-up for this shape
        synchronize(scorer.device)
        started = time.perf_counter()
        scorer.score(crops)
        synchronize(scorer.device)
        seconds_per_batch_size[batch_size] = time.perf_counter() - started
    return seconds_per_batch_size


def authors_arithmetic(model, crops: np.ndarray, device) -> tuple[float, np.ndarray]:
    """P0's reference: mattn's own model as the authors compute it (fp32, NCHW, eager, their
    padding, batch 4); seconds and fake probabilities."""
    import torch

    from deepfake_cli.crops import normalize_crops
    from deepfake_cli.model import fake_probabilities

    preprocessing = model.preprocessing
    model = model.to(memory_format=torch.contiguous_format)
    probabilities = []
    with torch.inference_mode():
        model(normalize_crops(crops[:4], preprocessing.mean, preprocessing.std, device=device))
        synchronize(device)
        started = time.perf_counter()
        for start in range(0, len(crops), 4):
            batch = normalize_crops(
                crops[start : start + 4], preprocessing.mean, preprocessing.std, device=device
            )
            probabilities.append(fake_probabilities(model(batch)).cpu())
        synchronize(device)
    return time.perf_counter() - started, torch.cat(probabilities).numpy()


# --- memory -----------------------------------------------------------------------------------


def peak_rss_mib(pid: int | str = "self") -> float:
    """A process's peak resident memory in MiB.

    Linux: VmHWM from /proc, not ru_maxrss, because ru_maxrss carries over the peak of the
    process it was forked from (a worker started by a 1 GB parent would report 1 GB).
    """
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        scale = 1 / 1024 if sys.platform != "darwin" else 1 / 1024 / 1024
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale if pid == "self" else 0.0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # reported in kB
    return 0.0


def children_peak_rss_mib() -> float:
    """Summed peak RSS of this process's live children (the decoding worker), in MiB."""
    child_pids: set[str] = set()
    for children_file in Path("/proc/self/task").glob("*/children"):
        child_pids.update(children_file.read_text().split())
    return sum(peak_rss_mib(pid) for pid in child_pids)


LONG_SCAN_CHILD = """
import json, sys
sys.path.insert(0, sys.argv[1])
from scan_throughput import children_peak_rss_mib, peak_rss_mib
from deepfake_cli.device import prefer_passive_openmp
from deepfake_cli.frame_reader import FrameReader
prefer_passive_openmp()
from deepfake_cli.faces import FaceDetector
from deepfake_cli.model.weights import load_detector
from deepfake_cli.scan import ScanOptions, VideoScanner
from deepfake_cli.device import resolve_device
from deepfake_cli.scoring import FaceScorer
from deepfake_cli.frame_reader import FrameReader
video, weights, frames, device = sys.argv[2:6]
device = resolve_device(device)
options = ScanOptions(frames=int(frames))
scorer = FaceScorer(load_detector(weights, device=device), device=device)
scanner = VideoScanner(scorer, FaceDetector(device=device), options)
with FrameReader(timeout_s=options.timeout_s) as reader:
    (result,) = scanner.scan_many([video], reader)
    worker_mib = children_peak_rss_mib()  # while the worker is alive
print(json.dumps({
    "status": result.status, "frames_used": result.frames_used,
    "self_mib": peak_rss_mib(), "worker_mib": worker_mib,
}))
"""


def long_scan_peak_rss(
    folder: Path, weights: Path, *, width: int, frames: int, device: str
) -> dict[str, float]:
    """Peak RSS of a scan (the `mattn scan` stages, in a fresh process) of a 10-minute clip."""
    started = time.perf_counter()
    height = 2 * round(width * 9 / 16 / 2)
    clip = make_clip(folder / "ten-minutes.mp4", size=(width, height), seconds=600.0, fps=25.0)
    made_s = time.perf_counter() - started
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, "-c", LONG_SCAN_CHILD, str(Path(__file__).parent), str(clip),
         str(weights), str(frames), device],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    measured = json.loads(completed.stdout.strip().splitlines()[-1])
    return {"clip_s": made_s, "scan_s": time.perf_counter() - started, **measured}


# --- main -------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--video", action="append", type=Path, help="use these clips (repeat)")
    parser.add_argument("--videos", type=int, default=2, help="clips to make (without --video)")
    parser.add_argument("--size", type=parse_size, default=(1280, 720), help="of made clips")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of made clips")
    parser.add_argument("--weights", type=Path, help="mattn weights (default: random, made here)")
    parser.add_argument("--backbone", default="efficientnet-b4", help="for made weights")
    parser.add_argument("--input-size", type=int, default=380, help="for made weights")
    parser.add_argument("--frames", type=int, default=32, help="frames sampled per video")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    parser.add_argument("--precision", default="auto", help="auto, fp32, bf16 or fp16")
    parser.add_argument(
        "--backends",
        type=lambda text: text.split(","),
        default=["torch", "onnxruntime"],
        help="comma-separated: torch, onnxruntime, openvino",
    )
    parser.add_argument(
        "--batch-sizes", default="1,2,4,8,16", help="tried for the detector-only floor"
    )
    parser.add_argument(
        "--repeats", type=int, default=2, help="interleaved runs of each; the best is kept"
    )
    parser.add_argument(
        "--p2-only",
        action="store_true",
        help="skip the naive pipeline and the authors' arithmetic (no P0, P1): more repeats of "
        "P2, the ratio a shared machine's noise moves most, fit in the same time",
    )
    parser.add_argument("--long", action="store_true", help="also scan a 10-minute clip")
    parser.add_argument("--long-width", type=int, default=320, help="width of the 16:9 long clip")
    arguments = parser.parse_args()
    prefer_passive_openmp()  # before torch is imported, as `mattn scan` does
    with tempfile.TemporaryDirectory(prefix="mattn-scan-bench-") as work_folder:
        run(arguments, Path(work_folder))


def run(arguments: argparse.Namespace, work_folder: Path) -> None:
    import torch

    from deepfake_cli.device import resolve_device
    from deepfake_cli.model.weights import load_detector
    from deepfake_cli.scan import ScanOptions, VideoScanner, face_detector_for
    from deepfake_cli.scoring import open_scorer

    device = resolve_device(arguments.device)
    if arguments.video:
        paths = [str(path) for path in arguments.video]
    else:
        started = time.perf_counter()
        first = make_clip(work_folder / "clip0.mp4", size=arguments.size, seconds=arguments.seconds)
        paths = [str(first)]
        for clip_number in range(1, arguments.videos):
            # Copies under other names: the same work, and no cache can tell them apart.
            copy = work_folder / f"clip{clip_number}.mp4"
            copy.write_bytes(first.read_bytes())
            paths.append(str(copy))
        print(f"made {len(paths)} clip(s) in {time.perf_counter() - started:.1f} s")
    weights = arguments.weights
    if weights is None:
        weights = make_weights(
            work_folder / "random.safetensors", arguments.backbone, arguments.input_size
        )

    onnx_weights = None
    if {"onnxruntime", "openvino"} & set(arguments.backends):
        from deepfake_cli.model.export import export_onnx

        onnx_weights = export_onnx(weights, work_folder / "bench.onnx").path

    def make_scorer(backend: str, batch_size: int | None = None):
        if backend in ("onnxruntime", "openvino"):
            return open_scorer(onnx_weights, backend=backend, device=device, batch_size=batch_size)
        return open_scorer(
            weights,
            backend=backend,
            device=device,
            precision=arguments.precision,
            batch_size=batch_size,
        )

    model = load_detector(weights, device=device)  # the naive pipeline's and P0's
    scanners, load_s = {}, {}
    for backend in arguments.backends:
        # What `mattn scan` loads while its first videos decode; timed for the `lead_s` runs.
        started = time.perf_counter()
        scorer, face_detector = make_scorer(backend), face_detector_for(backend, device)
        load_s[backend] = time.perf_counter() - started
        scanners[backend] = VideoScanner(
            scorer, face_detector, ScanOptions(frames=arguments.frames)
        )
    capture = cv2.VideoCapture(paths[0])
    width, height = (
        int(capture.get(prop)) for prop in (cv2.CAP_PROP_FRAME_WIDTH, cv2.CAP_PROP_FRAME_HEIGHT)
    )
    length_s = capture.get(cv2.CAP_PROP_FRAME_COUNT) / max(capture.get(cv2.CAP_PROP_FPS), 1e-9)
    capture.release()
    preprocessing = model.preprocessing
    print(
        f"{len(paths)} video(s) of {width}x{height}, {length_s:.1f} s; "
        f"{arguments.frames} frames sampled; "
        f"model {model.config.backbone} at {preprocessing.input_size} px ({weights.name}); "
        f"device {device}; backends {', '.join(arguments.backends)}; "
        f"{os.cpu_count()} CPU cores, torch threads {torch.get_num_threads()}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )

    # Warm-up: one frame through MTCNN and one face through each scorer (precision `auto`
    # decides on its first batch).
    warm_frame = np.zeros((preprocessing.input_size, preprocessing.input_size, 3), np.uint8)
    for scanner in scanners.values():
        scanner.face_detector.detect(warm_frame[None])
        scanner.scorer.score(warm_frame[None])

    # Interleaved repeats, best of each: on a shared machine other processes only ever add time.
    batch_sizes = [int(size) for size in arguments.batch_sizes.split(",")]
    mattn_runs = {backend: [] for backend in scanners}
    led_runs = {backend: [] for backend in scanners}  # decoding started during the model load
    stages_of = {backend: [] for backend in scanners}  # (seconds, seconds per stage) per run
    detector_runs = {backend: [] for backend in scanners}
    naive_runs, reference_runs = [], []
    results_of: dict[str, list] = {}
    for _ in range(arguments.repeats):
        for backend, scanner in scanners.items():
            led_s, *_ = time_mattn(scanner, paths, lead_s=load_s[backend])
            led_runs[backend].append(led_s)
            mattn_s, results, scored_crops, worker_mib, stage_seconds = time_mattn(scanner, paths)
            results_of[backend] = results
            mattn_runs[backend].append(mattn_s)
            stages_of[backend].append((mattn_s, stage_seconds))
            crops = np.concatenate(scored_crops) if scored_crops else np.zeros((0,))
            if len(crops):
                chosen_precision = scanner.scorer.precision_name
                detector_runs[backend].append(
                    detector_only(
                        lambda size, backend=backend, precision=chosen_precision: (
                            make_scorer(backend, size)
                            if backend in ("onnxruntime", "openvino")
                            else open_scorer(
                                weights,
                                backend=backend,
                                device=device,
                                precision=precision,
                                batch_size=size,
                            )
                        ),
                        crops,
                        batch_sizes,
                    )
                )
        if arguments.p2_only:
            continue
        naive_runs.append(naive_scan(paths, model, device, arguments.frames))
        if len(crops):
            reference_runs.append(authors_arithmetic(model, crops, device))

    def runs(seconds: list[float]) -> str:
        return " / ".join(f"{value:.2f}" for value in seconds)

    naive_s = None
    if naive_runs:
        naive_s, stages = min(naive_runs, key=lambda run: run[0])
        breakdown = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in stages.items())
        print(
            f"naive          : {naive_s:7.2f} s  ({len(paths) / naive_s:.3f} videos/s; "
            f"{breakdown}; runs {runs([run[0] for run in naive_runs])} s)"
        )
    reference_s = min(seconds for seconds, _ in reference_runs) if reference_runs else None
    if reference_s is not None:
        print(
            f"authors' arithmetic (fp32, NCHW, eager, batch 4) on mattn's {len(crops)} crops: "
            f"{reference_s:.2f} s"
        )
    for backend, scanner in scanners.items():
        mattn_s = min(mattn_runs[backend])
        statuses = ", ".join(sorted({result.status for result in results_of[backend]}))
        print(
            f"[{backend}] mattn: {mattn_s:.2f} s ({len(paths) / mattn_s:.3f} videos/s; "
            f"{len(crops)} faces; precision {scanner.scorer.precision_name}, batch "
            f"{scanner.scorer.batch_size}; status {statuses}; runs {runs(mattn_runs[backend])} s)"
        )
        # The stages of the best run: where the time that is not the detector goes.
        _, best_stages = min(stages_of[backend], key=lambda run: run[0])
        print(
            f"[{backend}] mattn by stage: "
            + ", ".join(f"{stage} {seconds:.2f} s" for stage, seconds in best_stages.items())
            + f" ({len(paths) * arguments.frames} frames sampled)"
        )
        if not detector_runs[backend]:
            continue
        per_batch_size = {
            size: min(run[size] for run in detector_runs[backend]) for size in batch_sizes
        }
        best = min(per_batch_size, key=per_batch_size.get)
        detector_s = per_batch_size[best]
        tried = ", ".join(f"{size}: {seconds:.2f} s" for size, seconds in per_batch_size.items())
        print(f"[{backend}] detector only: {detector_s:.2f} s (best batch {best}; {tried})")
        if reference_s is not None:
            reference_probabilities = reference_runs[0][1]
            scored = scanner.scorer.score(crops)
            delta = float(np.abs(scored - reference_probabilities).max())
            print(
                f"[{backend}] P0 detector / authors' arithmetic = {reference_s / detector_s:5.2f}x"
                f"  (target >= 3; max |dp| = {delta:.4f}, target <= 0.01)"
            )
        led_s = min(led_runs[backend])
        # On a shared machine one lucky run moves a best-of ratio: the medians' ratio as well.
        detector_median = float(np.median([run[best] for run in detector_runs[backend]]))
        median_cold = float(np.median(mattn_runs[backend])) / detector_median
        median_led = float(np.median(led_runs[backend])) / detector_median
        if naive_s is not None:
            print(
                f"[{backend}] P1 naive / mattn         = {naive_s / mattn_s:5.2f}x  (target >= 3)"
            )
        print(
            f"[{backend}] P2 mattn / detector only = {mattn_s / detector_s:5.2f}x  "
            f"(target <= 1.3; medians {median_cold:.2f}x; detector alone at batch {best}: runs "
            f"{runs([run[best] for run in detector_runs[backend]])} s)\n"
            f"[{backend}] P2 as `mattn scan` runs  = {led_s / detector_s:5.2f}x  (medians "
            f"{median_led:.2f}x; {led_s:.2f} s after the models loaded in "
            f"{load_s[backend]:.2f} s, the first videos decoding meanwhile; runs "
            f"{runs(led_runs[backend])} s)"
        )
    print(
        f"peak RSS       : {peak_rss_mib():.0f} MiB (this process, both pipelines) + "
        f"{worker_mib:.0f} MiB (mattn's decoding worker)"
    )

    if arguments.long:
        long = long_scan_peak_rss(
            work_folder,
            weights,
            width=arguments.long_width,
            frames=arguments.frames,
            device=arguments.device,
        )
        total = long["self_mib"] + long["worker_mib"]
        print(
            f"10-minute clip : made in {long['clip_s']:.0f} s; a fresh process loaded the models "
            f"and scanned it in {long['scan_s']:.1f} s ({long['status']}, "
            f"{long['frames_used']} frames with a face); peak RSS {long['self_mib']:.0f} + "
            f"{long['worker_mib']:.0f} (worker) = {total:.0f} MiB (target < 1536)"
        )


if __name__ == "__main__":
    main()
