"""Resolving a run's settings: defaults < preset < saved run config < TOML file < options.

`resolve_config` is the one place where the layers described in `training/config.py` are
merged into one validated `TrainConfig`; `save_config` writes the resolved config as
`RUN_DIR/config.toml`, which `--resume` reads back first.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

from deepfake_cli.errors import UsageError
from deepfake_cli.training.config import PRESETS, TrainConfig, replace_stage
from deepfake_cli.training.toml_text import merge_toml_layer, read_toml, to_toml

#: Command-line options that set a field of every stage the run trains.
STAGE_OPTIONS = ("epochs", "batch_size", "lr")
#: What a run whose config.toml predates these settings (it has no `padding`) trained with, so
#: that resuming it goes on training the same network on the same crops.
EARLIER_DEFAULTS = {
    "padding": "per-stage",
    "backbone_dropout": 0.4,
    "train_crop": "random",
    "frame_stride": 0,
}


def resolve_config(
    options: dict[str, Any],
    *,
    config_file: str | Path | None = None,
    saved: dict[str, Any] | None = None,
) -> TrainConfig:
    """Merge the layers of settings into one validated, resolved `TrainConfig`.

    `options` holds only what the user gave on the command line (None = not given);
    `epochs`, `batch_size` and `lr` there apply to every stage this run trains. `saved` is a
    resumed run's own config.toml. The preset named by the highest layer that names one goes
    below all of them.
    """
    given = {key: value for key, value in options.items() if value is not None}
    stage_options = {key: given.pop(key) for key in STAGE_OPTIONS if key in given}
    if saved is not None and "padding" not in saved:
        saved = {**EARLIER_DEFAULTS, **saved}
    layers = (saved or {}, read_toml(config_file) if config_file else {}, given)
    preset = next((layer["preset"] for layer in reversed(layers) if layer.get("preset")), None)
    if preset is not None and preset not in PRESETS:
        raise UsageError(f"unknown --preset {preset!r}; use one of {', '.join(PRESETS)}.")
    merged: dict[str, Any] = copy.deepcopy(PRESETS[preset]) if preset else {}
    for layer in layers:
        merge_toml_layer(merged, layer)
    try:
        config = TrainConfig.from_dict(merged)
    except TypeError as error:
        raise UsageError(f"bad training setting ({error}).") from None
    for stage in config.stages:
        name = f"stage{stage}"
        updated = replace_stage(getattr(config, name), stage_options)
        config = dataclasses.replace(config, **{name: updated})
    if saved is None:  # a resumed run keeps what it started with
        config = _with_starting_weights(config)
    return config.resolved()


def _with_starting_weights(config: TrainConfig) -> TrainConfig:
    """Fill in, from files, what the weights the run starts from decide: the ImageNet file
    found in torch hub's cache (recorded, so the run says what it started from), and the
    normalisation of mattn weights given as `init` (they must be fed as they were trained)."""
    if config.init is None and config.backbone_weights is None:
        from deepfake_cli.model.backbone import find_imagenet_weights

        found = find_imagenet_weights(config.backbone)
        if found is not None:
            config = dataclasses.replace(config, backbone_weights=str(found))
    init = Path(config.init) if config.init else None
    untouched = config.mean is None and config.std is None and not config.backbone_normalization
    if init is not None and untouched and init.suffix == ".safetensors" and init.is_file():
        from deepfake_cli.model.weights import read_weights_info

        preprocessing = read_weights_info(init).preprocessing
        config = dataclasses.replace(config, mean=preprocessing.mean, std=preprocessing.std)
    return config


def save_config(config: TrainConfig, path: str | Path) -> None:
    from deepfake_cli.files import write_atomically

    text = "# Resolved settings of this run (mattn train). Reuse with --config.\n"
    text += to_toml(config.to_dict())
    write_atomically(path, text)


def load_saved_config(run_dir: str | Path) -> dict[str, Any] | None:
    path = Path(run_dir) / "config.toml"
    return read_toml(path) if path.is_file() else None


def resolve_run_config(
    options: dict[str, Any], *, config_file: str | Path | None = None, resume: bool = False
) -> TrainConfig:
    """`resolve_config` for `mattn train`: on `resume`, the run's own config.toml comes first.

    Raises:
        UsageError: `resume`, but the run directory `options["out"]` has no config.toml.
    """
    saved = None
    if resume:
        saved = load_saved_config(options["out"])
        if saved is None:
            raise UsageError(f"--resume: {options['out']} has no config.toml (nothing to resume).")
    return resolve_config(options, config_file=config_file, saved=saved)
