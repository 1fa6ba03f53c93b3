"""One crop geometry per model: scan, extract-faces --weights and evaluate cut the same crops.

An imported authors'-style checkpoint (tiny B0 at 64 px, made in their checkpoint format and
imported with `mattn weights import`) scores tests/data/carphone_pristine.mp4 through `mattn
scan` and through `mattn evaluate` on faces folders cut with other geometries; the per-video
fake probabilities agree within 0.01, while ignoring the geometry (the old centre cut) does not.
"""

from __future__ import annotations

import csv
import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from deepfake_cli.commands import app
from deepfake_cli.crops import crop_face, recrop, recrop_refusal
from deepfake_cli.extract import extract_faces
from deepfake_cli.extract.plan import resolve_frames
from deepfake_cli.manifest import MANIFEST_NAME, read_manifest, write_manifest
from deepfake_cli.model.authors import AUTHORS_MARGIN_RATIO
from deepfake_cli.model.config import CropGeometry
from deepfake_cli.model.weights import (
    load_detector,
    read_preprocessing,
    read_weights_info,
)
from deepfake_cli.training import evaluate as evaluate_module
from deepfake_cli.training.protocols import select_videos
from tests.test_weights import authors_checkpoint

CARPHONE = Path(__file__).parent / "data" / "carphone_pristine.mp4"
# A trained B0 at 64 px (the earlier bundled demo model): small and fast, and its scores move
# with the crop, which a freshly initialised network's do not.
DEMO_WEIGHTS = Path(__file__).parent / "data" / "mattn-demo-b0.safetensors"
# Frames per video, as scan --frames and extract-faces --frames sample them.
FRAMES = 16
runner = CliRunner()


@pytest.fixture(autouse=True)
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def authors_weights(tmp_path_factory) -> Path:
    """The demo model's tensors (a trained B0 at 64 px, so its scores move with the
    crop) saved in the authors' checkpoint format, imported with the default geometry."""
    model = load_detector(DEMO_WEIGHTS)
    folder = tmp_path_factory.mktemp("authors")
    checkpoint = authors_checkpoint(model, folder / "authors.pth")
    output = folder / "imported.safetensors"
    result = runner.invoke(
        app, ["weights", "import", str(checkpoint), str(output), "--input-size", "64"]
    )
    assert result.exit_code == 0, result.output
    return output


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("clips")
    (root / "real").mkdir()
    shutil.copy(CARPHONE, root / "real" / "carphone.mp4")
    return root


@pytest.fixture(scope="module")
def scanned(authors_weights, dataset) -> dict:
    return scan(dataset, authors_weights)


def scan(dataset: Path, weights: Path) -> dict:
    """`mattn scan --details` of the clip in fp32: its one JSON record."""
    result = runner.invoke(
        app,
        [
            "scan",
            str(dataset / "real" / "carphone.mp4"),
            "--weights",
            str(weights),
            "--frames",
            str(FRAMES),
            "--format",
            "json",
            "--details",
            "--device",
            "cpu",
            "--precision",
            "fp32",
            "--quiet",
        ],
        env={"COLUMNS": "250", "NO_COLOR": "1"},
    )
    assert result.exit_code in (0, 1), result.output
    (record,) = json.loads(result.stdout)
    assert record["status"] == "ok"
    return record


def extract(dataset: Path, output: Path, **options) -> Path:
    extract_faces(
        dataset,
        output,
        frames=FRAMES,
        val_fraction=0.0,
        test_fraction=1.0,
        progress=False,
        **options,
    )
    return output


def frame_deltas(video: dict, scanned: dict) -> np.ndarray:
    """|evaluate - scan| of each frame's fake probability (one face per frame)."""
    by_scan = [
        frame["faces"][0]["fake_probability"] for frame in scanned["frames"] if frame["faces"]
    ]
    return np.abs(np.asarray(video["frame_probabilities"]) - np.asarray(by_scan))


def evaluated_video(faces: Path, weights: Path) -> dict:
    report = evaluate_module.evaluate(faces, weights, split="test", device="cpu")
    (video,) = report["per_video"]
    return video


