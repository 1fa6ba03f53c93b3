"""The detector's inference form and its ONNX export: the same function, faster or elsewhere."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from deepfake_cli.errors import UsageError
from deepfake_cli.model import MATConfig, Preprocessing, Provenance, build_detector, save_weights
from deepfake_cli.model.inference import (
    InferenceTexture,
    SplitDenseBlock,
    fold_batch_norm,
    inference_form,
)
from deepfake_cli.model.weights import load_detector
from deepfake_cli.scoring import FaceScorer

SIZE = 64


def _randomise_batch_norms(model: nn.Module, seed: int = 0) -> None:
    """Statistics far from the identity, so a wrong fold cannot hide behind mean 0, var 1."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            channels = module.num_features
            module.running_mean.copy_(torch.rand(channels, generator=generator) * 0.4 - 0.2)
            module.running_var.copy_(torch.rand(channels, generator=generator) * 1.5 + 0.5)
            module.weight.data.copy_(torch.rand(channels, generator=generator) + 0.5)
            module.bias.data.copy_(torch.rand(channels, generator=generator) * 0.4 - 0.2)


@pytest.fixture(scope="module")
def detector() -> nn.Module:
    torch.manual_seed(0)
    model = build_detector(MATConfig(backbone="efficientnet-b0", input_size=SIZE))
    _randomise_batch_norms(model)
    return model.eval()


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.randn(3, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))


def test_folding_one_batch_norm_gives_the_same_output() -> None:
    torch.manual_seed(2)
    conv = nn.Conv2d(4, 6, 3, padding=1, bias=False)
    batch_norm = nn.BatchNorm2d(6)
    _randomise_batch_norms(batch_norm, seed=3)
    batch_norm.eval()
    features = torch.randn(2, 4, 9, 9)
    with torch.no_grad():
        expected = batch_norm(conv(features))
        fold_batch_norm(conv, batch_norm)
        folded = conv(features)
    assert conv.bias is not None
    torch.testing.assert_close(folded, expected, atol=1e-5, rtol=1e-5)


