"""Face crops -> fake probabilities: batching, device, precision, backend.

The torch backend runs the detector's inference form (`model/inference.py`: batch norms folded,
fused SiLU, no concatenations in the texture branch) in inference mode with channels_last
memory layout. Precision `auto` uses autocast on CUDA (bf16 where supported, else fp16) and,
on CPUs with fast bf16 (AMX or AVX512-BF16), bf16 weights only if they keep verdicts: the first
batch is scored in both precisions and bf16 is kept only when every |delta fake_probability| <=
0.01; otherwise fp32. On the CPU, bf16 means weights converted to bf16 once (no per-op casts).

On CUDA the batches are pipelined: each batch's crops are copied and normalised on a side
stream while the previous batch runs on the compute stream, and scores stay on the GPU until
the last batch is queued (one device-to-host copy per call, not one wait per batch). Elsewhere
the same loop runs eagerly.

The onnxruntime and openvino backends (`OnnxFaceScorer`) score with an exported `.onnx` file:
onnxruntime in fp32; OpenVINO's CPU plugin in bf16 where the CPU has AMX (its default there),
under the same guard as torch's bf16, else fp32.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from deepfake_cli.crops import normalize_crops
from deepfake_cli.device import compile_for_openvino_cpu
from deepfake_cli.errors import UsageError, WeightsError
from deepfake_cli.model.config import Preprocessing
from deepfake_cli.model.inference import inference_form
from deepfake_cli.model.mat import MATDetector, fake_probabilities
from deepfake_cli.results import ModelInfo

BACKENDS = ("torch", "onnxruntime", "openvino")
#: Backends that run an exported .onnx file (on the CPU).
ONNX_BACKENDS = ("onnxruntime", "openvino")

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
#: Largest |fake_probability(bf16) - fake_probability(fp32)| for which bf16 is trusted on CPU.
BF16_TOLERANCE = 0.01
#: Faces per detector batch off the CPU.
DEFAULT_BATCH_SIZE = {"cuda": 64, "mps": 16}
#: On the CPU the batch is sized by its pixels: the largest power of two, 2 to 32, whose crops
#: hold at most this many pixels (four crops of 380 px). Measured on 2 cores (torch, bf16, ms per
#: face): B0 at 160 px 22.2 / 16.2 / 12.4 / 10.9 / 10.9 at batch 2 / 4 / 8 / 16 / 32, so 16; B4
#: at 380 px 121 / 110 / 126 at 2 / 4 / 8 (best of 3 interleaved), so 4: a 10-minute scan then
#: peaks at 1.30 GB (1.13 GB at 2) since detection stopped importing torchvision.
CPU_BATCH_PIXELS = 4 * 380**2
#: onnxruntime and OpenVINO on the CPU (OpenVINO, B4 at 380: 54 ms per face at batch 2, 60-67 at
#: 4 or 8).
ONNX_BATCH_SIZE = 2


def default_batch_size(device: torch.device, input_size: int) -> int:
    """Faces per detector batch for a model of `input_size` px on `device` (torch backend)."""
    if device.type != "cpu":
        return DEFAULT_BATCH_SIZE.get(device.type, 8)
    batch_size = 2
    while batch_size < 32 and 2 * batch_size * input_size**2 <= CPU_BATCH_PIXELS:
        batch_size *= 2
    return batch_size


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
    """Scores (N, S, S, 3) uint8 RGB crops with a detector, in batches.

    `model` is the detector as loaded (eval mode, on the device); the scores come from its
    inference form, built once per precision that is used. `compile=True` runs that form through
    `torch.compile` (batches are padded to `batch_size` so one graph serves them all).
    """

    model: MATDetector
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    precision: str = "auto"
    batch_size: int | None = None
    compile: bool = False

    def __post_init__(self) -> None:
        check_scoring_options(self.device, self.precision, self.batch_size)
        self.preprocessing: Preprocessing = self.model.preprocessing
        if self.batch_size is None:
            self.batch_size = default_batch_size(self.device, self.preprocessing.input_size)
        self.mean, self.std = self.preprocessing.mean, self.preprocessing.std
        self.input_size = self.preprocessing.input_size
        self.model = self.model.to(self.device, memory_format=torch.channels_last).eval()
        # Inference forms by the dtype their weights hold (see `_inference_model`).
        self._forms: dict[torch.dtype, torch.nn.Module] = {}
        # Resolved on the first batch for `auto` on CPUs with fast bf16.
        self.dtype: torch.dtype | None = self._initial_dtype()
        # CUDA only: where the next batch is copied and normalised (see `_device_batch`).
        self._copy_stream: torch.cuda.Stream | None = None

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

    def _weights_dtype(self, dtype: torch.dtype) -> torch.dtype:
        """On the CPU reduced precision lives in the weights; on GPUs autocast keeps fp32
        reductions (softmax, norms) and costs little next to the convolutions."""
        return dtype if self.device.type == "cpu" else torch.float32

    def _inference_model(self, dtype: torch.dtype) -> torch.nn.Module:
        weights_dtype = self._weights_dtype(dtype)
        if weights_dtype not in self._forms:
            form = inference_form(self.model, dtype=weights_dtype)
            form = form.to(self.device, memory_format=torch.channels_last)
            self._forms[weights_dtype] = (
                torch.compile(form, dynamic=False) if self.compile else form
            )
        return self._forms[weights_dtype]

    def _run(self, batch: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """(B, 3, S, S) -> (B,) float32 fake probabilities, left on the device."""
        model = self._inference_model(dtype)
        weights_dtype = self._weights_dtype(dtype)
        if weights_dtype != torch.float32:
            return fake_probabilities(model(batch.to(weights_dtype))).float()
        if dtype == torch.float32:
            return fake_probabilities(model(batch)).float()
        with torch.autocast(device_type=self.device.type, dtype=dtype):
            return fake_probabilities(model(batch)).float()

    def _device_batch(self, batch_crops: np.ndarray) -> torch.Tensor:
        """(B, S, S, 3) uint8 crops -> (B, 3, S, S) normalised, channels_last, on the device.

        On CUDA the copy and the normalisation run on a side stream: the copy waits only for
        that stream (the previous batch's normalisation), not for the model still running on
        the compute stream, so the host prepares batch k + 1 while the GPU runs batch k. The
        compute stream then waits for the side stream, and the batch is recorded on it so that
        its memory is not reused before the model has read it.
        """
        if self.device.type != "cuda":
            # uint8 crops go to the device before conversion: a quarter of float32's bytes.
            batch = normalize_crops(batch_crops, self.mean, self.std, device=self.device)
            return batch.contiguous(memory_format=torch.channels_last)
        if self._copy_stream is None:
            self._copy_stream = torch.cuda.Stream(self.device)
        compute_stream = torch.cuda.current_stream(self.device)
        with torch.cuda.stream(self._copy_stream):
            batch = normalize_crops(batch_crops, self.mean, self.std, device=self.device)
            batch = batch.contiguous(memory_format=torch.channels_last)
        compute_stream.wait_stream(self._copy_stream)
        batch.record_stream(compute_stream)
        return batch

    @torch.inference_mode()
    def score(self, crops: np.ndarray) -> np.ndarray:
        """(N, S, S, 3) uint8 crops at the model's input size -> (N,) fake probabilities."""
        if len(crops) == 0:
            return np.zeros((0,), dtype=np.float32)
        results = []
        for batch_crops in batches_of(crops, self.input_size, self.batch_size):
            num_real = len(batch_crops)
            if self.compile and num_real < self.batch_size:
                # One shape for the compiled graph: pad with copies, drop their scores.
                padding = np.repeat(batch_crops[-1:], self.batch_size - num_real, axis=0)
                batch_crops = np.concatenate([batch_crops, padding])
            batch = self._device_batch(batch_crops)  # (B, 3, S, S)
            if self.dtype is None:
                reference = self._run(batch, torch.float32)
                reduced = self._run(batch, torch.bfloat16)
                keeps_verdicts = float((reduced - reference).abs().max()) <= BF16_TOLERANCE
                self.dtype = torch.bfloat16 if keeps_verdicts else torch.float32
                # The form that lost is not needed again.
                self._forms.pop(
                    self._weights_dtype(torch.float32 if keeps_verdicts else torch.bfloat16), None
                )
                results.append(reference[:num_real])
                continue
            results.append(self._run(batch, self.dtype)[:num_real])
        # The one wait for the device: every batch is queued by now.
        return torch.cat(results).cpu().numpy()

    @property
    def precision_name(self) -> str:
        names = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16", None: "auto"}
        return names[self.dtype]

    @property
    def decision_threshold(self) -> float:
        """The weights' calibrated threshold, or 0.5 for weights that record none."""
        return resolve_threshold(getattr(self.model.provenance, "decision_threshold", None))

    @property
    def model_info(self) -> ModelInfo:
        provenance = self.model.provenance
        return ModelInfo(
            name=provenance.name, sha256=self.model.weights_sha256, demo=bool(provenance.demo)
        )


class OnnxFaceScorer:
    """Scores crops with an exported `.onnx` detector on the CPU: onnxruntime or OpenVINO.

    The preprocessing and provenance come from the file's mattn metadata (`mattn weights
    export`), so the crops are cut and normalised as for the torch model it came from.
    onnxruntime runs in fp32. OpenVINO's CPU plugin runs in bf16 on CPUs with AMX (its default
    there) if the first batch's |delta fake_probability| against its fp32 run is <= 0.01 (the
    guard of the torch backend), else in fp32.
    """

    def __init__(
        self, onnx_path: str | Path, *, batch_size: int | None = None, runtime: str = "onnxruntime"
    ) -> None:
        from deepfake_cli.model.export import require_onnx_extra
        from deepfake_cli.model.weights import file_sha256

        check_scoring_options(torch.device("cpu"), "fp32", batch_size)
        onnx_path = Path(onnx_path)
        if runtime == "openvino":
            require_onnx_extra("onnx", "openvino")
        else:
            require_onnx_extra("onnxruntime")
        if not onnx_path.is_file():
            raise WeightsError(f"Weights file {onnx_path} does not exist.")
        try:
            # (B, 3, S, S) normalised float32 -> (B, 2) logits, one callable per precision.
            runs_of = _openvino_runs if runtime == "openvino" else _ort_runs
            self._runs, metadata = runs_of(onnx_path)
        except Exception as error:  # onnx, onnxruntime and OpenVINO raise their own types
            raise UsageError(f"{onnx_path} is not an ONNX model {runtime} can load.") from error
        if "preprocessing" not in metadata:
            raise UsageError(
                f"{onnx_path} has no mattn metadata; export it with `mattn weights export`."
            )
        self.preprocessing = Preprocessing.from_dict(metadata["preprocessing"])
        self.mean, self.std = self.preprocessing.mean, self.preprocessing.std
        self.input_size = self.preprocessing.input_size
        self.batch_size = batch_size or ONNX_BATCH_SIZE
        provenance = metadata.get("provenance", {})
        self.model_info = ModelInfo(
            name=str(provenance.get("name", onnx_path.stem)),
            sha256=file_sha256(onnx_path),
            demo=bool(provenance.get("demo", False)),
        )
        self.decision_threshold = resolve_threshold(provenance.get("decision_threshold"))
        self.device = torch.device("cpu")
        # Decided on the first batch when there is a reduced precision to try.
        self.precision_name = "fp32" if len(self._runs) == 1 else "auto"

    def _probabilities(self, batch: np.ndarray, precision: str) -> torch.Tensor:
        return fake_probabilities(torch.from_numpy(np.asarray(self._runs[precision](batch))))

    def score(self, crops: np.ndarray) -> np.ndarray:
        """(N, S, S, 3) uint8 crops at the model's input size -> (N,) fake probabilities."""
        if len(crops) == 0:
            return np.zeros((0,), dtype=np.float32)
        results = []
        for batch_crops in batches_of(crops, self.input_size, self.batch_size):
            batch = normalize_crops(batch_crops, self.mean, self.std).numpy()
            if self.precision_name == "auto":
                reference = self._probabilities(batch, "fp32")
                reduced = self._probabilities(batch, "bf16")
                keeps_verdicts = float((reduced - reference).abs().max()) <= BF16_TOLERANCE
                self.precision_name = "bf16" if keeps_verdicts else "fp32"
                self._runs = {self.precision_name: self._runs[self.precision_name]}
                results.append(reference)
                continue
            results.append(self._probabilities(batch, self.precision_name))
        return torch.cat(results).numpy()


def _ort_runs(onnx_path: Path) -> tuple[dict, dict]:
    """The session's one fp32 run, and mattn's metadata as the session read it."""
    import onnxruntime

    from deepfake_cli.model.export import INPUT_NAME, OUTPUT_NAME, metadata_of_session

    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    runs = {"fp32": lambda batch: session.run([OUTPUT_NAME], {INPUT_NAME: batch})[0]}
    return runs, metadata_of_session(session)


def _openvino_runs(onnx_path: Path) -> tuple[dict, dict]:
    """OpenVINO's fp32 run and, on AMX CPUs, its bf16 run; mattn's metadata, read by onnx
    (OpenVINO does not expose an ONNX file's metadata properties)."""
    import openvino

    from deepfake_cli.model.export import metadata_of_onnx_file

    core = openvino.Core()
    runs = {}
    for precision, hint in (("fp32", "f32"), ("bf16", "bf16")):
        if precision == "bf16" and not cpu_has_fast_bf16():
            break
        compiled = compile_for_openvino_cpu(
            core, str(onnx_path), {"INFERENCE_PRECISION_HINT": hint}
        )
        runs[precision] = lambda batch, compiled=compiled: compiled(batch)[0]
    return runs, metadata_of_onnx_file(onnx_path)


#: The threshold for weights that record no calibrated one.
DEFAULT_THRESHOLD = 0.5


def resolve_threshold(calibrated: float | None) -> float:
    return DEFAULT_THRESHOLD if calibrated is None else float(calibrated)


def batches_of(crops: np.ndarray, input_size: int, batch_size: int) -> Iterator[np.ndarray]:
    """The crops in batches of at most `batch_size`, after checking their size."""
    if crops.shape[1] != input_size or crops.shape[2] != input_size:
        raise ValueError(
            f"crops are {crops.shape[1]}x{crops.shape[2]}, the model expects "
            f"{input_size}x{input_size}"
        )
    for start in range(0, len(crops), batch_size):
        yield crops[start : start + batch_size]


def resolve_backend(backend: str, weights_path: Path, device: torch.device, precision: str) -> str:
    """`auto` | `torch` | `onnxruntime` | `openvino` -> the backend that will score, or a
    UsageError."""
    is_onnx = weights_path.suffix.lower() == ".onnx"
    if backend == "auto":
        backend = "onnxruntime" if is_onnx else "torch"
    if backend not in BACKENDS:
        raise UsageError(f"Unknown backend {backend!r}; use auto, {', '.join(BACKENDS)}.")
    if backend == "torch" and is_onnx:
        raise UsageError(f"{weights_path} is an ONNX file; score it with --backend onnxruntime.")
    if backend in ONNX_BACKENDS:
        if not is_onnx:
            raise UsageError(
                f"--backend {backend} scores an exported .onnx file; make one with "
                f"`mattn weights export {weights_path} OUT.onnx` and pass it as --weights."
            )
        if device.type != "cpu":
            raise UsageError(f"--backend {backend} runs on the CPU; use --device cpu or auto.")
        if precision not in ("auto", "fp32"):
            raise UsageError(
                f"--backend {backend} chooses its own precision; use --precision auto or fp32."
            )
    return backend


def open_scorer(
    weights_path: Path,
    *,
    backend: str,
    device: torch.device,
    precision: str = "auto",
    batch_size: int | None = None,
    compile: bool = False,
) -> FaceScorer | OnnxFaceScorer:
    """The scorer for a resolved backend: the torch detector or an onnxruntime session."""
    if backend in ONNX_BACKENDS:
        return OnnxFaceScorer(weights_path, batch_size=batch_size, runtime=backend)
    from deepfake_cli.model.weights import load_detector

    model = load_detector(weights_path, device=device)
    return FaceScorer(
        model, device=device, precision=precision, batch_size=batch_size, compile=compile
    )
