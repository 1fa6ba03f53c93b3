"""Compose the stages for one video and for a batch.

video -> frames (decord, in a killable worker that prefetches the next video) -> faces (MTCNN)
-> persons (IoU tracks) -> crops (the shared crop function, at the size and margin the
weights ask for) -> fake probabilities (batched detector) -> verdict (named aggregation).
A video that cannot be read gets status `error`, one without a face `no_face`: never a score.

Importing this module does not import torch: the CLI imports it to check options, which should
fail in a moment, and `run_scan` must choose OpenMP's settings before torch loads OpenMP. The
torch-backed stages (faces, crops, scoring) are imported where they are first used.
"""

from __future__ import annotations

import fnmatch
import logging
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from deepfake_cli.aggregate import check_strategy, video_verdict
from deepfake_cli.device import prefer_passive_openmp, resolve_device
from deepfake_cli.errors import MattnError, UsageError
from deepfake_cli.frame_reader import FrameReader
from deepfake_cli.results import FaceScore, FrameRecord, VideoResult
from deepfake_cli.shards import in_shard, parse_shard
from deepfake_cli.video import VIDEO_EXTENSIONS, SampledFrames

if TYPE_CHECKING:
    from deepfake_cli.faces import FaceDetector
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


class VideoScanner:
    """Holds the models (loaded once) and scans videos one after another."""

    def __init__(
        self, scorer: FaceScorer, face_detector: FaceDetector, options: ScanOptions
    ) -> None:
        self.scorer = scorer
        self.face_detector = face_detector
        if options.threshold is None:
            options = replace(options, threshold=scorer.decision_threshold)
        self.options = options
        self.model = scorer.model_info
        preprocessing = scorer.preprocessing
        self.crop_geometry = preprocessing.crop_geometry

    def failed(self, path: str, message: str, started: float) -> VideoResult:
        """The result for a video that could not be scanned, `message` saying why."""
        return VideoResult.failed(
            path,
            message,
            threshold=self.options.threshold,
            aggregate=self.options.aggregate,
            model=self.model,
            seconds=time.perf_counter() - started,
        )

    def judge(self, path: str, sampled: SampledFrames, started: float) -> VideoResult:
        """Faces, crops, scores and verdict for frames already decoded."""
        from deepfake_cli.crops import crop_tracks
        from deepfake_cli.faces import link_tracks

        options = self.options
        detections = self.face_detector.detect(sampled.frames)
        tracks = link_tracks(detections, max_faces=options.max_faces)
        # One crop per (person, frame) with the crop function training uses.
        track_crops = crop_tracks(sampled.frames, tracks, self.crop_geometry)
        keys = track_crops.keys  # (person_id, frame position)
        frames_record = None
        if not keys:
            if options.details:
                frames_record = [
                    FrameRecord(index=index, time_s=time_s, faces=[])
                    for index, time_s in zip(sampled.frame_indices, sampled.times_s, strict=True)
                ]
            return VideoResult.no_face(
                path,
                threshold=options.threshold,
                aggregate=options.aggregate,
                model=self.model,
                seconds=time.perf_counter() - started,
                frames=frames_record,
            )
        fake_probability = self.scorer.score(track_crops.crops)  # (num_crops,)

        per_person: dict[int, list[float]] = {}
        for (person_id, _position), probability in zip(keys, fake_probability, strict=True):
            per_person.setdefault(person_id, []).append(float(probability))
        persons, video_probability, verdict = video_verdict(
            per_person, strategy=options.aggregate, threshold=options.threshold
        )
        if options.details:
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
            frames_record = [
                FrameRecord(index=index, time_s=time_s, faces=faces_by_position.get(position, []))
                for position, (index, time_s) in enumerate(
                    zip(sampled.frame_indices, sampled.times_s, strict=True)
                )
            ]
        return VideoResult(
            path=path,
            status="ok",
            error=None,
            verdict=verdict,
            fake_probability=video_probability,
            threshold=options.threshold,
            aggregate=options.aggregate,
            frames_used=len({position for _person, position in keys}),
            model=self.model,
            persons=persons,
            seconds=time.perf_counter() - started,
            frames=frames_record,
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
        """`judge`, with any failure turned into an error result: one file never stops a batch."""
        try:
            return self.judge(path, sampled, started)
        except MattnError as error:
            return self.failed(path, error.message, started)
        except Exception as error:  # a bug met on one file must not cost the rest of the batch
            return self.failed(path, _internal_error_message(path, error), started)


def _internal_error_message(path: str, error: Exception) -> str:
    """One sentence for an error mattn did not foresee; the traceback goes to the debug log."""
    logger.debug("scanning %s failed", path, exc_info=error)
    lines = str(error).strip().splitlines()
    detail = f"{type(error).__name__}: {lines[0].rstrip('.')}" if lines else type(error).__name__
    return f"Scanning '{path}' failed with an internal error ({detail}); please report it."


# --- which files a batch scans -------------------------------------------------------------


def expand_inputs(
    arguments: Iterable[str], *, glob: str | None = None, stdin: Iterable[str] | None = None
) -> tuple[list[str], list[tuple[str, str]]]:
    """Arguments (files, folders, `-` for paths on stdin) -> (video paths, problems).

    Folders are searched recursively for video extensions (or `glob`). Problems are
    (argument, one-sentence reason) pairs, reported as error results so the batch goes on.
    """
    videos: list[str] = []
    problems: list[tuple[str, str]] = []
    for argument in arguments:
        if argument == "-":
            lines = stdin if stdin is not None else sys.stdin
            videos.extend(line.strip() for line in lines if line.strip())
            continue
        path = Path(argument)
        if path.is_dir():
            found = sorted(
                str(candidate)
                for candidate in path.rglob("*")
                if candidate.is_file() and _matches(candidate, glob)
            )
            if not found:
                wanted = f"files matching {glob!r}" if glob else "video files"
                problems.append((argument, f"Folder {argument} contains no {wanted}."))
            videos.extend(found)
        else:
            videos.append(argument)
    # Each video once, in the order given.
    return list(dict.fromkeys(videos)), problems


def _matches(path: Path, glob: str | None) -> bool:
    if glob:
        return fnmatch.fnmatch(path.name, glob)
    return path.suffix.lower() in VIDEO_EXTENSIONS


def missing_file_reason(path: str) -> str | None:
    """A sentence for inputs that are not files at all, decided before decoding."""
    candidate = Path(path)
    # Worded as the decoding stage words its errors, so every error reads the same way.
    if not candidate.exists():
        return f"Cannot read video '{path}': the file does not exist."
    if not candidate.is_file():
        return f"Cannot read video '{path}': it is not a regular file."
    return None


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
