"""Hardware video decoding: which GPU decoders work here, how fast, and whether their frames match.

On one clip, at the same frame indices (every k-th frame from 0, so that a sequence reader can
name them too), each library that is importable decodes the frames to host memory:

- PyNvVideoCodec: `SimpleDecoder(...).get_batch_frames_by_index`, RGB output, via DLPack;
- NVIDIA DALI: `fn.readers.video(device="gpu", sequence_length=1, step=k)`;
- decord's GPU context: `VideoReader(path, ctx=decord.gpu(0)).get_batch` (the PyPI wheel is
  built without CUDA, so this fails there, with decord's reason);
- torchcodec's CUDA decoder: `VideoDecoder(path, device="cuda").get_frames_at`.

Each runs in a child process of its own (a decoder that crashes or hangs takes only its own
line with it), once to warm up (CUDA context, decoder set-up) and once timed: opening the file,
decoding and copying the frames to the host. The frames are compared with the CPU path, PyAV
decoding every frame in order (`pyav_video.read_exact`, mattn's exact path): max and mean
absolute pixel difference, and the worst frame's mean. Hardware decoders convert YUV to RGB
with their own arithmetic, so a few levels are expected; a wrong frame shows as a large mean.

One line per library: `not installed`, `failed: reason`, or frames/s and the differences. The
CPU paths (PyAV, and decord on the CPU as `mattn scan` reads MP4) come first, for scale.

    python benchmarks/nvdec_probe.py clip.mp4 [--frames 32] [--gpu 0]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

#: (library, the module whose presence says it is installed), in the order they are printed.
LIBRARIES = (
    ("PyNvVideoCodec", "PyNvVideoCodec"),
    ("DALI", "nvidia.dali"),
    ("decord-gpu", "decord"),
    ("torchcodec-cuda", "torchcodec"),
)
CHILD_TIMEOUT_S = 180


def strided_indices(num_frames: int, count: int) -> tuple[list[int], int]:
    """`count` frame indices 0, k, 2k, ... spread over the video, and the stride k."""
    stride = max(1, num_frames // max(1, count))
    return list(range(0, num_frames, stride))[:count], stride


def reference_frames(path: str, indices: list[int]) -> tuple[np.ndarray, float]:
    """The CPU path: PyAV decoding every frame in order, keeping `indices` -> (frames, seconds)."""
    from deepfake_cli.pyav_video import probe_stream, read_exact

    started = time.perf_counter()
    exact = read_exact(path, probe_stream(path), lambda _count, _fps: indices)
    return exact.frames, time.perf_counter() - started


def frame_count(path: str) -> int:
    from deepfake_cli.pyav_video import load_av, probe_stream

    count = probe_stream(path).frame_count
    if count:
        return count
    with load_av().open(path) as container:
        return sum(1 for packet in container.demux(video=0) if packet.size)


# --- the decoders, each -> (N, H, W, 3) uint8 RGB frames on the host ---------------------------


def _hwc(tensor):
    """A (H, W, 3) or (3, H, W) frame tensor as (H, W, 3)."""
    if tensor.ndim == 3 and tensor.shape[0] == 3 and tensor.shape[-1] != 3:
        return tensor.permute(1, 2, 0)
    return tensor


def decode_pynvvideocodec(path: str, indices: list[int], stride: int, gpu: int) -> np.ndarray:
    import PyNvVideoCodec as nvc
    import torch

    decoder = nvc.SimpleDecoder(
        path, gpu_id=gpu, use_device_memory=True, output_color_type=nvc.OutputColorType.RGB
    )
    frames = decoder.get_batch_frames_by_index(indices)
    stacked = torch.stack([_hwc(torch.from_dlpack(frame)) for frame in frames])
    return stacked.cpu().numpy()


def decode_dali(path: str, indices: list[int], stride: int, gpu: int) -> np.ndarray:
    from nvidia.dali import fn, pipeline_def

    @pipeline_def(batch_size=1, num_threads=2, device_id=gpu, prefetch_queue_depth=1)
    def one_frame_sequences():
        # Sequences of one frame, one every `stride` frames from frame 0: the same indices.
        return fn.readers.video(
            device="gpu",
            filenames=[path],
            sequence_length=1,
            step=stride,
            random_shuffle=False,
            name="reader",
        )

    pipeline = one_frame_sequences()
    pipeline.build()
    frames = []
    for _ in indices:
        (video,) = pipeline.run()
        frames.append(np.asarray(video.as_cpu().as_array())[0, 0])  # (1, 1, H, W, 3) -> (H, W, 3)
    return np.stack(frames)


def decode_decord_gpu(path: str, indices: list[int], stride: int, gpu: int) -> np.ndarray:
    import decord

    reader = decord.VideoReader(path, ctx=decord.gpu(gpu))
    return reader.get_batch(indices).asnumpy()


def decode_torchcodec_cuda(path: str, indices: list[int], stride: int, gpu: int) -> np.ndarray:
    import torch
    from torchcodec.decoders import VideoDecoder

    decoder = VideoDecoder(path, device=f"cuda:{gpu}", dimension_order="NHWC")
    frames = decoder.get_frames_at(indices=indices).data  # (N, H, W, 3) on the GPU
    torch.cuda.synchronize()
    return frames.cpu().numpy()


def decode_decord_cpu(path: str, indices: list[int], stride: int, gpu: int) -> np.ndarray:
    import decord

    return decord.VideoReader(path, ctx=decord.cpu(0)).get_batch(indices).asnumpy()


DECODERS: dict[str, Callable[[str, list[int], int, int], np.ndarray]] = {
    "PyNvVideoCodec": decode_pynvvideocodec,
    "DALI": decode_dali,
    "decord-gpu": decode_decord_gpu,
    "torchcodec-cuda": decode_torchcodec_cuda,
    "decord-cpu": decode_decord_cpu,
}


# --- one library in a child process ------------------------------------------------------------


def run_child(name: str, path: str, reference_path: Path, stride: int, gpu: int) -> dict:
    """Warm-up decode, timed decode, comparison with the reference frames (in this process)."""
    reference = np.load(reference_path)
    indices = list(range(0, stride * len(reference), stride))
    decode = DECODERS[name]
    decode(path, indices, stride, gpu)  # warm-up: CUDA context, decoder and library set-up
    started = time.perf_counter()
    frames = decode(path, indices, stride, gpu)
    seconds = time.perf_counter() - started
    result = {"frames": len(frames), "seconds": seconds, "shape": list(frames.shape)}
    if frames.shape != reference.shape:
        result["error"] = f"frames of shape {frames.shape}, reference {reference.shape}"
        return result
    difference = np.abs(frames.astype(np.int16) - reference.astype(np.int16))
    result["max_diff"] = int(difference.max())
    result["mean_diff"] = float(difference.mean())
    result["worst_frame_mean_diff"] = float(difference.reshape(len(frames), -1).mean(1).max())
    return result


def probe_in_child(name: str, path: str, reference_path: Path, stride: int, gpu: int) -> dict:
    command = [sys.executable, __file__, path, "--child", name, "--reference", str(reference_path)]
    command += ["--stride", str(stride), "--gpu", str(gpu)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {"error": f"no answer within {CHILD_TIMEOUT_S} s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        messages = [line for line in done.stderr.strip().splitlines() if line.strip()]
        reason = messages[-1] if messages else f"exit {done.returncode}"
        return {"error": reason[:300]}
    return json.loads(lines[-1])


def describe(name: str, result: dict) -> str:
    if "error" in result:
        return f"nvdec {name:16}: failed: {result['error']}"
    rate = result["frames"] / max(result["seconds"], 1e-9)
    return (
        f"nvdec {name:16}: {rate:8.1f} frames/s ({result['frames']} frames in "
        f"{result['seconds']:.2f} s, open + decode + copy to host); vs PyAV: max |diff| "
        f"{result['max_diff']}, mean {result['mean_diff']:.3f}, worst frame's mean "
        f"{result['worst_frame_mean_diff']:.3f}"
    )


def probe(path: str, frames: int, gpu: int) -> list[str]:
    """The probe's lines for one clip (also called by gpu_suite.py)."""
    indices, stride = strided_indices(frame_count(path), frames)
    reference, reference_s = reference_frames(path, indices)
    height, width = reference.shape[1:3]
    lines = [
        f"nvdec clip: {Path(path).name}, {width}x{height}, frames {indices[0]}..{indices[-1]} "
        f"every {stride}",
        f"nvdec {'PyAV (CPU, exact)':16}: {len(indices) / reference_s:8.1f} frames/s "
        f"({len(indices)} frames in {reference_s:.2f} s, decoding every frame in order)",
    ]
    with tempfile.TemporaryDirectory(prefix="mattn-nvdec-") as folder:
        reference_path = Path(folder) / "reference.npy"
        np.save(reference_path, reference)
        for name, module in (("decord-cpu", "decord"), *LIBRARIES):
            if importlib.util.find_spec(module.split(".")[0]) is None or (
                "." in module and importlib.util.find_spec(module) is None
            ):
                lines.append(f"nvdec {name:16}: not installed")
                continue
            lines.append(describe(name, probe_in_child(name, path, reference_path, stride, gpu)))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", help="the clip to decode")
    parser.add_argument("--frames", type=int, default=32, help="frames to decode")
    parser.add_argument("--gpu", type=int, default=0)
    parser.add_argument("--child", choices=sorted(DECODERS), help=argparse.SUPPRESS)
    parser.add_argument("--reference", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--stride", type=int, default=1, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        result = run_child(
            arguments.child, arguments.video, arguments.reference, arguments.stride, arguments.gpu
        )
        print(json.dumps(result))
        return
    for line in probe(arguments.video, arguments.frames, arguments.gpu):
        print(line, flush=True)


if __name__ == "__main__":
    main()
