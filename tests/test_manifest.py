"""The faces folder contract: manifest.csv's columns, its writer and its reader.

This is the one place the exact column list is pinned. extract-faces writes it and training and
evaluation read it through `deepfake_cli.manifest`, so a change here is a change of the format
that docs/extract-faces.md describes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from deepfake_cli.datasets import SPLITS as DATASET_SPLITS
from deepfake_cli.errors import LayoutError
from deepfake_cli.manifest import (
    FAKE,
    MANIFEST_COLUMNS,
    MANIFEST_NAME,
    REAL,
    REQUIRED_COLUMNS,
    SPLITS,
    SUMMARY_NAME,
    CropRecord,
    ManifestWriter,
    iter_manifest,
    read_manifest,
    write_manifest,
)

FULL_ROW = {
    "crop_path": "crops/ffpp/Deepfakes/000_001/0_12.png",
    "video_path": "manipulated_sequences/Deepfakes/c23/videos/000_001.mp4",
    "video_id": "ffpp/Deepfakes/000_001",
    "label": 1,
    "method": "Deepfakes",
    "compression": "c23",
    "split": "train",
    "group": "ffpp/000-001",
    "frame_index": "12",
    "time_s": "0.480",
    "person": "0",
    "box": "60.4 36.7 108.4 94.4",
    "landmarks": "20.0 22.5 40.0 22.0 30.0 32.0 22.0 42.0 38.0 42.0",
    "det_prob": "0.9990",
    "boxes_from": "original",
    "crop_size": 64,
    "margin_ratio": "1.3",
    "align": "0",
}


def test_the_columns_names_and_values_of_a_faces_folder():
    assert MANIFEST_COLUMNS == (
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
    assert REQUIRED_COLUMNS == ("crop_path", "video_id", "label", "method", "split", "frame_index")
    assert set(REQUIRED_COLUMNS) <= set(MANIFEST_COLUMNS)
    assert (MANIFEST_NAME, SUMMARY_NAME) == ("manifest.csv", "summary.json")
    assert SPLITS == ("train", "val", "test")
    # The datasets assign the splits the manifest carries: one list.
    assert DATASET_SPLITS is SPLITS
    assert (REAL, FAKE) == (0, 1)


def test_a_written_manifest_reads_back(tmp_path):
    short_row = {
        "crop_path": "crops/real/0_0.png",
        "video_id": "real",
        "label": 0,
        "method": "",
        "split": "val",
        "frame_index": 0,
    }
    path = write_manifest(tmp_path, [FULL_ROW, short_row])

    assert path == tmp_path / MANIFEST_NAME
    text = path.read_bytes().decode("utf-8")
    lines = text.split("\n")
    # "\n" line ends, a header of the columns in order, missing values written empty.
    assert "\r" not in text and lines[-1] == ""
    assert lines[0] == ",".join(MANIFEST_COLUMNS)
    assert lines[2] == "crops/real/0_0.png,,real,0,,,val,,0,,,,,,,,,"
    rows = list(iter_manifest(path))
    assert rows[0] == {column: str(value) for column, value in FULL_ROW.items()}

    fake, real = read_manifest(tmp_path)
    assert fake == CropRecord(
        path=tmp_path / FULL_ROW["crop_path"],
        video_id="ffpp/Deepfakes/000_001",
        label=FAKE,
        method="Deepfakes",
        split="train",
        frame_index=12,
        video_path=FULL_ROW["video_path"],
        compression="c23",
        landmarks=(20.0, 22.5, 40.0, 22.0, 30.0, 32.0, 22.0, 42.0, 38.0, 42.0),
        margin_ratio=1.3,
        person=0,
        align=False,
        box=(60.4, 36.7, 108.4, 94.4),
    )
    # Unknown values: a method named after the label, no landmarks, margin, alignment or box.
    assert (real.label, real.method, real.landmarks, real.margin_ratio, real.align, real.box) == (
        REAL,
        "real",
        None,
        None,
        None,
        None,
    )


def test_the_writer_rejects_unknown_columns_and_keeps_the_old_file_on_failure(tmp_path):
    write_manifest(tmp_path, [FULL_ROW])
    before = (tmp_path / MANIFEST_NAME).read_bytes()

    with pytest.raises(ValueError), ManifestWriter(tmp_path / MANIFEST_NAME) as writer:
        writer.write_row(FULL_ROW)
        writer.write_row({**FULL_ROW, "crop_pth": "typo.png"})

    assert (tmp_path / MANIFEST_NAME).read_bytes() == before
    assert [path.name for path in tmp_path.iterdir()] == [MANIFEST_NAME]


def _manifest_with(tmp_path: Path, text: str) -> Path:
    (tmp_path / MANIFEST_NAME).write_text(text, encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ("crops/a.png,a,2,real,train,0,\n", "line 2: label must be 0 (real) or 1 (fake)"),
        ("crops/a.png,a,0,real,holdout,0,\n", "line 2: split must be one of train, val, test"),
        ("crops/a.png,a,zero,real,train,0,\n", "line 2: label and frame_index must be numbers"),
        (
            "crops/a.png,a,0,real,train,0,\ncrops/b.png,a,0,real,train,1,1 2 3\n",
            "line 3: landmarks",
        ),
        ("crops/a.png,a,0,real,train,0,\ncrops/b.png,a,1,x,train,1,\n", "labelled both"),
        ("", "lists no face crops"),
    ],
)
def test_the_reader_names_what_is_wrong(tmp_path, rows, message):
    header = ",".join((*REQUIRED_COLUMNS, "landmarks")) + "\n"
    with pytest.raises(LayoutError) as raised:
        read_manifest(_manifest_with(tmp_path, header + rows))
    assert message in raised.value.message


def test_the_reader_rejects_a_folder_that_is_not_a_faces_folder(tmp_path):
    with pytest.raises(LayoutError) as raised:
        read_manifest(tmp_path)
    assert "manifest.csv is missing" in raised.value.message

    _manifest_with(tmp_path, "crop_path,label\ncrops/a.png,0\n")
    with pytest.raises(LayoutError) as raised:
        read_manifest(tmp_path)
    assert "lacks the column(s) video_id, method, split, frame_index" in raised.value.message

    _manifest_with(tmp_path, ",".join(MANIFEST_COLUMNS) + "\n" + ",".join(["x"] * 17) + "\n")
    with pytest.raises(LayoutError):
        read_manifest(tmp_path)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("yes,", "line 2: align must be 1 or 0"),
        ("0,1 2 3", "line 2: box must be 4 numbers"),
        ("0,a b c d", "line 2: person and box must be numbers"),
    ],
)
def test_the_reader_checks_the_geometry_columns(tmp_path, extra, message):
    header = ",".join((*REQUIRED_COLUMNS, "align", "box")) + "\n"
    with pytest.raises(LayoutError) as raised:
        read_manifest(_manifest_with(tmp_path, header + "crops/a.png,a,0,real,train,0," + extra))
    assert message in raised.value.message