def test_imported_weights_record_the_estimated_authors_geometry(authors_weights, tmp_path):
    preprocessing = read_weights_info(authors_weights).preprocessing
    assert preprocessing.margin_ratio == AUTHORS_MARGIN_RATIO == 1.3
    assert (preprocessing.align, preprocessing.detector, preprocessing.input_size) == (
        False,
        "retinaface",
        64,
    )
    # The checkpoint itself (read without importing) says the same, at the native input size
    # its shapes give (B0: 224); --margin overrides the margin.
    from_checkpoint = read_preprocessing(authors_weights.parent / "authors.pth")
    assert from_checkpoint == replace(preprocessing, input_size=224)
    checkpoint = authors_weights.parent / "authors.pth"
    wider = tmp_path / "wider.safetensors"
    result = runner.invoke(
        app,
        ["weights", "import", str(checkpoint), str(wider), "--input-size", "64", "--margin", "1.5"],
    )
    assert result.exit_code == 0, result.output
    assert "crops 64 px at margin 1.5" in result.output
    assert read_weights_info(wider).preprocessing.margin_ratio == 1.5
    refused = runner.invoke(
        app, ["weights", "import", str(checkpoint), str(wider), "--margin", "0.5"]
    )
    assert refused.exit_code == 2 and "--margin must be at least 1" in refused.output


@pytest.mark.parametrize(
    ("options", "stored"),
    [
        # Cut for the weights: 80 px at margin 1.625, whose centre 64 px are scan's crop.
        ({"use_weights": True}, (80, 1.625)),
        # The default margin at another size: re-cut 96 -> 64 px.
        ({"crop_size": 96}, (96, 1.3)),
        # A wider margin: the centre 1.3 / 2.0 of each crop, resized.
        ({"crop_size": 128, "margin_ratio": 2.0}, (128, 2.0)),
    ],
)
def test_scan_and_evaluate_give_the_same_video_probability(
    tmp_path, authors_weights, dataset, scanned, options, stored
):
    if options.pop("use_weights", False):
        options["weights"] = authors_weights
    faces = extract(dataset, tmp_path / "faces", **options)
    rows = list(csv.DictReader((faces / MANIFEST_NAME).open(encoding="utf-8")))
    assert {(int(row["crop_size"]), float(row["margin_ratio"]), row["align"]) for row in rows} == {
        (*stored, "0")
    }

    video = evaluated_video(faces, authors_weights)

    scanned_indices = [frame["index"] for frame in scanned["frames"] if frame["faces"]]
    assert video["frame_indices"] == scanned_indices
    assert abs(video["fake_probability"] - scanned["fake_probability"]) <= 0.01
    # Measured: video |delta| 0.0000-0.0004, mean frame |delta| 0.002-0.0044.
    assert frame_deltas(video, scanned).mean() <= 0.01


def test_the_old_centre_cut_does_not_match(tmp_path, authors_weights, dataset, scanned):
    """The same crops with the margin left out of the manifest: centre-cut as before (the face
    box at 93 % of the side instead of 77 %), the frames' scores move several times as far."""
    faces = extract(dataset, tmp_path / "faces", crop_size=96)
    recut = frame_deltas(evaluated_video(faces, authors_weights), scanned).mean()
    rows = list(csv.DictReader((faces / MANIFEST_NAME).open(encoding="utf-8")))
    write_manifest(faces, [{**row, "margin_ratio": ""} for row in rows])

    report = evaluate_module.evaluate(faces, authors_weights, split="test", device="cpu")
    (video,) = report["per_video"]
    centre_cut = frame_deltas(video, scanned).mean()
    # Measured: 0.0169 against 0.0029.
    assert centre_cut > 0.01 and centre_cut > 3 * recut
    assert any("does not record the margin" in note for note in report["notes"])


def test_a_mattn_model_with_its_own_margin_matches_too(tmp_path, dataset):
    """The demo model (margin 1.0805): extract-faces --weights, then evaluate = scan."""
    weights = DEMO_WEIGHTS
    scanned_demo = scan(dataset, weights)
    faces = extract(dataset, tmp_path / "faces", weights=weights)
    video = evaluated_video(faces, weights)
    assert video["frame_indices"] == [f["index"] for f in scanned_demo["frames"] if f["faces"]]
    # Measured: 0.0003.
    assert abs(video["fake_probability"] - scanned_demo["fake_probability"]) <= 0.01


