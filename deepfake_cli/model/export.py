"""ONNX export: a mattn weights file -> an ONNX model that carries its own description.

The exported graph is the detector's inference form (batch norms folded, fused SiLU) in fp32
with a dynamic batch: input `images`, (B, 3, S, S) normalised RGB crops; output `logits`,
(B, 2), index 1 = fake. The ONNX metadata carries what a deployment needs to use it and to
trace it back: the preprocessing (input size, mean, std, margin, alignment), the model config,
the provenance, mattn's version, the opset, and the sha256 of the source weights file. Every
export is checked against torch with onnxruntime before it is written (|delta p| <= 1e-3 in
fp32), so a file on disk is a file that was seen to agree.

onnx, onnxscript and onnxruntime are an optional extra (`pip install 'mattn[onnx]'`), imported
only here and in the onnxruntime scorer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from deepfake_cli import __version__
from deepfake_cli.errors import UsageError
from deepfake_cli.files import PendingFile
from deepfake_cli.model.inference import inference_form
from deepfake_cli.model.mat import fake_probabilities

#: The opset the dynamo exporter targets; onnxruntime has run it since 1.14.
ONNX_OPSET = 18
#: Largest |fake_probability(onnxruntime) - fake_probability(torch)| an export may show.
EXPORT_TOLERANCE = 1e-3
INPUT_NAME = "images"
OUTPUT_NAME = "logits"
#: Metadata keys in the ONNX file (JSON values where the value is structured).
METADATA_PREFIX = "mattn."
ONNX_EXTRA_HINT = "install the ONNX extra: pip install 'mattn[onnx]'"
OPENVINO_EXTRA_HINT = "install the OpenVINO extra: pip install 'mattn[openvino]'"


@dataclass(frozen=True)
class ExportResult:
    """What `export_onnx` wrote and what its check measured."""

    path: Path
    source_sha256: str
    opset: int
    max_probability_delta: float
    batch_sizes_checked: tuple[int, ...]


def require_onnx_extra(*modules: str) -> None:
    """One sentence naming the extra to install when onnx, onnxscript or onnxruntime is missing."""
    import importlib.util

    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        hint = OPENVINO_EXTRA_HINT if "openvino" in missing else ONNX_EXTRA_HINT
        raise UsageError(f"This needs {', '.join(missing)}, which is not installed; {hint}.")


def export_onnx(
    weights_path: str | Path,
    output_path: str | Path,
    *,
    opset: int = ONNX_OPSET,
    check_batch_sizes: tuple[int, ...] = (1, 3),
) -> ExportResult:
    """Export `weights_path` (mattn .safetensors) to `output_path` (.onnx), checked, atomically.

    Raises:
        UsageError: the ONNX extra is missing, or onnxruntime disagrees with torch.
        WeightsError: the weights file cannot be read.
    """
    require_onnx_extra("onnx", "onnxscript", "onnxruntime")
    import onnx

    from deepfake_cli.model.weights import load_detector, read_weights_info

    info = read_weights_info(weights_path)
    detector = load_detector(weights_path)
    inference_detector = inference_form(detector)
    size = info.preprocessing.input_size
    example = torch.zeros(2, 3, size, size)
    output_path = Path(output_path)
    with PendingFile(output_path) as pending:
        _export_graph(inference_detector, example, pending.temporary, opset)
        model_proto = onnx.load(str(pending.temporary))
        metadata = {
            "version": __version__,
            "opset": str(opset),
            "source_sha256": info.sha256,
            "source_file": Path(weights_path).name,
            "model_config": json.dumps(info.config.to_dict(), sort_keys=True),
            "preprocessing": json.dumps(info.preprocessing.to_dict(), sort_keys=True),
            "provenance": json.dumps(info.provenance.to_dict(), sort_keys=True),
            "input": f"{INPUT_NAME}: (B, 3, {size}, {size}) float32, (rgb/255 - mean) / std",
            "output": f"{OUTPUT_NAME}: (B, 2) float32, softmax index 1 = fake",
        }
        del model_proto.metadata_props[:]
        for key, value in metadata.items():
            entry = model_proto.metadata_props.add()
            entry.key, entry.value = METADATA_PREFIX + key, value
        model_proto.producer_name = "mattn"
        model_proto.producer_version = __version__
        onnx.save(model_proto, str(pending.temporary))
        max_delta = _check_against_torch(
            pending.temporary, detector, size, check_batch_sizes, info.sha256
        )
    return ExportResult(
        path=output_path,
        source_sha256=info.sha256,
        opset=opset,
        max_probability_delta=max_delta,
        batch_sizes_checked=tuple(check_batch_sizes),
    )


def _export_graph(model: torch.nn.Module, example: torch.Tensor, path: Path, opset: int) -> None:
    """The dynamo exporter (the TorchScript one cannot export the texture branch's adaptive
    average pooling to a size that does not divide the input)."""
    import contextlib
    import io
    import warnings

    batch = torch.export.Dim("batch", min=1, max=4096)
    # The exporter reports its progress on stdout; the command prints its own one line.
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example,),
            str(path),
            dynamo=True,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes={"images": {0: batch}},
            opset_version=opset,
            external_data=False,
        )


def _check_against_torch(
    onnx_path: Path,
    detector: torch.nn.Module,
    size: int,
    batch_sizes: tuple[int, ...],
    seed_text: str,
) -> float:
    """Largest |delta p| between onnxruntime and the (unfolded) torch detector on fixed inputs."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(int(seed_text[:8], 16))
    max_delta = 0.0
    for batch_size in batch_sizes:
        images = torch.randn(batch_size, 3, size, size, generator=generator)
        (onnx_logits,) = session.run([OUTPUT_NAME], {INPUT_NAME: images.numpy()})
        with torch.inference_mode():
            torch_probability = fake_probabilities(detector(images))
        onnx_probability = fake_probabilities(torch.from_numpy(onnx_logits))
        max_delta = max(max_delta, float((onnx_probability - torch_probability).abs().max()))
    if not max_delta <= EXPORT_TOLERANCE:
        raise UsageError(
            f"The exported model disagrees with torch (max |delta p| = {max_delta:.2g} > "
            f"{EXPORT_TOLERANCE:g}); nothing was written."
        )
    return max_delta


def read_onnx_metadata(path: str | Path) -> dict[str, Any]:
    """The mattn metadata of an exported file, JSON values decoded (empty if not mattn's)."""
    require_onnx_extra("onnxruntime")
    import onnxruntime

    try:
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own exception types
        raise UsageError(f"{path} is not an ONNX model onnxruntime can load ({error}).") from None
    return metadata_of_session(session)


def metadata_of_onnx_file(path: str | Path) -> dict[str, Any]:
    """mattn's metadata of an exported file, read without its weights (external data)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return _mattn_metadata({entry.key: entry.value for entry in model.metadata_props})


def metadata_of_session(session: Any) -> dict[str, Any]:
    return _mattn_metadata(session.get_modelmeta().custom_metadata_map)


def _mattn_metadata(raw: dict[str, str]) -> dict[str, Any]:
    metadata: dict[str, Any] = {}
    for key, value in raw.items():
        if not key.startswith(METADATA_PREFIX):
            continue
        name = key[len(METADATA_PREFIX) :]
        if name in ("model_config", "preprocessing", "provenance"):
            metadata[name] = json.loads(value)
        else:
            metadata[name] = value
    return metadata
