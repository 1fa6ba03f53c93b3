"""Map a deepfake dataset folder to a labelled, split list of videos.

`mattn extract-faces dataset/` calls `list_videos`, which recognises FaceForensics++,
Celeb-DF, DFDC and plain real/fake folders (one module each) and returns one `VideoEntry` per
video. Splits are by identity group, official where the dataset publishes one and otherwise
deterministic by hash (see `splits`), so no person is on two sides of a split and the same
folder always yields the same split on any machine.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from deepfake_cli.datasets import celebdf, dfdc, ffpp, folders
from deepfake_cli.datasets.common import (
    VIDEO_EXTENSIONS,
    VideoEntry,
    absolute_root,
    describe_contents,
)
from deepfake_cli.errors import LayoutError, UsageError

# The split names a VideoEntry takes are the faces folder's, which training reads.
from deepfake_cli.manifest import SPLITS

__all__ = [
    "LAYOUTS",
    "SPLITS",
    "VIDEO_EXTENSIONS",
    "VideoEntry",
    "detect_layout",
    "list_videos",
]

#: Layout names, in the order auto-detection tries them (first match wins).
LAYOUTS = ("ffpp", "celebdf", "dfdc", "folders")

_LAYOUT_MODULES: dict[str, ModuleType] = {
    "ffpp": ffpp,
    "celebdf": celebdf,
    "dfdc": dfdc,
    "folders": folders,
}


def detect_layout(root: Path) -> str:
    """The first of LAYOUTS whose marker folders or files `root` has; else LayoutError."""
    root = _checked_root(root)
    for layout in LAYOUTS:
        if _LAYOUT_MODULES[layout].looks_like(root):
            return layout
    expected = "; ".join(
        f"{_LAYOUT_MODULES[layout].EXPECTED} ({_LAYOUT_MODULES[layout].NAME})" for layout in LAYOUTS
    )
    raise LayoutError(
        f"{root} does not look like FaceForensics++, Celeb-DF, DFDC or real/fake folders: "
        f"expected one of {expected}; found: {describe_contents(root)}"
    )


def list_videos(
    root: Path,
    *,
    layout: str = "auto",
    compression: str = "c23",
    splits_dir: Path | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
    group_by: str = "file",
) -> list[VideoEntry]:
    """Every video of the dataset at `root`, labelled and split, sorted by relative_path.

    `layout` is "auto" or one of LAYOUTS. `compression` picks the FaceForensics++ level
    (c23, c40, raw or c0) and is ignored by the other layouts, which have one level only.
    `splits_dir` holds FaceForensics++'s official train/val/test.json. `val_fraction` and
    `test_fraction` size the hashed split of groups without an official split; where a
    dataset's official test list is present, the groups it does not name go to train or val
    only. `seed` changes the hashed split and nothing else. `group_by` ("file" or
    "name-prefix", `folders.GROUP_BY`) says which files of plain folders share an identity
    group; the other layouts know their groups.
    """
    root = _checked_root(root)
    if not 0.0 <= val_fraction <= 1.0 or not 0.0 <= test_fraction <= 1.0:
        raise UsageError(
            f"split fractions must be between 0 and 1, got val {val_fraction} and test "
            f"{test_fraction}"
        )
    if val_fraction + test_fraction > 1.0:
        raise UsageError(
            f"val and test fractions add up to {val_fraction + test_fraction:g}, leaving no "
            f"room for training: expected at most 1"
        )
    if group_by not in folders.GROUP_BY:
        raise UsageError(
            f"unknown --group-by {group_by!r}: expected {' or '.join(folders.GROUP_BY)}"
        )
    if layout == "auto":
        layout = detect_layout(root)
    elif layout not in LAYOUTS:
        raise UsageError(
            f"unknown dataset layout {layout!r}: expected auto or {', '.join(LAYOUTS)}"
        )
    module = _LAYOUT_MODULES[layout]
    if not module.looks_like(root):
        raise LayoutError(
            f"{root} does not look like {module.NAME}: expected {module.EXPECTED}; found: "
            f"{describe_contents(root)}"
        )
    if splits_dir is not None and layout != "ffpp":
        raise UsageError(
            f"official split files only apply to FaceForensics++, but {root} is {module.NAME}"
        )
    if group_by != "file" and layout != "folders":
        raise UsageError(
            f"--group-by {group_by} only applies to real/fake folders, but {root} is "
            f"{module.NAME}, whose identity groups come from its own names"
        )

    fractions = {"val_fraction": val_fraction, "test_fraction": test_fraction, "seed": seed}
    if layout == "ffpp":
        entries = ffpp.list_entries(
            root, compression=compression, splits_dir=splits_dir, **fractions
        )
    elif layout == "folders":
        entries = folders.list_entries(root, group_by=group_by, **fractions)
    else:
        entries = module.list_entries(root, **fractions)
    if not entries:
        extensions = folders.FILE_EXTENSIONS if layout == "folders" else VIDEO_EXTENSIONS
        raise LayoutError(
            f"{root} looks like {module.NAME} but holds no videos: expected files ending in "
            f"{', '.join(sorted(extensions))} where the layout keeps them; found: "
            f"{describe_contents(root)}"
        )
    entries.sort(key=lambda entry: entry.relative_path)
    _check_invariants(entries)
    return entries


def _checked_root(root: Path) -> Path:
    if not root.exists():
        raise UsageError(f"dataset folder {root} does not exist")
    if not root.is_dir():
        raise LayoutError(f"{root} is a file: expected a dataset folder")
    return absolute_root(root)


def _check_invariants(entries: list[VideoEntry]) -> None:
    """Guard the promises manifests rely on; a failure here is a bug or a clash of names."""
    entry_by_id: dict[str, VideoEntry] = {}
    split_by_group: dict[str, str] = {}
    for entry in entries:
        clash = entry_by_id.setdefault(entry.video_id, entry)
        if clash is not entry:
            raise LayoutError(
                f"two videos would get the id {entry.video_id}: {clash.relative_path} and "
                f"{entry.relative_path}; expected one video per name"
            )
        group_split = split_by_group.setdefault(entry.group, entry.split)
        if group_split != entry.split:
            raise RuntimeError(f"identity group {entry.group} was put in two splits")
