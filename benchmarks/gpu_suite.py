"""The GPU suite's measurements, in one run: what `benchmarks/gpu_suite.sh` prints.

1. env       - torch, CUDA, the GPU, CPU cores, and which decoders and model packages exist.
2. clips     - `--videos` copies of one H.264 clip (x264 veryfast, crf 23, yuv420p, 30 fps) of
               the carphone talking head (tests/data) scaled to `--size` for `--seconds`: 10-s
               1080p by default, as datasets hold them.
3. e2e       - `mattn scan CLIPS --format jsonl` end to end (start-up, models, decoding, MTCNN,
               detector), at each `--workers` count of `--decode-workers`: videos/s over the
               whole run and after the first result (start-up excluded). "not available" when
               this mattn has no such option. Hardware decoding: mattn has no option for it yet,
               so the line says so; the nvdec lines give what the decoders would offer.
4. detector  - the detector alone (`FaceScorer`, the scan's inference form) on random crops at
               each batch size and precision: faces/s.
5. mtcnn     - `FaceDetector.detect` (batched MTCNN) on the clip's sampled frames: frames/s.
6. stages    - the work of each stage, one video after another in this process (decode, MTCNN,
               tracks and crops, detector), as shares of their sum: where the time goes.
7. memory    - peak GPU memory: this process's (torch's allocator, sections 4-6) and the whole
               GPU's during each e2e run (nvidia-smi, every 0.2 s).
8. nvdec     - `nvdec_probe.py` on the first clip: each hardware decoder's frames/s and its
               frames' difference from PyAV's.

The model is a randomly initialised MAT (speed does not depend on the weights): EfficientNet-B4
at 380 px by default, B0 at 64 px with `--small`. `--small` (automatic without CUDA) shrinks
everything so that the whole run takes about a minute on two CPU cores.

    python benchmarks/gpu_suite.py                 # the GPU machine's run (see docs/gpu.md)
    python benchmarks/gpu_suite.py --small --videos 1 --workers 1
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2  # before decord (decode_speed.py says why)
import numpy as np
from gpu_suite_inprocess import PEAKS_MIB, detector_only, mtcnn, say, stage_shares

REPO = Path(__file__).resolve().parent.parent
CARPHONE = REPO / "tests" / "data" / "carphone_pristine.mp4"
FPS = 30


@dataclasses.dataclass(frozen=True)
class Settings:
    videos: int = 16
    seconds: float = 10.0
    size: tuple[int, int] = (1920, 1080)
    frames: int = 32  # sampled per video, as `mattn scan --frames`
    workers: tuple[int, ...] = (1, 4, 16)
    batch_sizes: tuple[int, ...] = (64, 128, 256)
    precisions: tuple[str, ...] = ("bf16", "fp16")
    backbone: str = "efficientnet-b4"
    input_size: int = 380
    stage_videos: int = 4  # videos timed stage by stage


SMALL = Settings(
    videos=2,
    seconds=2.0,
    size=(320, 180),
    frames=8,
    workers=(1, 2),
    batch_sizes=(4, 8),
    precisions=("fp32", "bf16"),
    backbone="efficientnet-b0",
    input_size=64,
    stage_videos=1,
)

#: (what is printed, the module to look for, distribution names for its version).
PACKAGES = (
    ("av", "av", ("av",)),
    ("decord", "decord", ("decord",)),
    ("facenet-pytorch", "facenet_pytorch", ("facenet-pytorch",)),
    ("efficientnet-pytorch", "efficientnet_pytorch", ("efficientnet-pytorch",)),
    ("onnxruntime", "onnxruntime", ("onnxruntime", "onnxruntime-gpu")),
    ("PyNvVideoCodec", "PyNvVideoCodec", ("PyNvVideoCodec", "pynvvideocodec")),
    ("DALI", "nvidia.dali", ("nvidia-dali-cuda130", "nvidia-dali-cuda120", "nvidia-dali-cuda110")),
    ("torchcodec", "torchcodec", ("torchcodec",)),
)
#: What mattn itself needs to scan and train; sections that need them are skipped without.
REQUIRED = ("av", "decord", "facenet_pytorch", "efficientnet_pytorch")


def installed(module: str) -> bool:
    top = module.split(".")[0]
    return (
        importlib.util.find_spec(top) is not None and importlib.util.find_spec(module) is not None
    )


# --- 1. env, 2. clips --------------------------------------------------------------------------


def environment_lines(torch) -> list[str]:
    lines = [
        f"python {sys.version.split()[0]}, torch {torch.__version__}, {os.cpu_count()} CPU cores"
    ]
    if torch.cuda.is_available():
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        lines.append(f"CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}: {names}")
    else:
        lines.append("no CUDA: small settings on the CPU (no GPU figure below)")
    found = []
    for label, module, distributions in PACKAGES:
        version = None
        for distribution in distributions:
            try:
                version = importlib.metadata.version(distribution)
                break
            except importlib.metadata.PackageNotFoundError:
                continue
        found.append(f"{label} {version or '?'}" if installed(module) else f"{label} MISSING")
    lines.append("packages: " + ", ".join(found))
    return lines


def make_clips(folder: Path, settings: Settings) -> list[Path]:
    """One H.264 clip of the talking head, and copies of it under other names."""
    from deepfake_cli.pyav_video import load_av

    av = load_av()
    width, height = settings.size
    capture = cv2.VideoCapture(str(CARPHONE))
    source = []
    while (read := capture.read())[0]:
        source.append(read[1])
    capture.release()
    scaled_width = min(width, round(height * source[0].shape[1] / source[0].shape[0]))
    left = (width - scaled_width) // 2
    ping_pong = source + source[-2:0:-1]  # forwards then backwards: no jump at the loop
    canvas = np.zeros((height, width, 3), np.uint8)  # black bars at the sides

    def frame_rgb(number: int) -> np.ndarray:
        """Frame `number` of the clip: the source scaled to the clip's height, centred."""
        scaled = cv2.resize(ping_pong[number % len(ping_pong)], (scaled_width, height))
        canvas[:, left : left + scaled_width] = cv2.cvtColor(scaled, cv2.COLOR_BGR2RGB)
        return canvas

    folder.mkdir(parents=True, exist_ok=True)
    first = folder / "clip00.mp4"
    with av.open(str(first), "w", format="mp4") as container:
        options = {"preset": "veryfast", "crf": "23"}
        stream = container.add_stream("libx264", rate=FPS, options=options)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for number in range(round(settings.seconds * FPS)):
            frame = av.VideoFrame.from_ndarray(frame_rgb(number), format="rgb24")
            container.mux(stream.encode(frame.reformat(format="yuv420p")))
        container.mux(stream.encode(None))
    paths = [first]
    for number in range(1, settings.videos):  # the same work; no cache can tell them apart
        paths.append(folder / f"clip{number:02d}.mp4")
        shutil.copyfile(first, paths[-1])
    return paths


