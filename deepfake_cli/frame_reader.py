"""Decoding videos in a worker process that is killed when a file takes too long.

decord (or FFmpeg under PyAV) can hang forever on some damaged containers, and a hung C call
cannot be interrupted inside a process; a separate process can be killed. A hung file becomes a
`VideoError` and the next file gets a fresh worker. `FrameReader` is the parent's side; what runs
in the worker, and the messages between the two, are in `decode_worker`.

`FrameReader.read_ahead` is how a batch uses it: the next video decodes in the worker while the
caller works on the current one.

Like `video`, this module imports no torch: `scan` imports it at the top, and must not load torch.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from deepfake_cli.decode_worker import (
    ERROR_CLASSES,
    WORKER_BOOTSTRAP,
    read_into,
    read_message,
    write_message,
)
from deepfake_cli.errors import VideoError
from deepfake_cli.results import DecodeInfo
from deepfake_cli.video import ReadOptions, SampledFrames, VideoInfo

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing.Unpack for **kwargs is Python 3.11+

logger = logging.getLogger(__name__)

# The worker needs a few seconds at most to import numpy, decord, PyAV and OpenCV; this only
# guards against a worker that never comes up at all.
_WORKER_START_TIMEOUT_S = 120.0

Item = TypeVar("Item")


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
    """Decodes videos in a worker process that is killed when a file takes too long.

    Requests are decoded one at a time in submission order, so `submit()` can queue the next
    videos while the caller works on the current one::

        with FrameReader(timeout_s=60.0) as reader:
            frames = reader.read(path, count=32)      # blocking; VideoError on failure or timeout
            pending = reader.submit(next_path)        # non-blocking: prefetch
            frames = pending.result()                 # VideoError on failure or timeout
            for path, pending in reader.read_ahead(paths, count=32):
                frames = pending.result()             # the next path decodes meanwhile

    `timeout_s` limits each video's decoding, counted from when the worker starts on it (not
    while it waits in the queue); None disables it. After a timeout or crash the worker is
    replaced and the next request proceeds normally.

    `decode_function` replaces `read_frames` inside the worker (for tests, e.g. one that sleeps).
    It is sent by pickle, so it must be a module-level function importable in the worker, which
    uses the parent's `sys.path` (its module is imported when a worker starts, outside any
    request's timeout); it is called as `decode_function(path, **options)` with the options
    given to `submit` (`ReadOptions`) and must return `SampledFrames`.
    """

    def __init__(
        self,
        timeout_s: float | None = 60.0,
        *,
        decode_function: Callable[..., SampledFrames] | None = None,
    ) -> None:
        if timeout_s is not None and not timeout_s > 0:
            raise ValueError(f"timeout_s must be positive or None, got {timeout_s}")
        if not sys.executable:
            raise RuntimeError("cannot start a decoding worker: sys.executable is not known")
        self.timeout_s = timeout_s
        self._decode_function = decode_function
        self._requests: queue.SimpleQueue[_DecodeRequest | None] = queue.SimpleQueue()
        self._worker_lock = threading.Lock()  # guards _worker and _closed
        self._worker: subprocess.Popen[bytes] | None = None
        self._closed = False
        # The dispatcher starts the worker right away, so its start overlaps the caller's setup.
        self._dispatcher = threading.Thread(
            target=self._dispatch_requests, name="mattn-frame-reader", daemon=True
        )
        self._dispatcher.start()

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
        with self._worker_lock:
            if self._closed:
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
        **options: Unpack[ReadOptions],
    ) -> Iterator[tuple[Item, PendingFrames]]:
        """Each item with its pending frames, in order, keeping one video decoding ahead.

        While the caller works on one video (faces, crops, scores) the worker decodes the next,
        so the two overlap; only one video is ahead, so at most two videos' frames are held.
        `path_of` gives an item's video (None: the items are the paths). Items are taken from
        `items` one at a time: item k + 1 is taken and submitted when the caller asks for
        item k. A video that fails raises from its `result()`, not here.
        """
        submitted: deque[tuple[Item, PendingFrames]] = deque()
        for item in items:
            path = item if path_of is None else path_of(item)
            submitted.append((item, self.submit(path, **options)))  # type: ignore[arg-type]
            if len(submitted) == 2:
                yield submitted.popleft()
        yield from submitted

    def close(self) -> None:
        """Stop the worker; requests not finished yet fail with VideoError."""
        with self._worker_lock:
            if self._closed:
                return
            self._closed = True
            self._requests.put(None)
            # Only kill here: the dispatcher thread is the one that reads the worker's pipes, so
            # it also reaps the worker and closes them once its read ends.
            if self._worker is not None and self._worker.poll() is None:
                self._worker.kill()
        self._dispatcher.join()

    # -- dispatcher thread ---------------------------------------------------------------------

    def _dispatch_requests(self) -> None:
        try:
            self._start_worker_if_needed()
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
                request.future.set_result(self._decode_in_worker(request))
            except BaseException as error:  # any failure belongs to the caller, not this thread
                request.future.set_exception(error)
        with self._worker_lock:
            worker, self._worker = self._worker, None
        if worker is not None:
            _kill_and_reap(worker)

    def _closed_error(self, path: str) -> VideoError:
        return VideoError(f"Decoding '{path}' was cancelled because the frame reader was closed.")

    def _lost_worker_error(self, path: str, what_happened: str) -> VideoError:
        """The error for a request whose worker is gone: cancelled if closed, else what happened."""
        if self._closed:
            return self._closed_error(path)
        return VideoError(f"Decoding '{path}' {what_happened}.")

    def _start_worker_if_needed(self) -> subprocess.Popen[bytes]:
        with self._worker_lock:
            if self._closed:
                raise self._closed_error("the next video")
            if self._worker is not None and self._worker.poll() is None:
                return self._worker
            package_name = __name__.rpartition(".")[0]
            package_dir = os.path.dirname(os.path.abspath(__file__))
            worker = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    WORKER_BOOTSTRAP,
                    package_name,
                    package_dir,
                    # The parent's import path, so that a decode_function can be imported.
                    json.dumps([entry for entry in sys.path if isinstance(entry, str)]),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                # decord prints C++ warnings for damaged files that cannot be turned off;
                # the VideoError says what went wrong.
                stderr=subprocess.DEVNULL,
            )
            self._worker = worker
        start_timer = _KillTimer(_WORKER_START_TIMEOUT_S, worker)
        try:
            write_message(worker.stdin, self._decode_function)  # type: ignore[arg-type]
            worker.stdin.flush()  # type: ignore[union-attr]
            reply = read_message(worker.stdout)  # type: ignore[arg-type]
        except (EOFError, OSError, ValueError) as error:
            self._discard_worker(worker)
            if self._closed:
                raise self._closed_error("the next video") from None
            raise VideoError(
                f"The frame-decoding worker process could not start (exit code {worker.poll()})."
            ) from error
        finally:
            start_timer.cancel()
        if reply[0] != "ready":
            self._discard_worker(worker)
            raise VideoError(f"The frame-decoding worker process could not start ({reply[-1]}).")
        return worker

    def _send_request(self, request: _DecodeRequest) -> subprocess.Popen[bytes]:
        """Send `request` to a live worker, replacing one that died while idle."""
        message = (os.getcwd(), request.path, request.options)
        for attempt in range(2):
            worker = self._start_worker_if_needed()
            try:
                write_message(worker.stdin, message)  # type: ignore[arg-type]
                worker.stdin.flush()  # type: ignore[union-attr]
                return worker
            except (OSError, ValueError):
                self._discard_worker(worker)
                if attempt == 1 or self._closed:
                    raise
        raise AssertionError("unreachable")

    def _decode_in_worker(self, request: _DecodeRequest) -> SampledFrames:
        if self._closed:
            raise self._closed_error(request.path)
        try:
            worker = self._send_request(request)
        except (OSError, ValueError) as error:
            raise self._lost_worker_error(
                request.path, "failed because the decoding worker process could not be reached"
            ) from error
        timer = _KillTimer(self.timeout_s, worker) if self.timeout_s is not None else None
        try:
            reply = read_message(worker.stdout)  # type: ignore[arg-type]
            if reply[0] == "frames":
                _, info_fields, frame_indices, times_s, decode_fields, shape, dtype_text = reply
                frames = np.empty(shape, dtype=np.dtype(dtype_text))
                if frames.nbytes:
                    read_into(worker.stdout, memoryview(frames).cast("B"))  # type: ignore[arg-type]
        except (EOFError, OSError, ValueError) as error:
            self._discard_worker(worker)
            if timer is not None and timer.fired:
                raise VideoError(
                    f"Decoding '{request.path}' did not finish within {self.timeout_s:g} s "
                    f"(the file is probably damaged)."
                ) from None
            raise self._lost_worker_error(
                request.path,
                "stopped because the decoding worker process exited unexpectedly "
                f"(exit code {worker.poll()})",
            ) from error
        finally:
            if timer is not None:
                timer.cancel()
        if timer is not None and timer.fired:
            # Killed just after it replied: the reply is complete, only the worker is gone.
            self._discard_worker(worker)
        if reply[0] == "frames":
            return SampledFrames(
                info=VideoInfo(**info_fields),
                frame_indices=frame_indices,
                times_s=times_s,
                frames=frames,
                decode=None if decode_fields is None else DecodeInfo(**decode_fields),
            )
        if reply[0] == "error":
            _, class_name, message = reply
            raise ERROR_CLASSES.get(class_name, VideoError)(message)
        _, summary, worker_traceback = reply
        logger.debug("decoding worker failed on %s:\n%s", request.path, worker_traceback)
        raise VideoError(f"Decoding '{request.path}' failed in the worker process: {summary}.")

    def _discard_worker(self, worker: subprocess.Popen[bytes]) -> None:
        """Kill and reap `worker`; the next request starts a fresh one."""
        with self._worker_lock:
            if self._worker is worker:
                self._worker = None
        _kill_and_reap(worker)


def _kill_and_reap(worker: subprocess.Popen[bytes]) -> None:
    if worker.poll() is None:
        worker.kill()
    worker.wait()
    for stream in (worker.stdin, worker.stdout):
        if stream is not None:
            # A broken pipe to a dead worker has nothing left to flush.
            with contextlib.suppress(OSError):
                stream.close()


class _KillTimer(threading.Timer):
    """Kills a worker after a delay unless cancelled; `fired` tells afterwards whether it did.

    Started on creation.
    """

    def __init__(self, timeout_s: float, worker: subprocess.Popen[bytes]) -> None:
        super().__init__(timeout_s, self._kill)
        self.daemon = True
        self.fired = False
        self._worker_to_kill = worker
        self.start()

    def _kill(self) -> None:
        self.fired = True
        if self._worker_to_kill.poll() is None:
            self._worker_to_kill.kill()
