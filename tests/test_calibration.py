"""A calibrated decision threshold: chosen on validation, stored in the weights, used by scan."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from deepfake_cli.commands import app
from deepfake_cli.model import MATConfig, Preprocessing, Provenance, build_detector, save_weights
from deepfake_cli.model.weights import load_detector, read_weights_info
from deepfake_cli.scoring import DEFAULT_THRESHOLD, FaceScorer
from deepfake_cli.training.metrics import balanced_threshold

CLIP = Path(__file__).parent / "data" / "carphone_pristine.mp4"
runner = CliRunner()


def test_balanced_threshold_separates_the_classes_with_the_widest_margin() -> None:
    # Reals at 0.1-0.3, fakes at 0.6-0.8: any threshold in (0.3, 0.6] is perfect; the middle
    # of the gap between the closest pair is the one taken.
    assert balanced_threshold([0, 0, 0, 1, 1, 1], [0.1, 0.2, 0.3, 0.6, 0.7, 0.8]) == pytest.approx(
        0.45
    )
    # Scores all below 0.5: a 0.5 threshold would call everything real; this one does not.
    threshold = balanced_threshold([0, 0, 1, 1], [0.20, 0.25, 0.35, 0.40])
    assert threshold == pytest.approx(0.30)
    # Overlap: 0.35 (all fakes, 3 of 4 reals right) and 0.75 (all reals, 3 of 4 fakes) tie at a
    # balanced accuracy of 0.875; either is right, nothing in between is as good.
    threshold = balanced_threshold(
        [0, 0, 0, 0, 1, 1, 1, 1], [0.1, 0.2, 0.3, 0.7, 0.4, 0.8, 0.85, 0.9]
    )
    assert threshold in (pytest.approx(0.35), pytest.approx(0.75))
    assert balanced_threshold([0, 0], [0.1, 0.2]) is None  # one class: nothing to balance


@pytest.fixture(scope="module")
def calibrated_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = build_detector(MATConfig(backbone="efficientnet-b0", input_size=64))
    path = tmp_path_factory.mktemp("weights") / "calibrated.safetensors"
    save_weights(
        model,
        path,
        preprocessing=Preprocessing(input_size=64),
        provenance=Provenance(name="calibrated", demo=True, decision_threshold=0.37),
    )
    return path


def test_the_threshold_travels_with_the_weights(calibrated_weights: Path) -> None:
    assert read_weights_info(calibrated_weights).provenance.decision_threshold == 0.37
    scorer = FaceScorer(load_detector(calibrated_weights), precision="fp32")
    assert scorer.decision_threshold == 0.37
    result = runner.invoke(app, ["weights", "info", str(calibrated_weights)])
    assert result.exit_code == 0 and "threshold   0.3700 (calibrated" in result.stdout


def test_weights_without_a_threshold_keep_0_5(tmp_path: Path) -> None:
    model = build_detector(MATConfig(backbone="efficientnet-b0", input_size=64))
    path = save_weights(model, tmp_path / "plain.safetensors")
    assert FaceScorer(load_detector(path), precision="fp32").decision_threshold == DEFAULT_THRESHOLD
    assert "not calibrated" in runner.invoke(app, ["weights", "info", str(path)]).stdout


def _scan_threshold(weights: Path, *extra: str) -> float:
    result = runner.invoke(
        app,
        ["scan", str(CLIP), "--weights", str(weights), "--frames", "1", "--format", "json"]
        + ["--quiet", "--device", "cpu", "--precision", "fp32", *extra],
    )
    assert result.exit_code in (0, 1), result.output
    (record,) = json.loads(result.stdout)
    verdict_by_threshold = "FAKE" if record["fake_probability"] >= record["threshold"] else "REAL"
    assert record["verdict"] == verdict_by_threshold
    return record["threshold"]


def test_scan_judges_with_the_weights_threshold_unless_told_otherwise(
    calibrated_weights: Path,
) -> None:
    assert _scan_threshold(calibrated_weights) == 0.37
    assert _scan_threshold(calibrated_weights, "--threshold", "0.9") == 0.9