def make_weights(path: Path, settings: Settings) -> Path:
    from deepfake_cli.model import (
        MATConfig,
        Preprocessing,
        Provenance,
        build_detector,
        save_weights,
    )

    model = build_detector(MATConfig(backbone=settings.backbone, input_size=settings.input_size))
    provenance = Provenance(name=f"random-{settings.backbone}-{settings.input_size}", demo=True)
    preprocessing = Preprocessing(input_size=settings.input_size)
    return save_weights(model, path, preprocessing=preprocessing, provenance=provenance)


# --- 3. e2e and the GPU's memory ----------------------------------------------------------------


class GpuMemoryWatch:
    """The highest memory use nvidia-smi reports on any GPU while the block runs (MiB)."""

    def __init__(self) -> None:
        self.peak_mib: int | None = None
        self._process = None

    def __enter__(self) -> GpuMemoryWatch:
        if shutil.which("nvidia-smi"):
            query = ["--query-gpu=memory.used", "--format=csv,noheader,nounits", "-lms", "200"]
            self._process = subprocess.Popen(
                ["nvidia-smi", *query], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
            )
            threading.Thread(target=self._read, daemon=True).start()
        return self

    def _read(self) -> None:
        for line in self._process.stdout:
            if line.strip().isdigit():
                self.peak_mib = max(self.peak_mib or 0, int(line))

    def __exit__(self, *exc_info: object) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()


