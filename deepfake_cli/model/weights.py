"""mattn's weights format: save, load, inspect, and find the default weights.

A mattn weights file is a `.safetensors` file: the model's state dict, plus JSON metadata with
the model config, the preprocessing it expects and its provenance, so the file alone rebuilds
the model and its input pipeline. A digest of the tensor data is stored too, so a corrupted
file is refused instead of silently producing wrong scores.

`load_detector` also accepts the authors' pickled `.pth`; reading and mapping that format is
`deepfake_cli.model.authors` (only ever with `weights_only=True`).
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes

from deepfake_cli.errors import WeightsError
from deepfake_cli.files import PendingFile
from deepfake_cli.model.config import MATConfig, Preprocessing, Provenance, dumps
from deepfake_cli.model.mat import MATDetector

FORMAT_NAME = "mattn-mat"
FORMAT_VERSION = "1"

#: Suffixes of pickled checkpoints, which `load_detector` reads as the authors' format.
PICKLE_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin", ".tar")


@dataclass(frozen=True)
class WeightsFile:
    """What a weights file says about itself."""

    path: Path
    config: MATConfig
    preprocessing: Preprocessing
    provenance: Provenance
    sha256: str
    num_parameters: int
    tensors_sha256: str

    def to_dict(self) -> dict:
        """The summary `mattn weights info --json` prints."""
        return {
            "path": str(self.path),
            "sha256": self.sha256,
            "parameters": self.num_parameters,
            "model_config": self.config.to_dict(),
            "preprocessing": self.preprocessing.to_dict(),
            "provenance": self.provenance.to_dict(),
        }


def file_sha256(path: Path) -> str:
    """sha256 of the file's bytes: what scan results record to name the weights exactly."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def tensors_digest(state_dict: dict[str, torch.Tensor]) -> str:
    """sha256 over names, dtypes, shapes and bytes of every tensor, in sorted key order."""
    digest = hashlib.sha256()
    for key in sorted(state_dict):
        tensor = state_dict[key].detach().cpu().contiguous()
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_weights(
    model: MATDetector,
    path: str | Path,
    *,
    preprocessing: Preprocessing | None = None,
    provenance: Provenance | None = None,
    extra_metadata: dict[str, str] | None = None,
) -> Path:
    """Write `model` with its config, preprocessing and provenance (atomically).

    `extra_metadata` adds string entries (e.g. the resolved training config as JSON); it cannot
    replace the entries mattn itself reads.
    """
    config = model.config
    preprocessing = (
        preprocessing or getattr(model, "preprocessing", None) or default_preprocessing(config)
    )
    provenance = provenance or getattr(model, "provenance", None) or Provenance()
    state = {key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()}
    metadata = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "model_config": dumps(config.to_dict()),
        "preprocessing": dumps(preprocessing.to_dict()),
        "provenance": dumps(provenance.to_dict()),
        "tensors_sha256": tensors_digest(state),
    }
    for key, value in (extra_metadata or {}).items():
        if key in metadata:
            raise ValueError(f"extra metadata may not replace {key!r}")
        metadata[key] = value
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with PendingFile(path) as pending:
        data = canonical_safetensors(safetensors_bytes(state, metadata=metadata))
        pending.temporary.write_bytes(data)
    return Path(path)


def canonical_safetensors(data: bytes) -> bytes:
    """A .safetensors file's bytes with its header in one fixed order.

    safetensors writes the metadata from a Rust HashMap, whose order changes from one process
    to the next, so the same model and metadata gave files that differ in their header. Here
    the metadata keys are sorted and the tensors listed in the order of their data, so equal
    contents give equal bytes (the bundled default can be rebuilt and compared with `cmp`).
    """
    (header_length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + header_length])
    metadata = header.pop("__metadata__", None)
    ordered = {"__metadata__": dict(sorted(metadata.items()))} if metadata else {}
    ordered.update(sorted(header.items(), key=lambda item: item[1]["data_offsets"]))
    header_bytes = json.dumps(ordered, separators=(",", ":"), ensure_ascii=False).encode()
    header_bytes += b" " * (-len(header_bytes) % 8)  # the tensor data stays 8-byte aligned
    return struct.pack("<Q", len(header_bytes)) + header_bytes + data[8 + header_length :]


def default_preprocessing(config: MATConfig) -> Preprocessing:
    """The preprocessing of a model that records none: its input size, the default crops."""
    return Preprocessing(input_size=config.input_size)


def _read_metadata(path: Path) -> dict[str, str]:
    if not path.is_file():
        raise WeightsError(
            f"Weights file {path} does not exist; pass --weights PATH with a mattn .safetensors "
            "file or an authors' .pth checkpoint."
        )
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except (SafetensorError, OSError, ValueError) as error:
        raise WeightsError(
            f"{path} is not a readable .safetensors file ({_one_line(error)})."
        ) from None
    if metadata.get("format") != FORMAT_NAME:
        raise WeightsError(
            f"{path} is a .safetensors file but not mattn weights (no '{FORMAT_NAME}' metadata); "
            "import foreign checkpoints with `mattn weights import`."
        )
    return metadata


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def read_weights_info(path: str | Path) -> WeightsFile:
    """Metadata and digests of a mattn weights file, without building the model."""
    path = Path(path)
    metadata = _read_metadata(path)
    try:
        config = MATConfig.from_dict(json.loads(metadata["model_config"]))
        preprocessing = Preprocessing.from_dict(json.loads(metadata["preprocessing"]))
        provenance = Provenance.from_dict(json.loads(metadata.get("provenance", "{}")))
    except (KeyError, ValueError, TypeError) as error:
        raise WeightsError(f"{path} has unreadable mattn metadata ({_one_line(error)}).") from None
    with safe_open(str(path), framework="pt") as handle:
        num_parameters = sum(
            _numel(handle.get_slice(key).get_shape())
            for key in handle.keys()  # noqa: SIM118 - safe_open is not a dict
            if not key.endswith("num_batches_tracked")
        )
    return WeightsFile(
        path=path,
        config=config,
        preprocessing=preprocessing,
        provenance=provenance,
        sha256=file_sha256(path),
        num_parameters=num_parameters,
        tensors_sha256=metadata.get("tensors_sha256", ""),
    )


