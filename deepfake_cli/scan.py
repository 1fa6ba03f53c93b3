"""Compose the stages for one video and for a batch.

video -> frames (exact: decord or PyAV, in killable workers that decode ahead) -> faces (MTCNN)
-> persons (tracks; those too small or too briefly seen to judge are set aside with a reason)
-> crops (the shared crop function, at the size and margin the weights ask for) -> fake
probabilities (batched detector) -> verdict (named aggregation, over judged persons only).
A video that cannot be read gets status `error`, one without a face to judge `no_face`: never
a score.

A batch is decoded by `--decode-workers` processes and judged `--video-batch` videos at a time
(`judging`: one MTCNN call over all their frames, one detector call over all their crops); on
CUDA the detector scores one group while the next group's faces are found and cut. Results
come out in input order whatever order the workers finish in.

Importing this module does not import torch: the CLI imports it to check options, which should
fail in a moment, and `run_scan` must choose OpenMP's settings before torch loads OpenMP. The
torch-backed stages (faces, crops, scoring) are imported where they are first used.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from deepfake_cli.device import prefer_passive_openmp, resolve_device
from deepfake_cli.errors import UsageError
from deepfake_cli.frame_reader import FrameReader, PendingFrames, open_frame_reader
from deepfake_cli.inputs import expand_inputs, missing_file_reason
from deepfake_cli.judging import DecodedVideo, PreparedVideo, ScanOptions, VideoJudge
from deepfake_cli.results import VideoResult
from deepfake_cli.shards import in_shard, parse_shard

if TYPE_CHECKING:
    import numpy as np
    import torch

    from deepfake_cli.faces import FaceDetector
    from deepfake_cli.scoring import FaceScorer

__all__ = ["ScanOptions", "ScanRequest", "VideoScanner", "run_scan", "scan_batch"]

#: `--video-batch` when not given, by device type (others: 1). On the CPU grouping gains
#: nothing (4 videos judged together took as long as one after another; benchmarks/
#: decode_workers.py --video-batches 1,4 measures a scan); on a GPU 8 videos of 32 frames give
#: the detector some 256 faces per call.
DEFAULT_VIDEO_BATCH = {"cpu": 1, "cuda": 8}

# A group in order: decoded videos to judge, and error results of videos that failed to decode.
_Group = list[DecodedVideo | VideoResult]


def default_video_batch(device_type: str) -> int:
    return DEFAULT_VIDEO_BATCH.get(device_type, 1)


def face_detector_for(backend: str, device: torch.device) -> FaceDetector:
    """MTCNN for a resolved scoring backend: on OpenVINO where OpenVINO scores (its networks
    ran 1.2x faster than torch's on 720p frames, boxes within 1e-4 px), else on torch."""
    from deepfake_cli.faces import FaceDetector

    return FaceDetector(device=device, runtime="openvino" if backend == "openvino" else "torch")


class VideoScanner(VideoJudge):
    """Holds the models (loaded once) and scans videos, `video_batch` judged at a time.

    `decode_workers` is how many decoding processes `scan_many` starts when it is not given a
    reader.
    """

    def __init__(
        self,
        scorer: FaceScorer,
        face_detector: FaceDetector,
        options: ScanOptions,
        *,
        video_batch: int = 1,
        decode_workers: int = 1,
    ) -> None:
        super().__init__(scorer, face_detector, options)
        if video_batch < 1:
            raise UsageError("--video-batch must be at least 1.")
        if decode_workers < 1:
            raise UsageError("--decode-workers must be at least 1.")
        self.video_batch = video_batch
        self.decode_workers = decode_workers
        # On CUDA the detector runs in a thread while this one finds the next group's faces
        # (the GPU queues both); on the CPU a second thread would only compete for the cores.
        scoring_device = getattr(scorer, "device", None)
        self.overlap_scoring = scoring_device is not None and scoring_device.type == "cuda"

    def scan_many(
        self, paths: Iterable[str], reader: FrameReader | None = None
    ) -> Iterator[VideoResult]:
        """Scan videos; the results come in the order of `paths`.

        The next videos decode in the reader's workers while these are judged: at most
        `max(workers, video_batch)` beyond the group being judged, so the frames held are
        those of at most `video_batch + max(workers, video_batch)` videos. `reader` lets the
        caller start the workers early (they start while the models load); without it they are
        started here and stopped at the end.
        """
        if reader is None:
            # The scan's one decode step (`open_frame_reader`): videos, and stills as one frame.
            own_reader = open_frame_reader(
                "cpu", timeout_s=self.options.timeout_s, workers=self.decode_workers
            )
            with own_reader as own:
                yield from self.scan_many(paths, own)
            return
        yield from self.judge_decoding(decode_ahead(reader, paths, self.options, self.video_batch))

    def judge_decoding(
        self, decoding: Iterable[tuple[str, PendingFrames]]
    ) -> Iterator[VideoResult]:
        """Judge videos as `decode_ahead` hands them out; the results come in its order."""
        groups = self._decoded_groups(decoding)
        if not self.overlap_scoring:
            for group in groups:
                yield from self._judge_group(group)
            return
        with ThreadPoolExecutor(1, thread_name_prefix="mattn-scoring") as scoring:
            previous = None
            for group in groups:
                started = self._start_group(group, scoring)
                if previous is not None:
                    yield from self._finish_started_group(*previous, scoring)
                previous = started
            if previous is not None:
                yield from self._finish_started_group(*previous, scoring)

    def _decoded_groups(self, decoding: Iterable[tuple[str, PendingFrames]]) -> Iterator[_Group]:
        """Groups of up to `video_batch` decoded videos, with failed decodes in their places.

        A failed decode with no decoded video before it in its group is its own group, so its
        result is written at once, as with one video at a time. The consumer takes a group's
        items out of the list (`_take`), so no reference left here keeps frames alive.
        """
        group: _Group = []
        decoded = 0
        for path, pending in decoding:
            started = time.perf_counter()
            try:
                group.append(DecodedVideo(path, pending.result(), started))
                decoded += 1
            except Exception as error:  # one file's failure must not cost the rest of the batch
                group.append(self.failed_by(path, error, started))
            del pending  # its future holds the frames too
            if decoded == self.video_batch or decoded == 0:
                yield group
                group, decoded = [], 0
        if group:
            yield group

    def _judge_group(self, group: _Group) -> list[VideoResult]:
        items = _take(group)
        videos = [item for item in items if isinstance(item, DecodedVideo)]
        if len(videos) == 1:
            (video,) = videos
            judged = [self.judge_safely(video.path, video.sampled, video.started)]
        else:
            judged = self.judge_group_safely(videos) if videos else []
        return _in_order(items, judged)

    def _start_group(
        self, group: _Group, scoring: ThreadPoolExecutor
    ) -> tuple[list[VideoResult | None], list[PreparedVideo | VideoResult], Future[np.ndarray]]:
        """Faces and crops of a group here, its scores started in `scoring`; frames let go.

        Returns the group's order (its decode failures, None where a decoded video was), what
        was prepared, and the scores to come.
        """
        items = _take(group)
        videos = [item for item in items if isinstance(item, DecodedVideo)]
        prepared = self.prepare_group_safely(videos) if videos else []
        order = [item if isinstance(item, VideoResult) else None for item in items]
        return order, prepared, scoring.submit(self.score_group, prepared)

    def _finish_started_group(
        self,
        order: list[VideoResult | None],
        prepared: list[PreparedVideo | VideoResult],
        scores: Future[np.ndarray],
        scoring: ThreadPoolExecutor,
    ) -> list[VideoResult]:
        try:
            fake_probability = scores.result()
        except Exception:  # retried video by video in finish_group
            fake_probability = None

        def score_in_scoring_thread(crops: np.ndarray) -> np.ndarray:
            # The scorer is used from one thread only, and that thread may be busy with the
            # next group: the retry waits its turn there.
            return scoring.submit(self.scorer.score, crops).result()

        finished = self.finish_group(prepared, fake_probability, score_in_scoring_thread)
        return _in_order(order, finished)


def decode_ahead(
    reader: FrameReader, paths: Sequence[str], options: ScanOptions, video_batch: int
) -> Iterator[tuple[str, PendingFrames]]:
    """Each path with its pending frames, in order, `max(workers, video_batch)` videos ahead.

    The first requests are sent now rather than when the first video is asked for, so that
    `mattn scan` decodes its first videos while the models load.
    """
    decoding = reader.read_ahead(
        paths,
        ahead=max(reader.workers, video_batch),
        count=options.frames,
        start_s=options.start_s,
        end_s=options.end_s,
    )
    first = next(decoding, None)  # sends the first `ahead + 1` requests
    if first is None:
        return iter(())
    return itertools.chain([first], decoding)


def _take(group: _Group) -> _Group:
    """The group's items, leaving the list empty: its frames live only as long as the caller's."""
    items = list(group)
    group.clear()
    return items


def _in_order(
    items: Sequence[DecodedVideo | VideoResult | None], judged: list[VideoResult]
) -> list[VideoResult]:
    """A group's results in input order: its decode failures and, in between, `judged`."""
    judged_results = iter(judged)
    return [item if isinstance(item, VideoResult) else next(judged_results) for item in items]


def scan_batch(
    scanner: VideoScanner,
    paths: list[str],
    problems: list[tuple[str, str]],
    on_result: Callable[[VideoResult], None],
    reader: FrameReader | None = None,
) -> None:
    """Scan every path, reporting each result through `on_result` (one bad file never stops it)."""
    readable, problems = readable_paths(paths, problems)
    report_problems(scanner, problems, on_result)
    for result in scanner.scan_many(readable, reader):
        on_result(result)


def readable_paths(
    paths: Sequence[str], problems: Sequence[tuple[str, str]]
) -> tuple[list[str], list[tuple[str, str]]]:
    """The paths that name a readable file, and `problems` with the others' reasons added."""
    readable, problems = [], list(problems)
    for path in paths:
        reason = missing_file_reason(path)
        if reason:
            problems.append((path, reason))
        else:
            readable.append(path)
    return readable, problems


def report_problems(
    scanner: VideoJudge,
    problems: Sequence[tuple[str, str]],
    on_result: Callable[[VideoResult], None],
) -> None:
    """An error result for each (argument, reason): inputs that were never a readable file."""
    for argument, reason in problems:
        on_result(scanner.failed(argument, reason, time.perf_counter()))


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
    # Decoding processes (None: `frame_reader.default_decode_workers`) and videos judged
    # together (None: `DEFAULT_VIDEO_BATCH` for the device).
    decode_workers: int | None = None
    video_batch: int | None = None
    # "auto" (onnxruntime for an .onnx file, else torch), "torch", "onnxruntime" or "openvino".
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
    if request.decode_workers is not None and request.decode_workers < 1:
        raise UsageError("--decode-workers must be at least 1.")
    if request.video_batch is not None and request.video_batch < 1:
        raise UsageError("--video-batch must be at least 1.")
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
    readable, problems = readable_paths(paths, problems)
    video_batch = request.video_batch or default_video_batch(device.type)
    # The decoding workers start now and decode the first videos while the models load.
    with (
        sink,
        open_frame_reader(
            device.type, timeout_s=request.options.timeout_s, workers=request.decode_workers
        ) as reader,
    ):
        decoding = decode_ahead(reader, readable, options, video_batch)
        scorer = open_scorer(
            weights_path,
            backend=backend,
            device=device,
            precision=request.precision,
            batch_size=request.batch_size,
            compile=request.compile,
        )
        scanner = VideoScanner(
            scorer,
            face_detector_for(backend, device),
            options,
            video_batch=video_batch,
            decode_workers=reader.workers,
        )
        results = []
        progress_console = Console(stderr=True)
        show_progress = not request.quiet and progress_console.is_terminal
        with ScanProgress(len(paths) + len(problems), progress_console, show_progress) as progress:

            def on_result(result: VideoResult) -> None:
                results.append(result)
                sink.write(result)
                progress.advance(result.path)

            report_problems(scanner, problems, on_result)
            for result in scanner.judge_decoding(decoding):
                on_result(result)
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