def test_evaluate_refuses_crops_narrower_than_the_model_needs(tmp_path, authors_weights, dataset):
    faces = extract(dataset, tmp_path / "faces", crop_size=64, margin_ratio=1.1)
    result = runner.invoke(
        app,
        ["evaluate", "--data", str(faces), "--weights", str(authors_weights), "--device", "cpu"],
    )
    assert result.exit_code == 2
    assert "their margin 1.1 is narrower than the 1.3 the model expects" in result.output
    assert "mattn extract-faces --weights" in result.output
    assert "Traceback" not in result.output


def test_extract_faces_with_weights_refuses_a_second_margin(tmp_path, authors_weights, dataset):
    result = runner.invoke(
        app,
        [
            "extract-faces",
            str(dataset),
            "-o",
            str(tmp_path / "faces"),
            "--weights",
            str(authors_weights),
            "--margin",
            "1.5",
        ],
    )
    assert result.exit_code == 2
    assert "--margin and --weights both set the crop margin" in result.output


def test_recrop_of_a_native_resolution_crop_is_the_frame_crop():
    # A smooth frame (gradients and soft waves): resampling errors stay small, shifts show.
    rows, columns = np.mgrid[0:200, 0:240]
    waves = 128 + 100 * np.sin(columns / 7.0) * np.cos(rows / 9.0)
    frame = np.stack([columns, rows, waves], axis=2).astype(np.uint8)
    box = (80.3, 50.6, 140.2, 120.7)  # longer side 70.1
    geometry = CropGeometry(size=64, margin_ratio=1.3)
    expected = crop_face(frame, box, size=64, margin_ratio=1.3)
    # Stored at margin 2.0 at the frame's resolution (140 px): with the box, the two
    # whole-pixel squares sit where crop_face put them, so the pixels are the same.
    stored = crop_face(frame, box, size=140, margin_ratio=2.0)
    np.testing.assert_array_equal(recrop(stored, 2.0, geometry, box), expected)
    # Stored at other sizes the squares fall between pixels and are resampled: close, and
    # closer than the centred square (measured: 0.37-0.50 against 1.68 grey levels).
    for stored_size in (100, 141, 180):
        resized = crop_face(frame, box, size=stored_size, margin_ratio=2.0)
        placed = np.abs(recrop(resized, 2.0, geometry, box).astype(int) - expected).mean()
        centred = np.abs(recrop(resized, 2.0, geometry).astype(int) - expected).mean()
        assert placed < 0.6 < 1.5 < centred

    assert recrop_refusal(2.0, False, geometry) is None
    assert recrop_refusal(1.3, False, geometry) is None
    assert "narrower" in recrop_refusal(1.2, False, geometry)
    assert "upright and the model expects aligned" in recrop_refusal(
        2.0, False, CropGeometry(64, 1.3, align=True)
    )


def test_frames_paper_is_every_frame_of_the_first_500():
    assert resolve_frames("paper", None) == (500, 1)
    assert resolve_frames("32", None) == (32, None)
    assert resolve_frames(8, 3) == (8, 3)


def _faces_folder(root: Path, videos: dict[str, list[tuple[int, int]]]) -> Path:
    """A hand-made faces folder: video -> (person, frame index) of its crops, 8-px grey crops."""
    import cv2

    rows = []
    for video_id, crops in videos.items():
        folder = root / "crops" / video_id
        folder.mkdir(parents=True, exist_ok=True)
        for person, frame_index in crops:
            path = f"crops/{video_id}/{person}_{frame_index}.png"
            cv2.imwrite(str(root / path), np.full((8, 8, 3), 128, np.uint8))
            label = 0 if video_id.startswith("real") else 1
            rows.append(
                {
                    "crop_path": path,
                    "video_id": video_id,
                    "label": label,
                    "method": "real" if label == 0 else "Deepfakes",
                    "split": "test",
                    "frame_index": frame_index,
                    "person": person,
                }
            )
    write_manifest(root, rows)
    return root


def test_the_authors_protocol_picks_20_frames_at_stride_5_of_the_first_100(tmp_path):
    # real_long: person 0 in frames 0..299 with every 3rd frame missing (200 face frames), a
    # second person in 30 frames; fake_short: 99 face frames only.
    long_frames = [index for index in range(300) if index % 3 != 2]
    data = _faces_folder(
        tmp_path,
        {
            "real_long": [(0, index) for index in long_frames]
            + [(1, index) for index in range(30)],
            "fake_short": [(0, index) for index in range(99)],
        },
    )
    records = read_manifest(data)
    selections = {s.video_id: s for s in select_videos(records, "test", "authors")}

    long = selections["real_long"]
    assert long.persons == (0,) and long.face_frames == 200 and not long.short
    assert [records[i].frame_index for i in long.records] == long_frames[0:100:5]
    assert len(long.records) == 20
    short = selections["fake_short"]
    assert short.short and short.records == () and short.face_frames == 99

    every = {s.video_id: s for s in select_videos(records, "test", "all")}
    assert len(every["real_long"].records) == 230 and every["real_long"].persons == (0, 1)


