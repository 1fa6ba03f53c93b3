"""Decoding videos in worker processes that are killed when a file takes too long.

decord (or FFmpeg under PyAV) can hang forever on some damaged containers, and a hung C call
cannot be interrupted inside a process; a separate process can be killed. A hung file becomes a
`VideoError` and the next file gets a fresh worker. `FrameReader` is the parent's side: a queue
of requests and `workers` slots (`decode_process.DecodeProcess`, one process each) that take
requests from it in order, so several videos decode at once where decoding is the bottleneck.
What runs in a worker, and the messages between the two, are in `decode_worker`.

`FrameReader.read_ahead` is how a batch uses it: the next videos decode in the workers while
the caller works on the current ones, results come back in input order whatever order the
workers finish in, and at most `ahead` videos beyond the caller's are decoding or decoded, which
bounds the frames held in memory. `open_frame_reader` is the one place where the scan's decode
step is chosen (the decoder and the number of workers for a device).

Like `video`, this module imports no torch: `scan` imports it at the top, and must not load torch.
"""

from __future__ import annotations

import logging
import os
import queue
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from deepfake_cli.decode_process import DecodeProcess
from deepfake_cli.errors import UsageError, VideoError
from deepfake_cli.stills import read_video_or_still
from deepfake_cli.video import ReadOptions, SampledFrames

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing.Unpack for **kwargs is Python 3.11+

logger = logging.getLogger(__name__)

Item = TypeVar("Item")

#: Most decoding workers a default gives (each holds one video's frames while it decodes).
MAX_DEFAULT_DECODE_WORKERS = 16


@dataclass
class _DecodeRequest:
    path: str
    options: dict[str, Any]
    future: Future[SampledFrames]


class PendingFrames:
    """Frames that a `FrameReader` is decoding or will decode; `result()` waits for them."""

    def __init__(self, path: str, future: Future[SampledFrames]) -> None:
        self.path = path
        self._future = future

    def done(self) -> bool:
        """True once `result()` would return or raise without waiting."""
        return self._future.done()

    def result(self) -> SampledFrames:
        """The decoded frames; raises VideoError (or UsageError for bad options) on failure."""
        return self._future.result()