def _numel(shape) -> int:
    count = 1
    for size in shape:
        count *= int(size)
    return count


def load_weights_file(path: str | Path, device: str | torch.device = "cpu") -> MATDetector:
    """Build the model a mattn weights file describes and load its tensors (eval mode)."""
    info = read_weights_info(path)
    try:
        state = load_file(str(info.path), device="cpu")
    except (SafetensorError, OSError, ValueError) as error:
        raise WeightsError(f"{info.path} cannot be read ({_one_line(error)}).") from None
    if info.tensors_sha256 and tensors_digest(state) != info.tensors_sha256:
        raise WeightsError(
            f"{info.path} is corrupted: its tensors do not match the digest recorded in the file."
        )
    model = MATDetector(info.config)
    load_state_checked(model, state, info.path)
    return finish_loading(model, info.preprocessing, info.provenance, info.sha256, device)


def finish_loading(
    model: MATDetector,
    preprocessing: Preprocessing,
    provenance: Provenance,
    sha256: str,
    device: str | torch.device,
) -> MATDetector:
    """Attach what the file says about the model (read by scan and reports); eval mode."""
    model.preprocessing = preprocessing
    model.provenance = provenance
    model.weights_sha256 = sha256
    return model.to(device).eval()


def load_state_checked(model: MATDetector, state: dict[str, torch.Tensor], source: Path) -> None:
    """Load `state` into `model`, refusing unknown, missing or misshapen tensors by name."""
    expected = model.state_dict()
    for key, tensor in state.items():
        if key not in expected:
            raise WeightsError(f"{source} has key {key!r}, which the model does not have.")
        if tuple(tensor.shape) != tuple(expected[key].shape):
            raise WeightsError(
                f"{source}: {key!r} has shape {tuple(tensor.shape)}, the model expects "
                f"{tuple(expected[key].shape)}."
            )
    missing = [key for key in expected if key not in state]
    if missing:
        raise WeightsError(f"{source} lacks key {missing[0]!r} that the model needs.")
    model.load_state_dict(state, strict=True)


def read_preprocessing(path: str | Path) -> Preprocessing:
    """The crops a weights file's model expects (mattn `.safetensors` or the authors' `.pth`).

    Reads metadata only (for a `.pth`, the tensor shapes), never builds the model: what
    `mattn extract-faces --weights` needs to cut that model's crops.
    """
    path = Path(path)
    if path.suffix.lower() in PICKLE_SUFFIXES:
        from deepfake_cli.model.authors import read_authors_preprocessing

        return read_authors_preprocessing(path)
    if path.suffix.lower() == ".onnx":
        raise WeightsError(
            f"{path} is an ONNX model; pass the .safetensors file it was exported from to read "
            "its crop geometry."
        )
    return read_weights_info(path).preprocessing


def load_detector(path: str | Path, device: str | torch.device = "cpu") -> MATDetector:
    """Load a detector in eval mode from mattn weights or an authors' `.pth` checkpoint.

    The returned model maps (B, 3, H, W) images, normalised as `model.preprocessing` says, to
    (B, 2) logits (index 1 = fake); `model.provenance` and `model.weights_sha256` say what it is.
    """
    path = Path(path)
    if path.suffix.lower() in PICKLE_SUFFIXES:
        # Imported here: `authors` builds on this module.
        from deepfake_cli.model.authors import import_authors_checkpoint

        return import_authors_checkpoint(path, device=device)
    return load_weights_file(path, device=device)


# --- the bundled default -------------------------------------------------------------------

#: The default model shipped inside the package (`deepfake_cli/bundled/`), and its sha256
#: (checked at load time, so a corrupted or swapped file is refused).
DEFAULT_WEIGHTS_NAME = "mattn-sbi-b0-160.safetensors"
DEFAULT_WEIGHTS_SHA256 = "aed115b39ffb0468791bb08d6bcaef398ab25811179b2f41566a04d776d32e07"


def bundled_weights_dir() -> Path:
    """The package's `bundled/` folder, which holds the default model (package data)."""
    from deepfake_cli.bundled import bundled_dir

    return bundled_dir()


def resolve_weights_path(weights: str | Path | None) -> Path:
    """`weights` if given, else the bundled default model (sha256-checked).

    The command line fills `weights` from `--weights`, else from $MATTN_WEIGHTS (declared on the
    option, so `--help` shows it); domain code never reads the environment.
    """
    if weights is not None:
        return Path(weights)
    bundled = bundled_weights_dir() / DEFAULT_WEIGHTS_NAME
    if not bundled.is_file():
        raise WeightsError(
            f"No weights given and the bundled default {bundled} is missing; pass --weights PATH "
            "(a mattn .safetensors file or the authors' .pth), set MATTN_WEIGHTS, or rebuild the "
            "default with scripts/train_default_weights.sh (or reinstall mattn)."
        )
    if file_sha256(bundled) != DEFAULT_WEIGHTS_SHA256:
        raise WeightsError(
            f"The bundled weights {bundled} do not match their recorded sha256 (corrupted or "
            "replaced); reinstall mattn (or `git checkout deepfake_cli/bundled/`) or pass "
            "--weights PATH."
        )
    return bundled
