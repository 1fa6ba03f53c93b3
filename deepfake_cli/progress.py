"""A progress bar over a batch of videos, shared by `mattn scan` and `mattn extract-faces`."""

from __future__ import annotations

from pathlib import PurePath

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

#: Longest file name shown in the progress bar, so the bar keeps its place on narrow terminals.
PROGRESS_NAME_WIDTH = 40


def _short_name(path: str) -> str:
    name = PurePath(path).name or path
    if len(name) > PROGRESS_NAME_WIDTH:
        name = name[: PROGRESS_NAME_WIDTH - 1] + "…"
    return name


class ScanProgress:
    """A progress bar over the batch: current file, done/total, elapsed time and ETA.

    It shows nothing when `enabled` is false (`--quiet`) or when the console is not a terminal,
    so pipes and log files get no control characters. Give it a console on stderr when the
    results go to stdout. The bar disappears when the batch ends, leaving room for the table.
    """

    def __init__(self, total: int, console: Console, enabled: bool) -> None:
        self.total = total
        self.active = enabled and console.is_terminal
        self._progress = Progress(
            # markup=False: a file name is data, not rich markup.
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            disable=not self.active,
            transient=True,
        )
        self._task: TaskID | None = None

    def __enter__(self) -> ScanProgress:
        self._progress.start()
        self._task = self._progress.add_task("Scanning", total=self.total)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._progress.stop()

    def set_current(self, path: str) -> None:
        """Show `path` as the file being worked on now (before its result is in)."""
        if self._task is not None:
            self._progress.update(self._task, description=_short_name(path))

    def advance(self, path: str) -> None:
        """Count `path` as done and show its name."""
        if self._task is not None:
            self._progress.update(self._task, advance=1, description=_short_name(path))

    @property
    def completed(self) -> int:
        """How many files have been counted as done."""
        if self._task is None:
            return 0
        return int(self._progress.tasks[0].completed)
