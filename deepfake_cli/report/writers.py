"""Machine-readable scan output: JSON, JSON Lines and CSV sinks (and the table, for people).

A sink receives one `VideoResult` at a time, as each video finishes, and is closed at the end:

- ``jsonl``: one JSON object per line, written as each video completes. To a file, every line
  goes out in a single `os.write` on an O_APPEND descriptor and is fsynced, so a killed run
  leaves only complete lines; `--resume` keeps them and skips their videos (`completed_paths`).
  Without `--resume` an existing file is truncated when the scan starts.
- ``json``: one array, written at close; to a file atomically (temporary file in the same
  folder, then `os.replace`), so readers never see half an array.
- ``csv``: a header and one row per video. To stdout rows appear as they come; to a file they go
  to a temporary file that atomically replaces the output at close.
- ``table``: a rich table for people, printed at close (see `deepfake_cli.report.table`).

If the scan is aborted (an exception leaves the `with` block), the JSONL lines written so far
stay; the json, csv and table outputs are not written and an existing output file is left as it
was, because an incomplete array or table would look like a complete scan.

Text is UTF-8. A file name that is not valid UTF-8 (Python keeps its bytes as lone surrogates)
is written as JSON `\\udcXX` escapes, which parse back to the same Python string; in CSV such
characters are written backslash-escaped so the file stays valid UTF-8.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console

from deepfake_cli.errors import UsageError
from deepfake_cli.files import PendingFile, write_atomically
from deepfake_cli.report.table import render_table
from deepfake_cli.results import VideoResult

FORMATS: tuple[str, ...] = ("table", "json", "jsonl", "csv")

#: CSV columns, in order. `persons` is the number of persons found and `judged_persons` how
#: many of them the verdict rests on (the per-person scores are in the JSON formats only);
#: `model_demo` is `true` or `false`, as in JSON; null is empty. Columns added by a schema
#: version come last, so scripts that pick columns by position keep working.
CSV_COLUMNS: tuple[str, ...] = (
    "path",
    "status",
    "error",
    "verdict",
    "fake_probability",
    "threshold",
    "aggregate",
    "frames_used",
    "persons",
    "model_name",
    "model_sha256",
    "model_demo",
    "seconds",
    "judged_persons",
    "min_face_px",
    "min_presence",
    "schema_version",
)

#: Width of a table written to a file: there is no terminal to measure, and paths are long.
TABLE_FILE_WIDTH = 160


# --- helpers --------------------------------------------------------------------------------


def _json_line(result: VideoResult, details: bool) -> str:
    """One compact JSON object, without the newline, that is always valid UTF-8."""
    text = json.dumps(result.to_dict(details), ensure_ascii=False, separators=(",", ":"))
    return _escape_surrogates(text)


def _escape_surrogates(json_text: str) -> str:
    # Lone surrogates can only sit inside JSON strings; backslashreplace turns each into
    # `\udcXX`, which is exactly JSON's escape for it, so the text becomes encodable UTF-8.
    return json_text.encode("utf-8", "backslashreplace").decode("utf-8")


def _stream_is_utf8(stream: TextIO) -> bool:
    encoding = (getattr(stream, "encoding", None) or "utf-8").lower().replace("-", "")
    return encoding in ("utf8", "utf8sig")


def _csv_row(result: VideoResult) -> list[str]:
    data = result.to_dict(details=False)
    values: dict[str, Any] = {
        "path": data["path"],
        "status": data["status"],
        "error": data["error"],
        "verdict": data["verdict"],
        "fake_probability": data["fake_probability"],
        "threshold": data["threshold"],
        "aggregate": data["aggregate"],
        "frames_used": data["frames_used"],
        "persons": len(data["persons"]),
        "model_name": data["model"]["name"],
        "model_sha256": data["model"]["sha256"],
        "model_demo": "true" if data["model"]["demo"] else "false",
        "seconds": data["seconds"],
        "judged_persons": sum(person["judged"] for person in data["persons"]),
        "min_face_px": data["min_face_px"],
        "min_presence": data["min_presence"],
        "schema_version": data["schema_version"],
    }
    cells = ["" if values[column] is None else str(values[column]) for column in CSV_COLUMNS]
    # A path that is not valid UTF-8 (lone surrogates) would make any UTF-8 writer fail
    # mid-scan; show those bytes as backslash escapes instead.
    return [cell.encode("utf-8", "backslashreplace").decode("utf-8") for cell in cells]


def _drop_partial_last_line(descriptor: int) -> None:
    """Truncate a trailing line without its newline: the remains of a killed write."""
    size = os.lseek(descriptor, 0, os.SEEK_END)
    if size == 0:
        return
    # Walk back in blocks to the last newline; usually it is the last byte.
    block_size = 1 << 16
    position = size
    while position > 0:
        start = max(0, position - block_size)
        os.lseek(descriptor, start, os.SEEK_SET)
        block = os.read(descriptor, position - start)
        newline_at = block.rfind(b"\n")
        if newline_at != -1:
            keep = start + newline_at + 1
            if keep != size:
                os.ftruncate(descriptor, keep)
            return
        position = start
    os.ftruncate(descriptor, 0)


def _complete_lines(jsonl_path: Path) -> list[bytes]:
    """The newline-terminated lines of a file; a last line without newline is left out."""
    try:
        content = jsonl_path.read_bytes()
    except FileNotFoundError:
        return []
    # Everything after the last newline is a partial line (or nothing).
    return content.split(b"\n")[:-1]


def _parsed_lines(jsonl_path: Path) -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = []
    for raw_line in _complete_lines(jsonl_path):
        try:
            parsed = json.loads(raw_line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            continue
        if isinstance(parsed, dict) and isinstance(parsed.get("path"), str):
            objects.append(parsed)
    return objects


def completed_paths(jsonl_path: Path) -> set[str]:
    """The `path` of every complete, parsable line of a JSONL output (empty if no file).

    A last line without its newline, and lines that are not a JSON object with a string `path`,
    are ignored. Every recorded video counts as completed, errors included; to retry failed
    videos, remove their lines first (see docs/scan-output.md).
    """
    return {parsed["path"] for parsed in _parsed_lines(jsonl_path)}


def read_results(jsonl_path: Path) -> list[VideoResult]:
    """The results recorded in a JSONL output, in file order, skipping what `completed_paths`
    skips and lines that do not match the schema. A resumed scan uses these for its exit code.
    """
    results: list[VideoResult] = []
    for parsed in _parsed_lines(jsonl_path):
        try:
            results.append(VideoResult.from_dict(parsed))
        except (KeyError, TypeError, ValueError):
            continue
    return results


# --- sinks ----------------------------------------------------------------------------------


class ResultSink:
    """Receives results one by one; a context manager that closes itself.

    Leaving the `with` block normally calls `close()` (which finishes the output); leaving it
    with an exception calls `abort()` instead.
    """

    def __init__(self) -> None:
        self.written = 0
        self.closed = False

    def write(self, result: VideoResult) -> None:
        if self.closed:
            raise ValueError("Cannot write to a closed result sink.")
        self._write(result)
        self.written += 1

    def close(self) -> None:
        """Finish the output. Calling it again does nothing."""
        if not self.closed:
            self.closed = True
            self._close()

    def abort(self) -> None:
        """Stop without finishing: keep what is safe to keep (see module docstring)."""
        if not self.closed:
            self.closed = True
            self._abort()

    def __enter__(self) -> ResultSink:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc_details: object) -> None:
        # An exception means the scan did not finish: keep only what is safe to keep.
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def _write(self, result: VideoResult) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        pass

    def _abort(self) -> None:
        self._close()


class JsonlStreamSink(ResultSink):
    """JSON Lines to a text stream (stdout), flushed per line so pipes see each video at once."""

    def __init__(self, stream: TextIO, *, details: bool) -> None:
        super().__init__()
        self.stream = stream
        self.details = details
        self._ascii_only = not _stream_is_utf8(stream)

    def _write(self, result: VideoResult) -> None:
        if self._ascii_only:
            # A non-UTF-8 stdout (a legacy Windows code page) cannot take every path as is;
            # \u escapes are the same JSON.
            line = json.dumps(result.to_dict(self.details), separators=(",", ":"))
        else:
            line = _json_line(result, self.details)
        self.stream.write(line + "\n")
        self.stream.flush()


class JsonlFileSink(ResultSink):
    """JSON Lines to a file, crash-safe: whole lines only, each on disk when `write` returns."""

    def __init__(self, output: Path, *, details: bool, resume: bool) -> None:
        super().__init__()
        self.output = output
        self.details = details
        flags = os.O_RDWR | os.O_CREAT | (0 if resume else os.O_TRUNC)
        try:
            descriptor = os.open(output, flags, 0o666)
        except OSError as error:
            raise UsageError(f"Cannot write to {output}: {error.strerror or error}.") from error
        try:
            if resume:
                _drop_partial_last_line(descriptor)
                os.fsync(descriptor)
        finally:
            os.close(descriptor)
        # O_APPEND: each write lands at the end even if something else moved the offset.
        self._descriptor = os.open(output, os.O_WRONLY | os.O_APPEND)

    def _write(self, result: VideoResult) -> None:
        encoded = (_json_line(result, self.details) + "\n").encode("utf-8")
        written = os.write(self._descriptor, encoded)
        # A regular file takes the whole line in one write unless the disk is full; finish the
        # line anyway so a short write does not leave a line that a later write would continue.
        while written < len(encoded):
            written += os.write(self._descriptor, encoded[written:])
        os.fsync(self._descriptor)

    def _close(self) -> None:
        os.close(self._descriptor)


class JsonSink(ResultSink):
    """One JSON array, written at close: atomically to a file, or to a stream."""

    def __init__(self, output: Path | None, stream: TextIO, *, details: bool) -> None:
        super().__init__()
        self.output = output
        self.stream = stream
        self.details = details
        self._objects: list[dict[str, Any]] = []
        if output is not None:
            _check_writable_folder(output)

    def _write(self, result: VideoResult) -> None:
        self._objects.append(result.to_dict(self.details))

    def _close(self) -> None:
        if self.output is None:
            ascii_only = not _stream_is_utf8(self.stream)
            text = json.dumps(self._objects, indent=2, ensure_ascii=ascii_only)
            self.stream.write(_escape_surrogates(text) + "\n")
            self.stream.flush()
        else:
            text = json.dumps(self._objects, indent=2, ensure_ascii=False)
            write_atomically(self.output, _escape_surrogates(text) + "\n", durable=True)

    def _abort(self) -> None:
        self._objects.clear()


class CsvSink(ResultSink):
    """A header and one row per video; to a file via a temporary file replaced at close."""

    def __init__(self, output: Path | None, stream: TextIO) -> None:
        super().__init__()
        self.output = output
        self._pending: PendingFile | None = None
        if output is None:
            self._handle: TextIO = stream
        else:
            self._pending = PendingFile(output, durable=True)
            # newline="": the csv module writes its own \r\n line ends (RFC 4180).
            self._handle = open(  # noqa: SIM115 - closed in _close/_abort
                self._pending.temporary, "w", encoding="utf-8", newline=""
            )
        self._writer = csv.writer(self._handle)
        self._writer.writerow(CSV_COLUMNS)
        self._handle.flush()

    def _write(self, result: VideoResult) -> None:
        self._writer.writerow(_csv_row(result))
        self._handle.flush()

    def _close(self) -> None:
        if self._pending is None:
            return
        self._handle.close()
        self._pending.commit()

    def _abort(self) -> None:
        if self._pending is not None:
            self._handle.close()
            self._pending.discard()


class TableSink(ResultSink):
    """The table for people, printed at close to a console, or written to a file atomically."""

    def __init__(self, output: Path | None, console: Console) -> None:
        super().__init__()
        self.output = output
        self.console = console
        self._results: list[VideoResult] = []
        if output is not None:
            _check_writable_folder(output)

    def _write(self, result: VideoResult) -> None:
        self._results.append(result)

    def _close(self) -> None:
        if self.output is None:
            render_table(self._results, self.console)
            return
        buffer = io.StringIO()
        # A file gets plain text: no colours, no terminal width to follow.
        file_console = Console(file=buffer, width=TABLE_FILE_WIDTH, no_color=True)
        render_table(self._results, file_console)
        write_atomically(self.output, buffer.getvalue(), durable=True)

    def _abort(self) -> None:
        self._results.clear()


def _check_writable_folder(output: Path) -> None:
    """Fail at the start, not after an hour of scanning, if the output cannot be written."""
    if output.is_dir():
        raise UsageError(f"Cannot write to {output}: it is a folder.")
    folder = output.parent
    if not folder.is_dir():
        raise UsageError(f"Cannot write to {output}: the folder {folder} does not exist.")
    if not os.access(folder, os.W_OK):
        raise UsageError(f"Cannot write to {output}: the folder {folder} is not writable.")


def open_sink(
    format: str,
    output: Path | None,
    *,
    details: bool,
    resume: bool = False,
    stream: TextIO | None = None,
    console: Console | None = None,
) -> ResultSink:
    """The sink for `--format`, writing to `output` or, when it is None, to stdout.

    `stream` (default: sys.stdout at call time) is where json/jsonl/csv go without `output`;
    `console` (default: a new Console on stdout) is where the table goes without `output`.
    `details` adds per-frame records to json and jsonl; csv and table ignore it.
    `resume` is only valid with jsonl to a file: existing complete lines are kept.
    Raises UsageError for an unknown format, a misplaced `resume`, or an unwritable output.
    """
    if format not in FORMATS:
        raise UsageError(f"Unknown output format {format!r}; choose one of: {', '.join(FORMATS)}.")
    if resume and (format != "jsonl" or output is None):
        raise UsageError("--resume needs --format jsonl and an --output file to resume.")
    text_stream = stream if stream is not None else sys.stdout
    if format == "jsonl":
        if output is None:
            return JsonlStreamSink(text_stream, details=details)
        return JsonlFileSink(output, details=details, resume=resume)
    if format == "json":
        return JsonSink(output, text_stream, details=details)
    if format == "csv":
        return CsvSink(output, text_stream)
    return TableSink(output, console if console is not None else Console())
