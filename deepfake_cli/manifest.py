"""A faces folder: the contract between `mattn extract-faces` and `mattn train` / `evaluate`.

`extract-faces` writes a faces folder; training and evaluation read it. Everything both sides
must agree on lives here, so the writer and the reader cannot drift apart:

    FACES/
      manifest.csv        one row per face crop, MANIFEST_COLUMNS in this order
      summary.json        what the extraction produced (counts, skipped videos, options)
      crops/...           the crop images, named by the manifest's `crop_path`

The columns are described in docs/extract-faces.md. Labels are 0 (real) and 1 (fake), splits
one of SPLITS. The reader needs only REQUIRED_COLUMNS and ignores columns it does not know, so
a manifest written by hand (or by an older mattn) with fewer columns still trains.
"""

from __future__ import annotations

import contextlib
import csv
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepfake_cli.errors import LayoutError
from deepfake_cli.files import PendingFile

MANIFEST_NAME = "manifest.csv"
SUMMARY_NAME = "summary.json"
#: The folder below a faces folder that holds the crops (`crop_path` starts with it).
CROPS_FOLDER = "crops"

MANIFEST_COLUMNS = (
    "crop_path",
    "video_path",
    "video_id",
    "label",
    "method",
    "compression",
    "split",
    "group",
    "frame_index",
    "time_s",
    "person",
    "box",
    "landmarks",
    "det_prob",
    "boxes_from",
    "crop_size",
    "margin_ratio",
    "align",
)
#: The columns training and evaluation cannot do without.
REQUIRED_COLUMNS = ("crop_path", "video_id", "label", "method", "split", "frame_index")

SPLITS = ("train", "val", "test")
REAL, FAKE = 0, 1
#: `boxes_from`: faces detected in this video, or its real original's boxes reused.
BOXES_FROM_SELF = "self"
BOXES_FROM_ORIGINAL = "original"
#: `align`: the crop was rotated so the eyes are level, or cut upright.
ALIGNED, UPRIGHT = "1", "0"


# --- writing -----------------------------------------------------------------------------------


class ManifestWriter:
    """Writes manifest.csv row by row; the file appears, complete, when the block ends.

    UTF-8, "\\n" line ends, a header of MANIFEST_COLUMNS, then each row's values in that order
    (a column a row does not give is written empty: unknown). The rows go to a temporary file
    that replaces `path` on success, so a reader never sees half a manifest, and a run that
    fails keeps the manifest that was there before.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._open_files = contextlib.ExitStack()
        self._writer: csv.DictWriter[str] | None = None

    def __enter__(self) -> ManifestWriter:
        # Closed in reverse order: the CSV file first, then the pending file is committed (or
        # discarded, on an exception). A failure in here unwinds what was opened so far.
        with contextlib.ExitStack() as opening:
            pending = opening.enter_context(PendingFile(self.path))
            manifest_file = opening.enter_context(
                open(pending.temporary, "w", newline="", encoding="utf-8")
            )
            self._writer = csv.DictWriter(
                manifest_file, fieldnames=MANIFEST_COLUMNS, restval="", lineterminator="\n"
            )
            self._writer.writeheader()
            self._open_files = opening.pop_all()
        return self

    def write_row(self, row: Mapping[str, object]) -> None:
        """One crop's row; an unknown column name is an error (a typo would lose data)."""
        if self._writer is None:
            raise RuntimeError("ManifestWriter is used as a context manager: `with ... as writer`")
        self._writer.writerow(row)

    def __exit__(self, *exc_info: Any) -> None:
        self._writer = None
        self._open_files.__exit__(*exc_info)


def write_manifest(faces_dir: str | Path, rows: Iterable[Mapping[str, object]]) -> Path:
    """Write `faces_dir/manifest.csv` holding `rows` (see ManifestWriter); its path."""
    path = Path(faces_dir) / MANIFEST_NAME
    with ManifestWriter(path) as writer:
        for row in rows:
            writer.write_row(row)
    return path


# --- reading -----------------------------------------------------------------------------------


def iter_manifest(path: str | Path) -> Iterator[dict[str, str]]:
    """The rows of a manifest.csv as they are written, as dictionaries keyed by column."""
    with open(path, newline="", encoding="utf-8") as manifest_file:
        yield from csv.DictReader(manifest_file)


