"""The one place where a domain error becomes a message and an exit code.

Every command function is wrapped with `user_errors`: a `MattnError` raised anywhere below it
is printed as one sentence on stderr (never a traceback) and the command exits with the
error's code; Ctrl-C exits with 130.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

import typer
from rich.console import Console

from deepfake_cli.errors import MattnError

EXIT_INTERRUPTED = 130


def report_error(message: str) -> None:
    """One line on stderr, not wrapped, with no rich markup applied to user-given paths."""
    Console(stderr=True).print(f"mattn: {message}", markup=False, highlight=False, soft_wrap=True)


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