def test_evaluate_with_the_authors_protocol_scores_short_videos_one_half(
    tmp_path, monkeypatch, authors_weights
):
    data = _faces_folder(
        tmp_path,
        {
            "real_a": [(0, index) for index in range(120)],
            "fake_a": [(0, index) for index in range(150)],
            "fake_short": [(0, index) for index in range(40)],
        },
    )
    seen: list[tuple[str, int]] = []

    def known_predictions(model, loader, device, **_):
        dataset = loader.dataset
        positions = list(loader.sampler)
        scores = []
        for position in positions:
            record = dataset.records[dataset.samples[position].record]
            seen.append((record.video_id, record.frame_index))
            scores.append(0.2 if record.label == 0 else 0.9)
        return positions, scores

    monkeypatch.setattr(evaluate_module, "predict", known_predictions)
    report = evaluate_module.evaluate(data, authors_weights, protocol="authors", device="cpu")

    assert report["protocol"] == "authors"
    assert sorted(seen) == sorted(
        (video, index) for video in ("fake_a", "real_a") for index in range(0, 100, 5)
    )
    videos = {video["video_id"]: video for video in report["per_video"]}
    assert videos["fake_short"]["short"] and videos["fake_short"]["fake_probability"] == 0.5
    assert videos["fake_short"]["frames"] == 0
    assert videos["fake_a"]["fake_probability"] == pytest.approx(0.9)
    assert videos["real_a"]["frame_indices"] == list(range(0, 100, 5))
    # Frames: the 40 scored crops; videos: all three, the short one at 0.5 (a fake missed).
    assert report["frames"] == 40 and report["overall"]["frame"]["count"] == 40
    assert report["overall"]["video"]["count"] == 3 and report["short_videos"] == 1
    assert report["overall"]["video"]["acc"] == pytest.approx(1.0)  # 0.5 counts as fake at 0.5
    assert any("fewer than 100 face crops" in note for note in report["notes"])
    json.dumps(report, allow_nan=False)


def test_the_authors_protocol_on_a_clip_extracted_with_frames_paper(
    tmp_path, authors_weights, dataset
):
    """carphone has 120 frames, all with the face: `--frames paper` keeps them all, and the
    authors' protocol scores frames 0, 5, ..., 95."""
    result = runner.invoke(
        app,
        [
            "extract-faces",
            str(dataset),
            "-o",
            str(tmp_path / "faces"),
            "--frames",
            "paper",
            "--weights",
            str(authors_weights),
            "--val-fraction",
            "0",
            "--test-fraction",
            "1",
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "faces" / "summary.json").read_text())
    assert summary["options"]["frames"] == 500 and summary["options"]["every"] == 1
    assert summary["options"]["frames_preset"] == "paper"
    frame_indices = sorted(record.frame_index for record in read_manifest(tmp_path / "faces"))
    assert frame_indices == list(range(120))

    evaluated = runner.invoke(
        app,
        [
            "evaluate",
            "--data",
            str(tmp_path / "faces"),
            "--weights",
            str(authors_weights),
            "--protocol",
            "authors",
            "--format",
            "json",
            "--device",
            "cpu",
        ],
    )
    assert evaluated.exit_code == 0, evaluated.output
    report = json.loads(evaluated.stdout)
    (video,) = report["per_video"]
    assert report["protocol"] == "authors" and not video["short"]
    assert video["frame_indices"] == list(range(0, 100, 5))

    table = runner.invoke(
        app,
        [
            "evaluate",
            "--data",
            str(tmp_path / "faces"),
            "--weights",
            str(authors_weights),
            "--protocol",
            "authors",
            "--per-video",
            "--device",
            "cpu",
        ],
        env={"COLUMNS": "250", "NO_COLOR": "1"},
    )
    assert table.exit_code == 0, table.output
    assert "folders/real/carphone.mp4" in table.stdout and "authors protocol" in table.stdout