def test_inference_form_computes_the_same_logits_and_maps(
    detector: nn.Module, images: torch.Tensor
) -> None:
    form = inference_form(detector)
    with torch.inference_mode():
        expected = detector.forward_features(images)
        actual = form.forward_features(images)
    torch.testing.assert_close(actual.logits, expected.logits, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(actual.attention_maps, expected.attention_maps, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(actual.texture_matrix, expected.texture_matrix, atol=1e-5, rtol=1e-4)
    # The training module is untouched: its batch norms are still there and still training-able.
    assert detector.backbone._bn0.__class__ is nn.BatchNorm2d


def test_inference_form_folds_every_conv_batch_norm_pair(detector: nn.Module) -> None:
    form = inference_form(detector)
    backbone = form.backbone
    assert isinstance(backbone._bn0, nn.Identity) and isinstance(backbone._bn1, nn.Identity)
    for block in backbone._blocks:
        assert isinstance(block._bn1, nn.Identity) and isinstance(block._bn2, nn.Identity)
        assert isinstance(block._swish, nn.SiLU)
    assert isinstance(form.attentions.bn1, nn.Identity)
    assert isinstance(form.attentions.bn2, nn.Identity)
    # What is left are the texture block's pre-activation norms, one per (layer, piece).
    remaining = [m for m in form.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(remaining) == 1 + 2 + 3 + 4
    assert not any(parameter.requires_grad for parameter in form.parameters())


def test_split_dense_block_equals_the_concatenating_one(detector: nn.Module) -> None:
    texture = detector.texture_enhance
    channels = texture.conv0.in_channels
    gated = torch.randn(2, channels, 16, 16, generator=torch.Generator().manual_seed(4))
    with torch.inference_mode():
        expected = texture.dense_block(gated)
        actual = SplitDenseBlock(texture).eval()(gated)
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-4)
    assert isinstance(inference_form(detector).texture_enhance, InferenceTexture)


def test_inference_form_of_the_backbone_variant() -> None:
    torch.manual_seed(5)
    model = build_detector(
        MATConfig(backbone="efficientnet-b0", input_size=SIZE, variant="backbone")
    )
    _randomise_batch_norms(model)
    model.eval()
    images = torch.randn(2, 3, SIZE, SIZE)
    with torch.inference_mode():
        torch.testing.assert_close(
            inference_form(model)(images), model(images), atol=1e-5, rtol=1e-4
        )


def test_bf16_inference_form_holds_bf16_weights(detector: nn.Module, images: torch.Tensor) -> None:
    form = inference_form(detector, dtype=torch.bfloat16)
    assert all(p.dtype == torch.bfloat16 for p in form.parameters())
    with torch.inference_mode():
        probability = torch.softmax(form(images.bfloat16()).float(), dim=1)[:, 1]
        reference = torch.softmax(detector(images), dim=1)[:, 1]
    assert float((probability - reference).abs().max()) < 0.05


# --- ONNX export ------------------------------------------------------------------------------

needs_onnx = pytest.mark.skipif(
    any(importlib.util.find_spec(name) is None for name in ("onnx", "onnxscript", "onnxruntime")),
    reason="the onnx extra is not installed",
)


@pytest.fixture(scope="module")
def weights_file(detector: nn.Module, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("weights") / "tiny.safetensors"
    preprocessing = Preprocessing(input_size=SIZE, mean=(0.485, 0.456, 0.406), std=(0.2, 0.2, 0.2))
    save_weights(
        detector,
        path,
        preprocessing=preprocessing,
        provenance=Provenance(name="tiny-test", source="tests", trained_on="nothing", demo=True),
    )
    return path


@pytest.fixture(scope="module")
def exported(weights_file: Path, tmp_path_factory: pytest.TempPathFactory):
    from deepfake_cli.model.export import export_onnx

    return export_onnx(weights_file, tmp_path_factory.mktemp("onnx") / "tiny.onnx")


@needs_onnx
def test_export_round_trip_agrees_with_torch(weights_file: Path, exported) -> None:
    from deepfake_cli.model.export import EXPORT_TOLERANCE, read_onnx_metadata
    from deepfake_cli.model.weights import file_sha256
    from deepfake_cli.scoring import OnnxFaceScorer

    assert exported.path.is_file() and exported.max_probability_delta <= EXPORT_TOLERANCE
    metadata = read_onnx_metadata(exported.path)
    assert metadata["source_sha256"] == file_sha256(weights_file) == exported.source_sha256
    assert metadata["opset"] == str(exported.opset)
    assert metadata["preprocessing"]["input_size"] == SIZE
    assert metadata["preprocessing"]["mean"] == [0.485, 0.456, 0.406]
    assert metadata["provenance"]["name"] == "tiny-test"
    assert metadata["model_config"]["backbone"] == "efficientnet-b0"

    crops = np.random.default_rng(6).integers(0, 256, (5, SIZE, SIZE, 3), dtype=np.uint8)
    torch_scores = FaceScorer(load_detector(weights_file), precision="fp32").score(crops)
    # Batch 2 over 5 crops: batches of 2, 2 and 1 exercise the dynamic batch axis.
    onnx_scorer = OnnxFaceScorer(exported.path, batch_size=2)
    assert onnx_scorer.preprocessing.input_size == SIZE
    assert onnx_scorer.model_info.name == "tiny-test" and onnx_scorer.model_info.demo
    np.testing.assert_allclose(onnx_scorer.score(crops), torch_scores, atol=1e-3, rtol=0)


@needs_onnx
def test_an_onnx_file_without_mattn_metadata_is_refused(exported, tmp_path: Path) -> None:
    import onnx

    from deepfake_cli.scoring import OnnxFaceScorer

    model_proto = onnx.load(str(exported.path))
    del model_proto.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(model_proto, str(bare))
    with pytest.raises(UsageError, match="mattn weights export"):
        OnnxFaceScorer(bare)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    with pytest.raises(UsageError, match="not an ONNX model"):
        OnnxFaceScorer(garbage)


def hide_module(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Make `name` look not installed to `importlib.util.find_spec` (how extras are checked)."""
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda module, *args: None if module == name else real_find_spec(module, *args),
    )


def test_a_missing_extra_is_one_sentence_naming_it(
    weights_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from deepfake_cli.model import export

    hide_module(monkeypatch, "onnxruntime")
    with pytest.raises(UsageError, match=r"onnxruntime.*pip install 'mattn\[onnx\]'"):
        export.export_onnx(weights_file, tmp_path / "out.onnx")
    assert not (tmp_path / "out.onnx").exists()


# --- the command line: `weights export` and `scan --backend` ----------------------------------

CLIP = Path(__file__).parent / "data" / "carphone_pristine.mp4"


def _invoke(arguments: list[str]):
    from typer.testing import CliRunner

    from deepfake_cli.commands import app

    return CliRunner().invoke(app, arguments)


def _scan_probability(weights: Path, *extra: str) -> float:
    import json

    result = _invoke(
        ["scan", str(CLIP), "--weights", str(weights), "--frames", "2", "--format", "json"]
        + ["--quiet", "--device", "cpu", *extra]
    )
    assert result.exit_code in (0, 1), result.output
    (record,) = json.loads(result.stdout)
    assert record["status"] == "ok"
    return record["fake_probability"]


@needs_onnx
def test_export_command_and_the_onnxruntime_backend_give_the_torch_verdicts(
    weights_file: Path, tmp_path: Path
) -> None:
    onnx_path = tmp_path / "cli.onnx"
    result = _invoke(["weights", "export", str(weights_file), str(onnx_path)])
    assert result.exit_code == 0, result.output
    assert onnx_path.is_file() and "max |delta p| vs torch" in result.stdout
    torch_probability = _scan_probability(weights_file, "--precision", "fp32")
    # An .onnx file picks the onnxruntime backend by itself; naming it gives the same.
    assert abs(_scan_probability(onnx_path) - torch_probability) <= 1e-3
    assert abs(_scan_probability(onnx_path, "--backend", "onnxruntime") - torch_probability) <= 1e-3
    if importlib.util.find_spec("openvino") is not None:
        # OpenVINO: fp32, or bf16 on AMX CPUs when the first batch keeps |delta p| <= 0.01.
        openvino_probability = _scan_probability(onnx_path, "--backend", "openvino")
        assert abs(openvino_probability - torch_probability) <= 0.01


def test_the_openvino_backend_without_its_extra_says_what_to_install(
    weights_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hide_module(monkeypatch, "openvino")
    onnx_path = tmp_path / "model.onnx"
    onnx_path.write_bytes(b"not read")
    result = _invoke(["scan", str(CLIP), "--weights", str(onnx_path), "--backend", "openvino"])
    assert result.exit_code == 2, result.output
    assert "pip install 'mattn[openvino]'" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(
    ("backend", "suffix", "message"),
    [
        ("onnxruntime", ".safetensors", "scores an exported .onnx file"),
        ("openvino", ".safetensors", "--backend openvino scores an exported .onnx file"),
        ("torch", ".onnx", "is an ONNX file; score it with --backend onnxruntime"),
        ("tensorrt", ".safetensors", "Unknown backend"),
    ],
)
def test_a_backend_that_cannot_score_the_weights_is_one_sentence(
    weights_file: Path, tmp_path: Path, backend: str, suffix: str, message: str
) -> None:
    # The backend is checked before anything is loaded, so the .onnx file need not be one.
    weights = weights_file if suffix == ".safetensors" else tmp_path / "model.onnx"
    weights.touch()
    result = _invoke(
        ["scan", str(CLIP), "--weights", str(weights), "--backend", backend, "--quiet"]
    )
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output


def test_scan_on_onnxruntime_without_the_extra_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    onnx_path = tmp_path / "model.onnx"
    onnx_path.write_bytes(b"never read: the extra is checked first")
    hide_module(monkeypatch, "onnxruntime")
    result = _invoke(["scan", str(CLIP), "--weights", str(onnx_path), "--quiet"])
    assert result.exit_code == 2
    assert "pip install 'mattn[onnx]'" in result.output
