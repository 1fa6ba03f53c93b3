"""mattn's weights format, and import of the authors' checkpoint.

A mattn weights file is a `.safetensors` file: the model's state dict, plus JSON metadata with
the model config, the preprocessing it expects and its provenance, so the file alone rebuilds
the model and its input pipeline. A digest of the tensor data is stored too, so a corrupted
file is refused instead of silently producing wrong scores.

Pickled checkpoints (the authors' `.pth`) are only ever read with `weights_only=True`.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from efficientnet_pytorch.utils import get_model_params, round_filters, round_repeats
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from deepfake_cli.errors import WeightsError
from deepfake_cli.files import PendingFile
from deepfake_cli.model.config import (
    NATIVE_INPUT_SIZE,
    MATConfig,
    Preprocessing,
    Provenance,
    dumps,
)
from deepfake_cli.model.mat import MATDetector

FORMAT_NAME = "mattn-mat"
FORMAT_VERSION = "1"

#: Prefixes of the authors' state-dict keys and mattn's names for the same modules.
AUTHORS_PREFIXES = {"net.": "backbone.", "auxiliary_loss.": "regional_loss."}
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


def file_sha256(path: Path) -> str:
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
        save_file(state, str(pending.temporary), metadata=metadata)
    return Path(path)


def default_preprocessing(config: MATConfig) -> Preprocessing:
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
    _load_state_checked(model, state, info.path)
    return _finish(model, info.preprocessing, info.provenance, info.sha256, device)


def _finish(model, preprocessing, provenance, sha256, device) -> MATDetector:
    model.preprocessing = preprocessing
    model.provenance = provenance
    model.weights_sha256 = sha256
    return model.to(device).eval()


def _load_state_checked(model: MATDetector, state: dict[str, torch.Tensor], source: Path) -> None:
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


# --- the authors' checkpoint -------------------------------------------------------------


def read_pickled_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict of an authors'-format checkpoint, read with `weights_only=True`."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"Checkpoint {path} does not exist.")
    try:
        with warnings.catch_warnings():
            # torch warns about pickle protocols before refusing; the refusal says enough.
            warnings.simplefilter("ignore", UserWarning)
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any failure here means "not a safe checkpoint"
        # torch's own message suggests weights_only=False, which mattn never does.
        if "Unsupported global" in str(error):
            reason = "it holds Python objects besides tensors, which could run code"
        else:
            reason = "it is not a plain PyTorch checkpoint of tensors, or it is damaged"
        raise WeightsError(
            f"{path} cannot be read safely with torch.load(weights_only=True): {reason}."
        ) from None
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or not state:
        raise WeightsError(f"{path} holds no state dict (expected a dict with 'state_dict').")
    bad = next((key for key, value in state.items() if not isinstance(value, torch.Tensor)), None)
    if bad is not None:
        raise WeightsError(f"{path}: entry {bad!r} of the state dict is not a tensor.")
    # Checkpoints saved from a DataParallel/DDP wrapper prefix every key with "module.".
    if all(key.startswith("module.") for key in state):
        state = {key[len("module.") :]: value for key, value in state.items()}
    return state


def map_authors_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    mapped = {}
    for key, value in state.items():
        for theirs, ours in AUTHORS_PREFIXES.items():
            if key.startswith(theirs):
                key = ours + key[len(theirs) :]
                break
        mapped[key] = value
    return mapped


def _backbone_signature(name: str) -> tuple[int, int]:
    """(number of MBConv blocks, head width) of an EfficientNet variant."""
    blocks_args, global_params = get_model_params(name, {})
    num_blocks = sum(round_repeats(args.num_repeat, global_params) for args in blocks_args)
    return num_blocks, round_filters(1280, global_params)


def infer_authors_config(
    state: dict[str, torch.Tensor], source: Path, input_size: int | None = None
) -> MATConfig:
    """Read the configuration off tensor shapes (MAT.md §7)."""
    head = state.get("net._conv_head.weight")
    if head is None:
        raise WeightsError(
            f"{source} is not an authors'-format MAT checkpoint: key 'net._conv_head.weight' "
            "is missing."
        )
    block_ids = {int(key.split(".")[2]) for key in state if key.startswith("net._blocks.")}
    signature = (len(block_ids), head.shape[0])
    backbone = next(
        (name for name in NATIVE_INPUT_SIZE if _backbone_signature(name) == signature), None
    )
    if backbone is None:
        raise WeightsError(
            f"{source}: 'net._conv_head.weight' with {head.shape[0]} channels and "
            f"{len(block_ids)} blocks matches no EfficientNet B0-B7."
        )
    size = input_size or NATIVE_INPUT_SIZE[backbone]
    num_classes = state["net._fc.weight"].shape[0] if "net._fc.weight" in state else 2
    texture = state.get("texture_enhance.conv_extract.weight")
    if "attentions.conv2.weight" not in state or (
        texture is not None and texture.shape[1] == num_classes
    ):
        # A stage-1 checkpoint: the plain backbone classifier. The authors' pretraining builds
        # MAT with its feature layer set to `logits`, so its file carries unused attention and
        # texture modules (the latter 2 channels wide); only the backbone is kept.
        return MATConfig(
            backbone=backbone,
            input_size=size,
            variant="backbone",
            legacy_padding=True,
            num_classes=num_classes,
        )
    probe = MATDetector(MATConfig(backbone=backbone, input_size=size, variant="backbone"))
    channels = probe._tap_channels(size)

    def tap_with(width: int, key: str) -> str:
        matches = [
            name
            for name in ("b1", "b2", "b3", "b4", "b5", "b6", "b7", "final", "b0")
            if channels.get(name) == width
        ]
        if not matches:
            raise WeightsError(
                f"{source}: {key!r} expects {width} input channels, which no {backbone} tap has."
            )
        return matches[0]

    attention_tap = tap_with(
        state["attentions.conv_extract.weight"].shape[1], "attentions.conv_extract.weight"
    )
    texture_key = "texture_enhance.conv_extract.weight"
    if texture_key not in state:
        raise WeightsError(
            f"{source} lacks key {texture_key!r} (only the v2 texture block is supported)."
        )
    texture_tap = tap_with(state[texture_key].shape[1], texture_key)
    alpha = float(state["auxiliary_loss.alpha"]) if "auxiliary_loss.alpha" in state else 0.05
    margins = state.get("auxiliary_loss.inner_margin")
    return MATConfig(
        backbone=backbone,
        input_size=size,
        attention_tap=attention_tap,
        texture_tap=texture_tap,
        num_attentions=state["attentions.conv2.weight"].shape[0],
        hidden_dims=state["project_final.weight"].shape[0],
        legacy_padding=True,
        ril_alpha=alpha,
        ril_inner_margins=tuple(float(v) for v in margins) if margins is not None else (0.2, -0.8),
        num_classes=state["ensemble_classifier_fc.2.weight"].shape[0],
    )


def import_authors_checkpoint(
    path: str | Path, *, input_size: int | None = None, device: str | torch.device = "cpu"
) -> MATDetector:
    """Build a mattn model from an authors'-format checkpoint (legacy padding on)."""
    path = Path(path)
    state = read_pickled_state_dict(path)
    config = infer_authors_config(state, path, input_size)
    if config.variant == "backbone":
        state = {key: value for key, value in state.items() if key.startswith("net.")}
    model = MATDetector(config)
    _load_state_checked(model, map_authors_keys(state), path)
    provenance = Provenance(
        name=f"{path.stem} (authors' MAT, {config.backbone})",
        source="imported from the authors' checkpoint",
        trained_on="as released by the authors (FaceForensics++ c23 for their B4 model)",
        demo=False,
        notes=f"imported from {path.name}; file sha256 {file_sha256(path)}",
    )
    return _finish(model, default_preprocessing(config), provenance, file_sha256(path), device)


