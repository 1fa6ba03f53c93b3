"""Reports for a finished scan (`mattn report RESULTS -o DIR`): results file in, pages out.

A scan's results say which model scored them (name and sha256), so the attention maps of a
report are only drawn with those weights. The results must carry per-frame details
(`mattn scan --details`), and the videos must still be where the results say. Writing the
pages is `deepfake_cli.report.html.build_reports`'s job.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from deepfake_cli.errors import UsageError, WeightsError
from deepfake_cli.results import STATUS_OK, VideoResult

if TYPE_CHECKING:
    from deepfake_cli.report.html import ReportSummary


def load_scan_results(results_path: Path) -> list[VideoResult]:
    """The results of a `mattn scan` JSONL (or JSON) output, checked to have per-frame details.

    Raises:
        UsageError: the file is missing, holds no results, or has no per-frame details.
    """
    from deepfake_cli.report.writers import read_results

    if not results_path.is_file():
        raise UsageError(f"Results file {results_path} does not exist.")
    try:
        with open(results_path, encoding="utf-8") as handle:
            first_character = handle.read(1)
            while first_character.isspace():
                first_character = handle.read(1)
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"Cannot read results file {results_path} ({error}).") from None
    if first_character == "[":  # `--format json`: one array
        try:
            parsed = json.loads(results_path.read_text(encoding="utf-8"))
            results = [VideoResult.from_dict(item) for item in parsed]
        except (ValueError, KeyError, TypeError) as error:
            raise UsageError(
                f"Results file {results_path} is not a mattn JSON output ({error})."
            ) from None
    else:
        results = read_results(results_path)
    if not results:
        raise UsageError(
            f"Results file {results_path} holds no mattn scan results (expected the JSONL or "
            "JSON output of mattn scan)."
        )
    scanned = [result for result in results if result.status == STATUS_OK]
    if scanned and all(result.frames is None for result in scanned):
        raise UsageError(
            f"Results file {results_path} has no per-frame details; scan again with "
            "--format jsonl --details (or with --report DIR)."
        )
    return results


def choose_weights(results: list[VideoResult], weights: Path | None) -> Path:
    """The weights file that scored `results`: `weights` if given, else the default if it matches.

    Raises:
        WeightsError: the weights are not the ones that scored the results, or the default
            weights cannot be found.
        UsageError: no weights given and the results come from more than one model.
    """
    from deepfake_cli.model.weights import file_sha256, resolve_weights_path

    models = {result.model.sha256: result.model for result in results if result.model.sha256}
    if weights is not None:
        if not Path(weights).is_file():
            raise WeightsError(f"Weights file {weights} does not exist.")
        if models and file_sha256(Path(weights)) not in models:
            names = ", ".join(f"{model.name} ({sha256[:12]})" for sha256, model in models.items())
            raise WeightsError(
                f"Weights file {weights} is not the model that scored these results ({names}); "
                "its attention maps would not explain their scores."
            )
        return Path(weights)
    if len(models) > 1:
        raise UsageError(
            f"These results come from {len(models)} different models; pass --weights with the "
            "one whose videos should get attention maps."
        )
    # Results without a recorded sha256 (none in practice) cannot be checked against anything.
    expected = next(iter(models.values()), None)
    wanted = "" if expected is None else f" {expected.name} (sha256 {expected.sha256[:12]})"
    try:
        default_path = resolve_weights_path(None)
    except WeightsError:
        raise WeightsError(
            f"The default weights cannot be found; pass --weights with the model that scored "
            f"these results{wanted}."
        ) from None
    if expected is not None and file_sha256(default_path) != expected.sha256:
        raise WeightsError(
            f"These results were scored by{wanted}, not by the default weights {default_path}; "
            "pass --weights with that model's file."
        )
    return default_path


def make_reports(
    results_path: Path,
    output_dir: Path,
    *,
    weights: Path | None = None,
    save_attention_dir: Path | None = None,
    device: str = "auto",
) -> ReportSummary:
    """Read a finished scan's results and write its HTML reports (see `build_reports`)."""
    from deepfake_cli.device import resolve_device
    from deepfake_cli.model.weights import load_detector
    from deepfake_cli.report.html import build_reports

    results = load_scan_results(results_path)
    weights_path = choose_weights(results, weights)
    model = load_detector(weights_path, device=resolve_device(device))
    return build_reports(results, output_dir, model=model, save_attention_dir=save_attention_dir)
