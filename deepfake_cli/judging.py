"""Judging decoded videos, one or several at a time: faces, persons, crops, scores, verdicts.

`VideoJudge` holds the models and the rules. It judges a group of decoded videos in three
steps, so that a GPU gets large batches and the host's work can overlap it:

1. `prepare_group`: MTCNN over the frames of every video of the group in one call
   (`FaceDetector.detect` groups frames of any size by detection size), then per video the
   tracks, which persons can be judged, and one crop per (judged person, frame);
2. the detector over the crops of the whole group in one `score` call;
3. `finish_group`: each video's share of the scores -> its persons and verdict.

Judging a group gives each video the result it gets alone (`judge` is the group of one), up to
floating-point differences between batch compositions. A failure in a group's shared step is
retried video by video, so one file's problem never costs the other files of its group.

Like `scan`, importing this module does not import torch; faces, crops and scoring are imported
where they are first used.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from deepfake_cli.aggregate import (
    DEFAULT_MIN_PRESENCE,
    JudgingRule,
    SeenPerson,
    check_strategy,
    default_min_face_px,
    video_verdict,
)
from deepfake_cli.errors import MattnError, UsageError
from deepfake_cli.results import DecodeInfo, FaceScore, FrameRecord, PersonResult, VideoResult
from deepfake_cli.video import SampledFrames

if TYPE_CHECKING:
    from deepfake_cli.faces import FaceDetector
    from deepfake_cli.scoring import FaceScorer
    from deepfake_cli.tracks import Track

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScanOptions:
    """What to sample and how to judge; one value per `mattn scan` option."""

    # Frames sampled evenly over the video (or over [start_s, end_s)).
    frames: int = 32
    start_s: float | None = None
    end_s: float | None = None
    # At most this many faces per frame are scored (largest first): bounds work on crowds.
    max_faces: int | None = 4
    # Frame -> video aggregation strategy (see aggregate.STRATEGIES) and decision threshold.
    aggregate: str = "mean"
    # None: the weights' calibrated threshold (`Provenance.decision_threshold`), else 0.5.
    threshold: float | None = None
    # Seconds a video may take to decode before it is given up as hung.
    timeout_s: float | None = 120.0
    # Include per-frame boxes and scores in the results.
    details: bool = False
    # Persons judged: face at least this many pixels (shorter side of the visible box; None:
    # the model's default, `aggregate.default_min_face_px`) and found in at least this share
    # of the sampled frames. The others are reported, not scored.
    min_face_px: int | None = None
    min_presence: float = DEFAULT_MIN_PRESENCE

    def __post_init__(self) -> None:
        check_strategy(self.aggregate)
        if self.frames < 1:
            raise UsageError("--frames must be at least 1.")
        if self.max_faces is not None and self.max_faces < 1:
            raise UsageError("--max-faces must be at least 1.")
        if self.timeout_s is not None and not self.timeout_s > 0:
            raise UsageError("--timeout must be a positive number of seconds.")
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise UsageError("--threshold must be between 0 and 1.")
        if self.start_s is not None and self.end_s is not None and self.end_s <= self.start_s:
            raise UsageError("--end must be after --start.")
        if self.min_face_px is not None and self.min_face_px < 0:
            raise UsageError("--min-face must be a number of pixels, 0 or more.")
        if not 0.0 <= self.min_presence <= 1.0:
            raise UsageError("--min-presence must be between 0 and 1.")


@dataclass
class DecodedVideo:
    """A video whose frames have been decoded, waiting to be judged."""

    path: str
    sampled: SampledFrames
    # perf_counter() when the scan began waiting for its frames: `seconds` counts from here.
    started: float


@dataclass
class PreparedVideo:
    """A video after faces, persons and crops, before scores; its frames are no longer held."""

    path: str
    started: float
    frame_indices: list[int]
    times_s: list[float]
    decode: DecodeInfo | None
    tracks: list[Track]
    seen: list[SeenPerson]
    unjudged: list[PersonResult]
    keys: list[tuple[int, int]]  # (person_id, frame position) of each crop
    crops: np.ndarray  # (len(keys), S, S, 3) uint8


class VideoJudge:
    """Holds the models (loaded once) and the rules; judges decoded videos."""

    def __init__(
        self, scorer: FaceScorer, face_detector: FaceDetector, options: ScanOptions
    ) -> None:
        self.scorer = scorer
        self.face_detector = face_detector
        preprocessing = scorer.preprocessing
        if options.threshold is None:
            options = replace(options, threshold=scorer.decision_threshold)
        if options.min_face_px is None:
            min_face_px = default_min_face_px(preprocessing.input_size, preprocessing.margin_ratio)
            options = replace(options, min_face_px=min_face_px)
        self.options = options
        self.judging = JudgingRule(options.min_face_px, options.min_presence)
        self.model = scorer.model_info
        self.crop_geometry = preprocessing.crop_geometry
        # What every result of this scanner records about how it judges.
        self.judged_by = {
            "threshold": options.threshold,
            "aggregate": options.aggregate,
            "model": self.model,
            "min_face_px": options.min_face_px,
            "min_presence": options.min_presence,
        }

    def failed(self, path: str, message: str, started: float) -> VideoResult:
        """The result for a video that could not be scanned, `message` saying why."""
        seconds = time.perf_counter() - started
        return VideoResult.failed(path, message, seconds=seconds, **self.judged_by)

    def failed_by(self, path: str, error: Exception, started: float) -> VideoResult:
        """The error result for `error` met while scanning `path`."""
        if isinstance(error, MattnError):
            return self.failed(path, error.message, started)
        return self.failed(path, internal_error_message(path, error), started)

    # -- one video ------------------------------------------------------------------------------

    def judge(self, path: str, sampled: SampledFrames, started: float) -> VideoResult:
        """Faces, persons, crops, scores and verdict for frames already decoded."""
        (prepared,) = self.prepare_group([DecodedVideo(path, sampled, started)])
        fake_probability = self.scorer.score(prepared.crops) if prepared.keys else []
        return self.finish(prepared, fake_probability)

    def judge_safely(self, path: str, sampled: SampledFrames, started: float) -> VideoResult:
        """`judge`, with any failure turned into an error result: one file never stops a batch.

        Every result of decoded frames says how they were decoded (`VideoResult.decode`).
        """
        try:
            result = self.judge(path, sampled, started)
        except Exception as error:  # a bug met on one file must not cost the rest of the batch
            result = self.failed_by(path, error, started)
        result.decode = sampled.decode
        return result

    # -- a group of videos ----------------------------------------------------------------------

    def prepare_group(self, videos: Sequence[DecodedVideo]) -> list[PreparedVideo]:
        """Faces (one MTCNN call over every frame of the group), persons and crops per video."""
        from deepfake_cli.crops import crop_tracks
        from deepfake_cli.tracks import link_tracks

        all_frames = [frame for video in videos for frame in video.sampled.frames]
        detections = self.face_detector.detect(all_frames)  # one list per frame, in order
        prepared = []
        first_frame = 0
        for video in videos:
            sampled = video.sampled
            video_detections = detections[first_frame : first_frame + len(sampled.frames)]
            first_frame += len(sampled.frames)
            tracks = link_tracks(video_detections, max_faces=self.options.max_faces)
            # Which persons the model can judge; the others are reported, and their crops are
            # not scored (a score for a face too small or too briefly seen would be made up).
            frame_sizes = [frame.shape[:2] for frame in sampled.frames]
            seen = [
                SeenPerson(track.person_id, len(track.detections), track.face_side_px(frame_sizes))
                for track in tracks
            ]
            unjudged = self.judging.unjudged_persons(seen, sampled_frames=len(frame_sizes))
            unjudged_ids = {person.id for person in unjudged}
            judged_tracks = [track for track in tracks if track.person_id not in unjudged_ids]
            # One crop per (person, frame) with the crop function training uses.
            track_crops = crop_tracks(sampled.frames, judged_tracks, self.crop_geometry)
            prepared.append(
                PreparedVideo(
                    path=video.path,
                    started=video.started,
                    frame_indices=list(sampled.frame_indices),
                    times_s=list(sampled.times_s),
                    decode=sampled.decode,
                    tracks=tracks,
                    seen=seen,
                    unjudged=unjudged,
                    keys=track_crops.keys,
                    crops=track_crops.crops,
                )
            )
        return prepared

    def prepare_group_safely(
        self, videos: Sequence[DecodedVideo]
    ) -> list[PreparedVideo | VideoResult]:
        """`prepare_group`; if it fails, each video alone, a failing one an error result."""
        try:
            return list(self.prepare_group(videos))
        except Exception:
            logger.debug("preparing a group of %d videos failed; one at a time", len(videos))
        prepared: list[PreparedVideo | VideoResult] = []
        for video in videos:
            try:
                (one,) = self.prepare_group([video])
                prepared.append(one)
            except Exception as error:
                result = self.failed_by(video.path, error, video.started)
                result.decode = video.sampled.decode
                prepared.append(result)
        return prepared

    def finish(self, prepared: PreparedVideo, fake_probability: Sequence[float]) -> VideoResult:
        """One video's persons and verdict from the scores of its crops (in `keys` order)."""
        options = self.options
        keys = prepared.keys
        frames_record = (
            _frame_records(prepared, keys, fake_probability) if options.details else None
        )
        if not keys:
            seconds = time.perf_counter() - prepared.started
            result = VideoResult.no_face(
                prepared.path,
                seconds=seconds,
                frames=frames_record,
                persons=prepared.unjudged,
                **self.judged_by,
            )
            result.decode = prepared.decode
            return result
        per_person: dict[int, list[float]] = {}
        for (person_id, _position), probability in zip(keys, fake_probability, strict=True):
            per_person.setdefault(person_id, []).append(float(probability))
        persons, video_probability, verdict = video_verdict(
            per_person,
            strategy=options.aggregate,
            threshold=options.threshold,
            face_px={person.id: person.face_px for person in prepared.seen},
            unjudged=prepared.unjudged,
        )
        return VideoResult(
            path=prepared.path,
            status="ok",
            error=None,
            verdict=verdict,
            fake_probability=video_probability,
            frames_used=len({position for _person, position in keys}),
            persons=persons,
            seconds=time.perf_counter() - prepared.started,
            frames=frames_record,
            decode=prepared.decode,
            **self.judged_by,
        )

    def finish_group(
        self,
        prepared: Sequence[PreparedVideo | VideoResult],
        fake_probability: np.ndarray | None,
        score: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> list[VideoResult]:
        """Results in order; `fake_probability` holds the scores of every crop of the group.

        None (the group's scoring failed) scores each video's crops alone instead, with `score`
        (None: the scorer's, here), so a video whose crops the scorer cannot take gets an error
        result and the others their verdicts.
        """
        score = score or self.scorer.score
        results = []
        first_crop = 0
        for item in prepared:
            if isinstance(item, VideoResult):
                results.append(item)
                continue
            first_crop += len(item.keys)
            try:
                if fake_probability is None:
                    scores = score(item.crops) if item.keys else []
                else:
                    scores = fake_probability[first_crop - len(item.keys) : first_crop]
                result = self.finish(item, scores)
            except Exception as error:
                result = self.failed_by(item.path, error, item.started)
                result.decode = item.decode
            results.append(result)
        return results

    def judge_group_safely(self, videos: Sequence[DecodedVideo]) -> list[VideoResult]:
        """Every video of the group judged together; results in order, never an exception."""
        prepared = self.prepare_group_safely(videos)
        try:
            fake_probability = self.score_group(prepared)
        except Exception:
            logger.debug("scoring a group of %d videos failed; one at a time", len(videos))
            fake_probability = None
        return self.finish_group(prepared, fake_probability)

    def score_group(self, prepared: Sequence[PreparedVideo | VideoResult]) -> np.ndarray:
        """(N,) fake probabilities of every crop of the group's prepared videos, in order."""
        crops = [item.crops for item in prepared if isinstance(item, PreparedVideo)]
        num_crops = sum(len(video_crops) for video_crops in crops)
        if num_crops == 0:
            return np.zeros((0,), dtype=np.float32)
        return self.scorer.score(np.concatenate(crops))  # (N, S, S, 3) -> (N,)


def _frame_records(
    prepared: PreparedVideo, keys: list[tuple[int, int]], fake_probability: Sequence[float]
) -> list[FrameRecord]:
    """`--details`: every sampled frame with the faces scored in it (judged persons only)."""
    faces_by_position: dict[int, list[FaceScore]] = {}
    for (person_id, position), probability in zip(keys, fake_probability, strict=True):
        detection = prepared.tracks[person_id].detections[position]
        faces_by_position.setdefault(position, []).append(
            FaceScore(
                person=person_id,
                box=[float(value) for value in detection.box_xyxy],
                det_prob=float(detection.det_prob),
                fake_probability=float(probability),
            )
        )
    return [
        FrameRecord(index=index, time_s=time_s, faces=faces_by_position.get(position, []))
        for position, (index, time_s) in enumerate(
            zip(prepared.frame_indices, prepared.times_s, strict=True)
        )
    ]


def internal_error_message(path: str, error: Exception) -> str:
    """One sentence for an error mattn did not foresee; the traceback goes to the debug log."""
    logger.debug("scanning %s failed", path, exc_info=error)
    lines = str(error).strip().splitlines()
    detail = f"{type(error).__name__}: {lines[0].rstrip('.')}" if lines else type(error).__name__
    return f"Scanning '{path}' failed with an internal error ({detail}); please report it."
