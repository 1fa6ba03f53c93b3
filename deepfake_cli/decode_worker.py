"""The decoding worker process: what runs in it, and the messages it exchanges with its parent.

decord is known to hang forever on some damaged containers, and a hung C call cannot be
interrupted inside a process; a separate process can be killed. `frame_reader.FrameReader` is
the parent's side; this module is the child's. The child never imports torch (nor the
`deepfake_cli` package `__init__`): it starts as a plain `python -c` child (`WORKER_BOOTSTRAP`)
that imports only this module, the `video` modules, `errors`, `results`, numpy, decord, PyAV
and OpenCV.

Messages, both ways: an 8-byte length, then a pickle. Frames follow a "frames" reply as raw
bytes, read straight into the destination array (no pickle copy). The conversation:

    parent: the decode function (None: `video.read_frames`)
    child:  ("ready", pid)  or  ("failed", reason)
    parent: (working directory, path, options)             -- once per video
    child:  ("frames", info fields, frame indices, times, decode fields or None, shape, dtype)
            + the frames' bytes
        or  ("error", error class name, message)            -- a MattnError: bad input
        or  ("crash", summary, traceback)                   -- anything else

This module must stay free of torch imports.
"""

from __future__ import annotations

import os
import pickle
import struct
import threading
import time
import traceback
from dataclasses import asdict
from typing import IO, Any

import numpy as np

from deepfake_cli.decord_video import load_decord
from deepfake_cli.errors import LayoutError, MattnError, UsageError, VideoError, WeightsError
from deepfake_cli.pyav_video import load_av
from deepfake_cli.video import read_frames

_MESSAGE_LENGTH = struct.Struct("<Q")

# Started with `python -c`, not multiprocessing: multiprocessing's spawn and forkserver re-import
# the parent's __main__ in the child (the `mattn` console script, which imports the CLI and,
# through it, torch), and unpickling a function from `deepfake_cli.video` would run the package
# `__init__`, which need not stay torch-free. A stand-in package module lets this module,
# `deepfake_cli.video` and `deepfake_cli.errors` be imported without running that `__init__`.
# Arguments: the package's name and folder, and the parent's import path as JSON.
WORKER_BOOTSTRAP = """
import json, os, sys, types
package_name, package_dir, parent_sys_path = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
replies = os.fdopen(os.dup(1), "wb")
os.dup2(2, 1)  # stray prints from C libraries must not corrupt the reply stream
sys.path[:] = parent_sys_path
package = types.ModuleType(package_name)
package.__path__ = [package_dir]
sys.modules[package_name] = package
from importlib import import_module
import_module(package_name + ".decode_worker").serve_decode_requests(sys.stdin.buffer, replies)
"""

# Error classes the worker may report by name; anything else arrives as a VideoError.
ERROR_CLASSES: dict[str, type[MattnError]] = {
    error_class.__name__: error_class
    for error_class in (MattnError, VideoError, UsageError, WeightsError, LayoutError)
}


# --- messages ---------------------------------------------------------------------------------


def write_message(stream: IO[bytes], message: object) -> None:
    payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_MESSAGE_LENGTH.pack(len(payload)))
    stream.write(payload)


def read_into(stream: IO[bytes], buffer: memoryview) -> None:
    """Fill `buffer` from `stream`; EOFError if the stream ends first."""
    filled = 0
    while filled < len(buffer):
        received = stream.readinto(buffer[filled:])  # type: ignore[attr-defined]
        if not received:
            raise EOFError("stream ended")
        filled += received


def read_message(stream: IO[bytes]) -> Any:
    header = bytearray(_MESSAGE_LENGTH.size)
    read_into(stream, memoryview(header))
    (payload_length,) = _MESSAGE_LENGTH.unpack(header)
    payload = bytearray(payload_length)
    read_into(stream, memoryview(payload))
    return pickle.loads(payload)


# --- the worker's side --------------------------------------------------------------------------


def _exit_when_orphaned(parent_pid: int) -> None:
    """Exit the worker once its parent is gone, even while decord hangs in C code.

    decord is called through ctypes, which releases the GIL, so this thread keeps running while a
    decode hangs. Without it a hung worker would outlive a parent that was killed.
    """
    while True:
        time.sleep(1.0)
        if os.getppid() != parent_pid:
            os._exit(1)


def serve_decode_requests(requests: IO[bytes], replies: IO[bytes]) -> None:
    """The worker's loop: decode each request and reply, until the request stream closes.

    The first message is the decode function (None: `read_frames`). It is unpickled, and so
    its module imported, before the worker reports "ready", so that no request's timeout pays
    for imports.
    """
    import signal

    # Ctrl-C reaches the whole process group; the parent decides when the worker stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_when_orphaned, args=(os.getppid(),), daemon=True).start()
    try:
        # OpenCV first: with decord loaded before it, OpenCV's libpng fails on every PNG
        # ("bad parameters to zlib"), so a decode function that reads stills would break.
        import cv2  # noqa: F401

        decode_function = read_message(requests) or read_frames
        load_decord()
        load_av()
    except EOFError:
        return
    except Exception as error:  # e.g. the decode function's module cannot be imported here
        write_message(replies, ("failed", f"{type(error).__name__}: {error}"))
        replies.flush()
        return
    write_message(replies, ("ready", os.getpid()))
    replies.flush()
    while True:
        try:
            working_dir, path, options = read_message(requests)
        except EOFError:
            return
        try:
            os.chdir(working_dir)  # relative paths mean what they meant in the parent
            sampled = decode_function(path, **options)
            frames = np.ascontiguousarray(sampled.frames)
            header = (
                "frames",
                asdict(sampled.info),
                list(sampled.frame_indices),
                list(sampled.times_s),
                None if sampled.decode is None else asdict(sampled.decode),
                frames.shape,
                frames.dtype.str,
            )
        except MattnError as error:
            write_message(replies, ("error", type(error).__name__, error.message))
        except Exception as error:
            write_message(
                replies, ("crash", f"{type(error).__name__}: {error}", traceback.format_exc())
            )
        else:
            write_message(replies, header)
            if frames.nbytes:
                replies.write(memoryview(frames).cast("B"))
        replies.flush()
