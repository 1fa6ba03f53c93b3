"""The bundled default model and the README's first command: `mattn scan --example`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from deepfake_cli.commands import WEIGHTS_ENV, app
from deepfake_cli.errors import WeightsError
from deepfake_cli.model import weights as weights_module
from deepfake_cli.model.weights import (
    DEFAULT_WEIGHTS_NAME,
    DEFAULT_WEIGHTS_SHA256,
    bundled_weights_dir,
    file_sha256,
    load_detector,
    read_weights_info,
    resolve_weights_path,
)

REPOSITORY = Path(__file__).resolve().parents[1]
BUNDLED = REPOSITORY / "deepfake_cli" / "bundled" / DEFAULT_WEIGHTS_NAME
EXAMPLES = REPOSITORY / "deepfake_cli" / "bundled" / "examples"


def test_bundled_weights_match_their_recorded_sha256_and_config():
    assert bundled_weights_dir() == REPOSITORY / "deepfake_cli" / "bundled"
    assert file_sha256(BUNDLED) == DEFAULT_WEIGHTS_SHA256
    assert resolve_weights_path(None) == BUNDLED
    info = read_weights_info(BUNDLED)
    assert info.provenance.demo is True
    assert info.provenance.name == "mattn-sbi-b0-160"
    assert info.config.backbone == "efficientnet-b0" and info.config.variant == "mat"
    assert info.preprocessing.input_size == info.config.input_size == 160
    model = load_detector(BUNDLED)
    assert not model.training and model.weights_sha256 == DEFAULT_WEIGHTS_SHA256


def test_a_corrupted_copy_is_refused(tmp_path, monkeypatch):
    data = bytearray(BUNDLED.read_bytes())
    data[len(data) // 2] ^= 0x55  # a bit flip inside the tensor data
    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / DEFAULT_WEIGHTS_NAME).write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="corrupted"):
        load_detector(folder / DEFAULT_WEIGHTS_NAME)
    monkeypatch.setattr(weights_module, "bundled_weights_dir", lambda: folder)
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    with pytest.raises(WeightsError, match="do not match their recorded sha256"):
        resolve_weights_path(None)


def test_missing_bundled_weights_say_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.setattr(weights_module, "bundled_weights_dir", lambda: tmp_path)
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    result = CliRunner().invoke(app, ["scan", "--example"])
    assert result.exit_code == 2
    assert "--weights PATH" in result.output and "Traceback" not in result.output


@pytest.mark.slow
def test_readme_first_command_judges_the_examples(tmp_path, monkeypatch):
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    output = tmp_path / "results.json"
    result = CliRunner().invoke(
        app, ["scan", "--example", "--format", "json", "--output", str(output)]
    )
    assert result.exit_code == 1, result.output  # one FAKE found
    verdicts = {Path(row["path"]).name: row for row in json.loads(output.read_text())}
    real, fake = verdicts["real_carphone.mp4"], verdicts["fake_carphone_selfblend.mp4"]
    assert real["verdict"] == "REAL" and fake["verdict"] == "FAKE"
    assert real["persons"][0]["frames"] == real["frames_used"] == 32
    for row in (real, fake):
        assert row["model"] == {
            "name": "mattn-sbi-b0-160",
            "sha256": DEFAULT_WEIGHTS_SHA256,
            "demo": True,
        }
