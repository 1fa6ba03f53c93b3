"""TOML text for training settings: read a file, write a dict of scalars and one level of tables.

`tomllib` reads (Python 3.11+, else tomli); the writer covers what `TrainConfig.to_dict` holds
(scalars, lists and the `[stage1]` / `[stage2]` tables), so no TOML writer package is needed.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from deepfake_cli.errors import UsageError


def read_toml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"config file {path} does not exist.")
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        raise UsageError(f"{path} is not valid TOML ({error}).") from None


def to_toml(data: dict[str, Any]) -> str:
    """Serialise a dict of scalars, lists and one level of tables to TOML."""
    lines = [
        f"{key} = {_toml_value(value)}"
        for key, value in data.items()
        if not isinstance(value, dict)
    ]
    for key, value in data.items():
        if isinstance(value, dict):
            lines.append("")
            lines.append(f"[{key}]")
            lines.extend(f"{name} = {_toml_value(item)}" for name, item in value.items())
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def plain_toml_data(value: Any) -> Any:
    """Nested dicts and lists as TOML holds them: tuples as lists, None (unset) left out."""
    if isinstance(value, dict):
        return {key: plain_toml_data(item) for key, item in value.items() if item is not None}
    if isinstance(value, tuple | list):
        return [plain_toml_data(item) for item in value]
    return value


def merge_toml_layer(into: dict[str, Any], layer: dict[str, Any]) -> None:
    """Lay `layer` over `into`: its keys win, and its tables update `into`'s key by key."""
    for key, value in layer.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            into[key] = {**into[key], **value}
        else:
            into[key] = value
