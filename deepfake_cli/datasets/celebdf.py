"""Celeb-DF v1 and v2 (Li et al., 2020).

```
Celeb-real/id0_0000.mp4            real (celebrity interview; id0's video 0000)
YouTube-real/00000.mp4             real
Celeb-synthesis/id0_id1_0000.mp4   fake: id1's face swapped into id0's video 0000
List_of_testing_videos.txt         "<label> <relative path>" per line; 1 = REAL, 0 = FAKE
```
The test split is the official list. Its labels are inverted with respect to mattn's (1 means
real there); each one is checked against the folder the video is in, and a contradiction
raises LayoutError instead of silently training on flipped labels.

Groups: a fake idX_idY links celebrities idX and idY (union-find), so every Celeb-real and
Celeb-synthesis video of linked celebrities shares a group; each YouTube-real video is its own
group ("celebdf/youtube/00170"). If the test list names a video, its whole group goes to
test, including videos the list does not name, so that no identity is on both sides. The
official list does not follow identities, so this moves extra videos into test; because
swaps link most celebrities to each other, on the full dataset that can be most of
Celeb-real and Celeb-synthesis. The other groups go to train or val by hash. Without a test
list, all groups are split by hash with `val_fraction` and `test_fraction`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from deepfake_cli.datasets.common import (
    VideoEntry,
    labelled_entry,
    relative_posix,
    video_files_in,
)
from deepfake_cli.datasets.splits import IdentityGroups, SplitPin, assign_splits
from deepfake_cli.errors import LayoutError

NAME = "Celeb-DF"
REAL_CELEB_FOLDER = "Celeb-real"
REAL_YOUTUBE_FOLDER = "YouTube-real"
FAKE_FOLDER = "Celeb-synthesis"
FOLDERS = (REAL_CELEB_FOLDER, REAL_YOUTUBE_FOLDER, FAKE_FOLDER)
EXPECTED = "Celeb-real/, Celeb-synthesis/ or YouTube-real/"
TEST_LIST = "List_of_testing_videos.txt"
FAKE_METHOD = "celebdf-synthesis"

_CELEB_REAL_NAME = re.compile(r"^(?P<target>[^_]+)_(?P<clip>[^_]+)$")
_CELEB_FAKE_NAME = re.compile(r"^(?P<target>[^_]+)_(?P<source>[^_]+)_(?P<clip>[^_]+)$")

# Labels as List_of_testing_videos.txt writes them: the reverse of mattn's 0 = real, 1 = fake.
_TEST_LIST_REAL = "1"
_TEST_LIST_FAKE = "0"


@dataclass(frozen=True)
class _TestListing:
    """One line of the official test list."""

    relative_path: str
    line_number: int


def looks_like(root: Path) -> bool:
    """True if `root` has at least one of Celeb-DF's three video folders."""
    return any((root / folder).is_dir() for folder in FOLDERS)


