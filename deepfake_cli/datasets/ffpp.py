"""FaceForensics++ (Rössler et al., 2019), including the DeepFakeDetection (DFD) videos.

```
original_sequences/youtube/<level>/videos/000.mp4                         real
original_sequences/actors/<level>/videos/01__kitchen_pan.mp4              real (DFD actors)
manipulated_sequences/<method>/<level>/videos/000_003.mp4                 fake: 003's face in 000
manipulated_sequences/DeepFakeDetection/<level>/videos/01_02__kitchen_pan__YVGY8LOK.mp4
```
Levels are c23, c40 and raw (also spelled c0); one level is listed at a time. Masks
(`<method>/masks/videos`) are not videos of the dataset and are skipped.

Groups: a fake A_B links ids A and B (union-find), so A, B, their originals and all their fakes
share a group and a split; an original nobody was swapped with is a group of its own. With the
official splits (`train.json`, `val.json`, `test.json`: lists of [a, b] pairs), each pair is
linked and pinned to its split, so its group is named "ffpp/a_b". Groups the official lists do
not mention (DFD, or ids outside the lists) are split by hash with `val_fraction` and
`test_fraction`. DFD actors are linked the same way by actor pair; since most actors were
swapped with several others, DFD usually forms a single group, hence a single split.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from deepfake_cli.datasets.common import (
    VideoEntry,
    relative_posix,
    subdirectories,
    video_files_in,
)
from deepfake_cli.datasets.splits import IdentityGroups, SplitPin, assign_splits
from deepfake_cli.errors import LayoutError, UsageError

NAME = "FaceForensics++"
EXPECTED = "original_sequences/ or manipulated_sequences/"

ORIGINALS_FOLDER = "original_sequences"
MANIPULATED_FOLDER = "manipulated_sequences"
YOUTUBE_SOURCE = "youtube"
ACTORS_SOURCE = "actors"
DFD_METHOD = "DeepFakeDetection"
MANIPULATION_METHODS = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures", "FaceShifter")
COMPRESSION_LEVELS = ("c23", "c40", "raw")
SPLIT_FILES = {"train": "train.json", "val": "val.json", "test": "test.json"}

# Folder names on disk for each level: the raw videos are published as both "raw" and "c0".
_LEVEL_FOLDERS = {"c23": ("c23",), "c40": ("c40",), "raw": ("raw", "c0")}
_LEVEL_OF_FOLDER = {
    folder: level for level, folders in _LEVEL_FOLDERS.items() for folder in folders
}

_YOUTUBE_ORIGINAL = re.compile(r"^(?P<target>\d+)$")
_YOUTUBE_FAKE = re.compile(r"^(?P<target>\d+)_(?P<source>\d+)$")
_ACTORS_ORIGINAL = re.compile(r"^(?P<target>[^_]+)__(?P<scene>.+)$")
_DFD_FAKE = re.compile(r"^(?P<target>[^_]+)_(?P<source>[^_]+)__(?P<scene>.+)__(?P<code>[^_]+)$")


@dataclass(frozen=True)
class _ParsedVideo:
    """What a video's name says about identities, and the video, before groups are known."""

    # The id of the person whose video it is (a fake keeps this person's scene and body).
    target: str
    # The id whose face was pasted in; None for originals.
    source: str | None
    # DFD scene ("kitchen_pan"); None for the YouTube videos.
    scene: str | None
    path: Path
    relative_path: str
    video_id: str
    method: str


def looks_like(root: Path) -> bool:
    """True if `root` has FaceForensics++'s top-level folders."""
    return (root / ORIGINALS_FOLDER).is_dir() or (root / MANIPULATED_FOLDER).is_dir()


def normalise_compression(compression: str) -> str:
    """The canonical level name: c23, c40 or raw (c0 is raw's other name); else UsageError."""
    level = _LEVEL_OF_FOLDER.get(compression.strip().lower())
    if level is None:
        raise UsageError(
            f"unknown FaceForensics++ compression {compression!r}: expected c23, c40 or raw (c0)"
        )
    return level


def list_entries(
    root: Path,
    *,
    compression: str,
    splits_dir: Path | None,
    val_fraction: float,
    test_fraction: float,
    seed: int,
) -> list[VideoEntry]:
    """Every FaceForensics++ video of one compression level, labelled, grouped and split.

    If `splits_dir` is None and `root/splits/` holds the three official JSON files, those
    are used, because results on FF++ are only comparable on the official split.
    """
    level = normalise_compression(compression)
    sequence_folders = _sequence_folders(root)
    videos_folders = {
        folder: videos for folder in sequence_folders if (videos := _videos_folder(folder, level))
    }
    if not any(video_files_in(videos) for videos in videos_folders.values()):
        _raise_missing_level(root, level, sequence_folders)

    youtube_groups = IdentityGroups()
    actor_groups = IdentityGroups()
    originals: list[_ParsedVideo] = []
    fakes: list[_ParsedVideo] = []
    for sequence_folder, videos_folder in videos_folders.items():
        kind = sequence_folder.parent.name
        for path in video_files_in(videos_folder):
            parsed = _parse(path, root, kind=kind, name=sequence_folder.name)
            is_dfd = sequence_folder.name in (ACTORS_SOURCE, DFD_METHOD)
            identity_groups = actor_groups if is_dfd else youtube_groups
            if parsed.source is None:
                identity_groups.add(parsed.target)
                originals.append(parsed)
            else:
                identity_groups.link(parsed.target, parsed.source)
                fakes.append(parsed)

    if splits_dir is None and all(
        (root / "splits" / name).is_file() for name in SPLIT_FILES.values()
    ):
        splits_dir = root / "splits"
    official_pairs = _read_official_pairs(splits_dir) if splits_dir is not None else []
    for _split, (first_id, second_id) in official_pairs:
        youtube_groups.link(first_id, second_id)
    # Group names are only final once every link is in, so pins are made after linking.
    pins = [
        SplitPin(
            group="ffpp/" + youtube_groups.name(first_id),
            split=split,
            reason=f"{SPLIT_FILES[split]} (pair {first_id}, {second_id})",
        )
        for split, (first_id, second_id) in official_pairs
    ]

    # Originals are looked up by (target, scene) so each fake can point at its own source video.
    original_paths = {
        (original.target, original.scene): original.relative_path for original in originals
    }
    entries = []
    for parsed in originals + fakes:
        is_dfd = parsed.scene is not None
        identity_groups = actor_groups if is_dfd else youtube_groups
        group_prefix = "ffpp/actors/" if is_dfd else "ffpp/"
        source_relative_path = None
        if parsed.source is not None:
            source_relative_path = original_paths.get((parsed.target, parsed.scene))
        entries.append(
            VideoEntry(
                video_path=parsed.path,
                relative_path=parsed.relative_path,
                video_id=parsed.video_id,
                label=0 if parsed.source is None else 1,
                method="real" if parsed.source is None else parsed.method,
                compression=level,
                split="",
                group=group_prefix + identity_groups.name(parsed.target),
                source_relative_path=source_relative_path,
            )
        )
    return assign_splits(
        entries, pins=pins, seed=seed, val_fraction=val_fraction, test_fraction=test_fraction
    )