def scan_option_names() -> set[str]:
    """The options `mattn scan --help` lists (wide, so that rich does not cut their names)."""
    environment = {**os.environ, "COLUMNS": "250", "NO_COLOR": "1", "TERM": "dumb"}
    done = subprocess.run(
        [sys.executable, "-m", "deepfake_cli", "scan", "--help"],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
    )
    return set(re.findall(r"--[a-z][a-z0-9-]*", done.stdout))


def timed_scan(command: list[str], log_path: Path) -> tuple[float, float | None, list[dict]]:
    """Run a `mattn scan --format jsonl` command -> (seconds, seconds to its first result,
    the results); each result is timed as it is written."""
    started = time.perf_counter()
    first = None
    results = []
    with open(log_path, "wb") as log:
        environment = {**os.environ, "PYTHONUNBUFFERED": "1"}  # each result as it is written
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=log, text=True, env=environment
        )
        for line in process.stdout:
            if line.startswith("{"):
                first = first or time.perf_counter() - started
                results.append(json.loads(line))
        process.wait()
    return time.perf_counter() - started, first, results


def end_to_end(clip_folder: Path, weights: Path, settings: Settings, work: Path) -> None:
    options = scan_option_names()
    has_workers = "--decode-workers" in options
    base = [
        sys.executable,
        "-m",
        "deepfake_cli",
        "scan",
        str(clip_folder),
        "--weights",
        str(weights),
    ]
    base += ["--frames", str(settings.frames), "--format", "jsonl", "--quiet"]
    runs: list[tuple[str, list[str]]] = []
    if has_workers:
        runs += [
            (f"{count:2d} decode workers", ["--decode-workers", str(count)])
            for count in settings.workers
        ]
    else:
        for count in settings.workers:
            say(
                "e2e",
                f"{count:2d} decode workers: not available (mattn scan has no --decode-workers)",
            )
        runs.append(("mattn scan as it is", []))
    batching = "--video-batch" in options
    say(
        "e2e",
        f"cross-video batching (--video-batch): {'its default' if batching else 'not available'}",
    )
    broken = []
    for number, (label, extra) in enumerate(runs):
        log_path = work / f"scan-{number}.log"
        with GpuMemoryWatch() as memory:
            seconds, first, results = timed_scan(base + extra, log_path)
        statuses: dict[str, int] = {}
        for result in results:
            statuses[result["status"]] = statuses.get(result["status"], 0) + 1
        if not results or "error" in statuses:
            errors = [result["error"] for result in results if result["status"] == "error"]
            why = errors[:1] or log_path.read_text(errors="replace").strip().splitlines()[-3:]
            say("e2e", f"{label}: FAILED: {statuses or 'no results'}; {' / '.join(why)}")
            broken.append(label)
            continue
        counts = ", ".join(f"{status} {count}" for status, count in sorted(statuses.items()))
        steady = ""
        if first is not None and len(results) > 1 and seconds > first:
            steady = f", {(len(results) - 1) / (seconds - first):.2f} after the first result"
        gpu = f"; GPU memory peak {memory.peak_mib} MiB (nvidia-smi)" if memory.peak_mib else ""
        say(
            "e2e",
            f"{label}: {len(results) / seconds:6.2f} videos/s ({len(results)} videos in "
            f"{seconds:.1f} s, first result at {first:.1f} s{steady}); {counts}{gpu}",
        )
    hardware = sorted(name for name in options if re.search(r"hw|hardware|nvdec|gpu-dec", name))
    if hardware:
        say("e2e", f"hardware decoding: mattn scan has {', '.join(hardware)}; not run by the suite")
    else:
        say(
            "e2e",
            "hardware decoding: not available (mattn scan has no hardware-decoding option; "
            "the nvdec lines say what each GPU decoder would offer)",
        )
    if broken:
        raise RuntimeError(f"mattn scan failed with {', '.join(broken)}")


# --- main ---------------------------------------------------------------------------------------


