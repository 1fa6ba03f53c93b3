"""Compose the stages for one video and for a batch.

video -> frames (exact: decord or PyAV, in a killable worker that prefetches) -> faces (MTCNN)
-> persons (tracks; those too small or too briefly seen to judge are set aside with a reason)
-> crops (the shared crop function, at the size and margin the weights ask for) -> fake
probabilities (batched detector) -> verdict (named aggregation, over judged persons only).
A video that cannot be read gets status `error`, one without a face to judge `no_face`: never
a score.

Importing this module does not import torch: the CLI imports it to check options, which should
fail in a moment, and `run_scan` must choose OpenMP's settings before torch loads OpenMP. The
torch-backed stages (faces, crops, scoring) are imported where they are first used.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from deepfake_cli.aggregate import (
    DEFAULT_MIN_PRESENCE,
    JudgingRule,
    SeenPerson,
    check_strategy,
    default_min_face_px,
    video_verdict,
)
from deepfake_cli.device import prefer_passive_openmp, resolve_device
from deepfake_cli.errors import MattnError, UsageError
from deepfake_cli.frame_reader import FrameReader
from deepfake_cli.inputs import expand_inputs, missing_file_reason
from deepfake_cli.results import FaceScore, FrameRecord, VideoResult
from deepfake_cli.shards import in_shard, parse_shard
from deepfake_cli.video import SampledFrames

if TYPE_CHECKING:
    from deepfake_cli.faces import FaceDetector, Track
    from deepfake_cli.scoring import FaceScorer

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


class VideoScanner:
    """Holds the models (loaded once) and scans videos one after another."""

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

    def judge(self, path: str, sampled: SampledFrames, started: float) -> VideoResult:
        """Faces, persons, crops, scores and verdict for frames already decoded."""
        from deepfake_cli.crops import crop_tracks
        from deepfake_cli.faces import link_tracks

        options = self.options
        detections = self.face_detector.detect(sampled.frames)
        tracks = link_tracks(detections, max_faces=options.max_faces)
        # Which persons the model can judge; the others are reported, and their crops are not
        # scored (a score for a face too small or too briefly seen would be made up).
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
        keys = track_crops.keys  # (person_id, frame position)
        fake_probability = self.scorer.score(track_crops.crops) if keys else []  # (num_crops,)
        frames_record = (
            _frame_records(sampled, tracks, keys, fake_probability) if options.details else None
        )
        if not keys:
            seconds = time.perf_counter() - started
            return VideoResult.no_face(
                path, seconds=seconds, frames=frames_record, persons=unjudged, **self.judged_by
            )

        per_person: dict[int, list[float]] = {}
        for (person_id, _position), probability in zip(keys, fake_probability, strict=True):
            per_person.setdefault(person_id, []).append(float(probability))
        persons, video_probability, verdict = video_verdict(
            per_person,
            strategy=options.aggregate,
            threshold=options.threshold,
            face_px={person.id: person.face_px for person in seen},
            unjudged=unjudged,
        )
        return VideoResult(
            path=path,
            status="ok",
            error=None,
            verdict=verdict,
            fake_probability=video_probability,
            frames_used=len({position for _person, position in keys}),
            persons=persons,
            seconds=time.perf_counter() - started,
            frames=frames_record,
            **self.judged_by,
        )

    def scan_many(
        self, paths: Iterable[str], reader: FrameReader | None = None
    ) -> Iterator[VideoResult]:
        """Scan videos in order; the next video decodes in the worker while this one is judged.

        `reader` lets the caller start the decoding worker early (it starts while the models
        load); without it one is opened here and closed at the end.
        """
        if reader is None:
            with FrameReader(timeout_s=self.options.timeout_s) as own_reader:
                yield from self.scan_many(paths, own_reader)
            return
        options = self.options
        # Lazily, one video ahead: the next video decodes in the worker while this one is judged.
        decoding = reader.read_ahead(
            paths, count=options.frames, start_s=options.start_s, end_s=options.end_s
        )
        for path, pending in decoding:
            started = time.perf_counter()
            try:
                sampled = pending.result()
            except MattnError as error:
                yield self.failed(path, error.message, started)
                continue
            except Exception as error:  # one file's failure must not cost the rest of the batch
                yield self.failed(path, _internal_error_message(path, error), started)
                continue
            yield self.judge_safely(path, sampled, started)

    def judge_safely(self, path: str, sampled: SampledFrames, started: float) -> VideoResult:
        """`judge`, with any failure turned into an error result: one file never stops a batch.

        Every result of decoded frames says how they were decoded (`VideoResult.decode`).
        """
        try:
            result = self.judge(path, sampled, started)
        except MattnError as error:
            result = self.failed(path, error.message, started)
        except Exception as error:  # a bug met on one file must not cost the rest of the batch
            result = self.failed(path, _internal_error_message(path, error), started)
        result.decode = sampled.decode
        return result


def _frame_records(
    sampled: SampledFrames,
    tracks: list[Track],
    keys: list[tuple[int, int]],
    fake_probability: Sequence[float],
) -> list[FrameRecord]:
    """`--details`: every sampled frame with the faces scored in it (judged persons only)."""
    faces_by_position: dict[int, list[FaceScore]] = {}
    for (person_id, position), probability in zip(keys, fake_probability, strict=True):
        detection = tracks[person_id].detections[position]
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
            zip(sampled.frame_indices, sampled.times_s, strict=True)
        )
    ]


def _internal_error_message(path: str, error: Exception) -> str:
    """One sentence for an error mattn did not foresee; the traceback goes to the debug log."""
    logger.debug("scanning %s failed", path, exc_info=error)
    lines = str(error).strip().splitlines()
    detail = f"{type(error).__name__}: {lines[0].rstrip('.')}" if lines else type(error).__name__
    return f"Scanning '{path}' failed with an internal error ({detail}); please report it."


def scan_batch(
    scanner: VideoScanner,
    paths: list[str],
    problems: list[tuple[str, str]],
    on_result: Callable[[VideoResult], None],
    reader: FrameReader | None = None,
) -> None:
    """Scan every path, reporting each result through `on_result` (one bad file never stops it)."""
    for argument, reason in problems:
        on_result(scanner.failed(argument, reason, time.perf_counter()))
    readable = []
    for path in paths:
        reason = missing_file_reason(path)
        if reason:
            on_result(scanner.failed(path, reason, time.perf_counter()))
        else:
            readable.append(path)
    for result in scanner.scan_many(readable, reader):
        on_result(result)


# --- the whole `mattn scan` ------------------------------------------------------------------


@dataclass(frozen=True)
class ScanRequest:
    """Everything `mattn scan` was asked to do."""

    inputs: tuple[str, ...]
    options: ScanOptions
    # Also scan the example clips shipped in the package (`mattn scan --example`).
    example: bool = False
    weights: Path | None = None
    device: str = "auto"
    precision: str = "auto"
    batch_size: int | None = None
    # "auto" (onnxruntime for an .onnx file, else torch), "torch" or "onnxruntime".
    backend: str = "auto"
    # torch.compile the detector (pays off over hundreds of faces; see docs/model.md).
    compile: bool = False
    output_format: str = "table"
    output: Path | None = None
    resume: bool = False
    shard: str | None = None
    glob: str | None = None
    quiet: bool = False
    # Self-contained HTML reports (and raw attention maps) written after the scan.
    report_dir: Path | None = None
    save_attention_dir: Path | None = None

    @property
    def output_details(self) -> bool:
        """Per-frame records in the output: asked for, not merely needed by the report."""
        return self.options.details


def run_scan(request: ScanRequest) -> int:
    """Scan every input and write the results; returns the exit code (0, 1 or 2)."""
    prefer_passive_openmp()
    # Imported here: loading torch and the models is only worth it once options are valid.
    from rich.console import Console

    from deepfake_cli.aggregate import exit_code_for
    from deepfake_cli.faces import FaceDetector
    from deepfake_cli.model.weights import resolve_weights_path
    from deepfake_cli.progress import ScanProgress
    from deepfake_cli.report import completed_paths, open_sink, read_results
    from deepfake_cli.scoring import check_scoring_options, open_scorer, resolve_backend

    if request.save_attention_dir is not None and request.report_dir is None:
        raise UsageError("--save-attention needs --report DIR.")
    if request.report_dir is not None:
        from deepfake_cli.report.html import prepare_folder

        prepare_folder(request.report_dir, "the report")  # fail before the scan, not after
    shard = parse_shard(request.shard)
    device = resolve_device(request.device)
    # Before the model loads: a usage error should not take seconds.
    check_scoring_options(device, request.precision, request.batch_size)
    weights_path = resolve_weights_path(request.weights)
    backend = resolve_backend(request.backend, weights_path, device, request.precision)
    if backend != "torch" and request.report_dir is not None:
        raise UsageError("--report needs the torch backend (it draws the attention maps).")
    inputs = request.inputs
    if request.example:
        from deepfake_cli.bundled import examples_dir

        inputs += (str(examples_dir()),)
    if not inputs:
        raise UsageError("Nothing to scan: give video files, folders or - (or --example).")
    paths, problems = expand_inputs(inputs, glob=request.glob)
    paths = [path for path in paths if in_shard(path, shard)]
    problems = [problem for problem in problems if in_shard(problem[0], shard)]
    previous = []
    if request.resume and request.output is not None and request.output.exists():
        done = completed_paths(request.output)
        previous = [result for result in read_results(request.output) if result.path in done]
        paths = [path for path in paths if path not in done]
        problems = [problem for problem in problems if problem[0] not in done]

    # Open the sink before loading models: an unwritable --output fails in a second.
    sink = open_sink(
        request.output_format,
        request.output,
        details=request.output_details,
        resume=request.resume,
    )
    # The report needs every frame's boxes and scores, even when the output does not show them.
    options = request.options
    if request.report_dir is not None and not options.details:
        options = replace(options, details=True)
    # The decoding worker starts now, so its start-up overlaps loading the models.
    with sink, FrameReader(timeout_s=request.options.timeout_s) as reader:
        scorer = open_scorer(
            weights_path,
            backend=backend,
            device=device,
            precision=request.precision,
            batch_size=request.batch_size,
            compile=request.compile,
        )
        scanner = VideoScanner(scorer, FaceDetector(device=device), options)
        results = []
        progress_console = Console(stderr=True)
        show_progress = not request.quiet and progress_console.is_terminal
        with ScanProgress(len(paths) + len(problems), progress_console, show_progress) as progress:

            def on_result(result: VideoResult) -> None:
                results.append(result)
                sink.write(result)
                progress.advance(result.path)

            scan_batch(scanner, paths, problems, on_result, reader)
    if request.report_dir is not None:
        from deepfake_cli.report.html import write_reports

        index_path = write_reports(
            previous + results,
            request.report_dir,
            model=scorer.model,
            save_attention_dir=request.save_attention_dir,
        )
        if not request.quiet:
            progress_console.print(f"Report: {index_path}", markup=False, highlight=False)
    return exit_code_for(previous + results)
