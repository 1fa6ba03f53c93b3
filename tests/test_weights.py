"""Weights: safetensors round trip, authors' checkpoint import, refusals, `mattn weights`."""

from __future__ import annotations

import json
import pickle
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from deepfake_cli.commands import app
from deepfake_cli.errors import WeightsError
from deepfake_cli.model.authors import import_authors_checkpoint
from deepfake_cli.model.config import MATConfig, Preprocessing, Provenance
from deepfake_cli.model.mat import build_detector
from deepfake_cli.model.weights import (
    canonical_safetensors,
    load_detector,
    read_weights_info,
    save_weights,
)
from tests.test_model import authors_key, randomise_batchnorm

runner = CliRunner()


@pytest.fixture(scope="module")
def legacy_model():
    """A tiny detector as the authors' code would build it (their padding), random weights."""
    torch.manual_seed(0)
    config = MATConfig(backbone="efficientnet-b0", input_size=96, legacy_padding=True)
    model = build_detector(config)
    randomise_batchnorm(model, seed=3)
    # Non-zero RIL state, so the import is seen to carry it.
    model.regional_loss.feature_centers.normal_()
    return model.eval()


def authors_checkpoint(model: torch.nn.Module, path: Path) -> Path:
    """Save `model` the way the authors' training script does: a dict with `state_dict`."""
    state = {authors_key(key): value.clone() for key, value in model.state_dict().items()}
    torch.save(
        {
            "state_dict": state,
            "logs": [{"epoch": 1, "loss": 0.5}],
            "optimizer_state": {"state": {}, "param_groups": [{"lr": 1e-4}]},
            "scheduler_state": {"step_size": 5, "gamma": 0.5, "last_epoch": 3},
        },
        path,
    )
    return path


def test_round_trip_is_bit_exact(tmp_path, legacy_model):
    path = save_weights(
        legacy_model,
        tmp_path / "model.safetensors",
        preprocessing=Preprocessing(input_size=96),
        provenance=Provenance(name="tiny", source="test", demo=True),
    )
    loaded = load_detector(path)
    original, reloaded = legacy_model.state_dict(), loaded.state_dict()
    assert original.keys() == reloaded.keys()
    for key in original:
        assert torch.equal(original[key], reloaded[key]), key
    assert loaded.config == legacy_model.config and not loaded.training
    assert loaded.provenance.name == "tiny" and loaded.provenance.demo
    images = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        assert torch.equal(loaded(images), legacy_model(images))
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_import_reproduces_the_authors_model(tmp_path, legacy_model):
    checkpoint = authors_checkpoint(legacy_model, tmp_path / "authors.pth")
    imported = import_authors_checkpoint(checkpoint, input_size=96)
    assert imported.config.legacy_padding and imported.config.backbone == "efficientnet-b0"
    assert imported.config.attention_tap == "b5" and imported.config.texture_tap == "b2"
    assert imported.config.num_attentions == 4
    images = torch.randn(3, 3, 96, 96)
    with torch.no_grad():
        difference = (imported(images) - legacy_model(images)).abs().max()
    assert difference < 1e-4
    assert torch.equal(
        imported.regional_loss.feature_centers, legacy_model.regional_loss.feature_centers
    )


def test_cli_import_then_info(tmp_path, legacy_model):
    checkpoint = authors_checkpoint(legacy_model, tmp_path / "authors.pth")
    output = tmp_path / "imported.safetensors"
    result = runner.invoke(
        app, ["weights", "import", str(checkpoint), str(output), "--input-size", "96"]
    )
    assert result.exit_code == 0, result.output
    info = read_weights_info(output)
    assert info.provenance.source == "imported from the authors' checkpoint"
    assert info.config.legacy_padding
    shown = runner.invoke(app, ["weights", "info", str(output)])
    assert shown.exit_code == 0
    for expected in ("sha256", info.sha256, "legacy_padding", "efficientnet-b0", "parameters"):
        assert expected in shown.output
    as_json = runner.invoke(app, ["weights", "info", str(output), "--json"])
    assert '"num_attentions": 4' in as_json.output


class Harmless:
    """A class reference in a pickle: weights_only loading must refuse it without running it."""


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda path: path.write_bytes(b"\x00garbage" * 100), "weights_only=True"),
        (lambda path: path.write_bytes(b""), "weights_only=True"),
        (lambda path: path.write_bytes(pickle.dumps({"state_dict": Harmless()})), "weights_only"),
        (
            lambda path: torch.save({"state_dict": {"fc.weight": torch.zeros(2, 2)}}, path),
            "not an authors'-format MAT checkpoint",
        ),
    ],
    ids=["garbage", "empty", "code-in-pickle", "foreign"],
)
def test_import_refuses_bad_checkpoints(tmp_path, make, message):
    path = tmp_path / "bad.pth"
    make(path)
    result = runner.invoke(app, ["weights", "import", str(path), str(tmp_path / "out.safetensors")])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "out.safetensors").exists()


