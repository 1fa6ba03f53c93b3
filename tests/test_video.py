"""Frame sampling and decoding: every video here is written by the test itself with OpenCV.

Each frame carries its own index as black/white 16x16 blocks (one bit per block), which survive
lossy compression, so a test can check that the frames returned are the frames requested.
"""

from __future__ import annotations

import random
import struct
import wave
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from deepfake_cli import video
from deepfake_cli.decord_video import (
    DECORD_SEEK_FRAMES,
    DecordFailed,
    DecordVideo,
    decord_cost_frames,
    load_decord,
)
from deepfake_cli.errors import UsageError, VideoError
from deepfake_cli.pyav_video import DEMUX_FRAMES, StreamFacts, probe_stream, pyav_cost_frames
from deepfake_cli.results import CHEAPER_IN_ORDER, DecodeInfo
from deepfake_cli.video import (
    VIDEO_EXTENSIONS,
    VideoInfo,
    every_kth_frame_indices,
    probe_video,
    read_frames,
    sample_frame_indices,
)
from deepfake_cli.video_container import ContainerMetadata, rotate_frames, upright

BLOCK_PX = 16
INDEX_BITS = 6  # frame indices up to 63
FPS = 10.0


# --- making test media ------------------------------------------------------------------------


def frame_with_index(frame_index: int, width: int, height: int) -> np.ndarray:
    """A BGR frame: grey, the index in binary along the top row of blocks, a red corner mark."""
    frame = np.full((height, width, 3), 128, np.uint8)
    for bit in range(INDEX_BITS):
        row, column = divmod(bit, width // BLOCK_PX)
        value = 255 if (frame_index >> bit) & 1 else 0
        top, left = (row + 1) * BLOCK_PX, column * BLOCK_PX
        frame[top : top + BLOCK_PX, left : left + BLOCK_PX] = value
    frame[:BLOCK_PX, :BLOCK_PX] = (0, 0, 255)  # red in BGR: marks the top-left corner
    return frame


def index_in_frame(frame_rgb: np.ndarray) -> int:
    """Read back the index drawn by `frame_with_index` from an upright RGB frame."""
    width = frame_rgb.shape[1]
    frame_index = 0
    for bit in range(INDEX_BITS):
        row, column = divmod(bit, width // BLOCK_PX)
        top, left = (row + 1) * BLOCK_PX, column * BLOCK_PX
        block = frame_rgb[top + 4 : top + BLOCK_PX - 4, left + 4 : left + BLOCK_PX - 4]
        if block.mean() > 128:
            frame_index |= 1 << bit
    return frame_index


def write_video(
    path: Path,
    num_frames: int = 40,
    width: int = 64,
    height: int = 64,
    fourcc: str = "mp4v",
) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), FPS, (width, height))
    if not writer.isOpened():
        pytest.skip(f"this OpenCV build cannot write {fourcc} into {path.suffix}")
    for frame_index in range(num_frames):
        writer.write(frame_with_index(frame_index, width, height))
    writer.release()
    return path


def mp4_boxes(data: bytes, start: int, end: int):
    """(type, box start, payload start, box end) of the MP4 boxes in data[start:end]."""
    position = start
    while position + 8 <= end:
        size, box_type = struct.unpack(">I4s", data[position : position + 8])
        header_size = 8
        if size == 1:
            size = struct.unpack(">Q", data[position + 8 : position + 16])[0]
            header_size = 16
        elif size == 0:
            size = end - position
        yield box_type.decode("latin-1"), position, position + header_size, position + size
        position += size