def settings_from(arguments: argparse.Namespace, small: bool) -> Settings:
    settings = SMALL if small else Settings()
    changes = {}
    for name in ("videos", "seconds", "frames"):
        if getattr(arguments, name) is not None:
            changes[name] = getattr(arguments, name)
    if arguments.size:
        changes["size"] = tuple(int(value) for value in arguments.size.lower().split("x"))
    if arguments.workers:
        changes["workers"] = tuple(int(value) for value in arguments.workers.split(","))
    if arguments.batch_sizes:
        changes["batch_sizes"] = tuple(int(value) for value in arguments.batch_sizes.split(","))
    return dataclasses.replace(settings, **changes)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--small", action="store_true", help="CPU-sized run (automatic without CUDA)"
    )
    parser.add_argument("--videos", type=int, help="clips scanned end to end (16; small: 2)")
    parser.add_argument("--seconds", type=float, help="clip length (10; small: 2)")
    parser.add_argument("--size", help="clip WIDTHxHEIGHT (1920x1080; small: 320x180)")
    parser.add_argument("--frames", type=int, help="frames sampled per video (32; small: 8)")
    parser.add_argument("--workers", help="decode-worker counts, e.g. 1,4,16 (small: 1,2)")
    parser.add_argument("--batch-sizes", help="detector batch sizes (64,128,256; small: 4,8)")
    parser.add_argument("--skip", default="", help="sections to leave out, e.g. e2e,nvdec")
    parser.add_argument("--work", type=Path, help="keep clips and logs here")
    arguments = parser.parse_args()

    import torch

    from deepfake_cli.device import resolve_device

    small = arguments.small or not torch.cuda.is_available()
    settings = settings_from(arguments, small)
    skip = set(filter(None, arguments.skip.split(",")))
    device = resolve_device("auto")
    work = arguments.work or Path(tempfile.mkdtemp(prefix="mattn-gpu-suite-"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    for line in environment_lines(torch):
        say("env", line)
    missing = [module for module in REQUIRED if not installed(module)]
    if missing:
        say(
            "env",
            f"FAIL: mattn needs {', '.join(missing)}: place their wheels in benchmarks/wheels "
            "(docs/gpu.md); nothing below can run",
        )
        return 1

    mark = time.perf_counter()
    clips = make_clips(work / "clips", settings)
    width, height = settings.size
    say(
        "clips",
        f"{len(clips)} x {settings.seconds:g} s {width}x{height} H.264 at {FPS} fps "
        f"({clips[0].stat().st_size / 2**10:.0f} KiB each), "
        f"made in {time.perf_counter() - mark:.1f} s",
    )
    weights = make_weights(work / "random.safetensors", settings)
    sections = [
        ("e2e", lambda: end_to_end(work / "clips", weights, settings, work)),
        ("detector", lambda: detector_only(weights, device, settings)),
        ("mtcnn", lambda: mtcnn(clips[0], device, settings)),
        ("stages", lambda: stage_shares(clips, weights, device, settings)),
    ]
    failed = []
    for name, section in sections:
        if name in skip:
            continue
        try:
            section()
        except Exception as error:  # noqa: BLE001 - one broken section must not hide the others
            say(name, f"FAILED: {type(error).__name__}: {error}")
            failed.append(name)
    if device.type == "cuda" and PEAKS_MIB:
        section, peak = max(PEAKS_MIB.items(), key=lambda item: item[1])
        reserved = torch.cuda.max_memory_reserved(device) / 2**20
        say(
            "memory",
            f"this process: peak {peak:.0f} MiB allocated (in {section}), {reserved:.0f} MiB "
            "reserved by torch's caching allocator; each e2e run's whole-GPU peak is on its line",
        )
    else:
        say("memory", "GPU memory: not measured (no CUDA, or no section on the GPU ran)")
    if "nvdec" not in skip:
        probe = [sys.executable, str(Path(__file__).with_name("nvdec_probe.py")), str(clips[0])]
        done = subprocess.run(
            probe + ["--frames", str(settings.frames)], capture_output=True, text=True, timeout=900
        )
        for line in done.stdout.splitlines():
            say("nvdec", line.removeprefix("nvdec "))
        if done.returncode != 0:
            say("nvdec", f"FAILED (exit {done.returncode}): {done.stderr.strip()[-500:]}")
            failed.append("nvdec")
    verdict = f"FAIL ({', '.join(failed)})" if failed else "PASS"
    kept = bool(failed) or arguments.work is not None
    if not kept:
        shutil.rmtree(work, ignore_errors=True)
    where = f"; files kept in {work}" if kept else ""
    say("suite", f"{verdict}: measurements done in {time.perf_counter() - started:.0f} s{where}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
