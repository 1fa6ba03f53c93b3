"""Import of the authors' released MAT checkpoint (Zhao et al., CVPR 2021) into mattn.

The authors' training script saves a pickled `.pth`: a dict whose `state_dict` holds their
module names (`net.` for the EfficientNet, `auxiliary_loss.` for the regional independence
loss). Importing it takes four steps, in this order:

1. `read_pickled_state_dict`: `torch.load(..., weights_only=True)`, so no code in the file
   ever runs; anything but a dict of tensors is refused.
2. `infer_authors_config`: the configuration read off tensor shapes (backbone variant, tap
   layers, number of attention maps, ...), with the authors' EfficientNet padding recorded as
   `legacy_padding`.
3. `map_authors_keys`: their names to mattn's.
4. `import_authors_checkpoint` builds the model; `import_and_save` writes it as mattn weights.

Like timm's checkpoint filters, this sits beside the model it maps onto; the mattn weights
format itself is `deepfake_cli.model.weights`.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import torch
from efficientnet_pytorch.utils import get_model_params, round_filters, round_repeats

from deepfake_cli.errors import UsageError, WeightsError
from deepfake_cli.model.config import NATIVE_INPUT_SIZE, MATConfig, Preprocessing, Provenance
from deepfake_cli.model.mat import MATDetector
from deepfake_cli.model.weights import (
    WeightsFile,
    file_sha256,
    finish_loading,
    load_state_checked,
    read_weights_info,
    save_weights,
)

#: Prefixes of the authors' state-dict keys and mattn's names for the same modules.
AUTHORS_PREFIXES = {"net.": "backbone.", "auxiliary_loss.": "regional_loss."}

#: The crop the authors' model is estimated to have been fed: a square of 1.3 x the face box,
#: upright. Their crop script is not in their repository; what it shows (docs/model.md, "The
#: authors' crop geometry"): stored "larger_images" are centre-cut to the input size without a
#: resize, a commented-out resize to input / 0.8 before that cut says the input is the centre
#: 80 % of a larger image, and 0.8 of a "larger" crop of about 1.6 x the box is FF++'s 1.3.
#: `mattn weights import --margin` overrides it.
AUTHORS_MARGIN_RATIO = 1.3
#: The detector the authors cut their crops with; mattn measures the margin on MTCNN's boxes.
AUTHORS_DETECTOR = "retinaface"


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
    """The same tensors under mattn's module names (see `AUTHORS_PREFIXES`)."""
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


def authors_preprocessing(config: MATConfig, margin_ratio: float | None = None) -> Preprocessing:
    """The crops the authors' model is fed: its input size, (x/255 - 0.5)/0.5, and the crop
    geometry estimated in AUTHORS_MARGIN_RATIO unless `margin_ratio` says otherwise."""
    if margin_ratio is None:
        margin_ratio = AUTHORS_MARGIN_RATIO
    elif not (math.isfinite(margin_ratio) and margin_ratio >= 1.0):
        raise UsageError(
            f"--margin must be at least 1 (the crop's side over the face box's longer side), "
            f"got {margin_ratio:g}."
        )
    return Preprocessing(
        input_size=config.input_size,
        margin_ratio=margin_ratio,
        align=False,
        detector=AUTHORS_DETECTOR,
    )


def read_authors_preprocessing(path: str | Path, input_size: int | None = None) -> Preprocessing:
    """The preprocessing an import of this checkpoint records, from its tensor shapes alone."""
    path = Path(path)
    return authors_preprocessing(
        infer_authors_config(read_pickled_state_dict(path), path, input_size)
    )


def import_authors_checkpoint(
    path: str | Path,
    *,
    input_size: int | None = None,
    margin_ratio: float | None = None,
    device: str | torch.device = "cpu",
) -> MATDetector:
    """Build a mattn model from an authors'-format checkpoint (legacy padding on)."""
    path = Path(path)
    state = read_pickled_state_dict(path)
    config = infer_authors_config(state, path, input_size)
    preprocessing = authors_preprocessing(config, margin_ratio)
    if config.variant == "backbone":
        state = {key: value for key, value in state.items() if key.startswith("net.")}
    model = MATDetector(config)
    load_state_checked(model, map_authors_keys(state), path)
    provenance = Provenance(
        name=f"{path.stem} (authors' MAT, {config.backbone})",
        source="imported from the authors' checkpoint",
        trained_on="as released by the authors (FaceForensics++ c23 for their B4 model)",
        demo=False,
        notes=f"imported from {path.name}; file sha256 {file_sha256(path)}; crops: margin "
        f"{preprocessing.margin_ratio:g} around MTCNN's box, upright"
        + (" (the estimate of the authors' RetinaFace crops)" if margin_ratio is None else ""),
    )
    return finish_loading(model, preprocessing, provenance, file_sha256(path), device)


def import_and_save(
    checkpoint: str | Path,
    output: str | Path,
    *,
    input_size: int | None = None,
    margin_ratio: float | None = None,
    name: str | None = None,
) -> WeightsFile:
    """`mattn weights import`: authors' checkpoint -> mattn weights file; returns its info.

    `margin_ratio` None records AUTHORS_MARGIN_RATIO, the estimate of the authors' crops.
    """
    model = import_authors_checkpoint(checkpoint, input_size=input_size, margin_ratio=margin_ratio)
    provenance = model.provenance
    if name:
        provenance = Provenance(**{**provenance.to_dict(), "name": name})
    save_weights(model, output, preprocessing=model.preprocessing, provenance=provenance)
    return read_weights_info(output)
