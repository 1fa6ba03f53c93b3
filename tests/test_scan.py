"""`mattn scan` end to end: frames -> faces -> persons -> scores -> verdict -> output.

Every video is made here with OpenCV from frames of tests/data/carphone_pristine.mp4 (a real
talking head) or from tests/data/grace_hopper.jpg, and kept tiny (12 frames, `frames=4`). The
models load once per module and most tests call `VideoScanner`; a handful invoke the CLI (which
loads the models on every call) to check what a user sees: output formats, exit codes, resume.
"""

from __future__ import annotations

import csv
import importlib
import importlib.util
import io
import json
import shutil
import struct
import wave
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from deepfake_cli.aggregate import STRATEGIES, aggregate_scores
from deepfake_cli.commands import app
from deepfake_cli.errors import UsageError
from deepfake_cli.faces import FaceDetector
from deepfake_cli.frame_reader import FrameReader
from deepfake_cli.inputs import expand_inputs
from deepfake_cli.model.weights import load_detector
from deepfake_cli.results import CHEAPER_IN_ORDER, VideoResult
from deepfake_cli.scan import ScanOptions, VideoScanner, scan_batch
from deepfake_cli.scoring import FaceScorer
from deepfake_cli.shards import in_shard, parse_shard
from deepfake_cli.video import read_frames, sample_frame_indices

DATA = Path(__file__).parent / "data"
CARPHONE = DATA / "carphone_pristine.mp4"
GRACE_HOPPER = DATA / "grace_hopper.jpg"
FPS = 10.0
CLIP_FRAMES = 12
SAMPLED = 4  # frames sampled per video in these tests

# Every bad input, and the words its one-sentence reason must contain.
BAD_INPUTS = {
    "empty.mp4": "empty (0 bytes)",
    "text renamed.mp4": "not a video file",
    "photo renamed.mp4": "frame count cannot be determined",
    "truncated.mp4": "truncated",
    "corrupted.mp4": "damaged",
    "audio only.mp4": "no video stream",
    "missing.mp4": "does not exist",
}
GOOD_INPUTS = ("clip.mp4", "clip.avi", "one frame.mp4", "portrait.mp4", "rotated.mp4")
UNICODE_NAME = "vidéo été 顔 (1).mp4"


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    # On a shared 2-core machine, OpenMP threads that spin at barriers while another process
    # holds the other core make the tiny models many times slower; one thread has no barrier.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --- making test media ------------------------------------------------------------------------


def carphone_frames(count: int = CLIP_FRAMES, step: int = 10) -> list[np.ndarray]:
    """Every `step`-th BGR frame of the carphone clip: the face moves, as in a real video."""
    capture = cv2.VideoCapture(str(CARPHONE))
    frames = []
    frame_index = 0
    while len(frames) < count:
        frame_ok, frame = capture.read()
        if not frame_ok:
            break
        if frame_index % step == 0:
            frames.append(frame)
        frame_index += 1
    capture.release()
    return frames


def write_video(path: Path, frames_bgr: list[np.ndarray], fourcc: str = "mp4v") -> Path:
    height, width = frames_bgr[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), FPS, (width, height))
    assert writer.isOpened(), f"OpenCV cannot write {path}"
    for frame in frames_bgr:
        writer.write(frame)
    writer.release()
    return path


def set_display_rotation_90(path: Path) -> None:
    """Write a 90-degree clockwise display matrix into the MP4's track header (as phones do)."""
    data = bytearray(path.read_bytes())
    box_at = data.find(b"tkhd")
    version = data[box_at + 4]
    # type, version+flags, times+track id+reserved+duration, reserved, layer..volume+reserved
    matrix_at = box_at + 4 + 4 + (32 if version == 1 else 20) + 8 + 8
    one, minus_one = 0x10000, -0x10000 & 0xFFFFFFFF  # 16.16 fixed point
    data[matrix_at : matrix_at + 36] = struct.pack(
        ">9I", 0, one, 0, minus_one, 0, 0, 0, 0, 0x40000000
    )
    path.write_bytes(bytes(data))