def load_detector(path: str | Path, device: str | torch.device = "cpu") -> MATDetector:
    """Load a detector in eval mode from mattn weights or an authors' `.pth` checkpoint.

    The returned model maps (B, 3, H, W) images, normalised as `model.preprocessing` says, to
    (B, 2) logits (index 1 = fake); `model.provenance` and `model.weights_sha256` say what it is.
    """
    path = Path(path)
    if path.suffix.lower() in PICKLE_SUFFIXES:
        return import_authors_checkpoint(path, device=device)
    return load_weights_file(path, device=device)


def import_and_save(
    checkpoint: str | Path,
    output: str | Path,
    *,
    input_size: int | None = None,
    name: str | None = None,
) -> WeightsFile:
    """`mattn weights import`: authors' checkpoint -> mattn weights file; returns its info."""
    model = import_authors_checkpoint(checkpoint, input_size=input_size)
    provenance = model.provenance
    if name:
        provenance = Provenance(**{**provenance.to_dict(), "name": name})
    save_weights(model, output, preprocessing=model.preprocessing, provenance=provenance)
    return read_weights_info(output)


# --- the bundled default -------------------------------------------------------------------

#: The demo model shipped in the repository's `weights/` folder, and its sha256 (checked at
#: load time, so a corrupted or swapped file is refused).
DEFAULT_WEIGHTS_NAME = "mattn-demo-b0.safetensors"
DEFAULT_WEIGHTS_SHA256 = "0a46518b6045cb36f133b31d660d4271bb1e97527bedddf74f6b837d0a298acb"
WEIGHTS_ENV = "MATTN_WEIGHTS"


def bundled_weights_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "weights"


def resolve_weights_path(weights: str | Path | None) -> Path:
    """`--weights`, else $MATTN_WEIGHTS, else the bundled demo model (sha256-checked)."""
    if weights is not None:
        return Path(weights)
    if os.environ.get(WEIGHTS_ENV):
        return Path(os.environ[WEIGHTS_ENV])
    bundled = bundled_weights_dir() / DEFAULT_WEIGHTS_NAME
    if not bundled.is_file():
        raise WeightsError(
            f"No weights given and the bundled default {bundled} is missing; pass --weights PATH "
            f"(a mattn .safetensors file or the authors' .pth), set {WEIGHTS_ENV}, or rebuild the "
            "default with scripts/train_default_weights.sh."
        )
    if file_sha256(bundled) != DEFAULT_WEIGHTS_SHA256:
        raise WeightsError(
            f"The bundled weights {bundled} do not match their recorded sha256 (corrupted or "
            "replaced); restore them with `git checkout weights/` or pass --weights PATH."
        )
    return bundled
