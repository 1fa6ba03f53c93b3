"""Judging several videos at once (`--video-batch`) gives each the result it gets alone.

One MTCNN call over the frames of every video of a group and one detector call over all their
crops must change nothing a user sees: same order, statuses, persons, boxes, and scores within
1e-6 (fp32 on the CPU). The media are test_scan's (tiny clips made with OpenCV), the model a
random B0 at 64 px.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from deepfake_cli.faces import FaceDetector
from deepfake_cli.frame_reader import FrameReader
from deepfake_cli.model.weights import load_detector
from deepfake_cli.results import VideoResult
from deepfake_cli.scan import ScanOptions, VideoScanner
from deepfake_cli.scoring import FaceScorer
from tests.test_scan import SAMPLED, UNICODE_NAME, make_media

# Every kind of outcome, mixed: one person, two, none, frames of other sizes (portrait,
# rotated, one frame), and files that fail while decoding, in the middle and at the start.
NAMES = [
    "corrupted.mp4",
    "clip.mp4",
    "two people.mp4",
    "no face.mp4",
    "truncated.mp4",
    "portrait.mp4",
    "one frame.mp4",
    "clip.avi",
    "rotated.mp4",
    UNICODE_NAME,
]
TOLERANCE = 1e-6


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    media = make_media(tmp_path_factory.mktemp("media"))
    return [str(media[name]) for name in NAMES]


@pytest.fixture(scope="module")
def scorer(tiny_weights: Path) -> FaceScorer:
    return FaceScorer(load_detector(tiny_weights), precision="fp32")


class RecordingDetector:
    """A FaceDetector that records how many frames each `detect` call was given."""

    def __init__(self, detector: FaceDetector) -> None:
        self.detector = detector
        self.frames_per_call: list[int] = []

    def detect(self, frames):
        self.frames_per_call.append(len(frames))
        return self.detector.detect(frames)


class RecordingScorer:
    """A scorer that records how many crops each `score` call was given."""

    def __init__(self, scorer: FaceScorer) -> None:
        self.scorer = scorer
        self.crops_per_call: list[int] = []

    def __getattr__(self, name: str):
        return getattr(self.scorer, name)

    def score(self, crops: np.ndarray) -> np.ndarray:
        self.crops_per_call.append(len(crops))
        return self.scorer.score(crops)


@pytest.fixture(scope="module")
def face_detector() -> FaceDetector:
    return FaceDetector()


def scan(scanner: VideoScanner, paths: list[str], workers: int = 1) -> list[VideoResult]:
    with FrameReader(timeout_s=60.0, workers=workers) as reader:
        results = list(scanner.scan_many(paths, reader))
    assert [result.path for result in results] == paths  # nothing lost, nothing reordered
    return results


@pytest.fixture(scope="module")
def one_at_a_time(scorer, face_detector, paths) -> list[VideoResult]:
    scanner = VideoScanner(scorer, face_detector, ScanOptions(frames=SAMPLED, details=True))
    return scan(scanner, paths)


def assert_same_results(grouped: list[VideoResult], alone: list[VideoResult]) -> None:
    for together, by_itself in zip(grouped, alone, strict=True):
        path = by_itself.path
        assert together.status == by_itself.status, path
        assert together.error == by_itself.error, path
        assert together.verdict == by_itself.verdict, path
        assert together.decode == by_itself.decode, path
        assert together.frames_used == by_itself.frames_used, path
        if by_itself.fake_probability is None:
            assert together.fake_probability is None, path
        else:
            assert abs(together.fake_probability - by_itself.fake_probability) <= TOLERANCE, path
        assert len(together.persons) == len(by_itself.persons), path
        for person, alone_person in zip(together.persons, by_itself.persons, strict=True):
            assert (person.id, person.frames, person.judged, person.reason) == (
                alone_person.id,
                alone_person.frames,
                alone_person.judged,
                alone_person.reason,
            ), path
            assert person.face_px == pytest.approx(alone_person.face_px, abs=1e-3), path
            if alone_person.fake_probability is not None:
                assert abs(person.fake_probability - alone_person.fake_probability) <= TOLERANCE
        assert (together.frames is None) == (by_itself.frames is None), path
        for frame, alone_frame in zip(together.frames or [], by_itself.frames or [], strict=True):
            assert (frame.index, frame.time_s) == (alone_frame.index, alone_frame.time_s), path
            assert [face.person for face in frame.faces] == [
                face.person for face in alone_frame.faces
            ], path
            for face, alone_face in zip(frame.faces, alone_frame.faces, strict=True):
                assert face.box == pytest.approx(alone_face.box, abs=1e-3), path
                assert abs(face.fake_probability - alone_face.fake_probability) <= TOLERANCE


def test_the_examples_cover_every_outcome(one_at_a_time) -> None:
    statuses = {result.status for result in one_at_a_time}
    assert statuses == {"ok", "no_face", "error"}
    assert max(len(result.persons) for result in one_at_a_time) == 2


@pytest.mark.parametrize("video_batch", [3, len(NAMES)])
def test_videos_judged_together_get_the_results_they_get_alone(
    scorer, face_detector, paths, one_at_a_time, video_batch: int
) -> None:
    detector = RecordingDetector(face_detector)
    recording_scorer = RecordingScorer(scorer)
    options = ScanOptions(frames=SAMPLED, details=True)
    scanner = VideoScanner(recording_scorer, detector, options, video_batch=video_batch)
    grouped = scan(scanner, paths, workers=2)
    assert_same_results(grouped, one_at_a_time)
    # It was done together: MTCNN over the frames of several videos, the detector over their
    # crops, one call per group (8 videos decode; groups of 3 make 3 calls, of 10 one).
    decoded = [result for result in one_at_a_time if result.decode is not None]
    groups = -(-len(decoded) // video_batch)
    assert len(detector.frames_per_call) == groups
    assert sum(detector.frames_per_call) == sum(len(result.frames) for result in decoded)
    assert max(detector.frames_per_call) > SAMPLED
    assert len(recording_scorer.crops_per_call) <= groups
    assert sum(recording_scorer.crops_per_call) == sum(
        len(frame.faces) for result in decoded for frame in result.frames
    )


def test_overlapped_scoring_gets_the_same_results(
    scorer, face_detector, paths, one_at_a_time
) -> None:
    """The CUDA pipeline (the detector in a thread while the next group is prepared), on the CPU."""
    options = ScanOptions(frames=SAMPLED, details=True)
    scanner = VideoScanner(scorer, face_detector, options, video_batch=2)
    assert not scanner.overlap_scoring  # never on the CPU by default
    scanner.overlap_scoring = True
    assert_same_results(scan(scanner, paths, workers=2), one_at_a_time)


def test_a_failure_in_a_group_costs_only_its_video(
    scorer, face_detector, paths, one_at_a_time
) -> None:
    class FailsOnPortraits(RecordingDetector):
        def detect(self, frames):
            if any(frame.shape[:2] == (200, 120) for frame in frames):
                raise RuntimeError("cannot take portraits")
            return super().detect(frames)

    options = ScanOptions(frames=SAMPLED, details=True)
    for overlap in (False, True):
        scanner = VideoScanner(
            scorer, FailsOnPortraits(face_detector), options, video_batch=len(NAMES)
        )
        scanner.overlap_scoring = overlap
        results = scan(scanner, paths)
        for result, alone in zip(results, one_at_a_time, strict=True):
            if Path(result.path).name in ("portrait.mp4", "rotated.mp4"):  # upright: 120x200
                assert result.status == "error" and "cannot take portraits" in result.error
                assert result.decode == alone.decode
            else:
                assert_same_results([result], [alone])


def test_a_group_the_scorer_cannot_take_is_scored_video_by_video(
    scorer, face_detector, paths, one_at_a_time
) -> None:
    class FailsOnLargeCalls(RecordingScorer):
        def score(self, crops: np.ndarray) -> np.ndarray:
            self.crops_per_call.append(len(crops))
            if len(crops) > 2 * SAMPLED:  # more than one video's crops
                raise RuntimeError("out of memory")
            return self.scorer.score(crops)

    options = ScanOptions(frames=SAMPLED, details=True)
    for overlap in (False, True):
        failing_scorer = FailsOnLargeCalls(scorer)
        scanner = VideoScanner(failing_scorer, face_detector, options, video_batch=len(NAMES))
        scanner.overlap_scoring = overlap
        assert_same_results(scan(scanner, paths), one_at_a_time)
        assert max(failing_scorer.crops_per_call) > 2 * SAMPLED  # the group was tried first


def test_frames_in_flight_are_bounded(scorer, face_detector, paths) -> None:
    """Videos are taken lazily: the group being judged plus max(workers, video_batch) ahead."""
    taken: list[str] = []

    def lazy_paths():
        for path in paths:
            taken.append(path)
            yield path

    video_batch, workers = 2, 2
    scanner = VideoScanner(
        scorer, face_detector, ScanOptions(frames=SAMPLED), video_batch=video_batch
    )
    with FrameReader(timeout_s=60.0, workers=workers) as reader:
        for position, result in enumerate(scanner.scan_many(lazy_paths(), reader)):
            assert result.path == paths[position]
            # This video's group (up to video_batch, failed decodes aside) and the ones ahead.
            assert len(taken) <= position + 2 * video_batch + max(workers, video_batch)
            if position == 0:
                assert len(taken) < len(paths)


def test_scanner_options_are_checked(scorer, face_detector) -> None:
    from deepfake_cli.errors import UsageError

    with pytest.raises(UsageError, match="--video-batch must be at least 1"):
        VideoScanner(scorer, face_detector, ScanOptions(), video_batch=0)
    with pytest.raises(UsageError, match="--decode-workers must be at least 1"):
        VideoScanner(scorer, face_detector, ScanOptions(), decode_workers=0)
