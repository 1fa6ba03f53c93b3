"""Plain folders: videos anywhere below folders named real/fake (or original/manipulated).

```
my_dataset/real/clip1.mp4                        real, method "real"
my_dataset/session2/FAKE/clip7.mov               fake, method "fake"
my_dataset/fake/Deepfakes/c23/000_003.mp4        fake, method "Deepfakes"
```
Folder names are matched case-insensitively. A video's label comes from the nearest such
folder above it, so `fake/actors/real/x.mp4` is real. A fake's method is the name of the
first folder below its fake folder when there is one (so per-method results come for free
from `fake/<method>/...`), else "fake". Videos under no real/fake folder are not listed: they
carry no label. Nothing says which videos share a person, so every video is its own group
("folders/<relative path>") and is split by hash.
"""

from __future__ import annotations

from pathlib import Path

from deepfake_cli.datasets.common import (
    VideoEntry,
    relative_posix,
    video_files_in,
    walk_directories,
)
from deepfake_cli.datasets.splits import assign_splits

NAME = "real/fake folders"
EXPECTED = "a folder named real, fake, original or manipulated (any case) at any depth"
REAL_FOLDER_NAMES = frozenset({"real", "original"})
FAKE_FOLDER_NAMES = frozenset({"fake", "manipulated"})
FAKE_METHOD = "fake"

# Detection looks this deep and at this many folders at most, so pointing mattn at a huge
# unrelated tree fails fast instead of walking the whole disk.
DETECTION_MAX_DEPTH = 4
DETECTION_MAX_FOLDERS = 5000


def label_of_folder(name: str) -> int | None:
    """0 for a real-style folder name, 1 for a fake-style one, None for any other name."""
    folded = name.casefold()
    if folded in REAL_FOLDER_NAMES:
        return 0
    if folded in FAKE_FOLDER_NAMES:
        return 1
    return None


def looks_like(root: Path) -> bool:
    """True if a real/fake-style folder is within a few levels below `root`."""
    for visited, (directory, depth) in enumerate(
        walk_directories(root, max_depth=DETECTION_MAX_DEPTH)
    ):
        if visited >= DETECTION_MAX_FOLDERS:
            return False
        if depth > 0 and label_of_folder(directory.name) is not None:
            return True
    return False


def list_entries(
    root: Path, *, val_fraction: float, test_fraction: float, seed: int
) -> list[VideoEntry]:
    """Every video below a real/fake folder, labelled, and split video by video."""
    entries = []
    for directory, _depth in walk_directories(root):
        for path in video_files_in(directory):
            relative_path = relative_posix(path, root)
            folder_names = relative_path.split("/")[:-1]
            labelled = _nearest_label(folder_names)
            if labelled is None:
                continue
            label, label_folder_index = labelled
            method = "real"
            if label == 1:
                below_label_folder = folder_names[label_folder_index + 1 :]
                method = below_label_folder[0] if below_label_folder else FAKE_METHOD
            entries.append(
                VideoEntry(
                    video_path=path,
                    relative_path=relative_path,
                    # With the extension: "a.mp4" and "a.avi" side by side are two videos.
                    video_id=f"folders/{relative_path}",
                    label=label,
                    method=method,
                    compression="",
                    split="",
                    group=f"folders/{relative_path}",
                )
            )
    return assign_splits(entries, seed=seed, val_fraction=val_fraction, test_fraction=test_fraction)


def _nearest_label(folder_names: list[str]) -> tuple[int, int] | None:
    """(label, index of the labelling folder) for the deepest real/fake folder, or None."""
    for index in range(len(folder_names) - 1, -1, -1):
        label = label_of_folder(folder_names[index])
        if label is not None:
            return label, index
    return None
