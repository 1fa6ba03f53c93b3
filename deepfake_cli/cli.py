"""The `mattn` command line. Each command parses its options and calls one function.

Domain code raises `MattnError` subclasses; this module alone turns them into one sentence on
stderr and an exit code (0 = nothing judged fake, 1 = something judged fake, 2 = something
could not be done or a usage error).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from deepfake_cli import __version__
from deepfake_cli.command_errors import user_errors
from deepfake_cli.errors import EXIT_ERROR, UsageError
from deepfake_cli.extract_command import extract_faces_command
from deepfake_cli.report_command import report_command
from deepfake_cli.training.commands import evaluate_command, train_command

app = typer.Typer(
    name="mattn",
    help="Is the face in this video a deepfake? Multi-attentional deepfake detection (MAT).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
weights_app = typer.Typer(help="Import and inspect model weights.", no_args_is_help=True)
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


SCAN_EPILOG = (
    "Exit codes: 0 = every file scanned and none judged FAKE; 1 = at least one judged FAKE; "
    "2 = at least one file could not be scanned (takes precedence over 1), or a usage error. "
    "A video without a face is reported as no_face and is not an error."
)


@app.command("scan", epilog=SCAN_EPILOG)
@user_errors
def scan(
    inputs: Annotated[
        list[str],
        typer.Argument(
            help="Video files, folders (searched recursively), or - for paths on stdin."
        ),
    ],
    *,
    weights: Annotated[
        Path | None,
        typer.Option(
            help="mattn .safetensors weights or an authors' .pth (default: bundled demo)."
        ),
    ] = None,
    frames: Annotated[int, typer.Option(help="Frames sampled evenly per video.")] = 32,
    start: Annotated[float | None, typer.Option(help="Sample from this time (seconds).")] = None,
    end: Annotated[float | None, typer.Option(help="Sample until this time (seconds).")] = None,
    max_faces: Annotated[int, typer.Option(help="Faces scored per frame, largest first.")] = 4,
    aggregate: Annotated[
        str, typer.Option(help="Frame-to-video rule: mean, median, topk, confident, weighted.")
    ] = "mean",
    threshold: Annotated[
        float, typer.Option(help="Fake probability at or above which a video is FAKE.")
    ] = 0.5,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
    precision: Annotated[str, typer.Option(help="auto, fp32, bf16 or fp16.")] = "auto",
    batch_size: Annotated[
        int | None, typer.Option(help="Faces per detector batch (default: tuned per device).")
    ] = None,
    output_format: Annotated[
        str, typer.Option("--format", help="table (for people), json, jsonl or csv.")
    ] = "table",
    output: Annotated[Path | None, typer.Option(help="Write results to this file.")] = None,
    details: Annotated[
        bool, typer.Option(help="Add per-frame boxes and scores (json/jsonl).")
    ] = False,
    resume: Annotated[
        bool, typer.Option(help="Skip videos already in the --output JSONL file.")
    ] = False,
    shard: Annotated[
        str | None, typer.Option(help="Scan only slice K of N (e.g. 1/4), for array jobs.")
    ] = None,
    glob: Annotated[
        str | None, typer.Option(help="File-name pattern for folders (default: video extensions).")
    ] = None,
    timeout: Annotated[
        float, typer.Option(help="Seconds before a video whose decoding hangs is given up.")
    ] = 120.0,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
    report: Annotated[
        Path | None,
        typer.Option(help="Write self-contained HTML reports (index.html + a page per video)."),
    ] = None,
    save_attention: Annotated[
        Path | None,
        typer.Option(help="With --report: also write attention maps (.npy) and overlays (.png)."),
    ] = None,
) -> None:
    """Judge whether the faces in videos are deepfakes."""
    from deepfake_cli.scan import ScanOptions, ScanRequest, run_scan

    try:
        options = ScanOptions(
            frames=frames,
            start_s=start,
            end_s=end,
            max_faces=max_faces,
            aggregate=aggregate,
            threshold=threshold,
            timeout_s=timeout if timeout > 0 else None,
            details=details,
        )
    except ValueError as error:
        raise UsageError(str(error)) from None
    request = ScanRequest(
        inputs=tuple(inputs),
        options=options,
        weights=weights,
        device=device,
        precision=precision,
        batch_size=batch_size,
        output_format=output_format,
        output=output,
        resume=resume,
        shard=shard,
        glob=glob,
        quiet=quiet,
        report_dir=report,
        save_attention_dir=save_attention,
    )
    raise typer.Exit(run_scan(request))


@weights_app.command("import")
@user_errors
def weights_import(
    checkpoint: Annotated[Path, typer.Argument(help="The authors' .pth checkpoint.")],
    output: Annotated[Path, typer.Argument(help="Where to write the mattn .safetensors file.")],
    *,
    input_size: Annotated[
        int | None, typer.Option(help="Input size the model was trained at (default: native).")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Model name recorded in the file.")] = None,
) -> None:
    """Convert an authors'-format MAT checkpoint (read with weights_only=True) to mattn weights."""
    from deepfake_cli.model.weights import import_and_save

    written = import_and_save(checkpoint, output, input_size=input_size, name=name)
    print(
        f"wrote {written.path} ({written.config.backbone}, {written.num_parameters:,} parameters, "
        f"sha256 {written.sha256})"
    )


@weights_app.command("info")
@user_errors
def weights_info(
    path: Annotated[Path, typer.Argument(help="A mattn .safetensors weights file.")],
    *,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Show what a weights file is: config, preprocessing, provenance, parameters, sha256."""
    from deepfake_cli.model.weights import read_weights_info

    info = read_weights_info(path)
    summary = {
        "path": str(info.path),
        "sha256": info.sha256,
        "parameters": info.num_parameters,
        "model_config": info.config.to_dict(),
        "preprocessing": info.preprocessing.to_dict(),
        "provenance": info.provenance.to_dict(),
    }
    if as_json:
        print(json.dumps(summary, indent=2))
        return
    console = Console()
    provenance = info.provenance
    console.print(f"[bold]{provenance.name}[/bold]  ({info.path})", highlight=False)
    if provenance.demo:
        console.print(
            "[yellow]DEMO MODEL: shows the pipeline working; not validated on deepfake "
            "benchmarks.[/yellow]"
        )
    console.print(f"sha256      {info.sha256}", highlight=False)
    console.print(f"parameters  {info.num_parameters:,}", highlight=False)
    console.print(f"source      {provenance.source}", highlight=False)
    console.print(f"trained on  {provenance.trained_on}", highlight=False)
    if provenance.metrics:
        console.print(f"metrics     {json.dumps(provenance.metrics)}", highlight=False)
    if provenance.notes:
        console.print(f"notes       {provenance.notes}", highlight=False)
    console.print("model config:", highlight=False)
    for key, value in info.config.to_dict().items():
        console.print(f"  {key:<20}{value}", highlight=False)
    console.print("preprocessing:", highlight=False)
    for key, value in info.preprocessing.to_dict().items():
        console.print(f"  {key:<20}{value}", highlight=False)


# Commands defined beside the code they drive; each handles its own domain errors the same way.
app.command("extract-faces")(extract_faces_command)
app.command("train")(train_command)
app.command("evaluate")(evaluate_command)
app.command("report")(report_command)


def main() -> None:
    """Console-script entry point."""
    # Before anything imports torch: OpenMP threads that sleep instead of spinning (see there).
    from deepfake_cli.device import prefer_passive_openmp

    prefer_passive_openmp()
    try:
        app()
    except BrokenPipeError:  # `mattn scan ... | head` must not print a traceback
        sys.stderr.close()
        sys.exit(EXIT_ERROR)