@dataclass(frozen=True)
class CropRecord:
    """One row of manifest.csv, checked and typed: a face crop and what is known about it."""

    path: Path  # absolute path of the crop image
    video_id: str
    label: int  # REAL or FAKE
    method: str  # "real", or the manipulation's name
    split: str  # one of SPLITS
    frame_index: int
    video_path: str = ""
    compression: str = ""
    # MTCNN's 5 points (x1 y1 ... x5 y5) in crop pixels, or None.
    landmarks: tuple[float, ...] | None = None
    # The crop's side as a multiple of the detector box's longer side, when the manifest says.
    margin_ratio: float | None = None
    # The tracked person of the video the crop shows (0 when the manifest does not say).
    person: int = 0
    # Whether the crop was rotated so the eyes are level; None when the manifest does not say.
    align: bool | None = None
    # The face box (x1, y1, x2, y2, frame pixels) the crop was cut around, or None.
    box: tuple[float, float, float, float] | None = None


def read_manifest(data_dir: str | Path) -> list[CropRecord]:
    """All rows of `data_dir/manifest.csv` (extra columns are ignored).

    Raises:
        LayoutError: no manifest, a required column missing, a row that does not parse, no
            rows at all, or a video with crops labelled both real and fake.
    """
    data_dir = Path(data_dir)
    path = data_dir / MANIFEST_NAME
    if not path.is_file():
        raise LayoutError(
            f"{data_dir} is not a faces folder: {MANIFEST_NAME} is missing (write one with "
            "`mattn extract-faces`)."
        )
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [name for name in REQUIRED_COLUMNS if name not in (reader.fieldnames or [])]
        if missing:
            raise LayoutError(f"{path} lacks the column(s) {', '.join(missing)}.")
        # Line 1 is the header, so the first row is line 2.
        records = [_record(row, data_dir, path, line) for line, row in enumerate(reader, start=2)]
    if not records:
        raise LayoutError(f"{path} lists no face crops.")
    labels_by_video: dict[str, set[int]] = defaultdict(set)
    for record in records:
        labels_by_video[record.video_id].add(record.label)
    mixed = next((video for video, labels in labels_by_video.items() if len(labels) > 1), None)
    if mixed is not None:
        raise LayoutError(f"{path}: video {mixed!r} has crops labelled both real and fake.")
    return records


def _record(row: dict[str, str], data_dir: Path, manifest: Path, line: int) -> CropRecord:
    try:
        label = int(row["label"])
        frame_index = int(float(row["frame_index"] or 0))
    except ValueError:
        raise LayoutError(
            f"{manifest}, line {line}: label and frame_index must be numbers."
        ) from None
    if label not in (REAL, FAKE):
        raise LayoutError(f"{manifest}, line {line}: label must be 0 (real) or 1 (fake).")
    split = row["split"].strip()
    if split not in SPLITS:
        raise LayoutError(f"{manifest}, line {line}: split must be one of {', '.join(SPLITS)}.")
    landmarks = None
    landmarks_text = (row.get("landmarks") or "").strip()
    if landmarks_text:
        values = tuple(float(value) for value in landmarks_text.split())
        if len(values) != 10:
            raise LayoutError(f"{manifest}, line {line}: landmarks must be 10 numbers.")
        landmarks = values
    method = (row.get("method") or "").strip() or ("real" if label == REAL else "fake")
    margin_text = (row.get("margin_ratio") or "").strip()
    person_text = (row.get("person") or "").strip()
    align_text = (row.get("align") or "").strip()
    if align_text not in ("", ALIGNED, UPRIGHT):
        raise LayoutError(f"{manifest}, line {line}: align must be {ALIGNED} or {UPRIGHT}.")
    try:
        person = int(float(person_text or 0))
        box_values = tuple(float(value) for value in (row.get("box") or "").split())
    except ValueError:
        raise LayoutError(f"{manifest}, line {line}: person and box must be numbers.") from None
    if box_values and len(box_values) != 4:
        raise LayoutError(f"{manifest}, line {line}: box must be 4 numbers.")
    return CropRecord(
        path=data_dir / row["crop_path"],
        video_id=row["video_id"],
        label=label,
        method=method,
        split=split,
        frame_index=frame_index,
        video_path=row.get("video_path") or "",
        compression=row.get("compression") or "",
        landmarks=landmarks,
        margin_ratio=float(margin_text) if margin_text else None,
        person=person,
        align=None if not align_text else align_text == ALIGNED,
        box=box_values or None,  # type: ignore[arg-type]
    )