def set_mp4_rotation(path: Path, rotation: int) -> None:
    """Write a display rotation into the video track header (tkhd matrix), as phones do.

    Rewrites the 36-byte matrix in place, so no box changes size. The matrices are the ones
    FFmpeg's MP4 muxer writes for a `rotate` tag of 90, 180 or 270 degrees.
    """
    data = bytearray(path.read_bytes())
    moov = next(box for box in mp4_boxes(data, 0, len(data)) if box[0] == "moov")
    trak = next(box for box in mp4_boxes(data, moov[2], moov[3]) if box[0] == "trak")
    tkhd = next(box for box in mp4_boxes(data, trak[2], trak[3]) if box[0] == "tkhd")
    payload_start = tkhd[2]
    version = data[payload_start]
    matrix_start = payload_start + (40 if version == 0 else 52)
    width = struct.unpack(">I", data[matrix_start + 36 : matrix_start + 40])[0] >> 16
    height = struct.unpack(">I", data[matrix_start + 40 : matrix_start + 44])[0] >> 16
    a, b, c, d, x, y = {
        90: (0, 1, -1, 0, height, 0),
        180: (-1, 0, 0, -1, width, height),
        270: (0, -1, 1, 0, 0, width),
    }[rotation]
    matrix = (a << 16, b << 16, 0, c << 16, d << 16, 0, x << 16, y << 16, 1 << 30)
    struct.pack_into(">9i", data, matrix_start, *matrix)
    path.write_bytes(bytes(data))


def write_wav(path: Path) -> Path:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(b"\x00\x00" * 4000)
    return path


def assert_one_sentence_about(error: BaseException, path: Path) -> None:
    message = str(error)
    assert path.name in message
    assert "\n" not in message and "Traceback" not in message
    assert message[0].isupper() and message.endswith(".")


# --- sampling ---------------------------------------------------------------------------------


def test_samples_are_the_centres_of_equal_segments() -> None:
    assert sample_frame_indices(100, 25.0, 4) == [12, 37, 62, 87]
    assert sample_frame_indices(10, 25.0, 1) == [5]
    assert sample_frame_indices(10, 25.0, 5) == [1, 3, 5, 7, 9]


def test_asking_for_more_samples_than_frames_returns_every_frame() -> None:
    assert sample_frame_indices(5, 25.0, 32) == [0, 1, 2, 3, 4]
    assert sample_frame_indices(5, 25.0, 5) == [0, 1, 2, 3, 4]
    assert sample_frame_indices(1, 25.0, 32) == [0]


@pytest.mark.parametrize("num_frames", [1, 2, 7, 31, 32, 33, 100, 18_000])
@pytest.mark.parametrize("count", [1, 3, 16, 32])
def test_samples_are_sorted_unique_in_range_and_deterministic(num_frames: int, count: int) -> None:
    indices = sample_frame_indices(num_frames, 30.0, count)
    assert indices == sorted(set(indices))
    assert len(indices) == min(count, num_frames)
    assert indices[0] >= 0 and indices[-1] < num_frames
    assert indices == sample_frame_indices(num_frames, 30.0, count)


def test_samples_spread_evenly() -> None:
    gaps = np.diff(sample_frame_indices(18_000, 30.0, 32))
    assert gaps.max() - gaps.min() <= 1


def test_start_and_end_restrict_the_samples_to_that_time_range() -> None:
    # 10 fps: 2.0 s to 7.0 s is frames 20..69; five segments of ten frames each.
    assert sample_frame_indices(100, 10.0, 5, start_s=2.0, end_s=7.0) == [25, 35, 45, 55, 65]
    assert sample_frame_indices(100, 10.0, 100, start_s=9.5) == [95, 96, 97, 98, 99]
    assert sample_frame_indices(100, 10.0, 100, end_s=0.3) == [0, 1, 2]
    # An end past the video is clipped to it.
    assert sample_frame_indices(100, 10.0, 100, start_s=9.8, end_s=60.0) == [98, 99]


def test_time_to_frame_conversion_absorbs_float_error() -> None:
    # 0.1 * 30 is 3.0000000000000004 in floating point; frame 3 starts at 0.1 s.
    assert sample_frame_indices(90, 30.0, 90, start_s=0.1, end_s=0.2) == [3, 4, 5]


