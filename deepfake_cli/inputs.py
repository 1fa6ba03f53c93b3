"""Which files a scan reads: files, folders searched for videos, paths on stdin.

`mattn scan` takes files, folders (searched recursively for video extensions, or for file names
matching `--glob`) and `-` (a list of paths on stdin). What cannot be a video at all (a folder
without videos, a path that does not exist) becomes a one-sentence problem here, before any
decoding, so that it is reported as an error result and the batch goes on.
"""

from __future__ import annotations

import fnmatch
import sys
from collections.abc import Iterable
from pathlib import Path

from deepfake_cli.video import VIDEO_EXTENSIONS


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
