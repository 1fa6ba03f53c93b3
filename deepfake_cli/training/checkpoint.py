"""What a run leaves on disk: the training state to resume from, and mattn weights files.

- `RUN_DIR/state/training_state.pt`: written after every epoch (temporary file + rename, so an
  interruption never leaves half a file): model (RIL centres and rate included), optimiser,
  schedule, gradient scaler, stage, epoch, best metric, the resolved config, and every rank's
  RNG states. Only plain types and tensors, so it loads with `torch.load(weights_only=True)`.
- `last.safetensors` / `best.safetensors`: mattn weights (config, preprocessing, provenance
  and metrics in the metadata, and the resolved training config), the latter by validation
  video-level AUC.

Also here: initialising a model from other weights (ImageNet, stage 1, `--init`).
"""

from __future__ import annotations

import glob
import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from deepfake_cli.errors import UsageError, WeightsError
from deepfake_cli.files import PendingFile
from deepfake_cli.manifest import FAKE, REAL
from deepfake_cli.model.config import Preprocessing, Provenance
from deepfake_cli.model.mat import MATDetector
from deepfake_cli.model.weights import load_detector, save_weights
from deepfake_cli.training.config import STAGE_NAMES, TrainConfig
from deepfake_cli.training.data import FacesData

STATE_FOLDER = "state"
STATE_FILE = "training_state.pt"
STATE_VERSION = 1


def state_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / STATE_FOLDER / STATE_FILE


# --- RNG states as plain data -----------------------------------------------------------------


def rng_state() -> dict[str, Any]:
    """This process's RNG states (python, numpy, torch CPU and CUDA) as tensors and plain types."""
    version, mt_state, gauss = random.getstate()
    kind, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    state: dict[str, Any] = {
        "python": [version, list(mt_state), gauss],
        "numpy": [kind, keys.tolist(), int(position), int(has_gauss), float(cached_gaussian)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    version, mt_state, gauss = state["python"]
    random.setstate((version, tuple(mt_state), gauss))
    kind, keys, position, has_gauss, cached_gaussian = state["numpy"]
    np.random.set_state(
        (kind, np.array(keys, dtype=np.uint32), position, has_gauss, cached_gaussian)
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# --- the training state -------------------------------------------------------------------------


def save_training_state(
    run_dir: str | Path,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler,
    scaler,
    stage: int,
    epoch: int,
    best_metric: float | None,
    config: dict[str, Any],
    rng_states: list[dict[str, Any]],
) -> Path:
    """Everything needed to continue after `epoch` (0-based) of `stage` as if never stopped."""
    state = {
        "version": STATE_VERSION,
        "stage": stage,
        "epoch": epoch,
        "best_metric": best_metric,
        "config": json.dumps(config, sort_keys=True),
        "model": {key: value.detach().cpu() for key, value in model.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "rng": rng_states,  # one entry per rank
    }
    path = state_path(run_dir)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with PendingFile(path) as pending:
        torch.save(state, pending.temporary)
    return path


def load_training_state(run_dir: str | Path) -> dict[str, Any]:
    path = state_path(run_dir)
    if not path.is_file():
        raise UsageError(f"--resume: {path} does not exist (nothing to resume in {Path(run_dir)}).")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any failure means "not a usable state file"
        raise UsageError(f"--resume: {path} cannot be read ({error}).") from None
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
        raise UsageError(
            f"--resume: {path} is not a mattn training state (version {STATE_VERSION})."
        )
    state["config"] = json.loads(state["config"])
    return state


# --- weights files ----------------------------------------------------------------------------


def save_model_file(
    model: MATDetector,
    path: str | Path,
    *,
    preprocessing: Preprocessing,
    provenance: Provenance,
    training_config: dict[str, Any],
) -> Path:
    """mattn weights with the resolved training config in the metadata."""
    return save_weights(
        model,
        path,
        preprocessing=preprocessing,
        provenance=provenance,
        extra_metadata={"training_config": json.dumps(training_config, sort_keys=True)},
    )


def training_provenance(
    config: TrainConfig, data: FacesData, stage: int, epoch: int, val_metrics: dict
) -> Provenance:
    """What the weights after `epoch` (0-based) of `stage` say about how they were trained."""
    counts = data.count_videos("train")
    fakes = f"{counts[FAKE]} fake"
    if config.synthetic_fakes == "self-blend":
        fakes += " + self-blended fakes of the real crops"
    stage_config = config.stage_config(stage)
    return Provenance(
        name=config.model_name(),
        source=(
            f"trained by mattn train on {data.root.name}, {counts[REAL] + counts[FAKE]} "
            f"videos ({counts[REAL]} real, {fakes})"
        ),
        trained_on=data.describe(),
        demo=config.demo,
        decision_threshold=val_metrics.get("val_video_threshold"),
        metrics={
            "stage": stage,
            "epoch": epoch + 1,
            **{key: value for key, value in val_metrics.items() if value is not None},
        },
        notes=(
            f"recipe {config.recipe}, {STAGE_NAMES[stage]}: epoch {epoch + 1} of "
            f"{stage_config.epochs}, batch {stage_config.batch_size}, AdamW lr "
            f"{stage_config.lr:g}, seed {config.seed}"
        ),
    )


# --- initialisation ----------------------------------------------------------------------------


def copy_matching(model: nn.Module, source: dict[str, torch.Tensor]) -> tuple[int, int]:
    """Copy every tensor of `source` whose key and shape the model has -> (copied, total)."""
    target = model.state_dict()
    matching = {
        key: value
        for key, value in source.items()
        if key in target and tuple(value.shape) == tuple(target[key].shape)
    }
    model.load_state_dict(matching, strict=False)
    return len(matching), len(target)


def init_from_weights(model: MATDetector, path: str | Path) -> str:
    """Initialise from a mattn weights file or the authors' checkpoint (matching keys)."""
    source = load_detector(path).state_dict()
    copied, total = copy_matching(model, source)
    if copied == 0:
        raise WeightsError(f"{path} has no tensor that matches this model (names and shapes).")
    return f"initialised {copied} of {total} tensors from {Path(path).name}"


def find_imagenet_weights(backbone: str) -> Path | None:
    """efficientnet-pytorch's ImageNet file for `backbone` in torch hub's cache, if any."""
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    matches = sorted(glob.glob(str(folder / f"{glob.escape(backbone)}-*.pth")))
    return Path(matches[0]) if matches else None


def load_imagenet_backbone(model: MATDetector, path: str | Path) -> str:
    """Load efficientnet-pytorch ImageNet weights into the backbone (all but its 1000-class
    head)."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"--backbone-weights {path} does not exist.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001
        raise WeightsError(f"{path} cannot be read with weights_only=True ({error}).") from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise WeightsError(f"{path} holds no state dict.")
    backbone_state = model.backbone.state_dict()
    usable = {
        key: value
        for key, value in state.items()
        if key in backbone_state and tuple(value.shape) == tuple(backbone_state[key].shape)
    }
    missing = [key for key in backbone_state if key not in usable and not key.startswith("_fc.")]
    if missing:
        raise WeightsError(
            f"{path} does not fit {model.config.backbone}: e.g. {missing[0]!r} is missing or "
            "has another shape (is it the right EfficientNet variant?)."
        )
    model.backbone.load_state_dict(usable, strict=False)
    return f"backbone initialised from ImageNet weights {path.name}"
