"""Face crops -> fake probabilities: batching, device, precision.

The detector runs in inference mode with channels_last memory layout. Precision `auto` uses
autocast on CUDA (bf16 where supported, else fp16) and, on CPUs with fast bf16 (AMX or
AVX512-BF16), bf16 only if it keeps verdicts: the first batch is scored in both precisions and
bf16 is kept only when every |delta fake_probability| <= 0.01; otherwise fp32.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from deepfake_cli.crops import normalize_crops
from deepfake_cli.errors import UsageError
from deepfake_cli.model.mat import MATDetector, fake_probabilities

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
#: Largest |fake_probability(bf16) - fake_probability(fp32)| for which bf16 is trusted on CPU.
BF16_TOLERANCE = 0.01
#: Faces per detector batch. CPU: on 2 cores, B4 at 380 px takes as long per face at batch 2 as
#: at 4 and longer at 8 or 1, and batch 2 peaks ~270 MB lower than batch 4 (1.26 vs 1.53 GB).
DEFAULT_BATCH_SIZE = {"cpu": 2, "cuda": 64, "mps": 16}


def check_scoring_options(device: torch.device, precision: str, batch_size: int | None) -> None:
    """UsageError for a precision or batch size that cannot work on `device`."""
    if precision not in PRECISIONS:
        raise UsageError(f"Unknown precision {precision!r}; use {', '.join(PRECISIONS)}.")
    if precision == "fp16" and device.type == "cpu":
        raise UsageError("--precision fp16 needs a GPU; use fp32 or bf16 on the CPU.")
    if batch_size is not None and batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {batch_size}.")


def cpu_has_fast_bf16() -> bool:
    """True on CPUs with AMX-BF16 or AVX512-BF16 (where bf16 matmuls are actually faster)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


@dataclass
class FaceScorer:
    """Scores (N, S, S, 3) uint8 RGB crops with a detector, in batches."""

    model: MATDetector
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    precision: str = "auto"
    batch_size: int | None = None

    def __post_init__(self) -> None:
        check_scoring_options(self.device, self.precision, self.batch_size)
        if self.batch_size is None:
            self.batch_size = DEFAULT_BATCH_SIZE.get(self.device.type, 8)
        preprocessing = self.model.preprocessing
        self.mean, self.std = preprocessing.mean, preprocessing.std
        self.input_size = preprocessing.input_size
        self.model = self.model.to(self.device, memory_format=torch.channels_last).eval()
        # Resolved on the first batch for `auto` on CPUs with fast bf16.
        self.dtype: torch.dtype | None = self._initial_dtype()

    def _initial_dtype(self) -> torch.dtype | None:
        if self.precision == "fp32":
            return torch.float32
        if self.precision == "bf16":
            return torch.bfloat16
        if self.precision == "fp16":
            return torch.float16
        if self.device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if self.device.type == "cpu" and cpu_has_fast_bf16():
            return None  # decided on the first batch
        return torch.float32

    def _autocast(self, dtype: torch.dtype):
        if dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def _run(self, batch: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        with self._autocast(dtype):
            return fake_probabilities(self.model(batch)).float().cpu()

    @torch.inference_mode()
    def score(self, crops: np.ndarray) -> np.ndarray:
        """(N, S, S, 3) uint8 crops at the model's input size -> (N,) fake probabilities."""
        if len(crops) == 0:
            return np.zeros((0,), dtype=np.float32)
        if crops.shape[1] != self.input_size or crops.shape[2] != self.input_size:
            raise ValueError(
                f"crops are {crops.shape[1]}x{crops.shape[2]}, the model expects "
                f"{self.input_size}x{self.input_size}"
            )
        results = []
        for start in range(0, len(crops), self.batch_size):
            # uint8 crops go to the device before conversion: a quarter of float32's bytes.
            batch = normalize_crops(
                crops[start : start + self.batch_size], self.mean, self.std, device=self.device
            )
            batch = batch.contiguous(memory_format=torch.channels_last)  # (B, 3, S, S)
            if self.dtype is None:
                reference = self._run(batch, torch.float32)
                reduced = self._run(batch, torch.bfloat16)
                keeps_verdicts = float((reduced - reference).abs().max()) <= BF16_TOLERANCE
                self.dtype = torch.bfloat16 if keeps_verdicts else torch.float32
                results.append(reference)
                continue
            results.append(self._run(batch, self.dtype))
        return torch.cat(results).numpy()

    @property
    def precision_name(self) -> str:
        names = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16", None: "auto"}
        return names[self.dtype]