class FrameReader:
    """Decodes videos in worker processes that are killed when a file takes too long.

    Requests are taken in submission order by `workers` worker processes, each decoding one
    video at a time, so `submit()` can queue the next videos while the caller works on the
    current one::

        with FrameReader(timeout_s=60.0, workers=4) as reader:
            frames = reader.read(path, count=32)      # blocking; VideoError on failure or timeout
            pending = reader.submit(next_path)        # non-blocking: prefetch
            frames = pending.result()                 # VideoError on failure or timeout
            for path, pending in reader.read_ahead(paths, count=32):
                frames = pending.result()             # in input order; the next paths decode

    `timeout_s` limits each video's decoding, counted from when a worker starts on it (not
    while it waits in the queue); None disables it. After a timeout or crash that worker is
    replaced and its next request proceeds normally; the other workers are not disturbed.

    `decode_function` replaces `read_frames` inside the workers (for tests, e.g. one that
    sleeps). It is sent by pickle, so it must be a module-level function importable in a worker,
    which uses the parent's `sys.path` (its module is imported when a worker starts, outside any
    request's timeout); it is called as `decode_function(path, **options)` with the options
    given to `submit` (`ReadOptions`) and must return `SampledFrames`.
    """

    def __init__(
        self,
        timeout_s: float | None = 60.0,
        *,
        workers: int = 1,
        decode_function: Callable[..., SampledFrames] | None = None,
    ) -> None:
        if timeout_s is not None and not timeout_s > 0:
            raise ValueError(f"timeout_s must be positive or None, got {timeout_s}")
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        if not sys.executable:
            raise RuntimeError("cannot start a decoding worker: sys.executable is not known")
        self.timeout_s = timeout_s
        self.workers = workers
        self._requests: queue.SimpleQueue[_DecodeRequest | None] = queue.SimpleQueue()
        self._submit_lock = threading.Lock()  # orders submit() against close()
        self._closed = threading.Event()
        self._processes = [DecodeProcess(decode_function, self._closed) for _ in range(workers)]
        # Each dispatcher starts its worker right away, so the start overlaps the caller's setup.
        self._dispatchers = [
            threading.Thread(
                target=self._dispatch_requests,
                args=(process,),
                name=f"mattn-frame-reader-{number}",
                daemon=True,
            )
            for number, process in enumerate(self._processes)
        ]
        for dispatcher in self._dispatchers:
            dispatcher.start()

    def __enter__(self) -> FrameReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def submit(self, path: str | os.PathLike[str], **options: Unpack[ReadOptions]) -> PendingFrames:
        """Queue a video for decoding (same options as `read_frames`) and return at once."""
        unknown = options.keys() - ReadOptions.__optional_keys__
        if unknown:
            raise TypeError(f"unknown read option(s): {', '.join(sorted(unknown))}")
        path_text = os.fsdecode(os.fspath(path))
        future: Future[SampledFrames] = Future()
        with self._submit_lock:
            if self._closed.is_set():
                raise RuntimeError("this FrameReader is closed")
            self._requests.put(_DecodeRequest(path_text, dict(options), future))
        return PendingFrames(path_text, future)

    def read(self, path: str | os.PathLike[str], **options: Unpack[ReadOptions]) -> SampledFrames:
        """Decode a video (same options as `read_frames`), waiting for the result."""
        return self.submit(path, **options).result()

    def read_ahead(
        self,
        items: Iterable[Item],
        *,
        path_of: Callable[[Item], str | os.PathLike[str]] | None = None,
        ahead: int | None = None,
        **options: Unpack[ReadOptions],
    ) -> Iterator[tuple[Item, PendingFrames]]:
        """Each item with its pending frames, in input order, keeping `ahead` videos ahead.

        While the caller works on a video (faces, crops, scores) the workers decode the next
        `ahead` (None: one per worker), so the two overlap; the results are handed out in the
        order of `items` whichever worker finishes first. Items are taken from `items` one at a
        time: item k + ahead is taken and submitted when the caller asks for item k, so the
        frames held are those of the videos the caller has not let go of plus at most `ahead`
        more. `path_of` gives an item's video (None: the items are the paths). A video that
        fails raises from its `result()`, not here.
        """
        ahead = self.workers if ahead is None else ahead
        if ahead < 0:
            raise ValueError(f"ahead must be 0 or more, got {ahead}")
        submitted: deque[tuple[Item, PendingFrames]] = deque()
        for item in items:
            path = item if path_of is None else path_of(item)
            submitted.append((item, self.submit(path, **options)))  # type: ignore[arg-type]
            if len(submitted) > ahead:
                yield submitted.popleft()
        yield from submitted

    def close(self) -> None:
        """Stop the workers; requests not finished yet fail with VideoError."""
        with self._submit_lock:
            if self._closed.is_set():
                return
            self._closed.set()
            # One stop sign per dispatcher, behind every request: each request queued before
            # close is still taken, and fails at once as cancelled.
            for _ in self._dispatchers:
                self._requests.put(None)
        # Only kill here: each dispatcher thread is the one that reads its worker's pipes, so
        # it also reaps the worker and closes them once its read ends.
        for process in self._processes:
            process.kill()
        for dispatcher in self._dispatchers:
            dispatcher.join()

    # -- dispatcher threads, one per worker process --------------------------------------------

    def _dispatch_requests(self, process: DecodeProcess) -> None:
        try:
            process.start_if_needed()
        except VideoError as error:
            # Reported again, to the first request, when it tries to start a worker itself.
            logger.debug("decoding worker did not start: %s", error)
        while True:
            request = self._requests.get()
            if request is None:
                break
            if not request.future.set_running_or_notify_cancel():
                continue
            try:
                result = process.decode(request.path, request.options, self.timeout_s)
            except BaseException as error:  # any failure belongs to the caller, not this thread
                request.future.set_exception(error)
            else:
                request.future.set_result(result)
            # Not kept while waiting for the next request: the frames belong to the caller, who
            # may have let them go already.
            request = result = None
        process.stop()


def default_decode_workers(device_type: str, cpu_count: int | None = None) -> int:
    """`--decode-workers` when not given: 1 on the CPU, one per core but one on a GPU.

    On the CPU the detector and MTCNN need the same cores as decoding, and one worker decoding
    the next video while this one is judged already keeps them busy (benchmarks/decode_workers.py
    measures more). With a GPU doing the detection and scoring, decoding is the bottleneck, so
    every core but the one that feeds the GPU decodes, up to `MAX_DEFAULT_DECODE_WORKERS`.
    """
    if device_type == "cpu":
        return 1
    if cpu_count is None:
        cpu_count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
        cpu_count = cpu_count or os.cpu_count() or 1
    return max(1, min(cpu_count - 1, MAX_DEFAULT_DECODE_WORKERS))


def open_frame_reader(
    device_type: str, *, timeout_s: float | None, workers: int | None = None
) -> FrameReader:
    """The scan's decode step for a device: the one place it is chosen.

    Today every device decodes on the CPU (decord or PyAV, `video.read_frames`; a still photo is
    a one-frame video, `stills.read_video_or_still`) in `workers` killable processes (None:
    `default_decode_workers`). A hardware decoder for a device would be chosen here, behind the
    same `read_ahead` interface.
    """
    if workers is None:
        workers = default_decode_workers(device_type)
    if workers < 1:
        raise UsageError("--decode-workers must be at least 1.")
    return FrameReader(timeout_s=timeout_s, workers=workers, decode_function=read_video_or_still)