@pytest.mark.parametrize(
    ("options", "expected_words"),
    [
        ({"start_s": 5.0, "end_s": 5.0}, "must come after"),
        ({"start_s": 6.0, "end_s": 2.0}, "must come after"),
        ({"start_s": 10.0}, "past the end"),
        ({"start_s": 99.0, "end_s": 100.0}, "past the end"),
        ({"start_s": -1.0}, "0 s or later"),
        ({"start_s": 1.01, "end_s": 1.05}, "No frame starts"),
    ],
)
def test_an_empty_time_range_is_a_usage_error(options: dict, expected_words: str) -> None:
    with pytest.raises(UsageError, match=expected_words):
        sample_frame_indices(100, 10.0, 8, **options)
    with pytest.raises(UsageError, match=expected_words):
        every_kth_frame_indices(100, 10.0, 2, **options)


def test_invalid_counts_and_videos_are_rejected() -> None:
    with pytest.raises(UsageError):
        sample_frame_indices(100, 10.0, 0)
    with pytest.raises(UsageError):
        every_kth_frame_indices(100, 10.0, 0)
    with pytest.raises(UsageError):
        every_kth_frame_indices(100, 10.0, 2, limit=0)
    with pytest.raises(ValueError):
        sample_frame_indices(0, 10.0, 8)
    with pytest.raises(ValueError):
        sample_frame_indices(100, 0.0, 8, start_s=1.0)


def test_every_kth_frame() -> None:
    assert every_kth_frame_indices(30, 10.0, 7) == [0, 7, 14, 21, 28]
    assert every_kth_frame_indices(30, 10.0, 1, start_s=2.5) == [25, 26, 27, 28, 29]
    assert every_kth_frame_indices(100, 10.0, 5, start_s=1.0, end_s=3.0) == [10, 15, 20, 25]
    assert every_kth_frame_indices(100, 10.0, 5, limit=3) == [0, 5, 10]
    assert every_kth_frame_indices(3, 10.0, 50) == [0]


def test_video_extensions_are_lowercase_suffixes() -> None:
    assert ".mp4" in VIDEO_EXTENSIONS and ".webm" in VIDEO_EXTENSIONS
    assert all(extension == extension.lower() for extension in VIDEO_EXTENSIONS)
    assert all(extension.startswith(".") for extension in VIDEO_EXTENSIONS)


# --- reading frames in-process ----------------------------------------------------------------


@pytest.fixture
def decord_at_any_density(monkeypatch: pytest.MonkeyPatch) -> None:
    """decord reads wherever it is exact, however densely the short test clips are sampled."""
    monkeypatch.setattr(video, "sequential_is_cheaper_reason", lambda facts, choose: None)


def test_read_frames_returns_exactly_the_requested_frames(
    tmp_path: Path, decord_at_any_density
) -> None:
    path = write_video(tmp_path / "clip.mp4", num_frames=40, width=96, height=64)
    sampled = read_frames(path, count=8)
    assert sampled.frame_indices == sample_frame_indices(40, FPS, 8)
    assert [index_in_frame(frame) for frame in sampled.frames] == sampled.frame_indices
    assert sampled.times_s == pytest.approx([index / FPS for index in sampled.frame_indices])
    assert sampled.frames.shape == (8, 64, 96, 3)
    assert sampled.frames.dtype == np.uint8
    assert sampled.frames.flags["C_CONTIGUOUS"]
    # RGB order: the top-left mark was drawn red.
    assert sampled.frames[0, 4, 4].tolist() == pytest.approx([255, 0, 0], abs=40)
    assert sampled.info == VideoInfo(
        path=str(path),
        num_frames=40,
        fps=FPS,
        duration_s=4.0,
        width=96,
        height=64,
        rotation=0,
        codec=sampled.info.codec,
    )
    # An MP4 with closed GOPs: decord's seeks are exact there, so decord read them.
    assert sampled.decode == DecodeInfo("decord", None, frames_requested=8, frames_exact=8)


