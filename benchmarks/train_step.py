"""Time one MAT training step as `mattn train` runs it, against the same step done naively.

A step = forward pass, RIL, AGDA (second forward pass on the augmented batch), backward,
AdamW step: `mat_training_step` plus the optimiser, exactly as in the training loop.

- mattn: the loop's settings for the device: on CUDA channels_last memory and mixed precision
  (bf16 autocast where supported, else fp16 with a gradient scaler), cuDNN autotuning; on CPU
  fp32 (and, as a second line, `--amp`: bf16 autocast).
- naive: fp32, default (contiguous) memory format, no autotuning.

Prints images/s of each and the ratio. Run: python benchmarks/train_step.py [--device cuda]
"""

from __future__ import annotations

import argparse
import time
from contextlib import nullcontext

import torch

from deepfake_cli.model.config import MATConfig
from deepfake_cli.model.mat import MATDetector
from deepfake_cli.model.step import mat_training_step


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(
    *,
    backbone: str,
    input_size: int,
    batch_size: int,
    device: torch.device,
    steps: int,
    warmup: int,
    channels_last: bool,
    dtype: torch.dtype | None,
) -> float:
    """Images per second of `steps` timed training steps (after `warmup` untimed ones)."""
    torch.manual_seed(0)
    model = MATDetector(MATConfig(backbone=backbone, input_size=input_size)).to(device).train()
    model.backbone._fc.requires_grad_(False)  # as the loop: stage 1's head is unused in MAT
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    autocast = torch.autocast(device.type, dtype=dtype) if dtype else nullcontext()
    images = torch.randn(batch_size, 3, input_size, input_size, device=device)
    images = images.contiguous(memory_format=memory_format)
    labels = torch.arange(batch_size, device=device) % 2

    def step() -> None:
        with autocast:
            parts = mat_training_step(model, images, labels)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(parts["loss"]).backward()
        scaler.step(optimizer)
        scaler.update()

    for _ in range(warmup):
        step()
    _sync(device)
    started = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return steps * batch_size / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    parser.add_argument("--backbone", default=None, help="default: b4 on CUDA, b0 on CPU")
    parser.add_argument(
        "--input-size", type=int, default=None, help="default: 380 on CUDA, 128 on CPU"
    )
    parser.add_argument(
        "--batch-size", type=int, default=None, help="default: 15 on CUDA (the paper's), 8 on CPU"
    )
    parser.add_argument("--steps", type=int, default=None, help="timed steps")
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()

    name = args.device
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    cuda = device.type == "cuda"
    backbone = args.backbone or ("efficientnet-b4" if cuda else "efficientnet-b0")
    input_size = args.input_size or (380 if cuda else 128)
    batch_size = args.batch_size or (15 if cuda else 8)
    steps = args.steps or (20 if cuda else 5)
    common = dict(
        backbone=backbone,
        input_size=input_size,
        batch_size=batch_size,
        device=device,
        steps=steps,
        warmup=args.warmup,
    )

    if cuda:
        torch.backends.cudnn.benchmark = False
        naive = time_steps(channels_last=False, dtype=None, **common)
        torch.backends.cudnn.benchmark = True
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        fast = time_steps(channels_last=True, dtype=dtype, **common)
        label = f"mattn (channels_last, {str(dtype).split('.')[-1]} autocast, cudnn.benchmark)"
        runs = [(label, fast)]
        device_name = torch.cuda.get_device_name(device)
    else:
        naive = time_steps(channels_last=False, dtype=None, **common)
        runs = [
            ("mattn default on CPU (fp32)", naive),
            (
                "mattn --amp on CPU (bf16 autocast)",
                time_steps(channels_last=False, dtype=torch.bfloat16, **common),
            ),
        ]
        device_name = f"CPU, {torch.get_num_threads()} threads"

    print(
        f"MAT training step (forward + AGDA pass + backward + AdamW), {backbone} at "
        f"{input_size} px, batch {batch_size}, {steps} timed steps, {device_name}"
    )
    print(f"  naive (fp32, contiguous):  {naive:8.2f} images/s")
    for label, rate in runs:
        print(f"  {label}: {rate:8.2f} images/s  ({rate / naive:.2f}x naive)")


if __name__ == "__main__":
    main()
