"""Running the plan: in this process, or in a pool of worker processes.

Either way a fake starts only once its original has finished, so it can be given the
original's faces. `finish` is called with each video's outcome as soon as it is final.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import cv2

from deepfake_cli.datasets import VideoEntry
from deepfake_cli.device import set_torch_threads
from deepfake_cli.extract.plan import CropSettings, Plan, crop_folder_in_output
from deepfake_cli.extract.records import original_faces_from_record, read_record
from deepfake_cli.extract.video_crops import Outcome, VideoTask, extract_video
from deepfake_cli.faces import FaceDetector
from deepfake_cli.frame_reader import FrameReader
from deepfake_cli.stills import read_video_or_still


@dataclass(frozen=True)
class RunOptions:
    """What every worker needs besides the video itself; picklable."""

    settings: CropSettings
    output_dir: Path
    device: str
    timeout_s: float | None


def run_in_process(
    plan: Plan,
    done_ids: set[str],
    run_options: RunOptions,
    finish: Callable[[Outcome], None],
) -> None:
    """One detector here; the decoding worker reads the next video while this one is cropped.

    The plan's order puts every original before its fakes, so an original is done (or has
    failed) by the time its fakes come up.
    """
    to_do = [entry for entry in plan.entries if entry.video_id not in done_ids]
    if not to_do:
        return
    detector = FaceDetector(device=run_options.device)
    settings = run_options.settings
    with _frame_reader(run_options.timeout_s) as reader:
        # One video decodes ahead while this one is cropped.
        for entry, pending in reader.read_ahead(
            to_do,
            path_of=lambda entry: entry.video_path,
            count=settings.frames,
            every=settings.every,
        ):
            task = _task_for(entry, plan, done_ids, run_options)
            finish(extract_video(task, pending, detector, settings, run_options.output_dir))


def run_in_pool(
    plan: Plan,
    done_ids: set[str],
    run_options: RunOptions,
    workers: int,
    finish: Callable[[Outcome], None],
) -> None:
    """`workers` processes over videos; a fake is queued once its original has finished."""
    fakes_waiting: dict[str, list[VideoEntry]] = {}
    ready: deque[VideoEntry] = deque()
    for entry in plan.entries:
        if entry.video_id in done_ids:
            continue
        original_id = plan.original_of.get(entry.video_id)
        if original_id is not None and original_id not in done_ids:
            fakes_waiting.setdefault(original_id, []).append(entry)
        else:
            ready.append(entry)

    threads_per_worker = max(1, (os.cpu_count() or 1) // workers)
    executor = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_worker,
        initargs=(run_options.device, run_options.timeout_s, threads_per_worker),
    )
    running: dict[Future[Outcome], VideoEntry] = {}
    try:
        while ready or running:
            # A few tasks per worker in flight keep them busy without queueing every video, so
            # the fakes a finished original releases start soon.
            while ready and len(running) < 2 * workers:
                entry = ready.popleft()
                task = _task_for(entry, plan, done_ids, run_options)
                running[executor.submit(_extract_in_worker, task, run_options)] = entry
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                entry = running.pop(future)
                finish(future.result())
                # Its fakes go first, while its done-record is fresh in the page cache.
                ready.extendleft(reversed(fakes_waiting.pop(entry.video_id, [])))
    finally:
        # On an error or Ctrl-C, videos not started are dropped; started ones finish.
        executor.shutdown(wait=True, cancel_futures=True)


def _task_for(
    entry: VideoEntry, plan: Plan, done_ids: set[str], run_options: RunOptions
) -> VideoTask:
    """The task for `entry`, with its original's faces when the original is done."""
    original_faces = None
    original_id = plan.original_of.get(entry.video_id)
    if original_id is not None and original_id in done_ids:
        record = read_record(
            run_options.output_dir,
            plan.entry_by_id[original_id],
            run_options.settings.fingerprint(),
        )
        if record is not None:
            original_faces = original_faces_from_record(record)
    return VideoTask(
        video_id=entry.video_id,
        relative_path=entry.relative_path,
        video_path=str(entry.video_path),
        crop_folder=crop_folder_in_output(entry.video_id),
        original=original_faces,
    )


def _frame_reader(timeout_s: float | None) -> FrameReader:
    """A reader that decodes videos and still images (one frame each) in its worker process."""
    return FrameReader(timeout_s=timeout_s, decode_function=read_video_or_still)


# --- inside a worker process ---------------------------------------------------------------------

# Per worker process: created by the pool's initializer, used by every task it runs.
_worker_detector: FaceDetector | None = None
_worker_reader: FrameReader | None = None


def _init_worker(device: str, timeout_s: float | None, threads_per_worker: int) -> None:
    global _worker_detector, _worker_reader
    import signal

    # Ctrl-C reaches the whole process group; the parent stops the run, workers finish their
    # current video so that no crop is left half-written.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # N processes on N cores: torch threads beyond a worker's share only contend.
    set_torch_threads(threads_per_worker)
    cv2.setNumThreads(1)
    _worker_detector = FaceDetector(device=device)
    _worker_reader = _frame_reader(timeout_s)


def _extract_in_worker(task: VideoTask, run_options: RunOptions) -> Outcome:
    if _worker_detector is None or _worker_reader is None:
        raise RuntimeError("worker process was not initialised")
    settings = run_options.settings
    pending = _worker_reader.submit(task.video_path, count=settings.frames, every=settings.every)
    return extract_video(task, pending, _worker_detector, settings, run_options.output_dir)
