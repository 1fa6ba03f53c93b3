"""Face crops -> fake probabilities: device choice, batching and precision of `FaceScorer`."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch

from deepfake_cli import scoring
from deepfake_cli.crops import normalize_crops
from deepfake_cli.device import resolve_device
from deepfake_cli.errors import UsageError
from deepfake_cli.model import MATConfig, Preprocessing, build_detector, fake_probabilities
from deepfake_cli.model.mat import MATDetector
from deepfake_cli.scoring import FaceScorer, check_scoring_options

CROP_SIZE = 64
NUM_CROPS = 10

has_mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
needs_no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is present")


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    # See tests/test_scan.py: spinning OpenMP threads on a shared 2-core machine.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model() -> MATDetector:
    """A tiny detector whose scores differ from crop to crop.

    A freshly initialised network scores every input almost alike (its batch-norm statistics
    are the defaults), which would let a batching bug pass unseen; a few batches in training
    mode give it statistics that match its activations.
    """
    torch.manual_seed(0)
    detector = build_detector(MATConfig(backbone="efficientnet-b0", input_size=CROP_SIZE))
    for module in detector.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.momentum = None  # a plain average over the calibration batches
    detector.train()
    with torch.no_grad():
        for _ in range(2):
            detector(torch.randn(16, 3, CROP_SIZE, CROP_SIZE))
    detector.eval()
    detector.preprocessing = Preprocessing(input_size=CROP_SIZE)
    return detector


@pytest.fixture(scope="module")
def crops() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(NUM_CROPS, CROP_SIZE, CROP_SIZE, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def reference(model: MATDetector, crops: np.ndarray) -> np.ndarray:
    """The model applied directly to all crops in one batch, in fp32."""
    preprocessing = model.preprocessing
    with torch.inference_mode():
        images = normalize_crops(crops, preprocessing.mean, preprocessing.std)
        return fake_probabilities(model(images)).numpy()


# --- devices ----------------------------------------------------------------------------------


def test_resolve_device_accepts_cpu_and_auto() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu"
    assert resolve_device("auto").type == expected


@needs_no_cuda
@pytest.mark.parametrize("spec", ["cuda", "cuda:0", "cuda:3"])
def test_resolve_device_refuses_absent_cuda(spec: str) -> None:
    with pytest.raises(UsageError, match="no CUDA GPU is available"):
        resolve_device(spec)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_resolve_device_refuses_a_gpu_index_that_is_not_there() -> None:
    with pytest.raises(UsageError, match="CUDA device"):
        resolve_device(f"cuda:{torch.cuda.device_count()}")


@pytest.mark.skipif(has_mps, reason="MPS is available here")
def test_resolve_device_refuses_absent_mps() -> None:
    with pytest.raises(UsageError, match="MPS is not available"):
        resolve_device("mps")


@pytest.mark.parametrize("spec", ["tpu", "gpu", "cuda:x", "", "meta"])
def test_resolve_device_refuses_unknown_devices(spec: str) -> None:
    with pytest.raises(UsageError, match="cpu, cuda, cuda:N or mps"):
        resolve_device(spec)


# --- options ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("precision", "batch_size", "message"),
    [
        ("fp16", None, "fp16 needs a GPU"),
        ("fp8", None, "Unknown precision"),
        ("auto", 0, "--batch-size must be at least 1"),
        ("fp32", -4, "--batch-size must be at least 1"),
    ],
)
def test_scoring_options_that_cannot_work_on_cpu_are_usage_errors(
    model: MATDetector, precision: str, batch_size: int | None, message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        check_scoring_options(torch.device("cpu"), precision, batch_size)
    with pytest.raises(UsageError, match=message):
        FaceScorer(model, precision=precision, batch_size=batch_size)


@pytest.mark.parametrize(
    ("input_size", "batch_size"), [(64, 32), (160, 16), (224, 8), (300, 4), (380, 4), (600, 2)]
)
def test_cpu_batches_are_sized_by_their_pixels(input_size: int, batch_size: int) -> None:
    """Measured on 2 cores: the bundled B0 at 160 px runs twice as fast per face at 16 as at 2;
    the authors' B4 at 380 about 10% faster at 4 than at 2, and a scan stays under 1.5 GB."""
    assert scoring.default_batch_size(torch.device("cpu"), input_size) == batch_size
    assert scoring.default_batch_size(torch.device("cuda"), input_size) == 64


def test_defaults_on_cpu_are_fp32_and_the_tuned_batch_size(
    model: MATDetector, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scoring, "cpu_has_fast_bf16", lambda: False)
    scorer = FaceScorer(model)
    assert scorer.batch_size == scoring.default_batch_size(
        torch.device("cpu"), model.preprocessing.input_size
    )
    assert scorer.dtype == torch.float32 and scorer.precision_name == "fp32"
    assert not scorer.model.training
    # channels_last: the layout EfficientNet's convolutions run fastest in.
    first_conv = next(p for p in scorer.model.parameters() if p.dim() == 4)
    assert first_conv.is_contiguous(memory_format=torch.channels_last)


# --- batching ---------------------------------------------------------------------------------


