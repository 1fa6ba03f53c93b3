"""`mattn report RESULTS -o DIR`: the work is `report.saved_results.make_reports`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from deepfake_cli.commands._errors import report_problems, user_errors
from deepfake_cli.commands._help import WEIGHTS_ENV, epilog
from deepfake_cli.errors import EXIT_ERROR, EXIT_OK

REPORT_EPILOG = epilog(
    [
        "# Scan with per-frame details, then write the pages:",
        "mattn scan videos/ --format jsonl --details --output results.jsonl",
        "mattn report results.jsonl -o report/",
        "# Results of other weights; also write the raw attention maps:",
        "mattn report results.jsonl -o report/ --weights b4.safetensors",
        "mattn report results.jsonl -o report/ --save-attention maps/",
    ],
    notes=[
        "The results must carry per-frame details (mattn scan --details), the videos must "
        "still be where the results say, and --weights must be the model that scored them. "
        "Exit code 2 if a page shows no face crops."
    ],
)


@user_errors
def report_command(
    results: Annotated[
        Path,
        typer.Argument(
            help="The JSONL (or JSON) output of `mattn scan --details`.", show_default=False
        ),
    ],
    *,
    output: Annotated[
        Path,
        typer.Option(
            "-o",
            "--output",
            help="Folder for index.html and one page per video.",
            show_default=False,
        ),
    ],
    weights: Annotated[
        Path | None,
        typer.Option(
            envvar=WEIGHTS_ENV,
            help="The weights that scored the results (default: the default model, if it did).",
        ),
    ] = None,
    save_attention: Annotated[
        Path | None,
        typer.Option(help="Also write each shown face's raw attention maps (.npy) and overlay."),
    ] = None,
    device: Annotated[
        str, typer.Option(help="Device for the attention maps: auto, cpu, cuda, cuda:N or mps.")
    ] = "auto",
) -> None:
    """Write self-contained HTML reports (verdict, attention overlays, timelines) for a scan."""
    # Imported here so that `mattn --help` does not load torch.
    from deepfake_cli.report.saved_results import make_reports

    summary = make_reports(
        results, output, weights=weights, save_attention_dir=save_attention, device=device
    )
    print(f"Wrote {len(summary.pages)} video page(s) and {summary.index_path}.")
    if summary.attention_files:
        print(f"Wrote {len(summary.attention_files)} attention files to {save_attention}.")
    if summary.problems:
        report_problems(
            f"{len(summary.problems)} page(s) show no face crops; the reasons are on the pages:",
            summary.problems,
        )
        raise typer.Exit(EXIT_ERROR)
    raise typer.Exit(EXIT_OK)
