"""One decoding worker process, seen from the parent: start it, ask it for a video, kill it.

A `DecodeProcess` is one slot of `frame_reader.FrameReader`: it owns at most one live worker
process at a time (what runs inside it is `decode_worker`), decodes one video at a time in it,
and kills it when that video takes longer than the timeout. A killed or crashed worker is
replaced by a fresh one on the next request, so one hung file costs one slot one timeout and
nothing else.

Like `video`, this module imports no torch: `scan` imports it (through `frame_reader`) at the
top, and must not load torch.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import threading
from typing import Any

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
from deepfake_cli.video import SampledFrames, VideoInfo

logger = logging.getLogger(__name__)

# The worker needs a few seconds at most to import numpy, decord, PyAV and OpenCV; this only
# guards against a worker that never comes up at all.
WORKER_START_TIMEOUT_S = 120.0


def closed_error(path: str) -> VideoError:
    return VideoError(f"Decoding '{path}' was cancelled because the frame reader was closed.")


class DecodeProcess:
    """One killable decoding worker process, started on first use and replaced when lost.

    `closed` is the owning reader's: once set, no worker starts and a lost request reads as
    cancelled. `decode_function` is sent to each new worker (None: `video.read_frames`).
    `decode` is called from one thread at a time (the slot's dispatcher); `kill` may be called
    from any thread.
    """

    def __init__(self, decode_function: object, closed: threading.Event) -> None:
        self._decode_function = decode_function
        self._closed = closed
        self._lock = threading.Lock()  # guards _worker against kill() from another thread
        self._worker: subprocess.Popen[bytes] | None = None

    def kill(self) -> None:
        """Kill the live worker, if any, without reaping it (its reader thread does that)."""
        with self._lock:
            if self._worker is not None and self._worker.poll() is None:
                self._worker.kill()

    def stop(self) -> None:
        """Kill and reap the worker; called by the slot's dispatcher once it has finished."""
        with self._lock:
            worker, self._worker = self._worker, None
        if worker is not None:
            _kill_and_reap(worker)

    def start_if_needed(self) -> subprocess.Popen[bytes]:
        """The live worker, started (and waited for until it is ready) if there is none."""
        with self._lock:
            # Checked under the lock that kill() takes: a worker started here is either seen
            # by a kill() that follows, or not started because the reader is already closed.
            if self._closed.is_set():
                raise closed_error("the next video")
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
        start_timer = KillTimer(WORKER_START_TIMEOUT_S, worker)
        try:
            write_message(worker.stdin, self._decode_function)  # type: ignore[arg-type]
            worker.stdin.flush()  # type: ignore[union-attr]
            reply = read_message(worker.stdout)  # type: ignore[arg-type]
        except (EOFError, OSError, ValueError) as error:
            self._discard(worker)
            if self._closed.is_set():
                raise closed_error("the next video") from None
            raise VideoError(
                f"The frame-decoding worker process could not start (exit code {worker.poll()})."
            ) from error
        finally:
            start_timer.cancel()
        if reply[0] != "ready":
            self._discard(worker)
            raise VideoError(f"The frame-decoding worker process could not start ({reply[-1]}).")
        return worker

    def decode(self, path: str, options: dict[str, Any], timeout_s: float | None) -> SampledFrames:
        """Decode `path` in the worker; VideoError (or the worker's MattnError) on failure.

        `timeout_s` counts from when the request is sent; the worker is killed when it passes.
        """
        if self._closed.is_set():
            raise closed_error(path)
        try:
            worker = self._send(path, options)
        except (OSError, ValueError) as error:
            raise self._lost_worker_error(
                path, "failed because the decoding worker process could not be reached"
            ) from error
        timer = KillTimer(timeout_s, worker) if timeout_s is not None else None
        try:
            reply = read_message(worker.stdout)  # type: ignore[arg-type]
            if reply[0] == "frames":
                _, info_fields, frame_indices, times_s, decode_fields, shape, dtype_text = reply
                frames = np.empty(shape, dtype=np.dtype(dtype_text))
                if frames.nbytes:
                    read_into(worker.stdout, memoryview(frames).cast("B"))  # type: ignore[arg-type]
        except (EOFError, OSError, ValueError) as error:
            self._discard(worker)
            if timer is not None and timer.fired:
                raise VideoError(
                    f"Decoding '{path}' did not finish within {timeout_s:g} s "
                    f"(the file is probably damaged)."
                ) from None
            raise self._lost_worker_error(
                path,
                "stopped because the decoding worker process exited unexpectedly "
                f"(exit code {worker.poll()})",
            ) from error
        finally:
            if timer is not None:
                timer.cancel()
        if timer is not None and timer.fired:
            # Killed just after it replied: the reply is complete, only the worker is gone.
            self._discard(worker)
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
        logger.debug("decoding worker failed on %s:\n%s", path, worker_traceback)
        raise VideoError(f"Decoding '{path}' failed in the worker process: {summary}.")

    def _send(self, path: str, options: dict[str, Any]) -> subprocess.Popen[bytes]:
        """Send a request to a live worker, replacing one that died while idle."""
        message = (os.getcwd(), path, options)
        for attempt in range(2):
            worker = self.start_if_needed()
            try:
                write_message(worker.stdin, message)  # type: ignore[arg-type]
                worker.stdin.flush()  # type: ignore[union-attr]
                return worker
            except (OSError, ValueError):
                self._discard(worker)
                if attempt == 1 or self._closed.is_set():
                    raise
        raise AssertionError("unreachable")

    def _lost_worker_error(self, path: str, what_happened: str) -> VideoError:
        """The error for a request whose worker is gone: cancelled if closed, else what happened."""
        if self._closed.is_set():
            return closed_error(path)
        return VideoError(f"Decoding '{path}' {what_happened}.")

    def _discard(self, worker: subprocess.Popen[bytes]) -> None:
        """Kill and reap `worker`; the next request starts a fresh one."""
        with self._lock:
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


class KillTimer(threading.Timer):
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
