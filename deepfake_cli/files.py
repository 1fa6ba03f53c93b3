"""Writing files so that readers see all of a file or none of it.

Every file mattn writes (weights, checkpoints, crops, manifests, results, pages) goes through
`write_atomically` or `PendingFile`: the content goes to a temporary file beside the target,
which then replaces the target in one rename. A process killed mid-write leaves at most a stray
hidden temporary file, never a truncated output, and what was there before is kept until the
new file is complete.

One permission policy: a replaced file keeps its mode; a new file gets what a plain `open()`
would give (0666 less the umask), not mkstemp's private 0600. `durable=True` also fsyncs the
data and the folder, for files that promise to survive a power cut (scan results); elsewhere
the guarantee is against the process dying, which is the common case and costs nothing.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from deepfake_cli.errors import UsageError


def new_file_mode(path: Path) -> int:
    """Permissions for a file written at `path`: those of the file it replaces, or open()'s."""
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        # The umask can only be read by setting it; set it straight back.
        umask = os.umask(0o022)
        os.umask(umask)
        return 0o666 & ~umask


class PendingFile:
    """A temporary file beside `path` that replaces `path` on `commit()`.

    Use as a context manager (commit on success, discard on an exception) or call `commit()` /
    `discard()` yourself when the writing spans several calls (a CSV written row by row). The
    folder must exist: a missing output folder is the user's error, reported as such.
    """

    def __init__(self, path: str | Path, *, durable: bool = False) -> None:
        self.path = Path(path)
        self.durable = durable
        try:
            descriptor, name = tempfile.mkstemp(
                prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent
            )
        except OSError as error:
            raise UsageError(f"Cannot write {self.path}: {error.strerror or error}.") from None
        os.close(descriptor)
        self.temporary = Path(name)
        self.mode = new_file_mode(self.path)

    def commit(self) -> None:
        """Put the temporary file in place of `path` (fsynced first when durable)."""
        try:
            # Set here, not at creation: a writer may replace the temporary file (safetensors
            # does), and the new one would keep mkstemp's private 0600.
            os.chmod(self.temporary, self.mode)
            if self.durable:
                with open(self.temporary, "rb+") as handle:
                    os.fsync(handle.fileno())
            os.replace(self.temporary, self.path)
        except OSError as error:
            self.discard()
            raise UsageError(f"Cannot write {self.path}: {error.strerror or error}.") from None
        if self.durable:
            _fsync_folder(self.path.parent)

    def discard(self) -> None:
        self.temporary.unlink(missing_ok=True)

    def __enter__(self) -> PendingFile:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc_details: object) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()


def write_atomically(path: str | Path, content: bytes | str, *, durable: bool = False) -> None:
    """Write `content` (text is UTF-8, newlines as given) to `path` in one step."""
    data = content.encode("utf-8") if isinstance(content, str) else content
    with PendingFile(path, durable=durable) as pending:
        try:
            pending.temporary.write_bytes(data)
        except OSError as error:
            raise UsageError(f"Cannot write {path}: {error.strerror or error}.") from None


def _fsync_folder(folder: Path) -> None:
    """Make a rename durable; not every platform can open a folder, so this is best effort."""
    with contextlib.suppress(OSError):
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
