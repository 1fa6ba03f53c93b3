"""Forward time per face: mattn's MAT vs a bare efficientnet-pytorch backbone of the same size.

The bare backbone is the floor the attention, texture and pooling parts add to; the target is
that the MAT parts add at most 15%. Both models are timed in the same run, on CPU and, when a
GPU is present, on CUDA with bf16/fp16 autocast and channels_last.

Usage: python benchmarks/model_forward.py [--backbone efficientnet-b4] [--size 380]
       [--batch 4] [--repeats 5] [--threads N]
"""

from __future__ import annotations

import argparse
import contextlib
import time

import torch
from efficientnet_pytorch import EfficientNet

from deepfake_cli.model import MATConfig, build_detector


def time_per_image(model, images, repeats: int, dtype: torch.dtype | None) -> float:
    device_type = images.device.type
    autocast = (
        torch.autocast(device_type=device_type, dtype=dtype)
        if dtype is not None
        else contextlib.nullcontext()
    )
    with torch.inference_mode(), autocast:
        model(images)  # warm-up (cuDNN autotuning, allocator)
        if device_type == "cuda":
            torch.cuda.synchronize()
        timings = []
        for _ in range(repeats):
            started = time.perf_counter()
            model(images)
            if device_type == "cuda":
                torch.cuda.synchronize()
            timings.append(time.perf_counter() - started)
    return min(timings) / images.shape[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="efficientnet-b4")
    parser.add_argument("--size", type=int, default=380)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    arguments = parser.parse_args()
    if arguments.threads:
        torch.set_num_threads(arguments.threads)

    mat = build_detector(MATConfig(backbone=arguments.backbone, input_size=arguments.size)).eval()
    bare = EfficientNet.from_name(
        arguments.backbone, image_size=arguments.size, num_classes=2
    ).eval()

    settings = [("cpu", None, "fp32")]
    if torch.cuda.is_available():
        settings += [
            ("cuda", None, "fp32"),
            ("cuda", torch.bfloat16, "bf16"),
            ("cuda", torch.float16, "fp16"),
        ]
    print(
        f"{arguments.backbone} at {arguments.size}px, batch {arguments.batch}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads"
    )
    print(
        f"{'device':<6} {'precision':<9} {'bare ms/face':>13} {'MAT ms/face':>12} {'MAT/bare':>9}"
    )
    for device_name, dtype, label in settings:
        device = torch.device(device_name)
        images = torch.randn(arguments.batch, 3, arguments.size, arguments.size, device=device)
        images = images.contiguous(memory_format=torch.channels_last)
        bare_model = bare.to(device, memory_format=torch.channels_last)
        mat_model = mat.to(device, memory_format=torch.channels_last)
        bare_time = time_per_image(bare_model, images, arguments.repeats, dtype)
        mat_time = time_per_image(mat_model, images, arguments.repeats, dtype)
        print(
            f"{device_name:<6} {label:<9} {bare_time * 1e3:>13.1f} {mat_time * 1e3:>12.1f} "
            f"{mat_time / bare_time:>9.2f}"
        )


if __name__ == "__main__":
    main()
