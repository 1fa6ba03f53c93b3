"""The Deepfake Detection Challenge dataset (Dolhansky et al., 2020), full and preview releases.

```
dfdc_train_part_0/metadata.json, *.mp4   {"x.mp4": {"label": "FAKE", "original": "y.mp4"}, ...}
test/videos/*.mp4, test/labels.csv       public test set: "filename,label", 1 = fake
dataset.json                             preview release (DFDC-P): {"<path>": {"label", "set"}}
```
A `metadata.json` directly in the root or in any folder directly below it is read the same
way, which covers Kaggle's `train_sample_videos/`. Videos a metadata file lists but that are
not on disk are skipped, because the 470 GB of train parts are often downloaded in part;
a video on disk that its metadata does not label raises LayoutError.

Groups: a fake shares the group of its original ("dfdc/<original's name>"), wherever the
original is; a real video without fakes is its own group. DFDC does not say which real videos
show the same person, so two originals of one actor can land in different splits. Public test
videos form the test split, one group each; the train parts then go to train or val by hash.
Without the public test set (and without preview "test" videos) the train parts are split by
hash with `val_fraction` and `test_fraction`.

Preview release: "set": "test" is honoured; videos are grouped by their "target_id" and
"swapped_id" fields when present, otherwise by the folder below the method folder
(`method_A/<id>/...`), which is where DFDC-P keeps one subject's videos.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from deepfake_cli.datasets.common import (
    VideoEntry,
    labelled_entry,
    relative_posix,
    subdirectories,
    video_files_in,
)
from deepfake_cli.datasets.splits import IdentityGroups, SplitPin, assign_splits
from deepfake_cli.errors import LayoutError

NAME = "DFDC"
EXPECTED = "dfdc_train_part_*/, metadata.json, dataset.json or test/labels.csv"
PART_PREFIX = "dfdc_train_part_"
METADATA_FILE = "metadata.json"
PREVIEW_FILE = "dataset.json"
TEST_FOLDER = "test"
TEST_LABELS = "labels.csv"
FAKE_METHOD = "dfdc"

_REAL_LABEL = "REAL"
_FAKE_LABEL = "FAKE"


def looks_like(root: Path) -> bool:
    """True for train parts, a root or first-level metadata.json, a preview or a test set."""
    if (root / PREVIEW_FILE).is_file() or (root / TEST_FOLDER / TEST_LABELS).is_file():
        return True
    return bool(_metadata_folders(root))


def list_entries(
    root: Path, *, val_fraction: float, test_fraction: float, seed: int
) -> list[VideoEntry]:
    """Every DFDC video, labelled, grouped and split (see the module docstring)."""
    metadata_entries = _metadata_entries(root)
    test_entries = _test_set_entries(root)
    preview_entries, preview_pins = _preview_entries(root)
    entries = metadata_entries + test_entries + preview_entries
    pins = [
        SplitPin(group=entry.group, split="test", reason=f"{TEST_FOLDER}/{TEST_LABELS}")
        for entry in test_entries
    ] + preview_pins
    # An official test split means the rest is for training: train or val only.
    return assign_splits(
        entries,
        pins=pins,
        seed=seed,
        val_fraction=val_fraction,
        test_fraction=0 if pins else test_fraction,
    )


def _metadata_folders(root: Path) -> list[Path]:
    """The root and the first-level folders that hold a metadata.json, sorted by name."""
    has_test_labels = (root / TEST_FOLDER / TEST_LABELS).is_file()
    candidates = [root] + [
        folder
        for folder in subdirectories(root)
        # The public test set is labelled by labels.csv; a metadata.json there is not read.
        if not (has_test_labels and folder.name == TEST_FOLDER)
    ]
    return [folder for folder in candidates if (folder / METADATA_FILE).is_file()]


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise LayoutError(f"cannot read {path} as JSON: {error}") from error


def _metadata_entries(root: Path) -> list[VideoEntry]:
    """Entries of every metadata.json folder (train parts, Kaggle samples)."""
    # First pass: where every video on disk is, so a fake can find an original in another part.
    folders = _metadata_folders(root)
    videos_by_folder = {folder: video_files_in(folder) for folder in folders}
    relative_path_by_name: dict[str, str] = {}
    for videos in videos_by_folder.values():
        for path in videos:
            relative_path_by_name.setdefault(path.name, relative_posix(path, root))

    entries = []
    for folder, videos in videos_by_folder.items():
        metadata_path = folder / METADATA_FILE
        metadata = _read_json(metadata_path)
        names_in_folder = {path.name for path in videos}
        if not isinstance(metadata, dict):
            raise LayoutError(
                f"{metadata_path} should map video names to {{'label': ...}} objects, found "
                f"{type(metadata).__name__}"
            )
        for path in videos:
            relative_path = relative_posix(path, root)
            record = metadata.get(path.name)
            if not isinstance(record, dict):
                raise LayoutError(
                    f"{relative_path} has no label: expected an entry for "
                    f"{path.name} in {relative_posix(metadata_path, root)}, found "
                    f"{'none' if record is None else repr(record)}"
                )
            label = _parse_label(
                record, relative_posix(metadata_path, root), path.name, spelling="REAL or FAKE"
            )
            original_name = record.get("original") if label == 1 else None
            source_relative_path = None
            group = f"dfdc/{path.stem}"
            if isinstance(original_name, str) and original_name:
                group = f"dfdc/{Path(original_name).stem}"
                if original_name in names_in_folder:
                    source_relative_path = relative_posix(folder / original_name, root)
                else:
                    source_relative_path = relative_path_by_name.get(original_name)
            folder_id = "" if folder == root else f"{folder.name}/"
            entries.append(
                labelled_entry(
                    path,
                    relative_path,
                    video_id=f"dfdc/{folder_id}{path.stem}",
                    label=label,
                    fake_method=FAKE_METHOD,
                    group=group,
                    source_relative_path=source_relative_path,
                )
            )
    return entries


def _parse_label(
    record: dict[str, Any], labels_file_shown: str, video_shown: str, *, spelling: str
) -> int:
    """1 for a "label" of FAKE, 0 for REAL (in any case); else LayoutError.

    `spelling` is how the file writes its labels, for the message: metadata.json has "REAL" and
    "FAKE", dataset.json "real" and "fake".
    """
    label_text = str(record.get("label", "")).upper()
    if label_text not in (_REAL_LABEL, _FAKE_LABEL):
        raise LayoutError(
            f"{labels_file_shown} labels {video_shown} {record.get('label')!r}: expected {spelling}"
        )
    return int(label_text == _FAKE_LABEL)


def _test_set_entries(root: Path) -> list[VideoEntry]:
    """The public test set: test/labels.csv, videos in test/videos/ (or test/ itself)."""
    labels_path = root / TEST_FOLDER / TEST_LABELS
    if not labels_path.is_file():
        return []
    labels_shown = relative_posix(labels_path, root)
    try:
        with labels_path.open(newline="", encoding="utf-8") as labels_file:
            rows = list(csv.DictReader(labels_file))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise LayoutError(f"cannot read {labels_path} as CSV: {error}") from error
    if rows and not {"filename", "label"} <= set(rows[0]):
        raise LayoutError(
            f"{labels_shown} should have the columns filename,label; found "
            f"{','.join(str(column) for column in rows[0])}"
        )
    videos_folders = [root / TEST_FOLDER / "videos", root / TEST_FOLDER]
    videos_on_disk = {
        path.name: path for folder in reversed(videos_folders) for path in video_files_in(folder)
    }
    entries = []
    listed_names = set()
    for row_number, row in enumerate(rows, start=2):
        file_name = (row.get("filename") or "").strip()
        label = _parse_test_label(row.get("label"))
        if not file_name or label is None:
            raise LayoutError(
                f"{labels_shown} row {row_number} should read '<file name>,<0 or 1>', found "
                f"{row.get('filename')},{row.get('label')}"
            )
        path = videos_on_disk.get(file_name)
        if path is None:
            raise LayoutError(
                f"{labels_shown} row {row_number} lists {file_name}: expected it in "
                f"{TEST_FOLDER}/videos/, found no such file"
            )
        listed_names.add(file_name)
        entries.append(
            labelled_entry(
                path,
                relative_posix(path, root),
                video_id=f"dfdc/{TEST_FOLDER}/{path.stem}",
                label=label,
                fake_method=FAKE_METHOD,
                group=f"dfdc/{TEST_FOLDER}/{path.stem}",
            )
        )
    unlabelled = sorted(set(videos_on_disk) - listed_names)
    if unlabelled:
        raise LayoutError(
            f"{len(unlabelled)} test video(s) have no label, first {unlabelled[0]}: expected a "
            f"row for each in {labels_shown}"
        )
    return entries


def _parse_test_label(text: str | None) -> int | None:
    """1 (fake) or 0 (real); some copies write 1.0 and 0.0."""
    try:
        value = float((text or "").strip())
    except ValueError:
        return None
    return int(value) if value in (0.0, 1.0) else None


def _preview_entries(root: Path) -> tuple[list[VideoEntry], list[SplitPin]]:
    """The preview release's videos, from dataset.json, and pins for its "test" set."""
    preview_path = root / PREVIEW_FILE
    if not preview_path.is_file():
        return [], []
    records = _read_json(preview_path)
    if not isinstance(records, dict):
        raise LayoutError(
            f"{PREVIEW_FILE} should map video paths to {{'label', 'set'}} objects, found "
            f"{type(records).__name__}"
        )
    subjects = IdentityGroups()
    present: list[tuple[Path, str, int, list[str], str | None]] = []
    for raw_path, record in sorted(records.items()):
        relative_path = str(raw_path).replace("\\", "/").removeprefix("./")
        path = root / relative_path
        if not path.is_file():
            continue  # The preview is also downloaded in part.
        if not isinstance(record, dict):
            raise LayoutError(
                f"{PREVIEW_FILE} entry {relative_path} should be a {{'label', 'set'}} object, "
                f"found {record!r}"
            )
        label = _parse_label(record, PREVIEW_FILE, relative_path, spelling="real or fake")
        identities = [
            str(record[key])
            for key in ("target_id", "swapped_id")
            if record.get(key) not in (None, "")
        ]
        if not identities:
            parts = relative_path.split("/")
            identities = [parts[1] if len(parts) >= 3 else relative_path]
        for identity in identities:
            subjects.link(identities[0], identity)
        present.append((path, relative_path, label, identities, record.get("set")))

    entries = []
    pins = []
    for path, relative_path, label, identities, official_set in present:
        entry = labelled_entry(
            path,
            relative_path,
            video_id=f"dfdc/{Path(relative_path).with_suffix('').as_posix()}",
            label=label,
            fake_method=FAKE_METHOD,
            group="dfdc/preview/" + subjects.name(identities[0]),
        )
        entries.append(entry)
        if official_set == "test":
            pins.append(SplitPin(entry.group, "test", f"{PREVIEW_FILE} ({relative_path})"))
    return entries, pins
