"""The `mattn` command line: the app, its commands, and the console-script entry `main`.

One module per command group parses options and calls one domain function:

    scan.py      mattn scan                       -> scan.run_scan
    weights.py   mattn weights import | info | export -> model.authors, model.weights, model.export
    extract.py   mattn extract-faces              -> extract.extract_faces
    training.py  mattn train | evaluate           -> training.loop, training.evaluate
    report.py    mattn report                     -> report.saved_results.make_reports

Domain code raises `MattnError` subclasses; only this package (`_errors.user_errors`) turns
them into one sentence on stderr and an exit code (0 = nothing judged fake, 1 = something
judged fake, 2 = something could not be done or a usage error). It is also the only package
that imports typer. Command modules import torch-heavy code inside the command, so that
`mattn --help` and shell completion stay fast and `main` can set OpenMP up before torch loads.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from typer.completion import install_callback, show_callback
from typer.core import TyperGroup

from deepfake_cli import __version__
from deepfake_cli.commands import extract, report, scan, training, weights
from deepfake_cli.commands._errors import report_error, user_errors
from deepfake_cli.commands._help import WEIGHTS_ENV, epilog
from deepfake_cli.errors import EXIT_ERROR

__all__ = ["WEIGHTS_ENV", "app", "main", "report_error", "user_errors"]

#: The shells Typer writes completion scripts for.
COMPLETION_SHELLS = ("bash", "zsh", "fish", "powershell", "pwsh")


class _MattnGroup(TyperGroup):
    """The root command; it also honours a shell named after the completion options.

    With shellingham installed (a Typer dependency), `--show-completion` and
    `--install-completion` are flags that detect the running shell, so in
    `mattn --show-completion bash` the name would be ignored, and where no shell can be
    detected (CI, containers) the option would fail. A shell named right after either option
    is used as given.
    """

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        if len(args) >= 2 and args[1] in COMPLETION_SHELLS:
            if args[0] == "--show-completion":
                show_callback(ctx, None, args[1])  # prints the script and exits
            elif args[0] == "--install-completion":
                install_callback(ctx, None, args[1])
        return super().parse_args(ctx, args)


MATTN_EPILOG = epilog(
    [
        "mattn scan examples/",
        "mattn scan videos/ --format jsonl --output results.jsonl --resume",
        "mattn extract-faces /data/FaceForensics++ -o faces/",
        "mattn train --data faces/ --out runs/b4",
        "mattn COMMAND --help",
    ],
    notes=[
        f"--weights falls back to ${WEIGHTS_ENV}, then to the bundled default model. "
        "Shell completion: mattn --install-completion."
    ],
)

app = typer.Typer(
    name="mattn",
    cls=_MattnGroup,
    help="Is the face in this video a deepfake? Multi-attentional deepfake detection (MAT).",
    epilog=MATTN_EPILOG,
    no_args_is_help=True,
    add_completion=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)
weights_app = typer.Typer(
    help="Import and inspect model weights.",
    epilog=weights.WEIGHTS_EPILOG,
    no_args_is_help=True,
    rich_markup_mode="rich",
)
app.add_typer(weights_app, name="weights")


def _version_callback(value: bool) -> None:
    if value:
        print(f"mattn {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version_callback, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    """Is the face in this video a deepfake? Multi-attentional deepfake detection (MAT)."""


app.command("scan", epilog=scan.SCAN_EPILOG)(scan.scan_command)
weights_app.command("import", epilog=weights.IMPORT_EPILOG)(weights.import_command)
weights_app.command("info", epilog=weights.INFO_EPILOG)(weights.info_command)
weights_app.command("export", epilog=weights.EXPORT_EPILOG)(weights.export_command)
app.command("extract-faces", epilog=extract.EXTRACT_EPILOG)(extract.extract_faces_command)
app.command("train", epilog=training.TRAIN_EPILOG)(training.train_command)
app.command("evaluate", epilog=training.EVALUATE_EPILOG)(training.evaluate_command)
app.command("report", epilog=report.REPORT_EPILOG)(report.report_command)


def main() -> None:
    """Console-script entry point (`mattn`, `python -m deepfake_cli`, torchrun's `-m`)."""
    # Before anything imports torch: OpenMP threads that sleep instead of spinning (see there).
    from deepfake_cli.device import prefer_passive_openmp

    prefer_passive_openmp()
    try:
        app()
    except BrokenPipeError:  # `mattn scan ... | head` must not print a traceback
        sys.stderr.close()
        sys.exit(EXIT_ERROR)
