"""The layout's rules, checked: stages import downwards only, and nothing imports `commands/`.

docs/architecture.md states them; this reads every module's imports (without importing it) so
that a change that breaks them fails here rather than in a reader's head.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "deepfake_cli"

#: The pipeline's stages in data-flow order (video -> frames -> faces -> crops -> detector ->
#: frame scores -> verdict -> output), then what composes them, then the command line.
LAYERS = [
    {"errors", "bundled"},
    {"files", "device", "shards"},
    {"results", "manifest", "model"},
    {"video_container"},
    {"decord_video", "pyav_video"},
    {"video"},
    {"decode_worker", "stills"},
    {"decode_process"},
    {"frame_reader"},
    {"mtcnn_networks", "mtcnn_boxes"},
    {"mtcnn_inputs", "mtcnn_openvino"},
    {"faces"},
    {"tracks"},
    {"crops"},
    {"scoring", "aggregate"},
    {"progress", "inputs"},
    {"report"},
    {"judging"},
    {"scan", "datasets"},
    {"extract", "training"},
    {"commands"},
    {"__main__"},
]


def _top_level(module: str) -> str:
    """`deepfake_cli.report.html` -> `report`; the package root itself -> ``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _imports() -> dict[str, set[str]]:
    """Top-level unit -> the other top-level units it imports from."""
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE.parent).with_suffix("")
        module = ".".join(part for part in relative.parts if part != "__init__")
        imported = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.add(node.module)
            elif isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
        unit = _top_level(module)
        targets = {_top_level(name) for name in imported if name.split(".")[0] == "deepfake_cli"}
        graph.setdefault(unit, set()).update(targets - {unit, ""})
    graph.pop("", None)  # the root package: __version__ and lazy re-exports only
    return graph


def test_every_module_has_a_layer() -> None:
    known = set().union(*LAYERS)
    assert set(_imports()) <= known, f"add to LAYERS: {sorted(set(_imports()) - known)}"


def test_stages_import_downwards_only() -> None:
    rank = {unit: index for index, layer in enumerate(LAYERS) for unit in layer}
    upward = [
        f"{unit} imports {target}"
        for unit, targets in _imports().items()
        for target in targets
        if rank[target] >= rank[unit]
    ]
    assert upward == []


def test_nothing_imports_the_command_line() -> None:
    importers = sorted(unit for unit, targets in _imports().items() if "commands" in targets)
    assert importers == ["__main__"]
