"""`mattn extract-faces`: tiny datasets in every layout, built from a real talking-head clip.

Every clip is a few frames of tests/data/carphone_pristine.mp4 (176x144) written with OpenCV;
a "fake" is the same frames slightly altered, because labels come from the layout, not from
the pixels. Runs use 4 frames and 64-pixel crops to stay fast.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

from deepfake_cli.commands.extract import extract_faces_command
from deepfake_cli.crops import crop_face, landmarks_in_crop
from deepfake_cli.errors import VideoError
from deepfake_cli.extract import crop_folder_for, done_record_path, extract_faces
from deepfake_cli.faces import FaceDetector
from deepfake_cli.frame_reader import FrameReader
from deepfake_cli.manifest import MANIFEST_COLUMNS, MANIFEST_NAME, SUMMARY_NAME, iter_manifest
from deepfake_cli.stills import read_still, read_video_or_still
from deepfake_cli.tracks import link_tracks
from deepfake_cli.video import read_frames

CARPHONE = Path(__file__).parent / "data" / "carphone_pristine.mp4"
GRACE_HOPPER = Path(__file__).parent / "data" / "grace_hopper.jpg"
FRAMES = 4
CROP_SIZE = 64
CLIP_LENGTH = 12
FAST = {"frames": FRAMES, "crop_size": CROP_SIZE, "progress": False}
ALL_FFPP_IDS = (
    "ffpp/youtube/000",
    "ffpp/Deepfakes/000_001",
    "ffpp/Face2Face/000_001",
    "ffpp/youtube/001",
    "ffpp/Deepfakes/001_000",
)


@pytest.fixture(autouse=True)
def one_torch_thread():
    # MTCNN on 176x144 frames is faster on one thread than on two contended ones, and the
    # worker processes use one thread too, so every run computes identical boxes.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def carphone_bgr() -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(CARPHONE))
    frames = []
    while len(frames) < 60:
        frame_ok, frame = capture.read()
        if not frame_ok:
            break
        frames.append(frame)
    capture.release()
    assert len(frames) == 60, "tests/data/carphone_pristine.mp4 should have at least 60 frames"
    return frames


def write_clip(path: Path, frames_bgr: list[np.ndarray], fps: float = 25.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame_height, frame_width = frames_bgr[0].shape[:2]
    writer = cv2.VideoWriter(
        str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (frame_width, frame_height)
    )
    for frame in frames_bgr:
        writer.write(frame)
    writer.release()
    return path


def swap_colours(frames_bgr: list[np.ndarray]) -> list[np.ndarray]:
    """A stand-in "fake": same geometry, blue and red swapped."""
    return [np.ascontiguousarray(frame[:, :, ::-1]) for frame in frames_bgr]


def brighten(frames_bgr: list[np.ndarray]) -> list[np.ndarray]:
    return [cv2.convertScaleAbs(frame, alpha=1.0, beta=25) for frame in frames_bgr]


def read_manifest(output_dir: Path) -> list[dict[str, str]]:
    return list(iter_manifest(output_dir / MANIFEST_NAME))


def rows_of(rows: list[dict[str, str]], video_id: str) -> list[dict[str, str]]:
    return [row for row in rows if row["video_id"] == video_id]


def assert_no_group_in_two_splits(rows: list[dict[str, str]]) -> None:
    split_of_group: dict[str, str] = {}
    for row in rows:
        assert split_of_group.setdefault(row["group"], row["split"]) == row["split"], row["group"]


# --------------------------------------------------------------------------------------------
# Datasets
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ffpp_root(tmp_path_factory, carphone_bgr) -> Path:
    """Two originals, two Deepfakes of them, and a Face2Face fake two frames shorter."""
    root = tmp_path_factory.mktemp("ffpp")
    first_clip = carphone_bgr[:CLIP_LENGTH]
    second_clip = carphone_bgr[40 : 40 + CLIP_LENGTH]
    write_clip(root / "original_sequences/youtube/c23/videos/000.mp4", first_clip)
    write_clip(root / "original_sequences/youtube/c23/videos/001.mp4", second_clip)
    write_clip(
        root / "manipulated_sequences/Deepfakes/c23/videos/000_001.mp4", swap_colours(first_clip)
    )
    write_clip(
        root / "manipulated_sequences/Deepfakes/c23/videos/001_000.mp4", brighten(second_clip)
    )
    # A different frame count: its frames are not the original's, so it detects on itself.
    write_clip(
        root / "manipulated_sequences/Face2Face/c23/videos/000_001.mp4",
        brighten(first_clip[: CLIP_LENGTH - 2]),
    )
    return root


@pytest.fixture(scope="module")
def ffpp_clean(tmp_path_factory, ffpp_root) -> Path:
    """An uninterrupted run over the FF++ dataset."""
    output_dir = tmp_path_factory.mktemp("ffpp-clean")
    extract_faces(ffpp_root, output_dir, **FAST)
    return output_dir


@pytest.fixture(scope="module")
def dfdc_root(tmp_path_factory, carphone_bgr) -> Path:
    """Two people side by side (real), a fake of it, a lone real video and a broken file."""
    root = tmp_path_factory.mktemp("dfdc")
    part = root / "dfdc_train_part_0"
    two_people = [
        np.concatenate([left, right], axis=1)
        for left, right in zip(
            carphone_bgr[:CLIP_LENGTH], carphone_bgr[30 : 30 + CLIP_LENGTH], strict=True
        )
    ]
    write_clip(part / "aaaa.mp4", two_people)
    write_clip(part / "bbbb.mp4", swap_colours(two_people))
    write_clip(part / "cccc.mp4", carphone_bgr[20 : 20 + CLIP_LENGTH])
    (part / "dddd.mp4").write_bytes(b"this is not a video" * 100)
    metadata = {
        "aaaa.mp4": {"label": "REAL", "split": "train"},
        "bbbb.mp4": {"label": "FAKE", "split": "train", "original": "aaaa.mp4"},
        "cccc.mp4": {"label": "REAL", "split": "train"},
        "dddd.mp4": {"label": "REAL", "split": "train"},
    }
    (part / "metadata.json").write_text(json.dumps(metadata), encoding="utf-8")
    return root


# --------------------------------------------------------------------------------------------
# Crop geometry (no detector)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("align", "size", "box_xyxy"),
    [
        (False, 64, (60.4, 36.7, 108.4, 94.4)),  # shrinking
        (False, 200, (60.4, 36.7, 108.4, 94.4)),  # enlarging
        (True, 64, (60.4, 36.7, 108.4, 94.4)),
        (True, 160, (30.0, 20.0, 130.0, 120.0)),
    ],
)
def test_a_dot_in_the_frame_lands_where_landmarks_in_crop_says(align, size, box_xyxy):
    frame = np.zeros((144, 176, 3), dtype=np.uint8)
    # Eyes tilted by ~14 degrees so alignment really rotates; the dot is the nose.
    landmarks = [(70.5, 58.5), (94.5, 52.5), (84.5, 70.5), (74.5, 82.5), (96.5, 78.5)]
    nose_x, nose_y = landmarks[2]
    # A 3x3 white square centred on the nose point (pixel centres are at +0.5).
    frame[
        math.floor(nose_y) - 1 : math.floor(nose_y) + 2,
        math.floor(nose_x) - 1 : math.floor(nose_x) + 2,
    ] = 255

    crop = crop_face(frame, box_xyxy, size=size, margin_ratio=1.3, landmarks=landmarks, align=align)
    mapped = landmarks_in_crop(landmarks, box_xyxy, size=size, margin_ratio=1.3, align=align)

    brightness = crop[:, :, 0].astype(np.float64)
    rows, columns = np.mgrid[0 : crop.shape[0], 0 : crop.shape[1]]
    # Brightness-weighted centre of the dot, in continuous crop coordinates.
    center_x = float((brightness * (columns + 0.5)).sum() / brightness.sum())
    center_y = float((brightness * (rows + 0.5)).sum() / brightness.sum())
    assert mapped[2][0] == pytest.approx(center_x, abs=0.25)
    assert mapped[2][1] == pytest.approx(center_y, abs=0.25)
    if align:
        # Aligned: the eyes end up on one row.
        assert mapped[0][1] == pytest.approx(mapped[1][1], abs=1e-6)


def test_crop_folders_are_safe_and_distinct():
    assert crop_folder_for("ffpp/Deepfakes/000_003") == "ffpp/Deepfakes/000_003"
    unsafe = crop_folder_for("folders/real/../my clip.mp4")
    assert ".." not in unsafe.split("/")
    assert " " not in unsafe
    assert crop_folder_for("a b") != crop_folder_for("a_b")
    assert not crop_folder_for("x/.hidden").split("/")[1].startswith(".")


# --------------------------------------------------------------------------------------------
# FaceForensics++: labels, columns, the scan crop, pairing, resume
# --------------------------------------------------------------------------------------------


def test_manifest_has_the_columns_in_order_and_sorted_rows(ffpp_clean):
    header = (ffpp_clean / "manifest.csv").read_text(encoding="utf-8").splitlines()[0]
    assert tuple(header.split(",")) == MANIFEST_COLUMNS
    rows = read_manifest(ffpp_clean)
    keys = [(row["video_id"], int(row["person"]), int(row["frame_index"])) for row in rows]
    assert keys == sorted(keys)
    assert {row["video_id"] for row in rows} == set(ALL_FFPP_IDS)
    for row in rows:
        assert (ffpp_clean / row["crop_path"]).is_file()
        assert (
            row["crop_path"] == f"crops/{row['video_id']}/{row['person']}_{row['frame_index']}.png"
        )
        assert row["label"] == ("0" if "/youtube/" in row["video_id"] else "1")
        assert row["method"] == row["video_id"].split("/")[1].replace("youtube", "real")
        assert row["compression"] == "c23"
        assert row["crop_size"] == str(CROP_SIZE)
        assert row["margin_ratio"] == "1.3"
        assert len(row["box"].split()) == 4
        assert len(row["landmarks"].split()) == 10
        assert all(0 <= float(value) <= CROP_SIZE for value in row["landmarks"].split())
        assert 0.9 <= float(row["det_prob"]) <= 1.0
    assert_no_group_in_two_splits(rows)
    # 000 and 001 are linked by the swaps, so everything is one identity group.
    assert len({row["group"] for row in rows}) == 1


def test_crops_are_the_crops_scan_cuts(ffpp_clean, ffpp_root):
    """Same frames, same detector and tracking as scan, same crop function: same pixels."""
    video = ffpp_root / "original_sequences/youtube/c23/videos/000.mp4"
    sampled = read_frames(video, count=FRAMES)
    tracks = link_tracks(FaceDetector().detect(sampled.frames), max_faces=4)
    rows = rows_of(read_manifest(ffpp_clean), "ffpp/youtube/000")
    assert len(tracks) == 1
    assert [int(row["frame_index"]) for row in rows] == [
        sampled.frame_indices[position] for position in tracks[0].frame_positions
    ]
    for row, position in zip(rows, tracks[0].frame_positions, strict=True):
        detection = tracks[0].detections[position]
        expected_crop = crop_face(
            sampled.frames[position], detection.box_xyxy, size=CROP_SIZE, margin_ratio=1.3
        )
        written_crop = cv2.cvtColor(
            cv2.imread(str(ffpp_clean / row["crop_path"])), cv2.COLOR_BGR2RGB
        )
        np.testing.assert_array_equal(written_crop, expected_crop)
        assert row["box"] == " ".join(f"{value:.3f}" for value in detection.box_xyxy)
        assert float(row["time_s"]) == pytest.approx(sampled.times_s[position], abs=1e-3)


def test_fakes_reuse_their_original_boxes_when_frames_match(ffpp_clean):
    rows = read_manifest(ffpp_clean)
    for original_id, fake_id in [
        ("ffpp/youtube/000", "ffpp/Deepfakes/000_001"),
        ("ffpp/youtube/001", "ffpp/Deepfakes/001_000"),
    ]:
        original_rows = rows_of(rows, original_id)
        fake_rows = rows_of(rows, fake_id)
        assert {row["boxes_from"] for row in original_rows} == {"self"}
        assert {row["boxes_from"] for row in fake_rows} == {"original"}
        assert [(row["person"], row["frame_index"], row["box"]) for row in fake_rows] == [
            (row["person"], row["frame_index"], row["box"]) for row in original_rows
        ]
    # Two frames shorter than its original: its own detections.
    assert {row["boxes_from"] for row in rows_of(rows, "ffpp/Face2Face/000_001")} == {"self"}


class _StopAfter(Exception):
    pass


def test_an_interrupted_run_resumes_to_the_same_manifest(tmp_path, ffpp_root, ffpp_clean):
    output_dir = tmp_path / "faces"
    finished: list[str] = []

    def stop_after_two(video_id: str, status: str) -> None:
        finished.append(video_id)
        if len(finished) == 2:
            raise _StopAfter

    # The first attempt runs in two worker processes and is stopped after two videos.
    with pytest.raises(_StopAfter):
        extract_faces(ffpp_root, output_dir, workers=2, on_video_done=stop_after_two, **FAST)
    assert not (output_dir / "manifest.csv").exists()
    done_records = list((output_dir / ".progress").glob("*.json"))
    assert 2 <= len(done_records) < 5

    # A video killed half-way: a stray crop and a temporary file, but no done-record.
    unfinished_id = next(
        video_id for video_id in ALL_FFPP_IDS if not done_record_path(output_dir, video_id).exists()
    )
    unfinished = output_dir / "crops" / crop_folder_for(unfinished_id)
    unfinished.mkdir(parents=True, exist_ok=True)
    (unfinished / "0_99.png").write_bytes(b"half a png")
    (unfinished / ".0_3.png.123.tmp").write_bytes(b"half")

    summary = extract_faces(ffpp_root, output_dir, **FAST)

    assert summary.videos_resumed == len(done_records)
    assert summary.videos_extracted == 5
    assert (output_dir / "manifest.csv").read_bytes() == (ffpp_clean / "manifest.csv").read_bytes()
    assert sorted(path.name for path in unfinished.iterdir()) == sorted(
        Path(row["crop_path"]).name for row in rows_of(read_manifest(output_dir), unfinished_id)
    )

    # Nothing left to do: a third run only reassembles the same manifest.
    again = extract_faces(ffpp_root, output_dir, **FAST)
    assert again.videos_resumed == 5
    assert (output_dir / "manifest.csv").read_bytes() == (ffpp_clean / "manifest.csv").read_bytes()


def test_shards_split_the_videos_and_keep_fakes_with_their_original(tmp_path, ffpp_root):
    video_ids_by_shard = []
    for shard in ("1/2", "2/2"):
        output_dir = tmp_path / shard.replace("/", "-of-")
        extract_faces(ffpp_root, output_dir, shard=shard, **FAST)
        video_ids_by_shard.append({row["video_id"] for row in read_manifest(output_dir)})

    first_shard, second_shard = video_ids_by_shard
    assert first_shard.isdisjoint(second_shard)
    assert first_shard | second_shard == set(ALL_FFPP_IDS)
    for shard_ids in video_ids_by_shard:
        # 000_001 fakes are made from 000, 001_000 from 001: always in the same shard.
        if "ffpp/youtube/000" in shard_ids:
            assert {"ffpp/Deepfakes/000_001", "ffpp/Face2Face/000_001"} <= shard_ids
        if "ffpp/youtube/001" in shard_ids:
            assert "ffpp/Deepfakes/001_000" in shard_ids


# --------------------------------------------------------------------------------------------
# DFDC, Celeb-DF, plain folders
# --------------------------------------------------------------------------------------------


def test_dfdc_keeps_every_person_and_lists_failed_videos(tmp_path, dfdc_root):
    output_dir = tmp_path / "faces"
    summary = extract_faces(dfdc_root, output_dir, **FAST)

    rows = read_manifest(output_dir)
    original_rows = rows_of(rows, "dfdc/dfdc_train_part_0/aaaa")
    fake_rows = rows_of(rows, "dfdc/dfdc_train_part_0/bbbb")
    assert {row["person"] for row in original_rows} == {"0", "1"}
    assert {row["label"] for row in fake_rows} == {"1"}
    assert {row["boxes_from"] for row in fake_rows} == {"original"}
    assert [(row["person"], row["frame_index"], row["box"]) for row in fake_rows] == [
        (row["person"], row["frame_index"], row["box"]) for row in original_rows
    ]
    assert {row["label"] for row in rows_of(rows, "dfdc/dfdc_train_part_0/cccc")} == {"0"}
    assert_no_group_in_two_splits(rows)
    # The fake shares its original's group.
    assert {row["group"] for row in original_rows + fake_rows} == {"dfdc/aaaa"}

    document = json.loads((output_dir / "summary.json").read_text(encoding="utf-8"))
    assert [item["video"] for item in document["skipped"]] == ["dfdc_train_part_0/dddd.mp4"]
    assert "dddd.mp4" in document["skipped"][0]["reason"]
    assert summary.skipped[0].video == "dfdc_train_part_0/dddd.mp4"
    assert document["videos_extracted"] == 3
    assert document["crops"] == len(rows)
    assert document["by_label"]["1"]["videos"] == 1
    assert document["by_method"]["dfdc"]["crops"] == len(fake_rows)
    assert sum(counts["skipped"] for counts in document["by_split"].values()) == 1
    assert document["options"]["layout"] == "dfdc"
    assert document["options"]["crop_size"] == CROP_SIZE
    assert "mattn_version" in document


def test_celebdf_pairs_fakes_with_their_real_video(tmp_path, carphone_bgr):
    root = tmp_path / "celebdf"
    clip = carphone_bgr[10 : 10 + CLIP_LENGTH]
    write_clip(root / "Celeb-real/id0_0000.mp4", clip)
    write_clip(root / "Celeb-synthesis/id0_id1_0000.mp4", swap_colours(clip))
    write_clip(root / "YouTube-real/00000.mp4", carphone_bgr[30 : 30 + CLIP_LENGTH])

    summary = extract_faces(root, tmp_path / "faces", limit=2, **FAST)

    rows = read_manifest(tmp_path / "faces")
    assert summary.layout == "celebdf"
    # --limit keeps the first videos in processing order: the original, then its fake.
    assert {row["video_id"] for row in rows} == {
        "celebdf/Celeb-real/id0_0000",
        "celebdf/Celeb-synthesis/id0_id1_0000",
    }
    fake_rows = rows_of(rows, "celebdf/Celeb-synthesis/id0_id1_0000")
    assert {row["boxes_from"] for row in fake_rows} == {"original"}
    assert {row["method"] for row in fake_rows} == {"celebdf-synthesis"}


# --------------------------------------------------------------------------------------------
# Still images: one-frame videos
# --------------------------------------------------------------------------------------------


def test_a_still_image_is_a_one_frame_video(tmp_path):
    photo_bgr = cv2.imread(str(GRACE_HOPPER))
    png = tmp_path / "grace.PNG"  # endings are compared case-insensitively
    cv2.imencode(".png", photo_bgr)[1].tofile(png)
    for path in (GRACE_HOPPER, png):
        # Sampling options do not apply: a still has one frame.
        for sampled in (read_still(path), read_video_or_still(path, count=8, every=2)):
            assert sampled.frames.shape == (1, 600, 512, 3) and sampled.frames.dtype == np.uint8
            assert sampled.frame_indices == [0] and sampled.times_s == [0.0]
            info = sampled.info
            assert (info.num_frames, info.width, info.height, info.fps) == (1, 512, 600, 0.0)
    # RGB, pixel for pixel what OpenCV decodes.
    np.testing.assert_array_equal(read_still(png).frames[0], photo_bgr[:, :, ::-1])
    assert read_video_or_still(CARPHONE, count=3).frames.shape == (3, 144, 176, 3)


def test_an_unreadable_still_is_refused_in_one_sentence(tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"this is not a JPEG file")
    empty = tmp_path / "empty.png"
    empty.touch()
    for path, reason in [
        (broken, "it is not an image OpenCV can decode, or it is damaged."),
        (empty, "the file is empty (0 bytes)."),
        (tmp_path / "missing.jpg", "the file does not exist."),
        (tmp_path, "it is not a regular file."),
    ]:
        with pytest.raises(VideoError) as raised:
            read_still(path)
        assert raised.value.message == f"Cannot read image '{path}': {reason}"


def test_the_decoding_worker_reads_pngs(tmp_path):
    # decord loaded before OpenCV breaks OpenCV's PNG decoder; the worker must not see that.
    png = tmp_path / "grace.png"
    cv2.imwrite(str(png), cv2.imread(str(GRACE_HOPPER)))
    with FrameReader(timeout_s=60.0, decode_function=read_video_or_still) as reader:
        np.testing.assert_array_equal(reader.read(png).frames, read_still(png).frames)
        assert (
            reader.read(CARPHONE, count=2).frame_indices
            == read_frames(CARPHONE, count=2).frame_indices
        )


def test_extract_faces_reads_photos_beside_videos_grouped_by_person(tmp_path, carphone_bgr):
    photo_bgr = cv2.imread(str(GRACE_HOPPER))
    root = tmp_path / "photos"
    (root / "real").mkdir(parents=True)
    (root / "fake").mkdir()
    shutil.copy(GRACE_HOPPER, root / "real/grace_neutral.jpg")
    # The same person's other photos (a "fake" of them too), in other formats.
    cv2.imwrite(str(root / "real/grace_smiling.png"), np.ascontiguousarray(photo_bgr[:, ::-1]))
    cv2.imwrite(str(root / "fake/grace_swapped.webp"), photo_bgr)
    (root / "real/broken_1.jpg").write_bytes(b"not an image")
    cv2.imwrite(str(root / "real/blank_1.png"), np.full((120, 160, 3), 128, np.uint8))
    write_clip(root / "real/clip.mp4", carphone_bgr[:CLIP_LENGTH])
    output_dir = tmp_path / "faces"

    arguments = ["-o", str(output_dir), "--frames", str(FRAMES), "--crop-size", "64"]
    arguments += ["--group-by", "name-prefix", "--quiet"]
    result = CliRunner().invoke(_cli(), [str(root), *arguments])

    assert result.exit_code == 0, result.output
    rows = read_manifest(output_dir)
    still_names = ("fake/grace_swapped.webp", "real/grace_neutral.jpg", "real/grace_smiling.png")
    still_ids = [f"folders/{name}" for name in still_names]
    assert sorted({row["video_id"] for row in rows}) == sorted(
        [*still_ids, "folders/real/clip.mp4"]
    )
    for video_id in still_ids:
        (row,) = rows_of(rows, video_id)  # one face in one frame
        assert (row["frame_index"], row["time_s"], row["person"]) == ("0", "0.000", "0")
        assert row["boxes_from"] == "self" and float(row["det_prob"]) > 0.9
        assert row["group"] == "folders/grace"
        assert len(row["landmarks"].split()) == 10
    # All of one person's files in one split, the fake too; the video keeps its frames.
    assert len({row["split"] for row in rows if row["group"] == "folders/grace"}) == 1
    assert [row["frame_index"] for row in rows_of(rows, "folders/real/clip.mp4")] == [
        str(index) for index in read_frames(root / "real/clip.mp4", count=FRAMES).frame_indices
    ]
    assert {row["label"] for row in rows_of(rows, still_ids[0])} == {"1"}
    # The crop is the shared crop function applied to the decoded photo.
    (row,) = rows_of(rows, "folders/real/grace_neutral.jpg")
    (track,) = link_tracks(FaceDetector().detect(read_still(GRACE_HOPPER).frames), max_faces=4)
    expected_crop = crop_face(
        read_still(GRACE_HOPPER).frames[0], track.detections[0].box_xyxy, size=64, margin_ratio=1.3
    )
    written_crop = cv2.cvtColor(cv2.imread(str(output_dir / row["crop_path"])), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(written_crop, expected_crop)

    summary = json.loads((output_dir / SUMMARY_NAME).read_text())
    assert summary["options"]["group_by"] == "name-prefix"
    reasons = {skipped["video"]: skipped["reason"] for skipped in summary["skipped"]}
    assert reasons == {
        "real/blank_1.png": "No face was found in the image.",
        "real/broken_1.jpg": f"Cannot read image '{root / 'real/broken_1.jpg'}': it is not an "
        "image OpenCV can decode, or it is damaged.",
    }


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.command()(extract_faces_command)
    return app


def test_cli_extracts_plain_folders_as_aligned_jpegs(tmp_path, carphone_bgr):
    root = tmp_path / "mine"
    write_clip(root / "real/clip1.mp4", carphone_bgr[:CLIP_LENGTH])
    write_clip(root / "fake/Deepfakes/clip2.mp4", brighten(carphone_bgr[20 : 20 + CLIP_LENGTH]))
    output_dir = tmp_path / "faces"

    result = CliRunner().invoke(
        _cli(),
        [
            str(root),
            "-o",
            str(output_dir),
            "--frames",
            str(FRAMES),
            "--crop-size",
            "64",
            "--format",
            "jpg",
            "--quality",
            "90",
            "--align",
        ],
    )

    assert result.exit_code == 0, result.output
    assert "Wrote 8 crops of 2 videos" in result.output
    rows = read_manifest(output_dir)
    assert {(row["video_id"], row["label"], row["method"]) for row in rows} == {
        ("folders/real/clip1.mp4", "0", "real"),
        ("folders/fake/Deepfakes/clip2.mp4", "1", "Deepfakes"),
    }
    assert all(row["crop_path"].endswith(".jpg") for row in rows)
    crop = cv2.imread(str(output_dir / rows[0]["crop_path"]))
    assert crop.shape == (64, 64, 3)
    for row in rows:
        # Aligned crops: both eyes on one row of the crop.
        left_eye_y, right_eye_y = (float(value) for value in row["landmarks"].split()[1:4:2])
        assert left_eye_y == pytest.approx(right_eye_y, abs=0.11)


def test_cli_reports_a_wrong_layout_in_one_sentence(tmp_path, carphone_bgr):
    root = tmp_path / "mine"
    write_clip(root / "real/clip1.mp4", carphone_bgr[:CLIP_LENGTH])

    result = CliRunner().invoke(
        _cli(), [str(root), "-o", str(tmp_path / "faces"), "--layout", "ffpp"]
    )

    assert result.exit_code == 2
    assert "does not look like FaceForensics++" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--layout", "youtube"], "unknown dataset layout"),
        (["--format", "webp"], "--format must be png or jpg"),
        (["--shard", "3/2"], "--shard"),
        (["--workers", "0"], "--workers must be at least 1"),
        (["--group-by", "person"], "unknown --group-by 'person'"),
        (["--frames", "paper", "--every", "2"], "--frames paper sets the frame step itself"),
        (["--frames", "many"], "--frames must be a number or paper, got 'many'"),
        (["--weights", "nowhere.safetensors"], "does not exist"),
    ],
)
def test_cli_rejects_bad_options(tmp_path, carphone_bgr, arguments, message):
    root = tmp_path / "mine"
    write_clip(root / "real/clip1.mp4", carphone_bgr[:2])

    result = CliRunner().invoke(_cli(), [str(root), "-o", str(tmp_path / "faces"), *arguments])

    assert result.exit_code == 2
    assert message in result.output


def test_cli_reports_a_missing_dataset(tmp_path):
    result = CliRunner().invoke(_cli(), [str(tmp_path / "nowhere"), "-o", str(tmp_path / "faces")])

    assert result.exit_code == 2
    assert "does not exist" in result.output
