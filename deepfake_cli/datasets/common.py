"""What every dataset layout produces (`VideoEntry`) and the file-system helpers they share."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# Still images are one-frame videos; only layouts of plain folders list them.
from deepfake_cli.stills import STILL_EXTENSIONS

# The one list of video file endings (compared case-insensitively), shared with scan.
from deepfake_cli.video import VIDEO_EXTENSIONS

# How many top-level names an error message shows before summarising the rest.
_SHOWN_ENTRIES = 8


@dataclass(frozen=True)
class VideoEntry:
    """One video of a dataset, labelled and assigned to a split."""

    # Absolute path of the video file.
    video_path: Path
    # POSIX path relative to the dataset root: the stable id manifests are keyed by.
    relative_path: str
    # Unique within the dataset, e.g. "ffpp/Deepfakes/000_003".
    video_id: str
    # 0 = real, 1 = fake.
    label: int
    # "real" for real videos; the manipulation's name for fakes ("Deepfakes", "dfdc", ...).
    method: str
    # "c23", "c40" or "raw" for FaceForensics++; "" where the dataset does not say.
    compression: str
    # "train", "val" or "test".
    split: str
    # Identity group: videos sharing a source identity share the group, hence the split.
    group: str
    # For a fake paired with its real original: the original's relative_path, so face
    # extraction can reuse the real video's face boxes. None otherwise.
    source_relative_path: str | None = None


def is_hidden(name: str) -> bool:
    """True for dot-files, which include macOS's `._000.mp4` resource forks next to videos."""
    return name.startswith(".")


def is_video_name(name: str, *, include_stills: bool = False) -> bool:
    """True if a file name looks like a video mattn should list (or a still image, if asked)."""
    if is_hidden(name):
        return False
    extension = Path(name).suffix.lower()
    return extension in VIDEO_EXTENSIONS or (include_stills and extension in STILL_EXTENSIONS)


def video_files_in(directory: Path, *, include_stills: bool = False) -> list[Path]:
    """The videos directly inside `directory` (not below it), sorted by name; [] if absent.

    With `include_stills`, still images too: each is read as a one-frame video (`stills`).
    """
    if not directory.is_dir():
        return []
    with os.scandir(directory) as scanned:
        names = [
            item.name
            for item in scanned
            if is_video_name(item.name, include_stills=include_stills) and item.is_file()
        ]
    return [directory / name for name in sorted(names)]


def subdirectories(directory: Path) -> list[Path]:
    """The visible folders directly inside `directory`, sorted by name; [] if absent."""
    if not directory.is_dir():
        return []
    with os.scandir(directory) as scanned:
        names = [item.name for item in scanned if not is_hidden(item.name) and item.is_dir()]
    return [directory / name for name in sorted(names)]


def walk_directories(root: Path, *, max_depth: int | None = None) -> Iterator[tuple[Path, int]]:
    """Yield (folder, depth below root) for root and every visible folder under it.

    Follows symbolic links, because datasets are often assembled from links into other
    disks, but visits each real folder once so a link cycle cannot loop forever.
    """
    visited_real_paths: set[str] = set()
    pending = [(root, 0)]
    while pending:
        directory, depth = pending.pop()
        real_path = os.path.realpath(directory)
        if real_path in visited_real_paths:
            continue
        visited_real_paths.add(real_path)
        yield directory, depth
        if max_depth is not None and depth >= max_depth:
            continue
        # Reversed so that popping from the end visits folders in name order.
        children = subdirectories(directory)
        pending.extend((child, depth + 1) for child in reversed(children))


def relative_posix(path: Path, root: Path) -> str:
    """`path` relative to `root`, with forward slashes on every platform."""
    return path.relative_to(root).as_posix()


def absolute_root(root: Path) -> Path:
    """An absolute, normalised root that keeps symbolic links as the user named them."""
    return Path(os.path.abspath(root))


def natural_sort_key(text: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key that orders "id2" before "id10" (digit runs compare as numbers)."""
    pieces = re.split(r"(\d+)", text)
    return tuple((0, int(piece)) if piece.isdigit() else (1, piece) for piece in pieces if piece)


def describe_contents(root: Path) -> str:
    """The first few top-level names of `root` for an error message ("a/, b.txt and 3 more")."""
    if not root.exists():
        return "nothing (the path does not exist)"
    if not root.is_dir():
        return "a file, not a folder"
    with os.scandir(root) as scanned:
        names = sorted(
            (item.name + "/" if item.is_dir() else item.name)
            for item in scanned
            if not is_hidden(item.name)
        )
    if not names:
        return "nothing (the folder is empty)"
    shown = ", ".join(names[:_SHOWN_ENTRIES])
    if len(names) > _SHOWN_ENTRIES:
        shown += f" and {len(names) - _SHOWN_ENTRIES} more"
    return shown


def labelled_entry(
    path: Path,
    relative_path: str,
    *,
    video_id: str,
    label: int,
    fake_method: str,
    group: str,
    source_relative_path: str | None = None,
) -> VideoEntry:
    """An entry of a layout with one kind of fake and no compression levels, not yet split.

    A fake's method is `fake_method`, a real video's "real"; `assign_splits` fills the split.
    """
    return VideoEntry(
        video_path=path,
        relative_path=relative_path,
        video_id=video_id,
        label=label,
        method=fake_method if label == 1 else "real",
        compression="",
        split="",
        group=group,
        source_relative_path=source_relative_path,
    )