def test_read_frames_with_a_time_range_and_a_frame_step(tmp_path: Path) -> None:
    path = write_video(tmp_path / "clip.mp4", num_frames=40)
    ranged = read_frames(path, count=4, start_s=1.0, end_s=3.0)
    assert ranged.frame_indices == [12, 17, 22, 27]
    assert [index_in_frame(frame) for frame in ranged.frames] == ranged.frame_indices
    stepped = read_frames(path, every=9, count=32)
    assert stepped.frame_indices == [0, 9, 18, 27, 36]
    assert [index_in_frame(frame) for frame in stepped.frames] == stepped.frame_indices
    capped = read_frames(path, every=3, count=2, start_s=0.5)
    assert capped.frame_indices == [5, 8]
    with pytest.raises(UsageError, match="past the end"):
        read_frames(path, start_s=4.0)


def test_a_one_frame_video_returns_that_frame(tmp_path: Path) -> None:
    path = write_video(tmp_path / "single.mp4", num_frames=1)
    sampled = read_frames(path, count=32)
    assert sampled.frame_indices == [0]
    assert sampled.frames.shape == (1, 64, 64, 3)
    assert index_in_frame(sampled.frames[0]) == 0
    assert sampled.info.num_frames == 1


def test_probe_video(tmp_path: Path) -> None:
    path = write_video(tmp_path / "clip.mp4", num_frames=25, width=96, height=64)
    info = probe_video(path)
    assert (info.num_frames, info.fps, info.width, info.height) == (25, FPS, 96, 64)
    assert info.duration_s == pytest.approx(2.5)
    assert info.rotation == 0
    assert info.codec  # OpenCV calls mp4v "FMP4"; the exact FourCC is not the point
    assert info.path == str(path)


@pytest.mark.parametrize(
    ("file_name", "fourcc"),
    [("clip.avi", "MJPG"), ("clip_xvid.avi", "XVID"), ("clip.webm", "VP90")],
)
def test_other_containers_and_codecs(tmp_path: Path, file_name: str, fourcc: str) -> None:
    path = write_video(tmp_path / file_name, num_frames=30, fourcc=fourcc)
    sampled = read_frames(path, count=5)
    assert [index_in_frame(frame) for frame in sampled.frames] == sampled.frame_indices
    assert sampled.info.num_frames == 30


