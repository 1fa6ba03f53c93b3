"""Plain folders: videos and photos anywhere below folders named real/fake or original/manipulated.

```
my_dataset/real/clip1.mp4                        real, method "real"
my_dataset/session2/FAKE/clip7.mov               fake, method "fake"
my_dataset/fake/Deepfakes/c23/000_003.mp4        fake, method "Deepfakes"
my_dataset/real/001_neutral.jpg                  real: a still image, read as a one-frame video
```
Folder names are matched case-insensitively. A video's label comes from the nearest such
folder above it, so `fake/actors/real/x.mp4` is real. A fake's method is the name of the
first folder below its fake folder when there is one (so per-method results come for free
from `fake/<method>/...`), else "fake". Videos under no real/fake folder are not listed: they
carry no label. Still images (`stills.STILL_EXTENSIONS`) are listed like videos, since photo
datasets (SBI- and FFHQ-style training sets) come as plain folders of photographs.

Nothing in a folder says which files show the same person, so by default (`group_by="file"`)
every file is its own group ("folders/<relative path>") and is split by hash. Photo sets
usually name the person first (`001_neutral.jpg`, `001_smiling.jpg`): `group_by="name-prefix"`
makes the part of the file name before the first "_" (the whole name without its ending if it
has no "_") the group ("folders/001"), wherever the file lies, so all of one person's files,
real and fake, land in one split.
"""

from __future__ import annotations

from pathlib import Path

from deepfake_cli.datasets.common import (
    STILL_EXTENSIONS,
    VIDEO_EXTENSIONS,
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
#: What makes files one identity group: each file alone, or the start of their names.
GROUP_BY = ("file", "name-prefix")
#: Every file ending this layout lists: videos, and still images as one-frame videos.
FILE_EXTENSIONS = VIDEO_EXTENSIONS + STILL_EXTENSIONS

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
    root: Path,
    *,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    group_by: str = "file",
) -> list[VideoEntry]:
    """Every video and still below a real/fake folder, labelled, and split by `group_by`."""
    entries = []
    for directory, _depth in walk_directories(root):
        for path in video_files_in(directory, include_stills=True):
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
                    group=group_of(relative_path, group_by),
                )
            )
    return assign_splits(entries, seed=seed, val_fraction=val_fraction, test_fraction=test_fraction)


def group_of(relative_path: str, group_by: str) -> str:
    """The identity group of a file: "folders/<relative path>", or "folders/<name prefix>"."""
    if group_by == "file":
        return f"folders/{relative_path}"
    if group_by == "name-prefix":
        name = relative_path.rsplit("/", 1)[-1]
        prefix = name.split("_", 1)[0]
        # "_x.jpg" or "alice.jpg": no usable prefix, so the name itself (less its ending).
        if not prefix or "_" not in name:
            prefix = Path(name).stem
        return f"folders/{prefix}"
    raise ValueError(f"unknown group_by {group_by!r}: expected one of {', '.join(GROUP_BY)}")


def _nearest_label(folder_names: list[str]) -> tuple[int, int] | None:
    """(label, index of the labelling folder) for the deepest real/fake folder, or None."""
    for index in range(len(folder_names) - 1, -1, -1):
        label = label_of_folder(folder_names[index])
        if label is not None:
            return label, index
    return None