def _sequence_folders(root: Path) -> list[Path]:
    """original_sequences/{youtube,actors} and every manipulated_sequences/<method>."""
    folders = [
        folder
        for folder in subdirectories(root / ORIGINALS_FOLDER)
        if folder.name in (YOUTUBE_SOURCE, ACTORS_SOURCE)
    ]
    return folders + subdirectories(root / MANIPULATED_FOLDER)


def _videos_folder(sequence_folder: Path, level: str) -> Path | None:
    for folder_name in _LEVEL_FOLDERS[level]:
        candidate = sequence_folder / folder_name / "videos"
        if candidate.is_dir():
            return candidate
    return None


def _raise_missing_level(root: Path, level: str, sequence_folders: list[Path]) -> None:
    present_levels = sorted(
        {
            _LEVEL_OF_FOLDER[folder.name]
            for sequence_folder in sequence_folders
            for folder in subdirectories(sequence_folder)
            if folder.name in _LEVEL_OF_FOLDER and video_files_in(folder / "videos")
        }
    )
    found = ", ".join(present_levels) if present_levels else "no videos at any level"
    raise LayoutError(
        f"{root} has no FaceForensics++ videos at compression {level}: expected "
        f"original_sequences/youtube/{level}/videos/ or manipulated_sequences/<method>/"
        f"{level}/videos/ holding videos; found levels: {found}"
    )


def _parse(path: Path, root: Path, *, kind: str, name: str) -> _ParsedVideo:
    """Read the ids out of a video's name; a name that does not fit raises LayoutError."""
    relative_path = relative_posix(path, root)
    stem = path.stem
    if kind == ORIGINALS_FOLDER:
        pattern, example = (
            (_ACTORS_ORIGINAL, "01__kitchen_pan.mp4")
            if name == ACTORS_SOURCE
            else (_YOUTUBE_ORIGINAL, "000.mp4")
        )
    else:
        pattern, example = (
            (_DFD_FAKE, "01_02__kitchen_pan__YVGY8LOK.mp4")
            if name == DFD_METHOD
            else (_YOUTUBE_FAKE, "000_003.mp4")
        )
    match = pattern.match(stem)
    if match is None:
        raise LayoutError(
            f"FaceForensics++ video {relative_path} is not named like the dataset's videos: "
            f"expected a name like {example}, found {path.name}"
        )
    fields = match.groupdict()
    return _ParsedVideo(
        target=fields["target"],
        source=fields.get("source"),
        scene=fields.get("scene"),
        path=path,
        relative_path=relative_path,
        video_id=f"ffpp/{name}/{stem}",
        method=name,
    )


def _read_official_pairs(splits_dir: Path) -> list[tuple[str, tuple[str, str]]]:
    """(split, (a, b)) for every pair of the official split files; malformed files raise."""
    missing = [name for name in SPLIT_FILES.values() if not (splits_dir / name).is_file()]
    if missing:
        raise LayoutError(
            f"splits folder {splits_dir} lacks {', '.join(missing)}: expected the official "
            f"FaceForensics++ train.json, val.json and test.json"
        )
    split_of_id: dict[str, str] = {}
    pairs = []
    for split, file_name in SPLIT_FILES.items():
        split_path = splits_dir / file_name
        try:
            content = json.loads(split_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise LayoutError(f"cannot read {split_path} as JSON: {error}") from error
        if not isinstance(content, list):
            raise LayoutError(
                f"{split_path} should be a JSON list of [a, b] id pairs, found "
                f"{type(content).__name__}"
            )
        for item in content:
            if not (
                isinstance(item, list)
                and len(item) == 2
                and all(isinstance(identity, str | int) for identity in item)
            ):
                raise LayoutError(
                    f"{split_path} should be a JSON list of [a, b] id pairs, found the item "
                    f"{item!r}"
                )
            # The official files hold strings ("000"); numbers are padded to match file names.
            pair = tuple(
                identity if isinstance(identity, str) else f"{identity:03d}" for identity in item
            )
            for identity in pair:
                earlier_split = split_of_id.setdefault(identity, split)
                if earlier_split != split:
                    raise LayoutError(
                        f"the official splits list id {identity} in both "
                        f"{SPLIT_FILES[earlier_split]} and {file_name}: expected each id once"
                    )
            pairs.append((split, (pair[0], pair[1])))
    return pairs