@pytest.mark.parametrize("batch_size", [1, 3, 4, NUM_CROPS, 64])
def test_any_batch_size_gives_the_scores_of_one_batch(
    model: MATDetector, crops: np.ndarray, reference: np.ndarray, batch_size: int
) -> None:
    assert np.ptp(reference) > 1e-3  # the crops score differently: a mix-up would show
    scores = FaceScorer(model, precision="fp32", batch_size=batch_size).score(crops)
    assert scores.shape == (NUM_CROPS,) and scores.dtype == np.float32
    np.testing.assert_allclose(scores, reference, atol=1e-5, rtol=0)


def test_scores_do_not_depend_on_the_other_crops_in_the_batch(
    model: MATDetector, crops: np.ndarray, reference: np.ndarray
) -> None:
    scorer = FaceScorer(model, precision="fp32", batch_size=4)
    shuffled = np.random.default_rng(1).permutation(NUM_CROPS)
    np.testing.assert_allclose(scorer.score(crops[shuffled]), reference[shuffled], atol=1e-5)
    np.testing.assert_allclose(scorer.score(crops[3:4]), reference[3:4], atol=1e-5)


def test_no_crops_and_wrong_sizes(model: MATDetector, crops: np.ndarray) -> None:
    scorer = FaceScorer(model, precision="fp32")
    assert scorer.score(crops[:0]).shape == (0,)
    with pytest.raises(ValueError, match="the model expects 64x64"):
        scorer.score(np.zeros((2, 32, 32, 3), np.uint8))


# --- precision --------------------------------------------------------------------------------


def _bf16_difference(model: MATDetector, crops: np.ndarray, batch_size: int) -> float:
    """Largest |bf16 - fp32| fake probability over the first batch, as the scorer measures it."""
    scorer = FaceScorer(model, precision="fp32", batch_size=batch_size)
    preprocessing = model.preprocessing
    with torch.inference_mode():
        batch = normalize_crops(crops[:batch_size], preprocessing.mean, preprocessing.std)
        batch = batch.contiguous(memory_format=torch.channels_last)
        full = scorer._run(batch, torch.float32)
        reduced = scorer._run(batch, torch.bfloat16)
    return float((reduced - full).abs().max())


@pytest.mark.parametrize("keeps_bf16", [True, False])
def test_auto_precision_on_a_bf16_cpu_keeps_bf16_only_within_tolerance(
    model: MATDetector,
    crops: np.ndarray,
    reference: np.ndarray,
    monkeypatch: pytest.MonkeyPatch,
    keeps_bf16: bool,
) -> None:
    batch_size = 4
    difference = _bf16_difference(model, crops, batch_size)
    assert difference > 0  # bf16 rounds: the tolerance really decides
    monkeypatch.setattr(scoring, "cpu_has_fast_bf16", lambda: True)
    tolerance = difference * 2 if keeps_bf16 else difference / 2
    monkeypatch.setattr(scoring, "BF16_TOLERANCE", tolerance)

    scorer = FaceScorer(model, precision="auto", batch_size=batch_size)
    assert scorer.dtype is None and scorer.precision_name == "auto"  # decided on first batch
    scores = scorer.score(crops)
    assert scorer.precision_name == ("bf16" if keeps_bf16 else "fp32")
    # The first batch is always reported in fp32 (it was scored both ways).
    np.testing.assert_allclose(scores[:batch_size], reference[:batch_size], atol=1e-5)
    if keeps_bf16:
        np.testing.assert_allclose(scores, reference, atol=0.05)
    else:
        np.testing.assert_allclose(scores, reference, atol=1e-5)
    # Decided once: later calls do not measure again.
    monkeypatch.setattr(scoring, "BF16_TOLERANCE", 1.0 if not keeps_bf16 else -1.0)
    scorer.score(crops[:batch_size])
    assert scorer.precision_name == ("bf16" if keeps_bf16 else "fp32")


def test_auto_precision_without_fast_bf16_never_tries_bf16(
    model: MATDetector, crops: np.ndarray, reference: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scoring, "cpu_has_fast_bf16", lambda: False)
    monkeypatch.setattr(scoring, "BF16_TOLERANCE", 1.0)
    scorer = FaceScorer(model, precision="auto")
    np.testing.assert_allclose(scorer.score(crops), reference, atol=1e-5)
    assert scorer.precision_name == "fp32"


def test_bf16_asked_for_on_cpu_is_used_and_close(
    model: MATDetector, crops: np.ndarray, reference: np.ndarray
) -> None:
    scorer = FaceScorer(model, precision="bf16", batch_size=NUM_CROPS)
    assert scorer.precision_name == "bf16"
    np.testing.assert_allclose(scorer.score(crops), reference, atol=0.05)


def test_cpu_has_fast_bf16_reads_cpu_flags(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    real_path = scoring.Path

    def fake_path(name: str):
        return cpuinfo if name == "/proc/cpuinfo" else real_path(name)

    monkeypatch.setattr(scoring, "Path", fake_path)
    cpuinfo.write_text("flags\t\t: fpu avx2 avx512f\n")
    assert scoring.cpu_has_fast_bf16() is False
    cpuinfo.write_text("flags\t\t: fpu avx2 avx512f avx512_bf16\n")
    assert scoring.cpu_has_fast_bf16() is True
    cpuinfo.write_text("flags\t\t: fpu amx_bf16 amx_tile\n")
    assert scoring.cpu_has_fast_bf16() is True
    cpuinfo.unlink()
    assert scoring.cpu_has_fast_bf16() is False
