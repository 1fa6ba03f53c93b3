"""Where the computation runs: the one `--device` resolver, the OpenMP settings, and how an
OpenVINO model is compiled for the CPU.

`scan`, `extract-faces`, `report`, `train` and `evaluate` all take `--device` and all resolve it
here, so the same option fails with the same sentence everywhere. Torch is imported lazily: the
OpenMP setting has to be made before torch is first imported.
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from deepfake_cli.errors import UsageError

if TYPE_CHECKING:
    import torch

DEVICE_CHOICES = "auto, cpu, cuda, cuda:N or mps"


def resolve_device(spec: str = "auto", local_rank: int = 0) -> torch.device:
    """`auto`, `cpu`, `cuda`, `cuda:N` or `mps` -> a torch device that exists here.

    `auto` and a bare `cuda` take GPU `local_rank` (modulo the GPUs present), so each process
    that torchrun starts on a machine gets its own GPU; outside torchrun that is GPU 0.
    """
    import torch

    spec = spec.strip().lower()
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise UsageError(f"Unknown device {spec!r}; use {DEVICE_CHOICES}.") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"--device {spec} was asked for but no CUDA GPU is available.")
        count = torch.cuda.device_count()
        if device.index is None:
            return torch.device("cuda", local_rank % count)
        if device.index >= count:
            raise UsageError(f"--device {spec}: only {count} CUDA device(s) are present.")
    elif device.type == "mps":
        if not _mps_available():
            raise UsageError(f"--device {spec} was asked for but MPS is not available.")
    elif device.type != "cpu":
        raise UsageError(f"Unsupported device {spec!r}; use {DEVICE_CHOICES}.")
    return device


def _mps_available() -> bool:
    import torch

    mps = getattr(torch.backends, "mps", None)
    return bool(mps and mps.is_available())


def prefer_passive_openmp() -> None:
    """Make OpenMP threads sleep, not spin, while they wait for work (unless the user chose).

    libgomp's threads busy-wait between parallel regions by default. The scan runs a decoding
    worker process beside torch, and between the detector's operations Python code runs on one
    thread; spinning threads take those cores. On a busy 2-core machine scoring was 5-20x
    slower with spinning threads. OpenMP reads the setting once, when torch loads it, so this
    only has an effect before torch is imported (the CLI's case).
    """
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def set_torch_threads(count: int) -> None:
    """Intra-op threads for this process (a pool worker gets its share of the cores)."""
    import torch

    torch.set_num_threads(max(1, count))


def compile_for_openvino_cpu(core: Any, model: Any, config: dict[str, str]) -> Any:
    """`core.compile_model(model, "CPU", config)`, run in a thread that ends when it is done.

    OpenVINO's CPU plugin gives the thread that compiles a model an alternate signal stack and,
    when the model is freed, puts back the stack it found there; models freed in another order
    than they were compiled (the detector's fp32 run after its bf16 one, MTCNN's networks after
    the detector) leave that thread pointing at a freed stack, and the next signal it handles
    (a DataLoader worker exiting, Ctrl-C) crashes the process (seen with OpenVINO 2026.4: the
    test suite segfaulted). A compiling thread that ends takes its stack with it; running the
    compiled model touches no signal stack.
    """
    with ThreadPoolExecutor(1, thread_name_prefix="mattn-openvino-compile") as compiler:
        return compiler.submit(core.compile_model, model, "CPU", config).result()