def test_import_names_the_first_key_that_does_not_fit(tmp_path, legacy_model):
    state = {authors_key(key): value for key, value in legacy_model.state_dict().items()}
    state["project_final.weight"] = torch.zeros(256, 7)
    path = tmp_path / "wrong-shape.pth"
    torch.save({"state_dict": state}, path)
    with pytest.raises(WeightsError, match=r"'project_final.weight' has shape \(256, 7\)"):
        import_authors_checkpoint(path, input_size=96)
    del state["project_final.weight"]
    state["project_final.weight"] = legacy_model.state_dict()["project_final.weight"]
    state["extra.layer"] = torch.zeros(1)
    torch.save({"state_dict": state}, path)
    with pytest.raises(WeightsError, match="extra.layer"):
        import_authors_checkpoint(path, input_size=96)


def test_corrupted_weights_are_refused(tmp_path, legacy_model):
    path = save_weights(legacy_model, tmp_path / "model.safetensors")
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF  # flip bits in the last tensor's data
    corrupted = tmp_path / "corrupted.safetensors"
    corrupted.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="corrupted"):
        load_detector(corrupted)
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(WeightsError, match="not a readable .safetensors"):
        load_detector(truncated)
    with pytest.raises(WeightsError, match="does not exist"):
        load_detector(tmp_path / "missing.safetensors")


def test_foreign_safetensors_is_refused(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "foreign.safetensors"
    save_file({"weight": torch.zeros(2)}, str(path))
    with pytest.raises(WeightsError, match="not mattn weights"):
        load_detector(path)


def test_authors_stage_one_checkpoint_with_unused_modules(tmp_path, legacy_model):
    # The authors' pretraining builds MAT with feature layer `logits`: its checkpoint carries
    # attention and texture modules (the latter 2 channels wide) that its forward never uses.
    state = {authors_key(key): value for key, value in legacy_model.state_dict().items()}
    state["texture_enhance.conv_extract.weight"] = torch.zeros(2, 2, 3, 3)
    path = tmp_path / "pretrain.pth"
    torch.save({"state_dict": state}, path)
    imported = import_authors_checkpoint(path, input_size=96)
    assert imported.config.variant == "backbone" and imported.config.legacy_padding
    images = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        expected = legacy_model.backbone.forward_taps(images)["logits"]
        assert torch.equal(imported(images), expected)


def test_stage_one_checkpoint_imports_as_backbone_classifier(tmp_path):
    config = MATConfig(backbone="efficientnet-b0", input_size=96, variant="backbone")
    model = build_detector(config).eval()
    state = {"net." + key[len("backbone.") :]: value for key, value in model.state_dict().items()}
    path = tmp_path / "stage1.pth"
    torch.save({"state_dict": state}, path)
    imported = import_authors_checkpoint(path, input_size=96)
    assert imported.config.variant == "backbone"
    images = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        assert imported(images).shape == (1, 2)


# Each save in a process of its own: safetensors orders the metadata by a per-process hash seed.
SAVE_IN_A_CHILD = """
import sys
sys.path.insert(0, sys.argv[1])
from conftest import save_tiny_weights
save_tiny_weights(sys.argv[2])
"""


def test_the_same_model_saved_twice_gives_the_same_bytes(tmp_path):
    """The build of the bundled default is checked with `cmp`: equal contents, equal files."""
    paths = [tmp_path / f"save-{number}.safetensors" for number in range(3)]
    for path in paths:
        subprocess.run(
            [sys.executable, "-c", SAVE_IN_A_CHILD, str(Path(__file__).parent), str(path)],
            check=True,
        )
    assert paths[0].read_bytes() == paths[1].read_bytes() == paths[2].read_bytes()
    model = load_detector(paths[0])
    assert model.provenance.name == "tiny-test"


def test_canonical_header_keeps_every_tensor_and_entry(tmp_path, legacy_model):
    path = save_weights(legacy_model, tmp_path / "model.safetensors")
    data = path.read_bytes()
    assert canonical_safetensors(data) == data  # what save_weights wrote is canonical already
    (header_length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + header_length])
    assert list(header["__metadata__"]) == sorted(header["__metadata__"])
    offsets = [entry["data_offsets"] for key, entry in header.items() if key != "__metadata__"]
    assert offsets == sorted(offsets)
    loaded = load_file(path)
    for key, tensor in legacy_model.state_dict().items():
        assert torch.equal(loaded[key], tensor)
