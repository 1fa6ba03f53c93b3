"""The command layer as a user meets it: help with examples, env vars, completion, layout."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
import shellingham
from rich.text import Text
from typer.main import get_command
from typer.testing import CliRunner

from deepfake_cli import __version__
from deepfake_cli.commands import WEIGHTS_ENV, app

REPOSITORY = Path(__file__).resolve().parents[1]
PACKAGE = REPOSITORY / "deepfake_cli"
EXAMPLE_VIDEO = REPOSITORY / "deepfake_cli" / "bundled" / "examples" / "real_carphone.mp4"

runner = CliRunner()


def command_paths() -> list[list[str]]:
    """The root, every command group and every command, as the words a user types."""
    paths: list[list[str]] = []

    def walk(command, words: list[str]) -> None:
        paths.append(words)
        for name, child in getattr(command, "commands", {}).items():
            walk(child, [*words, name])

    walk(get_command(app), [])
    return paths


def help_text(words: list[str], columns: int = 80) -> str:
    result = runner.invoke(app, [*words, "--help"], env={"COLUMNS": str(columns)})
    assert result.exit_code == 0, result.output
    return result.output


def example_lines(words: list[str]) -> list[str]:
    """The example commands of a command's epilog, as plain text."""
    command = get_command(app)
    for word in words:
        command = command.commands[word]
    lines = (command.epilog or "").split("[bold]Examples[/bold]")[-1].splitlines()
    return [Text.from_markup(line).plain.strip() for line in lines if line.strip()]


def test_every_command_is_covered():
    names = {" ".join(words) for words in command_paths()}
    expected = {"scan", "extract-faces", "train", "evaluate", "report", "weights"}
    assert expected | {"", "weights import", "weights info"} <= names


@pytest.mark.parametrize("words", command_paths(), ids=lambda words: " ".join(words) or "mattn")
def test_help_ends_with_examples_that_fit_80_columns(words):
    text = help_text(words)
    assert "Examples" in text
    after_examples = text.split("Examples")[-1]
    assert "╭" not in after_examples  # nothing (no option panel) comes after the examples
    examples = example_lines(words)
    assert examples, "an epilog without examples"
    shown = [line.strip() for line in after_examples.splitlines()]
    for example in examples:
        assert example in shown, f"{example!r} is wrapped or missing at 80 columns"


def test_scan_help_keeps_the_exit_codes_and_train_help_its_settings():
    scan_help = " ".join(help_text(["scan"], columns=200).split())
    assert "Exit codes: 0 = every file scanned and none judged FAKE" in scan_help
    assert "A video without a face is reported as no_face and is not an error." in scan_help
    train_help = " ".join(help_text(["train"], columns=200).split())
    # Brackets in the text are shown as written, not read as rich markup.
    assert "[stage1] / [stage2] tables in the TOML file" in train_help
    assert "best.safetensors (by validation video AUC)" in train_help


@pytest.mark.parametrize("words", [["scan"], ["report"], ["evaluate"]])
def test_weights_options_show_their_environment_variable(words):
    assert WEIGHTS_ENV == "MATTN_WEIGHTS"
    assert "env var: MATTN_WEIGHTS" in help_text(words, columns=200)


def test_the_environment_variable_names_the_weights_and_the_option_wins(tmp_path, monkeypatch):
    from_env = tmp_path / "from-env.safetensors"
    from_option = tmp_path / "from-option.safetensors"
    monkeypatch.setenv(WEIGHTS_ENV, str(from_env))
    arguments = ["scan", str(EXAMPLE_VIDEO), "--quiet", "--device", "cpu"]

    by_env = runner.invoke(app, arguments)
    assert by_env.exit_code == 2
    assert f"Weights file {from_env} does not exist; pass --weights PATH" in by_env.output

    by_option = runner.invoke(app, [*arguments, "--weights", str(from_option)])
    assert by_option.exit_code == 2
    assert f"Weights file {from_option} does not exist" in by_option.output
    assert str(from_env) not in by_option.output


def _no_shell_detected(*args, **kwargs):
    raise shellingham.ShellDetectionFailure()


@pytest.mark.parametrize("detected", [None, "zsh"])
def test_show_completion_bash_prints_a_bash_script(monkeypatch, detected):
    """`mattn --show-completion bash` works where no shell (CI) or another shell is detected."""
    if detected is None:
        monkeypatch.setattr(shellingham, "detect_shell", _no_shell_detected)
    else:
        monkeypatch.setattr(shellingham, "detect_shell", lambda *a, **k: (detected, detected))
    monkeypatch.delenv("SHELL", raising=False)
    result = runner.invoke(app, ["--show-completion", "bash"], prog_name="mattn")
    assert result.exit_code == 0, result.output
    assert "complete -o default -F _mattn_completion mattn" in result.output
    assert "_MATTN_COMPLETE=complete_bash" in result.output


def test_completion_completes_commands_and_options():
    def complete(words: str) -> list[str]:
        environment = {
            "_MATTN_COMPLETE": "complete_bash",
            "COMP_WORDS": words,
            "COMP_CWORD": str(len(words.split()) - 1),
        }
        result = runner.invoke(app, [], env=environment, prog_name="mattn")
        assert result.exit_code == 0, result.output
        return result.output.split()

    assert complete("mattn sc") == ["scan"]
    assert "--weights" in complete("mattn scan --we")


def test_only_the_commands_package_imports_typer():
    importers = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            else:
                continue
            if any(module == "typer" or module.startswith("typer.") for module in modules):
                importers.append(path.relative_to(PACKAGE).as_posix())
    assert importers, "the scan found no typer import at all"
    assert all(name.startswith("commands/") for name in importers), sorted(set(importers))


def _run_python(code: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": str(REPOSITORY)}
    environment.pop("OMP_WAIT_POLICY", None)
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPOSITORY,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_command_line_loads_without_torch_and_sets_openmp_first():
    done = _run_python(
        "import os, sys\n"
        "sys.argv = ['mattn', '--version']\n"
        "from deepfake_cli.commands import main\n"
        "assert 'torch' not in sys.modules, 'torch loaded with the commands'\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exit:\n"
        "    assert not exit.code, exit.code\n"
        "print(os.environ.get('OMP_WAIT_POLICY'))\n"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["mattn", __version__, "PASSIVE"]


def test_python_m_deepfake_cli_is_the_same_command_line():
    environment = {**os.environ, "PYTHONPATH": str(REPOSITORY), "COLUMNS": "200"}
    done = subprocess.run(
        [sys.executable, "-m", "deepfake_cli", "train", "--help"],
        cwd=REPOSITORY,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "Examples" in done.stdout and "--synthetic-fakes" in done.stdout
