"""mattn evaluate: metrics against scikit-learn and hand-computed values, per method, ROC, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import typer
from sklearn.metrics import average_precision_score, log_loss, roc_auc_score
from typer.testing import CliRunner

from deepfake_cli.commands.training import evaluate_command
from deepfake_cli.manifest import MANIFEST_NAME, iter_manifest, write_manifest
from deepfake_cli.model.mat import fake_probabilities
from deepfake_cli.model.weights import load_detector
from deepfake_cli.training import evaluate as evaluate_module
from deepfake_cli.training.metrics import binary_metrics, equal_error_rate
from tests.conftest import save_tiny_weights

# video_id: (label, method, split, fake probability of each of its frames)
VIDEOS = {
    "real_a": (0, "real", "test", [0.10, 0.20, 0.30]),
    "real_b": (0, "real", "test", [0.60, 0.20, 0.10]),
    "df_a": (1, "Deepfakes", "test", [0.90, 0.80, 0.40]),
    "df_b": (1, "Deepfakes", "test", [0.30, 0.20, 0.25]),
    "fs_a": (1, "FaceSwap", "test", [0.70, 0.95, 0.65]),
    "val_real": (0, "real", "val", [0.5, 0.5, 0.5]),
}


def make_split_folder(root: Path, size: int = 36) -> Path:
    """Crops of plain noise with a per-video tint (a model need not understand them)."""
    rng = np.random.default_rng(0)
    rows = []
    for video_id, (label, method, split, scores) in VIDEOS.items():
        tint = rng.uniform(40, 200, 3)
        (root / "crops" / video_id).mkdir(parents=True, exist_ok=True)
        for frame, _ in enumerate(scores):
            image = np.clip(tint + rng.normal(0, 30, (size, size, 3)), 0, 255).astype(np.uint8)
            path = f"crops/{video_id}/0_{frame}.png"
            cv2.imwrite(str(root / path), image)
            rows.append(
                {
                    "crop_path": path,
                    "video_path": f"{video_id}.mp4",
                    "video_id": video_id,
                    "label": label,
                    "method": method,
                    "compression": "c23",
                    "split": split,
                    "group": "",
                    "frame_index": frame,
                    "time_s": frame,
                    "person": 0,
                    "box": "0 0 9 9",
                    "landmarks": "",
                    "det_prob": 1.0,
                }
            )
    write_manifest(root, rows)
    return root


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory) -> Path:
    """conftest's tiny weights at 32 px: evaluation is about the arithmetic, not the model."""
    return save_tiny_weights(tmp_path_factory.mktemp("weights") / "tiny.safetensors", input_size=32)


def expected_metrics(labels, scores) -> dict:
    """Independent computation with scikit-learn (and numpy for accuracy)."""
    labels, scores = np.asarray(labels), np.asarray(scores)
    return {
        "auc": roc_auc_score(labels, scores),
        "ap": average_precision_score(labels, scores),
        "acc": float(np.mean((scores >= 0.5) == labels)),
        "log_loss": log_loss(labels, scores),
    }


def assert_close(report_level: dict, expected: dict) -> None:
    for name, value in expected.items():
        assert report_level[name] == pytest.approx(value, abs=1e-9), name


def test_binary_metrics_against_sklearn_and_by_hand():
    labels = [0, 0, 1, 1]
    scores = [0.1, 0.6, 0.4, 0.9]
    metrics = binary_metrics(labels, scores)
    assert_close(metrics, expected_metrics(labels, scores))
    assert metrics["auc"] == pytest.approx(0.75)  # 3 of the 4 real/fake pairs ordered right
    # At threshold 0.6: one of two reals flagged (FPR 0.5), one of two fakes missed (FNR 0.5).
    assert metrics["eer"] == pytest.approx(0.5)
    assert equal_error_rate(np.array([0, 1]), np.array([0.2, 0.8])) == 0.0
    assert metrics["count"] == 4 and metrics["real"] == 2 and metrics["fake"] == 2

    only_real = binary_metrics([0, 0, 0], [0.1, 0.7, 0.2])
    assert only_real["auc"] is None and only_real["eer"] is None and only_real["ap"] is None
    assert "only real" in only_real["note"]
    assert only_real["acc"] == pytest.approx(2 / 3)
    assert only_real["log_loss"] == pytest.approx(
        log_loss([0, 0, 0], [0.1, 0.7, 0.2], labels=[0, 1])
    )