def test_unicode_and_spaces_in_file_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "vidéos d'été"
    folder.mkdir()
    path = write_video(folder / "clip 動画 ü.mp4", num_frames=12)
    sampled = read_frames(path, count=3)
    assert [index_in_frame(frame) for frame in sampled.frames] == sampled.frame_indices
    assert sampled.info.path == str(path)
    monkeypatch.chdir(folder)
    assert read_frames("clip 動画 ü.mp4", count=2).frame_indices == [3, 9]


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotated_videos_come_out_upright(tmp_path: Path, rotation: int) -> None:
    # 96x64 stored; a quarter turn displays it as 64x96 (portrait).
    path = write_video(tmp_path / f"phone_{rotation}.mp4", num_frames=12, width=96, height=64)
    set_mp4_rotation(path, rotation)
    sampled = read_frames(path, count=3)
    portrait = rotation in (90, 270)
    expected_height, expected_width = (96, 64) if portrait else (64, 96)
    assert sampled.frames.shape == (3, expected_height, expected_width, 3)
    assert (sampled.info.width, sampled.info.height) == (expected_width, expected_height)
    assert sampled.info.rotation == rotation
    assert probe_video(path).rotation == rotation
    # Turning the upright frame back by the rotation must give the frame as it was drawn.
    for frame_index, frame in zip(sampled.frame_indices, sampled.frames, strict=True):
        as_drawn = np.rot90(frame, k=rotation // 90)
        assert index_in_frame(as_drawn) == frame_index
        assert as_drawn[4, 4].tolist() == pytest.approx([255, 0, 0], abs=40)


def test_rotate_frames_turns_clockwise() -> None:
    stored = np.zeros((2, 4, 6, 3), np.uint8)  # two landscape frames, 6 wide and 4 high
    stored[:, 0, 0] = 255  # top-left corner as stored
    assert rotate_frames(stored, 0) is stored
    quarter = rotate_frames(stored, 90)
    assert quarter.shape == (2, 6, 4, 3) and quarter.flags["C_CONTIGUOUS"]
    assert quarter[:, 0, -1].tolist() == [[255] * 3] * 2  # top-left ends up top-right
    assert rotate_frames(stored, 180)[:, -1, -1].tolist() == [[255] * 3] * 2
    assert rotate_frames(stored, 270)[:, -1, 0].tolist() == [[255] * 3] * 2
    assert rotate_frames(stored[0], 90).shape == (6, 4, 3)  # a single frame works too
    with pytest.raises(ValueError):
        rotate_frames(stored, 45)


def test_frames_still_in_stored_orientation_are_rotated_once() -> None:
    """If a decord build ignored the rotation, the frame shape shows it and we rotate."""
    stored = np.zeros((1, 4, 6, 3), np.uint8)
    stored[:, 0, 0] = 255
    metadata = ContainerMetadata(rotation=90, codec=None, stored_size=(6, 4), fps=FPS)
    turned = upright(stored, metadata)
    assert turned.shape == (1, 6, 4, 3) and turned[0, 0, -1, 0] == 255
    # Frames that decord already rotated are left alone: never rotated twice.
    assert upright(turned, metadata) is turned


def test_decord_is_asked_to_raise_instead_of_duplicating_broken_frames(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, decord_at_any_density
) -> None:
    path = write_video(tmp_path / "clip.mp4", num_frames=5)
    decord = load_decord()
    received_options: dict = {}
    original_reader = decord.VideoReader

    def recording_reader(uri, **options):
        received_options.update(options)
        return original_reader(uri, **options)

    monkeypatch.setattr(decord, "VideoReader", recording_reader)
    read_frames(path, count=2)
    # decord raises once substituted frames exceed fault_tol * frame count (for 0 < fault_tol <
    # 1); below one frame for any real video means the first substitution raises. 0 means off.
    assert 0 < received_options["fault_tol"] * 10_000_000 < 1


def test_when_decord_fails_the_exact_path_reads_the_same_frames(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, decord_at_any_density
) -> None:
    path = write_video(tmp_path / "clip.mp4", num_frames=30, width=96, height=64)
    by_decord = read_frames(path, count=6)

    def substituting_decode(self, frame_indices):
        raise DecordFailed("decord substituted neighbouring frames for frames it could not decode")

    monkeypatch.setattr(DecordVideo, "decode", substituting_decode)
    by_pyav = read_frames(path, count=6)
    assert by_pyav.decode.decoder == "pyav"
    assert by_pyav.decode.reason.startswith("decord substituted")
    assert by_pyav.frame_indices == by_decord.frame_indices
    assert [index_in_frame(frame) for frame in by_pyav.frames] == by_pyav.frame_indices
    assert by_pyav.info == by_decord.info
    assert by_pyav.times_s == pytest.approx(by_decord.times_s, abs=1e-6)


def test_videos_without_b_frames_are_read_in_order_at_any_density(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # OpenCV's MPEG-4 writer puts a keyframe every 12 frames, and no B-frames.
    path = write_video(tmp_path / "clip.mp4", num_frames=300, width=96, height=64)
    facts = probe_stream(str(path))
    assert facts.keyframe_interval == 12 and facts.in_presentation_order

    read_in_order = {count: read_frames(path, count=count) for count in (32, 4)}
    # The same frames, times and facts from decord.
    monkeypatch.setattr(video, "sequential_is_cheaper_reason", lambda facts, choose: None)
    for count, in_order in read_in_order.items():
        assert in_order.decode == DecodeInfo(
            "pyav",
            f"{CHEAPER_IN_ORDER}: with no B-frames, only the frames the samples need are "
            "decoded (keyframes every 12 frames)",
            frames_requested=count,
            frames_exact=count,
        )
        by_decord = read_frames(path, count=count)
        assert by_decord.decode.decoder == "decord"
        assert by_decord.frame_indices == in_order.frame_indices
        assert np.array_equal(by_decord.frames, in_order.frames)
        assert by_decord.times_s == pytest.approx(in_order.times_s, abs=1e-6)
        assert by_decord.info == in_order.info


def test_pyavs_cost_counts_the_frames_it_decodes() -> None:
    in_order = StreamFacts(
        format_name="mov,mp4,m4a,3gp,3g2,mj2",
        codec_name="h264",
        intra_only=False,
        frame_count=300,
        fps=30.0,
        open_gop=False,
        pts_missing=False,
        keyframe_interval=12,
        in_presentation_order=True,
    )
    # With B-frames, every frame up to the last wanted one.
    assert pyav_cost_frames([5, 9, 30], replace(in_order, in_presentation_order=False)) == 31
    # Without: frames 0-9 and 24-30 decoded, the other 14 packets only demuxed.
    assert pyav_cost_frames([5, 9, 30], in_order) == pytest.approx(17 + 14 * DEMUX_FRAMES)
    assert pyav_cost_frames([], in_order) == 0


def test_decords_cost_counts_frames_decoded_and_seeks() -> None:
    seek = DECORD_SEEK_FRAMES
    # Keyframes every 12: frame 5 is a seek to 0 and 6 frames; 9 decodes on (4 more); 30 seeks
    # to 24 (7 frames).
    assert decord_cost_frames([5, 9, 30], 12) == (seek + 6) + 4 + (seek + 7)
    # One keyframe: decord decodes on from frame 0, as a sequential decode does, plus one seek.
    assert decord_cost_frames([0, 100, 200], 1000) == seek + 201
    assert decord_cost_frames([], 12) == 0


# --- bad input --------------------------------------------------------------------------------


def make_bad_input(kind: str, tmp_path: Path) -> Path:
    if kind == "missing":
        return tmp_path / "missing.mp4"
    if kind == "folder":
        folder = tmp_path / "folder.mp4"
        folder.mkdir()
        return folder
    if kind == "empty":
        path = tmp_path / "empty.mp4"
        path.write_bytes(b"")
        return path
    if kind == "text":
        path = tmp_path / "notes.mp4"
        path.write_text("this is not a video\n" * 50)
        return path
    if kind == "png":
        png_path = tmp_path / "picture.png"
        cv2.imwrite(str(png_path), frame_with_index(3, 64, 64))
        path = tmp_path / "picture.mp4"
        png_path.rename(path)
        return path
    if kind == "wav_as_mp4":
        return write_wav(tmp_path / "sound.mp4")
    if kind == "wav":
        return write_wav(tmp_path / "sound.wav")
    source = write_video(tmp_path / "source.mp4", num_frames=60, width=160, height=128)
    data = bytearray(source.read_bytes())
    if kind == "truncated":
        path = tmp_path / "truncated.mp4"
        path.write_bytes(bytes(data[: len(data) // 2]))
        return path
    if kind == "corrupted":
        randomness = random.Random(0)
        for position in range(len(data) // 3, 2 * len(data) // 3):
            data[position] = randomness.randrange(256)
        path = tmp_path / "corrupted.mp4"
        path.write_bytes(bytes(data))
        return path
    raise AssertionError(kind)


BAD_INPUTS = {
    "missing": "does not exist",
    "folder": "folder",
    "empty": "empty",
    "text": "not a video file",
    "png": "frame count cannot be determined",
    "truncated": "truncated",
    "corrupted": "damaged",
    "wav_as_mp4": "no video stream",
    "wav": "no video stream",
}


@pytest.mark.parametrize(("kind", "expected_words"), BAD_INPUTS.items())
def test_bad_input_is_one_clear_video_error(tmp_path: Path, kind: str, expected_words: str) -> None:
    path = make_bad_input(kind, tmp_path)
    with pytest.raises(VideoError, match=expected_words) as raised:
        read_frames(path, count=32)
    assert_one_sentence_about(raised.value, path)
    if kind != "corrupted":  # probing decodes only the first frame, which is intact there
        with pytest.raises(VideoError, match=expected_words):
            probe_video(path)


def test_ffmpeg_messages_about_damaged_frames_are_silenced(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    path = make_bad_input("corrupted", tmp_path)
    with pytest.raises(VideoError):
        read_frames(path)
    assert "@ 0x" not in capfd.readouterr().err  # FFmpeg's "[mpeg4 @ 0x...] header damaged"