def make_media(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    frames = carphone_frames()
    media = {
        "clip.mp4": write_video(folder / "clip.mp4", frames),
        "clip.avi": write_video(folder / "clip.avi", frames, fourcc="MJPG"),
        "one frame.mp4": write_video(folder / "one frame.mp4", frames[:1]),
        UNICODE_NAME: write_video(folder / UNICODE_NAME, frames),
    }
    # Portrait: the upright face on a taller-than-wide canvas.
    portrait = []
    for frame in frames:
        canvas = np.full((200, 120, 3), 90, np.uint8)
        canvas[28:172] = frame[:, 20:140]
        portrait.append(canvas)
    media["portrait.mp4"] = write_video(folder / "portrait.mp4", portrait)
    # Rotated: stored on its side, upright only once the container's rotation is applied.
    media["rotated.mp4"] = write_video(
        folder / "rotated.mp4", [np.ascontiguousarray(np.rot90(frame)) for frame in portrait]
    )
    set_display_rotation_90(media["rotated.mp4"])
    # Two people: the portrait twice, side by side, moving; the one on the right is smaller.
    hopper = cv2.imread(str(GRACE_HOPPER))
    near, far = cv2.resize(hopper, (128, 150)), cv2.resize(hopper, (104, 122))
    two_people = []
    for frame_index in range(CLIP_FRAMES):
        canvas = np.full((200, 400, 3), 90, np.uint8)
        canvas[25:175, 20 + frame_index : 148 + frame_index] = near
        canvas[39:161, 270 - frame_index : 374 - frame_index] = far
        two_people.append(canvas)
    media["two people.mp4"] = write_video(folder / "two people.mp4", two_people)
    no_face = [np.full((144, 176, 3), 20 * index, np.uint8) for index in range(CLIP_FRAMES)]
    media["no face.mp4"] = write_video(folder / "no face.mp4", no_face)

    good_bytes = media["clip.mp4"].read_bytes()
    media["empty.mp4"] = folder / "empty.mp4"
    media["empty.mp4"].write_bytes(b"")
    media["text renamed.mp4"] = folder / "text renamed.mp4"
    media["text renamed.mp4"].write_text("not a video\n" * 100)
    media["photo renamed.mp4"] = folder / "photo renamed.mp4"
    shutil.copy(GRACE_HOPPER, media["photo renamed.mp4"])
    media["truncated.mp4"] = folder / "truncated.mp4"
    media["truncated.mp4"].write_bytes(good_bytes[: len(good_bytes) // 2])
    # Random bytes overwritten inside the coded frames (the header stays readable).
    corrupted = np.frombuffer(good_bytes, np.uint8).copy()
    payload_start = good_bytes.find(b"mdat") + 8
    payload_end = good_bytes.find(b"moov") if good_bytes.find(b"moov") > payload_start else None
    payload_end = payload_end or len(good_bytes)
    rng = np.random.default_rng(0)
    positions = rng.integers(payload_start, payload_end, size=(payload_end - payload_start) // 20)
    corrupted[positions] = rng.integers(0, 256, size=len(positions), dtype=np.uint8)
    media["corrupted.mp4"] = folder / "corrupted.mp4"
    media["corrupted.mp4"].write_bytes(corrupted.tobytes())
    # Audio only: a WAV file under a video name; FFmpeg finds its audio stream and nothing else.
    media["audio only.mp4"] = folder / "audio only.mp4"
    with wave.open(str(media["audio only.mp4"]), "wb") as audio:
        audio.setnchannels(1)
        audio.setsampwidth(2)
        audio.setframerate(8000)
        audio.writeframes(b"\0\0" * 8000)
    media["missing.mp4"] = folder / "missing.mp4"  # never written
    return media


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_media(tmp_path_factory.mktemp("media"))


# --- models, loaded once ----------------------------------------------------------------------


# `tiny_weights` (a random MAT B0 at 64 px) comes from conftest.py.


@pytest.fixture(scope="module")
def scorer(tiny_weights: Path) -> FaceScorer:
    return FaceScorer(load_detector(tiny_weights), precision="fp32")


@pytest.fixture(scope="module")
def face_detector() -> FaceDetector:
    return FaceDetector()


@pytest.fixture
def make_scanner(scorer: FaceScorer, face_detector: FaceDetector):
    def make(**options) -> VideoScanner:
        options.setdefault("frames", SAMPLED)
        return VideoScanner(scorer, face_detector, ScanOptions(**options))

    return make


def scan_paths(scanner: VideoScanner, paths: list[str]) -> dict[str, VideoResult]:
    results: list[VideoResult] = []
    scan_batch(scanner, paths, [], results.append)
    assert [result.path for result in results] == paths  # nothing lost, nothing reordered
    return {result.path: result for result in results}


def assert_one_sentence(message: str | None, path: Path | str) -> None:
    assert message is not None
    assert Path(path).name in message, message
    assert "\n" not in message and "Traceback" not in message, message
    assert message[0].isupper() and message.endswith("."), message


# --- the "done when" checks -------------------------------------------------------------------


def test_talking_head_has_one_person_in_every_sampled_frame(make_scanner) -> None:
    frames = 8
    scanner = make_scanner(frames=frames, details=True)
    result = scan_paths(scanner, [str(CARPHONE)])[str(CARPHONE)]

    assert result.status == "ok" and result.error is None
    assert result.verdict in ("FAKE", "REAL")
    assert 0.0 <= result.fake_probability <= 1.0
    assert len(result.persons) == 1
    assert result.persons[0].frames == result.frames_used == frames
    # An ordinary video: its one face is big enough and always there, so it is judged.
    assert result.persons[0].judged and result.persons[0].reason is None
    assert result.persons[0].face_px > result.min_face_px == 20
    # Frames sampled evenly over the 120-frame clip, each with exactly one face: person 0.
    info = read_frames(CARPHONE, count=1).info
    assert [frame.index for frame in result.frames] == sample_frame_indices(
        info.num_frames, info.fps, frames
    )
    for frame in result.frames:
        assert frame.time_s == pytest.approx(frame.index / info.fps)
        assert [face.person for face in frame.faces] == [0]
        face = frame.faces[0]
        x1, y1, x2, y2 = face.box
        assert 0 <= x1 < x2 <= info.width and 0 <= y1 < y2 <= info.height
        assert face.det_prob >= 0.9
        assert 0.0 <= face.fake_probability <= 1.0
    # The video's score is the person's, aggregated from exactly these frame scores.
    frame_scores = [frame.faces[0].fake_probability for frame in result.frames]
    assert result.fake_probability == pytest.approx(aggregate_scores(frame_scores, "mean"))


def test_two_people_are_two_persons_and_max_faces_bounds_them(make_scanner, media) -> None:
    path = str(media["two people.mp4"])
    both = scan_paths(make_scanner(details=True), [path])[path]
    assert both.status == "ok"
    assert [person.id for person in both.persons] == [0, 1]
    assert all(person.frames == SAMPLED and person.judged for person in both.persons)
    assert all(len(frame.faces) == 2 for frame in both.frames)
    # The two faces stay on their own side of the frame: tracks did not swap.
    for person_id in (0, 1):
        centres = [
            (face.box[0] + face.box[2]) / 2
            for frame in both.frames
            for face in frame.faces
            if face.person == person_id
        ]
        assert max(centres) < 200 or min(centres) > 200
    # The video is as fake as its most-fake person.
    assert both.fake_probability == max(person.fake_probability for person in both.persons)

    # --max-faces 1: only the larger face (on the left) is scored.
    one = scan_paths(make_scanner(max_faces=1, details=True), [path])[path]
    assert len(one.persons) == 1
    assert all(len(frame.faces) == 1 for frame in one.frames)
    assert all(frame.faces[0].box[2] < 200 for frame in one.frames)


def test_start_and_end_choose_the_sampled_range(make_scanner, media) -> None:
    path = str(media["clip.mp4"])
    scanner = make_scanner(frames=3, start_s=0.5, end_s=1.0, details=True)
    result = scan_paths(scanner, [path])[path]
    # 10 fps: frames 5..9 start in [0.5 s, 1.0 s); three evenly spaced among them.
    assert [frame.index for frame in result.frames] == [5, 7, 9]
    assert [frame.time_s for frame in result.frames] == pytest.approx([0.5, 0.7, 0.9])

    past_the_end = scan_paths(make_scanner(start_s=5.0), [path])[path]
    assert past_the_end.status == "error"
    assert "past the end" in past_the_end.error


def test_mtcnn_runs_on_openvino_only_where_openvino_scores() -> None:
    from deepfake_cli.scan import face_detector_for

    cpu = torch.device("cpu")
    assert face_detector_for("torch", cpu).runtime == "torch"
    assert face_detector_for("onnxruntime", cpu).runtime == "torch"
    if importlib.util.find_spec("openvino") is not None:
        assert face_detector_for("openvino", cpu).runtime == "openvino"


def test_good_inputs_of_every_shape_are_scanned(make_scanner, media) -> None:
    """AVI, one frame, portrait, rotated by the container, unicode and spaces in the name."""
    paths = [str(media[name]) for name in (*GOOD_INPUTS, UNICODE_NAME)]
    results = scan_paths(make_scanner(details=True), paths)
    for path, result in results.items():
        assert result.status == "ok", (path, result.error)
        assert len(result.persons) == 1, path
        expected_frames = 1 if "one frame" in path else SAMPLED
        assert result.frames_used == len(result.frames) == expected_frames, path
    # The rotated video's faces are found because its frames come out upright (portrait).
    for name in ("portrait.mp4", "rotated.mp4"):
        box = results[str(media[name])].frames[0].faces[0].box
        assert box[2] <= 120 and box[3] <= 200  # inside the 120x200 upright frame
    assert results[str(media[UNICODE_NAME])].path.endswith(UNICODE_NAME)
    # Each says how its frames were read: these containers are all on decord's exact path, but
    # these short clips are sampled so densely (or, OpenCV's MPEG-4 having no B-frames, read
    # so selectively) that reading in order costs less.
    for result in results.values():
        assert result.decode.decoder == "pyav", result.decode
        assert result.decode.reason.startswith(CHEAPER_IN_ORDER)
        assert result.decode.frames_exact == result.decode.frames_requested == result.frames_used


@pytest.mark.parametrize(("muxer", "codec"), [("mpeg", "mpeg1video"), ("vob", "mpeg2video")])
def test_mpeg_program_streams_scan_ok_on_the_frames_they_name(
    make_scanner, tmp_path: Path, muxer: str, codec: str
) -> None:
    """MPEG-1/2 in .mpg: decord's seeks land frames late there, so PyAV reads them in order."""
    import av

    path = tmp_path / f"talking head {codec}.mpg"
    with av.open(str(path), "w", format=muxer) as container:
        stream = container.add_stream(codec, rate=25, options={"qscale": "2", "bf": "2"})
        stream.width, stream.height, stream.pix_fmt = 176, 144, "yuv420p"
        for frame_bgr in carphone_frames():
            frame = av.VideoFrame.from_ndarray(frame_bgr, format="bgr24").reformat(format="yuv420p")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    result = scan_paths(make_scanner(details=True), [str(path)])[str(path)]
    assert result.status == "ok", result.error
    assert len(result.persons) == 1 and result.frames_used == SAMPLED
    assert [frame.index for frame in result.frames] == sample_frame_indices(
        CLIP_FRAMES, 25.0, SAMPLED
    )
    assert result.decode.decoder == "pyav"
    assert result.decode.reason.startswith("MPEG program stream")
    assert result.decode.frames_exact == result.decode.frames_requested == SAMPLED
    assert result.to_dict()["decode"]["decoder"] == "pyav"


@pytest.fixture(scope="module")
def bad_results(scorer, face_detector, media) -> dict[str, VideoResult]:
    """One batch over every bad input, with a good video in the middle and at the end."""
    names = [*BAD_INPUTS][:3] + ["clip.mp4"] + [*BAD_INPUTS][3:] + ["no face.mp4", "clip.avi"]
    scanner = VideoScanner(scorer, face_detector, ScanOptions(frames=SAMPLED))
    results: list[VideoResult] = []
    scan_batch(scanner, [str(media[name]) for name in names], [], results.append)
    assert len(results) == len(names)
    return {Path(result.path).name: result for result in results}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_each_bad_input_gets_one_sentence_and_no_score(bad_results, name) -> None:
    result = bad_results[name]
    assert result.status == "error"
    assert result.verdict is None and result.fake_probability is None and result.persons == []
    assert_one_sentence(result.error, name)
    assert BAD_INPUTS[name] in result.error
    assert result.decode is None  # no frame of it was judged


def test_bad_inputs_do_not_stop_the_batch(bad_results) -> None:
    assert bad_results["clip.mp4"].status == "ok"
    assert bad_results["clip.avi"].status == "ok"


def test_video_without_a_face_is_no_face_never_a_score(bad_results, make_scanner, media) -> None:
    result = bad_results["no face.mp4"]
    assert result.status == "no_face" and result.error is None
    assert result.verdict is None and result.fake_probability is None
    assert result.persons == [] and result.frames_used == 0
    path = str(media["no face.mp4"])
    detailed = scan_paths(make_scanner(details=True), [path])[path]
    assert [frame.faces for frame in detailed.frames] == [[]] * SAMPLED


def test_hung_decoder_is_killed_and_the_batch_goes_on(
    make_scanner, media, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The worker unpickles the decode function by module name, from the parent's sys.path; a
    # module of its own keeps it from importing this test file (and torch).
    helper_dir = tmp_path / "helpers"
    helper_dir.mkdir()
    (helper_dir / "mattn_scan_hang_helper.py").write_text(
        "import os, time\n"
        "from deepfake_cli.video import read_frames\n\n"
        "def hang_on_files_named_hang(path, **options):\n"
        "    if 'hang' in os.path.basename(path):\n"
        "        time.sleep(600)\n"
        "    return read_frames(path, **options)\n"
    )
    monkeypatch.syspath_prepend(str(helper_dir))
    helper = importlib.import_module("mattn_scan_hang_helper")
    hanging = tmp_path / "hang.mp4"
    shutil.copy(media["clip.mp4"], hanging)
    paths = [str(hanging), str(media["clip.mp4"])]

    scanner = make_scanner(timeout_s=2.0)
    results: list[VideoResult] = []
    with FrameReader(timeout_s=2.0, decode_function=helper.hang_on_files_named_hang) as reader:
        scan_batch(scanner, paths, [], results.append, reader)
    hung, fine = results
    assert hung.status == "error" and "did not finish within 2 s" in hung.error
    assert_one_sentence(hung.error, hanging)
    assert fine.status == "ok"


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_aggregate_strategy_gives_the_verdict_of_its_score(
    make_scanner, media, strategy
) -> None:
    path = str(media["clip.mp4"])
    result = scan_paths(make_scanner(aggregate=strategy, details=True), [path])[path]
    frame_scores = [face.fake_probability for frame in result.frames for face in frame.faces]
    assert result.aggregate == strategy
    assert result.fake_probability == pytest.approx(aggregate_scores(frame_scores, strategy))


def test_threshold_decides_the_verdict(make_scanner, media) -> None:
    path = str(media["clip.mp4"])
    assert scan_paths(make_scanner(threshold=0.0), [path])[path].verdict == "FAKE"
    assert scan_paths(make_scanner(threshold=1.0), [path])[path].verdict == "REAL"


def test_an_unexpected_failure_on_one_video_is_an_error_result(
    make_scanner, media, monkeypatch: pytest.MonkeyPatch
) -> None:
    scanner = make_scanner()
    judge = VideoScanner.judge

    def fail_on_avi(self, path, sampled, started):
        if path.endswith(".avi"):
            raise RuntimeError("something broke\nsecond line")
        return judge(self, path, sampled, started)

    monkeypatch.setattr(VideoScanner, "judge", fail_on_avi)
    results = scan_paths(scanner, [str(media["clip.avi"]), str(media["clip.mp4"])])
    failed = results[str(media["clip.avi"])]
    assert failed.status == "error"
    assert_one_sentence(failed.error, "clip.avi")
    assert "RuntimeError: something broke" in failed.error
    assert results[str(media["clip.mp4"])].status == "ok"


@pytest.mark.parametrize(
    "options",
    [
        {"frames": 0},
        {"threshold": 1.5},
        {"start_s": 2.0, "end_s": 1.0},
        {"max_faces": 0},
        {"timeout_s": 0.0},
        {"min_face_px": -1},
        {"min_presence": 1.5},
        {"min_presence": -0.1},
    ],
)
def test_scan_options_reject_nonsense(options) -> None:
    with pytest.raises(UsageError):
        ScanOptions(**options)


def test_unknown_aggregate_strategy_is_refused() -> None:
    with pytest.raises(ValueError, match="mean, median, topk, confident, weighted"):
        ScanOptions(aggregate="max")


# --- which files a batch scans ----------------------------------------------------------------


def test_expand_inputs_files_folders_glob_and_stdin(tmp_path: Path) -> None:
    nested = tmp_path / "videos" / "deeper"
    nested.mkdir(parents=True)
    for relative in ("videos/a.mp4", "videos/B.MOV", "videos/deeper/c.avi", "videos/notes.txt"):
        (tmp_path / relative).write_bytes(b"x")
    empty_folder = tmp_path / "empty"
    empty_folder.mkdir()
    single = tmp_path / "single.webm"
    single.write_bytes(b"x")
    folder = str(tmp_path / "videos")

    videos, problems = expand_inputs([folder, str(single), str(empty_folder), "nowhere.mp4"])
    assert videos == [
        f"{folder}/B.MOV",
        f"{folder}/a.mp4",
        f"{folder}/deeper/c.avi",
        str(single),
        "nowhere.mp4",  # reported as missing later, in its place in the batch
    ]
    assert problems == [(str(empty_folder), f"Folder {empty_folder} contains no video files.")]

    videos, problems = expand_inputs([folder], glob="*.txt")
    assert videos == [f"{folder}/notes.txt"] and problems == []
    _, problems = expand_inputs([folder], glob="*.mkv")
    assert problems == [(folder, f"Folder {folder} contains no files matching '*.mkv'.")]

    # `-` reads paths from stdin, one a line; blank lines are skipped and repeats kept once.
    stdin = io.StringIO(f"{single}\n\n  {folder}/a.mp4  \n{single}\n")
    videos, _ = expand_inputs(["-", str(single)], stdin=stdin)
    assert videos == [str(single), f"{folder}/a.mp4"]


def test_parse_shard() -> None:
    assert parse_shard(None) is None
    assert parse_shard("1/1") == (1, 1)
    assert parse_shard("3/4") == (3, 4)
    for bad in ("0/4", "5/4", "1/0", "a/b", "1", "1/2/3", ""):
        with pytest.raises(UsageError):
            parse_shard(bad)


def test_shards_partition_the_inputs_deterministically() -> None:
    paths = [f"data/video_{index:04d}.mp4" for index in range(300)] + ["été/顔 1.mp4"]
    assert all(in_shard(path, None) for path in paths)
    for count in (1, 2, 3, 7):
        shards = [
            [path for path in paths if in_shard(path, (index, count))]
            for index in range(1, count + 1)
        ]
        assert sorted(path for shard in shards for path in shard) == sorted(paths)  # no overlap
        assert all(shards) and max(map(len, shards)) < 2 * len(paths) / count
        # The same slice every time (a hash of the path, not Python's salted hash()).
        assert shards == [
            [path for path in paths if in_shard(path, (index, count))]
            for index in range(1, count + 1)
        ]
    # Pinned: a path lands in the same shard on every machine and in every Python version.
    assert in_shard("data/video_0000.mp4", (3, 3)) and in_shard("data/video_0001.mp4", (1, 3))


# --- the command line -------------------------------------------------------------------------

runner = CliRunner()


def invoke(arguments: list[str], **kwargs):
    # Wide COLUMNS: rich would otherwise wrap table cells (and error sentences) at 80.
    kwargs.setdefault("env", {"COLUMNS": "250", "NO_COLOR": "1"})
    return runner.invoke(app, ["scan", *arguments, "--quiet"], **kwargs)


def assert_no_traceback(result) -> None:
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception


@pytest.fixture(scope="module")
def mixed_folder(media, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Good and bad files, a subfolder, and a file that is not a video."""
    folder = tmp_path_factory.mktemp("mixed")
    (folder / "sub").mkdir()
    shutil.copy(media["clip.mp4"], folder / "good.mp4")
    shutil.copy(media["clip.avi"], folder / "sub" / "good.avi")
    shutil.copy(media["no face.mp4"], folder / "no face.mp4")
    shutil.copy(media["empty.mp4"], folder / "empty.mp4")
    shutil.copy(media["text renamed.mp4"], folder / "sub" / UNICODE_NAME)
    (folder / "readme.txt").write_text("not scanned")
    return folder


MIXED_STATUSES = {
    "empty.mp4": "error",
    "good.mp4": "ok",
    "no face.mp4": "no_face",
    "sub/good.avi": "ok",
    f"sub/{UNICODE_NAME}": "error",
}


def test_cli_folder_of_good_and_bad_files_reports_each_and_exits_2(
    mixed_folder: Path, tiny_weights: Path, tmp_path: Path
) -> None:
    empty_folder = tmp_path / "no videos here"
    empty_folder.mkdir()
    result = invoke(
        [str(mixed_folder), str(empty_folder), "--weights", str(tiny_weights),
         "--frames", str(SAMPLED), "--format", "jsonl"]
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert_no_traceback(result)
    lines = [json.loads(line) for line in result.stdout.splitlines()]  # each line parses
    statuses = {
        str(Path(line["path"]).relative_to(mixed_folder)): line["status"]
        for line in lines
        if line["path"] != str(empty_folder)
    }
    assert statuses == MIXED_STATUSES
    (folder_line,) = [line for line in lines if line["path"] == str(empty_folder)]
    assert folder_line["status"] == "error"
    assert_one_sentence(folder_line["error"], empty_folder)
    for line in lines:
        if line["status"] != "ok":
            assert line["verdict"] is None and line["fake_probability"] is None


def test_cli_decode_workers_and_video_batch_change_only_the_speed(
    mixed_folder: Path, tiny_weights: Path
) -> None:
    common = [str(mixed_folder), "--weights", str(tiny_weights), "--frames", str(SAMPLED)]
    # fp32: in bf16 (CPUs with AMX) other batch compositions move the scores by about 1e-5.
    common += ["--format", "jsonl", "--details", "--device", "cpu", "--precision", "fp32"]
    default = invoke(common)
    parallel = invoke([*common, "--decode-workers", "2", "--video-batch", "3"])
    assert default.exit_code == parallel.exit_code == 2, parallel.output
    assert_no_traceback(parallel)
    # Frame by frame the scores are compared in tests/test_cross_video.py.
    fields = ("path", "status", "error", "verdict", "decode", "frames_used")

    def summary(stdout: str) -> list[tuple]:
        records = [json.loads(line) for line in stdout.splitlines()]
        return [
            (*(record[field] for field in fields), record["fake_probability"]) for record in records
        ]

    default_records, parallel_records = summary(default.stdout), summary(parallel.stdout)
    assert [record[:-1] for record in parallel_records] == [
        record[:-1] for record in default_records
    ]
    for record, default_record in zip(parallel_records, default_records, strict=True):
        assert record[-1] == pytest.approx(default_record[-1], abs=2e-6)


def test_cli_every_format_says_why_a_file_failed(media, tiny_weights: Path, tmp_path: Path) -> None:
    inputs = [str(media["clip.mp4"]), str(media["empty.mp4"]), str(tmp_path / "gone.mp4")]
    common = ["--weights", str(tiny_weights), "--frames", "2", "--device", "cpu"]
    reasons = ("empty.mp4': the file is empty (0 bytes).", "gone.mp4': the file does not exist.")

    as_json = invoke([*inputs, *common, "--format", "json", "--details", "--precision", "fp32"])
    assert as_json.exit_code == 2, as_json.output
    records = json.loads(as_json.stdout)
    assert sorted(record["status"] for record in records) == ["error", "error", "ok"]
    good = {record["path"]: record for record in records}[str(media["clip.mp4"])]
    assert [set(frame) for frame in good["frames"]] == [{"index", "time_s", "faces"}] * 2
    assert set(good["frames"][0]["faces"][0]) == {"person", "box", "det_prob", "fake_probability"}
    for reason in reasons:
        assert any(reason in (record["error"] or "") for record in records)

    output = tmp_path / "results.csv"
    as_csv = invoke([*inputs, *common, "--format", "csv", "--output", str(output)])
    assert as_csv.exit_code == 2 and as_csv.stdout == ""
    rows = list(csv.DictReader(output.open(encoding="utf-8")))
    assert sorted(row["status"] for row in rows) == ["error", "error", "ok"]
    for reason in reasons:
        assert any(reason in row["error"] for row in rows)

    as_table = invoke([*inputs, *common])
    assert as_table.exit_code == 2
    assert_no_traceback(as_table)
    assert "\x1b[" not in as_table.stdout  # NO_COLOR (and not a terminal)
    for reason in reasons:
        assert reason in as_table.stdout
    assert "ERROR" in as_table.stdout and "DEMO MODEL" in as_table.stdout


def test_cli_exit_codes_fake_and_clean(media, tiny_weights: Path) -> None:
    good = str(media["clip.mp4"])
    common = ["--weights", str(tiny_weights), "--frames", "2", "--format", "jsonl"]
    fake = invoke([good, *common, "--threshold", "0"])
    assert fake.exit_code == 1, fake.output
    assert json.loads(fake.stdout)["verdict"] == "FAKE"
    # Paths on stdin; nothing can reach a threshold of 1 with this model, so all REAL.
    clean = invoke(["-", *common, "--threshold", "1", "--aggregate", "median"], input=f"{good}\n")
    assert clean.exit_code == 0, clean.output
    line = json.loads(clean.stdout)
    assert line["path"] == good and line["verdict"] == "REAL" and line["aggregate"] == "median"


def test_cli_jsonl_output_is_incremental_and_resumable(
    media, tiny_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    output = tmp_path / "scan.jsonl"
    names = ("clip.mp4", "clip.avi", "empty.mp4", "one frame.mp4")
    first, second, broken, fourth = (str(media[name]) for name in names)
    common = ["--weights", str(tiny_weights), "--frames", "2", "--format", "jsonl"]
    common += ["--threshold", "0.99", "--output", str(output)]

    def paths_in_output() -> list[str]:
        return [json.loads(line)["path"] for line in output.read_text().splitlines()]

    # Each video's line is on disk before the next video is judged.
    lines_when_judging: list[int] = []
    judge_safely = VideoScanner.judge_safely

    def counting_judge(self, path, sampled, started):
        lines_when_judging.append(len(output.read_text().splitlines()))
        return judge_safely(self, path, sampled, started)

    monkeypatch.setattr(VideoScanner, "judge_safely", counting_judge)
    result = invoke([first, second, *common])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert paths_in_output() == [first, second]
    assert lines_when_judging == [0, 1]

    # --resume scans only what is not in the file yet; the exit code covers the whole file.
    lines_when_judging.clear()
    resumed = invoke([first, second, broken, fourth, *common, "--resume"])
    assert resumed.exit_code == 2, resumed.output
    assert paths_in_output() == [first, second, broken, fourth]
    assert lines_when_judging == [3]

    # Without --resume the file starts over.
    again = invoke([fourth, *common])
    assert again.exit_code == 0, again.output
    assert paths_in_output() == [fourth]


def test_cli_shards_split_a_folder_between_runs(
    mixed_folder: Path, tiny_weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only which files each shard gets matters here: skip the judging.
    monkeypatch.setattr(
        VideoScanner,
        "judge_safely",
        lambda self, path, sampled, started: self.failed(path, "Skipped.", started),
    )
    seen: list[str] = []
    for shard in ("1/2", "2/2"):
        result = invoke(
            [str(mixed_folder), "--weights", str(tiny_weights), "--format", "jsonl",
             "--shard", shard]
        )  # fmt: skip
        assert result.exit_code == 2, result.output
        seen += [json.loads(line)["path"] for line in result.stdout.splitlines()]
    assert sorted(str(Path(path).relative_to(mixed_folder)) for path in seen) == sorted(
        MIXED_STATUSES
    )


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--device", "cuda"], "no CUDA GPU is available"),
        (["--device", "tpu"], "Unknown device"),
        (["--precision", "fp16"], "--precision fp16 needs a GPU"),
        (["--precision", "fp8"], "Unknown precision"),
        (["--batch-size", "0"], "--batch-size must be at least 1"),
        (["--decode-workers", "0"], "--decode-workers must be at least 1"),
        (["--video-batch", "0"], "--video-batch must be at least 1"),
        (["--frames", "0"], "--frames must be at least 1"),
        (["--max-faces", "0"], "--max-faces must be at least 1"),
        (["--min-face", "-5"], "--min-face must be a number of pixels"),
        (["--min-presence", "2"], "--min-presence must be between 0 and 1"),
        (["--shard", "3/2"], "K must be between 1 and N"),
        (["--aggregate", "max"], "Unknown aggregation strategy"),
        (["--format", "xml"], "Unknown output format"),
        (["--resume"], "--resume needs --format jsonl"),
    ],
)
def test_cli_usage_errors_are_one_sentence_and_exit_2(
    media, tiny_weights: Path, arguments, message
) -> None:
    if arguments == ["--device", "cuda"] and torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present")
    result = invoke([str(media["clip.mp4"]), "--weights", str(tiny_weights), *arguments])
    assert result.exit_code == 2, result.output
    assert_no_traceback(result)
    assert result.stdout == ""
    assert result.stderr.startswith("mattn: ") and message in " ".join(result.stderr.split())


def test_cli_unreadable_weights_exit_2_with_one_sentence(media, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, np.uint8).tobytes())
    for weights, message in (
        (tmp_path / "missing.safetensors", "does not exist"),
        (garbage, "is not a readable .safetensors file"),
    ):
        result = invoke([str(media["clip.mp4"]), "--weights", str(weights), "--format", "json"])
        assert result.exit_code == 2, result.output
        assert_no_traceback(result)
        assert result.stdout == ""  # no half-written JSON array
        assert result.stderr.startswith("mattn: ") and message in " ".join(result.stderr.split())


def test_a_still_photo_is_judged_as_a_one_frame_video(make_scanner) -> None:
    path = str(GRACE_HOPPER)
    result = scan_paths(make_scanner(), [path])[path]
    assert result.status == "ok", result.error
    assert result.frames_used == 1 and len(result.persons) == 1
    assert result.fake_probability is not None