def test_evaluate_overall_and_per_method_match_independent_numbers(
    tmp_path, tiny_weights, monkeypatch
):
    data = make_split_folder(tmp_path / "faces")

    def known_predictions(model, loader, device, **_):
        dataset = loader.dataset
        positions = list(loader.sampler)
        scores = []
        for position in positions:
            record = dataset.records[dataset.samples[position].record]
            scores.append(VIDEOS[record.video_id][3][record.frame_index])
        return positions, scores

    monkeypatch.setattr(evaluate_module, "predict", known_predictions)
    roc = tmp_path / "out" / "roc.png"
    report = evaluate_module.evaluate(data, tiny_weights, split="test", roc_png=roc, device="cpu")

    test_videos = {k: v for k, v in VIDEOS.items() if v[2] == "test"}
    assert report["frames"] == 15 and report["videos"] == 5 and report["split"] == "test"
    assert report["model"] == "tiny-test"

    def frame_level(videos):
        labels = [label for label, _, _, s in videos.values() for _ in s]
        scores = [p for _, _, _, s in videos.values() for p in s]
        return labels, scores

    def video_level(videos):  # the paper's video score: the mean of its frames
        return (
            [label for label, *_ in videos.values()],
            [float(np.mean(s)) for *_, s in videos.values()],
        )

    assert_close(report["overall"]["frame"], expected_metrics(*frame_level(test_videos)))
    assert_close(report["overall"]["video"], expected_metrics(*video_level(test_videos)))
    # Each method's videos against all the split's reals.
    assert sorted(report["per_method"]) == ["Deepfakes", "FaceSwap"]
    for method in ("Deepfakes", "FaceSwap"):
        subset = {k: v for k, v in test_videos.items() if v[1] in (method, "real")}
        assert_close(report["per_method"][method]["frame"], expected_metrics(*frame_level(subset)))
        assert_close(report["per_method"][method]["video"], expected_metrics(*video_level(subset)))
    # FaceSwap's video (mean 0.767) outranks both reals (0.2, 0.3): a perfect video AUC.
    assert report["per_method"]["FaceSwap"]["video"]["auc"] == 1.0
    assert report["per_method"]["FaceSwap"]["video"]["eer"] == 0.0

    assert roc.is_file() and roc.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert report["roc_png"] == str(roc)
    json.dumps(report, allow_nan=False)  # JSON-ready

    median = evaluate_module.evaluate(
        data, tiny_weights, split="test", aggregate="median", device="cpu"
    )
    labels = [label for label, *_ in test_videos.values()]
    medians = [float(np.median(s)) for *_, s in test_videos.values()]
    assert median["overall"]["video"]["auc"] == pytest.approx(roc_auc_score(labels, medians))

    single = evaluate_module.evaluate(data, tiny_weights, split="val", device="cpu")
    assert single["overall"]["frame"]["auc"] is None and single["per_method"] == {}
    assert any("only real" in note for note in single["notes"])


def test_evaluate_command_scores_the_model_as_recomputed_by_hand(tmp_path, tiny_weights):
    """Real model, real crops: the CLI's frame AUC equals one computed here from scratch."""
    data = make_split_folder(tmp_path / "faces")
    app = typer.Typer()
    app.command("evaluate")(evaluate_command)
    app.command("noop")(lambda: None)
    output = tmp_path / "report.json"
    result = CliRunner().invoke(
        app,
        [
            "evaluate",
            "--data",
            str(data),
            "--weights",
            str(tiny_weights),
            "--format",
            "json",
            "--device",
            "cpu",
            "--output",
            str(output),
            "--batch-size",
            "4",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert json.loads(output.read_text()) == report

    model = load_detector(tiny_weights)
    labels, scores = [], []
    for row in iter_manifest(data / MANIFEST_NAME):
        if row["split"] != "test":
            continue
        image = cv2.cvtColor(cv2.imread(str(data / row["crop_path"])), cv2.COLOR_BGR2RGB)
        centre = image[2:34, 2:34].astype(np.float32) / 255  # 36 px crop -> centre 32
        tensor = torch.from_numpy((centre - 0.5) / 0.5).permute(2, 0, 1)[None]
        with torch.no_grad():
            scores.append(float(fake_probabilities(model(tensor))[0]))
        labels.append(int(row["label"]))
    assert report["overall"]["frame"]["auc"] == pytest.approx(
        roc_auc_score(labels, scores), abs=1e-6
    )
    assert report["overall"]["frame"]["log_loss"] == pytest.approx(
        log_loss(labels, scores), abs=1e-5
    )

    table = CliRunner().invoke(
        app, ["evaluate", "--data", str(data), "--weights", str(tiny_weights), "--device", "cpu"]
    )
    assert table.exit_code == 0 and "Deepfakes" in table.stdout and "FaceSwap" in table.stdout

    bad_split = CliRunner().invoke(
        app, ["evaluate", "--data", str(data), "--weights", str(tiny_weights), "--split", "train"]
    )
    assert bad_split.exit_code == 2 and "no crops in the 'train' split" in bad_split.output
    missing = CliRunner().invoke(
        app, ["evaluate", "--data", str(data), "--weights", str(tmp_path / "none.safetensors")]
    )
    assert missing.exit_code == 2 and "does not exist" in missing.output
