"""The person that matters: small or briefly seen faces are reported, never judged.

Real clips (news presenters with faces on a screen behind them, faces cut by the frame edge)
showed extra "persons" of about 45 px deciding the verdict. Here the same is made from the
shipped talking head (tests/data/carphone_pristine.mp4): its frames enlarged to 352x288, with a
shrunken copy of the head pasted into the top-right corner, in some frames or all of them.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from deepfake_cli.aggregate import (
    DEFAULT_MIN_PRESENCE,
    REASON_FACE_TOO_SMALL,
    REASON_TOO_FEW_FRAMES,
)
from deepfake_cli.results import SCHEMA_VERSION, VideoResult
from tests import test_scan
from tests.test_scan import carphone_frames, invoke, scan_paths, write_video

# test_scan's models and thread setting, loaded once for this module too (pytest finds
# fixtures by the names they have here).
one_torch_thread = test_scan.one_torch_thread
scorer = test_scan.scorer
face_detector = test_scan.face_detector

CLIP_FRAMES = 12
# Where the carphone head is in its 176x144 frames (a little more than MTCNN's box), and the
# size it is pasted at: a face box of about 33x43 px, as small as MTCNN finds in 352x288.
HEAD_XYXY = (40, 10, 140, 130)
SMALL_HEAD_SIZE = (80, 96)  # (width, height)
# The face boxes' shorter sides MTCNN finds: about 37 px for the small face, 100 px for the
# presenter's; a --min-face between them excludes the one and not the other.
SMALL_FACE_PX = 37
PRESENTER_FACE_PX = 100
MIN_FACE_BETWEEN = 48


def composite(frames_bgr: list[np.ndarray], small_face_at: set[int]) -> list[np.ndarray]:
    """The frames enlarged twice, with a small copy of the head in the corner at some of them."""
    composited = []
    for position, frame in enumerate(frames_bgr):
        enlarged = cv2.resize(frame, (352, 288), interpolation=cv2.INTER_CUBIC)
        if position in small_face_at:
            x_min, y_min, x_max, y_max = HEAD_XYXY
            head = cv2.resize(
                frame[y_min:y_max, x_min:x_max], SMALL_HEAD_SIZE, interpolation=cv2.INTER_AREA
            )
            width, height = SMALL_HEAD_SIZE
            enlarged[4 : 4 + height, 352 - 4 - width : 352 - 4] = head
        composited.append(enlarged)
    return composited


def only_the_small_face(frames_bgr: list[np.ndarray]) -> list[np.ndarray]:
    """Just the small head, on a grey 352x288 canvas: nothing large enough to judge."""
    small_only = []
    for frame in composite(frames_bgr, set(range(len(frames_bgr)))):
        canvas = np.full_like(frame, 90)
        canvas[:110, -90:] = frame[:110, -90:]
        small_only.append(canvas)
    return small_only


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("persons")
    frames = carphone_frames(count=CLIP_FRAMES, step=10)
    every_frame = set(range(CLIP_FRAMES))
    made = {
        "presenter.mp4": composite(frames, set()),
        "small face now and then.mp4": composite(frames, {3, 8}),
        "small face always.mp4": composite(frames, every_frame),
        "small face only.mp4": only_the_small_face(frames),
    }
    return {name: str(write_video(folder / name, video)) for name, video in made.items()}


class CountingScorer:
    """The tiny model's scorer, counting the crops it is given (to show what is not scored)."""

    def __init__(self, scorer) -> None:
        self.scorer = scorer
        self.crops_scored = 0

    def __getattr__(self, name: str):
        return getattr(self.scorer, name)

    def score(self, crops: np.ndarray) -> np.ndarray:
        self.crops_scored += len(crops)
        return self.scorer.score(crops)


@pytest.fixture
def counting_scanner(scorer, face_detector):
    from deepfake_cli.scan import ScanOptions, VideoScanner

    def make(**options) -> VideoScanner:
        options.setdefault("frames", CLIP_FRAMES)
        return VideoScanner(CountingScorer(scorer), face_detector, ScanOptions(**options))

    return make


def scan_one(scanner, path: str) -> VideoResult:
    return scan_paths(scanner, [path])[path]


# --- the "done when" check --------------------------------------------------------------------


def test_a_small_face_seen_now_and_then_is_reported_and_the_presenter_judged(
    counting_scanner, clips
) -> None:
    scanner = counting_scanner(details=True)
    result = scan_one(scanner, clips["small face now and then.mp4"])

    assert result.status == "ok"
    presenter, on_screen = result.persons
    # The presenter: judged, in every frame, and the video's score is theirs alone.
    assert presenter.judged and presenter.reason is None
    assert presenter.frames == result.frames_used == CLIP_FRAMES
    assert presenter.face_px == pytest.approx(PRESENTER_FACE_PX, abs=8)
    assert result.fake_probability == presenter.fake_probability
    assert result.verdict == presenter.verdict
    # The face on the screen: found in 2 of 12 frames (under a quarter), so not judged, and
    # with no score: its crops are not even given to the model.
    assert not on_screen.judged and on_screen.reason == REASON_TOO_FEW_FRAMES
    assert on_screen.frames == 2
    assert on_screen.face_px == pytest.approx(SMALL_FACE_PX, abs=5)
    assert on_screen.fake_probability is None and on_screen.verdict is None
    assert scanner.scorer.crops_scored == CLIP_FRAMES
    assert {face.person for frame in result.frames for face in frame.faces} == {0}
    # Recorded: the rule it was judged by, and why the other person was not judged.
    data = result.to_dict()
    assert data["schema_version"] == SCHEMA_VERSION
    assert (data["min_face_px"], data["min_presence"]) == (20, DEFAULT_MIN_PRESENCE)
    assert data["persons"][1]["judged"] is False
    assert data["persons"][1]["reason"] == "too_few_frames"