def list_entries(
    root: Path, *, val_fraction: float, test_fraction: float, seed: int
) -> list[VideoEntry]:
    """Every Celeb-DF video, labelled, grouped, and split (see the module docstring)."""
    celebrities = IdentityGroups()
    real_celeb_videos = video_files_in(root / REAL_CELEB_FOLDER)
    fake_videos = video_files_in(root / FAKE_FOLDER)
    youtube_videos = video_files_in(root / REAL_YOUTUBE_FOLDER)

    # (target, clip) -> relative path of the real video, to give each fake its source.
    real_by_clip: dict[tuple[str, str], str] = {}
    real_fields: dict[Path, dict[str, str]] = {}
    for path in real_celeb_videos:
        fields = _parse_name(path, root, _CELEB_REAL_NAME, "id0_0000.mp4")
        celebrities.add(fields["target"])
        real_by_clip[(fields["target"], fields["clip"])] = relative_posix(path, root)
        real_fields[path] = fields
    fake_fields: dict[Path, dict[str, str]] = {}
    for path in fake_videos:
        fields = _parse_name(path, root, _CELEB_FAKE_NAME, "id0_id1_0000.mp4")
        celebrities.link(fields["target"], fields["source"])
        fake_fields[path] = fields

    # Groups are named only after all links are in: a later fake can merge two groups.
    entries: list[VideoEntry] = []
    for path, fields in real_fields.items():
        group = "celebdf/" + celebrities.name(fields["target"])
        entries.append(_entry(path, root, label=0, group=group))
    for path, fields in fake_fields.items():
        entries.append(
            _entry(
                path,
                root,
                label=1,
                group="celebdf/" + celebrities.name(fields["target"]),
                source_relative_path=real_by_clip.get((fields["target"], fields["clip"])),
            )
        )
    for path in youtube_videos:
        entries.append(_entry(path, root, label=0, group=f"celebdf/youtube/{path.stem}"))

    test_list_path = root / TEST_LIST
    if not test_list_path.is_file():
        return assign_splits(
            entries, seed=seed, val_fraction=val_fraction, test_fraction=test_fraction
        )
    listed = _read_test_list(test_list_path)
    entry_by_path = {entry.relative_path: entry for entry in entries}
    missing = [listing for listing in listed if listing.relative_path not in entry_by_path]
    if missing:
        raise LayoutError(
            f"{TEST_LIST} lists {len(missing)} video(s) that are not under {root}, first "
            f"{missing[0].relative_path} (line {missing[0].line_number}): expected every "
            f"test video to be present"
        )
    pins = [
        SplitPin(
            group=entry_by_path[listing.relative_path].group,
            split="test",
            reason=f"{TEST_LIST} line {listing.line_number}",
        )
        for listing in listed
    ]
    # The official list is the test split, so unlisted groups go to train or val only.
    return assign_splits(entries, pins=pins, seed=seed, val_fraction=val_fraction, test_fraction=0)


def _parse_name(path: Path, root: Path, pattern: re.Pattern[str], example: str) -> dict[str, str]:
    match = pattern.match(path.stem)
    if match is None:
        raise LayoutError(
            f"Celeb-DF video {relative_posix(path, root)} is not named like the dataset's "
            f"videos: expected a name like {example}, found {path.name}"
        )
    return match.groupdict()


def _entry(
    path: Path, root: Path, *, label: int, group: str, source_relative_path: str | None = None
) -> VideoEntry:
    return labelled_entry(
        path,
        relative_posix(path, root),
        video_id=f"celebdf/{path.parent.name}/{path.stem}",
        label=label,
        fake_method=FAKE_METHOD,
        group=group,
        source_relative_path=source_relative_path,
    )


def _read_test_list(test_list_path: Path) -> list[_TestListing]:
    """The listed videos, after checking each line's inverted label against its folder."""
    try:
        lines = test_list_path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise LayoutError(f"cannot read {test_list_path}: {error}") from error
    listings = []
    for line_number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        fields = line.split(maxsplit=1)
        if len(fields) != 2 or fields[0] not in (_TEST_LIST_REAL, _TEST_LIST_FAKE):
            raise LayoutError(
                f"{TEST_LIST} line {line_number} should read '<1 or 0> <relative path>', "
                f"found {line.strip()!r}"
            )
        list_label, raw_path = fields
        # Some copies of the list were written on Windows.
        relative_path = raw_path.strip().replace("\\", "/").removeprefix("./")
        folder = relative_path.split("/", 1)[0]
        if folder not in FOLDERS:
            raise LayoutError(
                f"{TEST_LIST} line {line_number} lists {relative_path}: expected a path inside "
                f"{', '.join(FOLDERS)}"
            )
        folder_is_real = folder != FAKE_FOLDER
        list_says_real = list_label == _TEST_LIST_REAL
        if folder_is_real != list_says_real:
            raise LayoutError(
                f"{TEST_LIST} line {line_number} labels {relative_path} "
                f"{list_label} ({'real' if list_says_real else 'fake'}; in this file 1 means "
                f"real and 0 fake) but {folder}/ holds {'real' if folder_is_real else 'fake'} "
                f"videos"
            )
        listings.append(_TestListing(relative_path=relative_path, line_number=line_number))
    return listings
