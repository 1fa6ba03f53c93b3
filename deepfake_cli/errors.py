"""The errors a user can cause, each with the exit code the CLI turns it into.

Domain code raises these; only the command layer (`deepfake_cli.commands`, its `user_errors`
decorator) catches them and turns them into one sentence on stderr and the exit code.
Exit codes follow the scanner convention of clamscan: 0 = nothing found, 1 = something
judged fake, 2 = something could not be done.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAKE_FOUND = 1
EXIT_ERROR = 2


class MattnError(Exception):
    """Base class: a one-sentence message meant for the user, and an exit code."""

    exit_code: int = EXIT_ERROR

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class WeightsError(MattnError):
    """A weights file is missing, unreadable, corrupted or in a format mattn cannot map."""


class VideoError(MattnError):
    """A video cannot be opened or decoded (zero bytes, not a video, truncated, hung decoder)."""


class LayoutError(MattnError):
    """A dataset folder does not match the layout that was detected or asked for."""


class UsageError(MattnError):
    """Options that do not make sense together, or a path that does not exist."""