def test_the_same_clip_without_the_small_face_gets_the_same_verdict(
    counting_scanner, clips
) -> None:
    with_small_face = scan_one(counting_scanner(), clips["small face now and then.mp4"])
    without = scan_one(counting_scanner(), clips["presenter.mp4"])
    assert [person.judged for person in without.persons] == [True]
    assert with_small_face.verdict == without.verdict
    assert with_small_face.fake_probability == pytest.approx(without.fake_probability)


def test_a_face_below_min_face_is_too_small_however_often_it_is_seen(
    counting_scanner, clips
) -> None:
    scanner = counting_scanner(min_face_px=MIN_FACE_BETWEEN)
    result = scan_one(scanner, clips["small face always.mp4"])
    presenter, on_screen = result.persons
    assert presenter.judged
    assert on_screen.frames == CLIP_FRAMES  # seen in every frame...
    assert not on_screen.judged and on_screen.reason == REASON_FACE_TOO_SMALL  # ...too small
    assert result.fake_probability == presenter.fake_probability
    assert scanner.scorer.crops_scored == CLIP_FRAMES
    assert result.min_face_px == MIN_FACE_BETWEEN


def test_with_both_limits_at_zero_every_face_is_judged_as_before(counting_scanner, clips) -> None:
    scanner = counting_scanner(min_face_px=0, min_presence=0.0)
    result = scan_one(scanner, clips["small face now and then.mp4"])
    assert [(person.judged, person.frames) for person in result.persons] == [
        (True, CLIP_FRAMES),
        (True, 2),
    ]
    assert scanner.scorer.crops_scored == CLIP_FRAMES + 2
    assert result.fake_probability == max(person.fake_probability for person in result.persons)


def test_a_video_whose_only_face_is_too_small_gets_no_verdict_and_says_why(
    counting_scanner, clips
) -> None:
    scanner = counting_scanner(min_face_px=MIN_FACE_BETWEEN, details=True)
    result = scan_one(scanner, clips["small face only.mp4"])
    assert result.status == "no_face" and result.error is None
    assert result.verdict is None and result.fake_probability is None
    assert result.frames_used == 0
    (small,) = result.persons
    assert not small.judged and small.reason == REASON_FACE_TOO_SMALL
    assert small.frames == CLIP_FRAMES and small.fake_probability is None
    assert scanner.scorer.crops_scored == 0
    assert [frame.faces for frame in result.frames] == [[]] * CLIP_FRAMES
    # With the demo-sized model's own default (20 px), the same face is judged.
    assert scan_one(counting_scanner(), clips["small face only.mp4"]).status == "ok"


def test_the_default_min_face_comes_from_the_models_input_size(counting_scanner) -> None:
    # The tiny test model's input is 64 px: it enlarges no face of 20 px much (see
    # aggregate.default_min_face_px; 49 px for a 380 px model).
    assert counting_scanner().options.min_face_px == 20
    assert counting_scanner(min_face_px=64).options.min_face_px == 64
    assert counting_scanner().options.min_presence == DEFAULT_MIN_PRESENCE


# --- the command line -------------------------------------------------------------------------


def test_cli_options_no_verdict_exit_0_and_the_table_says_why(clips, tiny_weights: Path) -> None:
    path = clips["small face only.mp4"]
    common = ["--weights", str(tiny_weights), "--frames", str(CLIP_FRAMES)]
    common += ["--min-face", str(MIN_FACE_BETWEEN), "--min-presence", "0.5"]
    as_jsonl = invoke([path, *common, "--format", "jsonl"])
    assert as_jsonl.exit_code == 0, as_jsonl.output  # no_face is not an error
    record = json.loads(as_jsonl.stdout)
    assert record["status"] == "no_face" and record["verdict"] is None
    assert (record["min_face_px"], record["min_presence"]) == (MIN_FACE_BETWEEN, 0.5)
    assert [(person["judged"], person["reason"]) for person in record["persons"]] == [
        (False, "face_too_small")
    ]

    as_table = invoke([path, *common], env={"COLUMNS": "80", "NO_COLOR": "1"})
    assert as_table.exit_code == 0, as_table.output
    lines = as_table.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), as_table.stdout
    assert "NO FACE" in as_table.stdout
    file_cells = " ".join(line.split("│")[1].strip() for line in lines if line.startswith("│"))
    assert f"No face to judge: 1 face under {MIN_FACE_BETWEEN} px." in file_cells
