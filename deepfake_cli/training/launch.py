"""`python -m deepfake_cli.training.launch train|evaluate ...`: the training commands alone.

For `torchrun ... -m deepfake_cli.training.launch train ...` where the full `mattn` CLI is not
wanted; `torchrun ... -m deepfake_cli train ...` is the same command.
"""

from __future__ import annotations

import typer

from deepfake_cli.training.commands import evaluate_command, train_command

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, no_args_is_help=True)
app.command("train")(train_command)
app.command("evaluate")(evaluate_command)

if __name__ == "__main__":
    app()
