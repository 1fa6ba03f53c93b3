"""The one place where a domain error becomes a message and an exit code.

Every command function is wrapped with `user_errors`: a `MattnError` raised anywhere below it
is printed as one sentence on stderr (never a traceback) and the command exits with the
error's code; Ctrl-C exits with 130. Problems that do not stop a command (videos skipped, pages
without faces) are listed on stderr by `report_problems`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from functools import wraps
from typing import Any

import typer
from rich.console import Console

from deepfake_cli.errors import MattnError

EXIT_INTERRUPTED = 130
# How many problems a command names before it only counts the rest: a long list would bury the
# summary, and the full list is in the command's output (summary.json, the report pages).
PROBLEMS_SHOWN = 5


def report_error(message: str) -> None:
    """One line on stderr, not wrapped, with no rich markup applied to user-given paths."""
    Console(stderr=True).print(f"mattn: {message}", markup=False, highlight=False, soft_wrap=True)


def report_problems(heading: str, problems: Sequence[str]) -> None:
    """On stderr: the heading, the first few problems indented, and how many more there are."""
    print(heading, file=sys.stderr)
    for problem in problems[:PROBLEMS_SHOWN]:
        print(f"  {problem}", file=sys.stderr)
    if len(problems) > PROBLEMS_SHOWN:
        print(f"  ... and {len(problems) - PROBLEMS_SHOWN} more", file=sys.stderr)


def user_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator for command functions: domain errors become one sentence and an exit code."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except MattnError as error:
            report_error(error.message)
            raise typer.Exit(error.exit_code) from None
        except KeyboardInterrupt:
            report_error("interrupted.")
            raise typer.Exit(EXIT_INTERRUPTED) from None

    return wrapper
