"""`mattn train`'s defaults are the authors' recipe, value for value, and stay so.

AUTHORS below is written from /work/shared/reference/MAT.md (§3-§7) and the authors'
EfficientNet table of classifier dropout; the resolved configuration of `--recipe paper` is held
against it, so a changed default fails here. Also: ImageNet / AdvProp initialisation, the
from-scratch preset and its precedence, and the authors' frames per epoch.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import pytest
import torch

from deepfake_cli.errors import UsageError, WeightsError
from deepfake_cli.manifest import CropRecord
from deepfake_cli.model.augmentation import AGDAConfig
from deepfake_cli.model.backbone import (
    TappedEfficientNet,
    efficientnet_variant,
    find_imagenet_weights,
    read_imagenet_weights,
)
from deepfake_cli.model.config import MATConfig
from deepfake_cli.model.mat import MATDetector
from deepfake_cli.model.weights import read_weights_info, save_weights
from deepfake_cli.training.data import authors_frames, epoch_plan, video_frames
from deepfake_cli.training.settings import resolve_config
from deepfake_cli.training.setup import build_model, from_scratch_notice, loss_weights

#: The authors' recipe for their released model (MAT.md), written out here on purpose.
AUTHORS = {
    "stages": (1, 2),  # stage 1: EfficientNet classifier; stage 2: MAT from its backbone
    "stage1": {"epochs": 20, "batch_size": 16},
    "stage2": {"epochs": 30, "batch_size": 15},  # 50 configured, counter continues from 20
    "optimiser": {"lr": 1e-4, "betas": (0.9, 0.999), "weight_decay": 1e-6},
    "schedule": {"lr_step_epochs": 5, "lr_gamma": 0.5},
    "loss": {"cross_entropy": 1.0, "regional_independence": 0.5, "agda_cross_entropy": 1.0},
    "match_loss": 0.1,
    "agda": True,
    "agda_config": {
        "threshold_range": (0.4, 0.6),
        "zoom_range": (3.0, 5.0),
        "scale_factor": 0.5,
        "blur_kernel": 11,
        "blur_sigma": 7.0,
        "noise_std": 0.1,
    },
    "ril": {"alpha": 0.05, "alpha_decay": 0.9, "margin": 0.8, "inner_margins": (0.2, -0.8)},
    "model": {
        "num_attentions": 4,
        "attention_tap": "b5",
        "texture_tap": "b2",
        "hidden_dims": 256,
        "attention_dropout": 0.25,
        "final_dropout": 0.5,
    },
    "backbone_dropout": {"b0": 0.2, "b1": 0.2, "b2": 0.3, "b3": 0.3, "b4": 0.0, "b5": 0.0}
    | {"b6": 0.5, "b7": 0.5},
    "input_size": {"b0": 224, "b1": 240, "b2": 260, "b3": 300, "b4": 380, "b5": 456}
    | {"b6": 528, "b7": 600},
    "authors_padding": True,  # "same" padding computed once for the input size (§7)
    "normalization": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "frames": {"frames_per_video": 50, "frame_stride": 10},  # every 10th of the first 500
    "data": {
        "hflip": True,
        "train_crop": "center",
        "augment": False,
        "degradations": "none",
        "synthetic_fakes": "none",
        "class_weighted": False,  # real videos oversampled instead
    },
}


def paper(**options) -> object:
    return resolve_config({"data": "faces", "out": "run", **options})


@pytest.mark.parametrize("variant", [f"b{n}" for n in range(8)])
def test_the_paper_recipe_is_the_authors(variant):
    config = paper(recipe="paper", backbone=f"efficientnet-{variant}")
    assert config.stages == AUTHORS["stages"]
    for stage in (1, 2):
        stage_config = config.stage_config(stage)
        for name, value in {
            **AUTHORS[f"stage{stage}"],
            **AUTHORS["optimiser"],
            **AUTHORS["schedule"],
        }.items():
            assert getattr(stage_config, name) == value, (stage, name)
    weights = loss_weights(config)
    for name, value in AUTHORS["loss"].items():
        assert getattr(weights, name) == value, name
    assert weights.match == AUTHORS["match_loss"] and config.agda is AUTHORS["agda"]
    assert dataclasses.asdict(AGDAConfig()) == AUTHORS["agda_config"]
    assert config.ril_alpha_decay == AUTHORS["ril"]["alpha_decay"]
    for name, value in {**AUTHORS["frames"], **AUTHORS["data"]}.items():
        assert getattr(config, name) == value, name
    assert (config.mean, config.std) == AUTHORS["normalization"]
    assert config.preprocessing(1.3).mean == AUTHORS["normalization"][0]
    for stage, variant_name in ((1, "backbone"), (2, "mat")):
        model = config.model_config(stage)
        assert model.variant == variant_name
        assert model.input_size == AUTHORS["input_size"][variant]
        assert model.backbone_dropout == AUTHORS["backbone_dropout"][variant]
        assert model.legacy_padding is AUTHORS["authors_padding"]
        for name, value in AUTHORS["model"].items():
            assert getattr(model, name) == value, name
        assert model.ril_alpha == AUTHORS["ril"]["alpha"]
        assert model.ril_margin == AUTHORS["ril"]["margin"]
        assert model.ril_inner_margins == AUTHORS["ril"]["inner_margins"]


def test_b4_weights_record_dropout_0_and_the_authors_padding(tmp_path):
    """What `mattn train --recipe paper --backbone efficientnet-b4` builds and saves."""
    config = paper(recipe="paper", backbone="efficientnet-b4")
    model, line = build_model(config, 1, resume_state=None, run_dir=tmp_path)
    assert "training from scratch" in line
    assert model.backbone._dropout.p == 0.0
    save_weights(model, tmp_path / "stage1.safetensors")
    info = read_weights_info(tmp_path / "stage1.safetensors")
    assert info.config.backbone_dropout == 0.0 and info.config.legacy_padding
    assert config.model_config(2).legacy_padding  # the MAT of stage 2 too
    # The authors' padding gives their grid: 23x23 at the attention tap (b5), not 24x24.
    with torch.no_grad():
        ours = model.backbone.eval().forward_taps(torch.zeros(1, 3, 380, 380), {"b5"})["b5"]
        per_stage = paper(backbone="efficientnet-b4", stage=1).model_config(1)
        per_stage = dataclasses.replace(per_stage, legacy_padding=False)
        theirs = MATDetector(per_stage).backbone.eval()
        other = theirs.forward_taps(torch.zeros(1, 3, 380, 380), {"b5"})["b5"]
    assert tuple(ours.shape[-2:]) == (23, 23) and tuple(other.shape[-2:]) == (24, 24)


def test_padding_is_the_same_network_at_multiples_of_32_px():
    """B0 at 64 px: the authors' and per-stage padding agree (the demo models are unchanged)."""
    torch.manual_seed(0)
    authors = MATDetector(MATConfig(backbone="efficientnet-b0", input_size=64, legacy_padding=True))
    plain = MATDetector(MATConfig(backbone="efficientnet-b0", input_size=64))
    plain.load_state_dict(authors.state_dict())
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(authors.eval()(images), plain.eval()(images))


def test_files_that_do_not_record_padding_or_dropout_load_as_they_were_built():
    old = MATConfig(backbone="efficientnet-b0", input_size=64).to_dict()
    del old["legacy_padding"], old["backbone_dropout"]
    loaded = MATConfig.from_dict(old)
    assert loaded.legacy_padding is False and loaded.backbone_dropout == 0.4


def test_a_run_resumed_from_an_older_config_keeps_its_network_and_crops():
    saved = {"data": "faces", "out": "run", "backbone": "efficientnet-b4", "mean": [0.5] * 3}
    config = resolve_config({"out": "run"}, saved=saved)
    assert config.padding == "per-stage" and config.backbone_dropout == 0.4
    assert config.train_crop == "random" and config.frame_stride == 0
    current = resolve_config({"out": "run"}, saved=paper().to_dict())
    assert current == paper()


# --- the from-scratch preset ---------------------------------------------------------------


def test_from_scratch_preset_and_its_precedence(tmp_path):
    config = paper(preset="from-scratch")
    assert config.stage1.lr == 1e-3 and config.stage2.lr == 3e-4 and config.bn_momentum == 0.1
    assert config.stage1.epochs == 20  # everything else stays the authors'
    # A TOML file may name the preset; its own values win over it, and options over both.
    (tmp_path / "t.toml").write_text(
        'preset = "from-scratch"\nbn_momentum = 0.05\n[stage1]\nlr_step_epochs = 15\n'
    )
    from_file = resolve_config({"data": "d", "out": "o"}, config_file=tmp_path / "t.toml")
    assert from_file.bn_momentum == 0.05 and from_file.stage1.lr == 1e-3
    assert from_file.stage1.lr_step_epochs == 15 and from_file.stage2.lr == 3e-4
    option = resolve_config({"data": "d", "out": "o", "lr": 5e-4}, config_file=tmp_path / "t.toml")
    assert option.stage1.lr == option.stage2.lr == 5e-4
    with pytest.raises(UsageError, match="unknown --preset 'fast'"):
        paper(preset="fast")


def test_demo_settings_use_the_preset():
    demo = Path(__file__).resolve().parents[1] / "scripts" / "demo_train.toml"
    config = resolve_config({"data": "d", "out": "o"}, config_file=demo)
    assert config.preset == "from-scratch" and config.bn_momentum == 0.1
    assert (config.stage1.lr, config.stage2.lr) == (1e-3, 3e-4)


def test_the_from_scratch_notice_suggests_the_preset_only_at_the_papers_lr():
    assert "--preset from-scratch" in from_scratch_notice(paper(), 1)
    notice = from_scratch_notice(paper(preset="from-scratch"), 1)
    assert "training from scratch" in notice and "--preset" not in notice


# --- ImageNet and AdvProp weights ------------------------------------------------------------


def imagenet_file(path: Path, backbone: str = "efficientnet-b0") -> dict:
    """An efficientnet-pytorch ImageNet state dict (1000 classes) saved as torch.save does."""
    torch.manual_seed(1)
    state = TappedEfficientNet.build(backbone, input_size=64, num_classes=1000).state_dict()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return state


def test_imagenet_files_are_recognised_by_content(tmp_path):
    state = imagenet_file(tmp_path / "weights.pth")  # no telling name
    assert efficientnet_variant(state) == "efficientnet-b0"
    assert efficientnet_variant({"conv_stem.weight": torch.zeros(1)}) is None  # timm naming
    assert read_imagenet_weights(tmp_path / "weights.pth", "efficientnet-b0").keys() == state.keys()
    with pytest.raises(UsageError, match="holds efficientnet-b0 weights, but the backbone is"):
        read_imagenet_weights(tmp_path / "weights.pth", "efficientnet-b1")
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "other.pth")
    with pytest.raises(WeightsError, match="not an efficientnet-pytorch"):
        read_imagenet_weights(tmp_path / "other.pth", "efficientnet-b0")
    torch.save({"args": argparse.Namespace(lr=1)}, tmp_path / "code.pth")  # a pickled object
    with pytest.raises(WeightsError, match="holds Python objects besides tensors"):
        read_imagenet_weights(tmp_path / "code.pth", "efficientnet-b0")
    (tmp_path / "b0.safetensors").write_bytes(b"not a pickle")
    with pytest.raises(WeightsError, match="not a torch .pth file .mattn weights start a run"):
        read_imagenet_weights(tmp_path / "b0.safetensors", "efficientnet-b0")
    with pytest.raises(UsageError, match="does not exist"):
        read_imagenet_weights(tmp_path / "missing.pth", "efficientnet-b0")


def test_normalization_follows_the_weights_kind(tmp_path):
    imagenet_file(tmp_path / "efficientnet-b0-355c32eb.pth")
    imagenet_file(tmp_path / "adv-efficientnet-b0-b64d5a18.pth")
    b0 = {"backbone": "efficientnet-b0"}
    standard = paper(**b0, backbone_weights=str(tmp_path / "efficientnet-b0-355c32eb.pth"))
    assert standard.backbone_normalization == "imagenet"
    assert standard.mean == (0.485, 0.456, 0.406) and standard.std == (0.229, 0.224, 0.225)
    advprop = paper(**b0, backbone_weights=str(tmp_path / "adv-efficientnet-b0-b64d5a18.pth"))
    assert advprop.backbone_normalization == "advprop" and advprop.mean == (0.5, 0.5, 0.5)
    told = paper(
        **b0,
        backbone_weights=str(tmp_path / "efficientnet-b0-355c32eb.pth"),
        backbone_normalization="advprop",
    )
    assert told.mean == (0.5, 0.5, 0.5)  # the option wins over the file name
    assert paper(**b0).backbone_normalization is None and paper(**b0).mean == (0.5, 0.5, 0.5)
    with pytest.raises(UsageError, match="unknown --backbone-normalization"):
        paper(backbone_normalization="tf")


def test_torch_hub_cache_is_searched_advprop_first(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    assert find_imagenet_weights("efficientnet-b0") is None
    imagenet_file(tmp_path / "checkpoints" / "efficientnet-b0-355c32eb.pth")
    assert find_imagenet_weights("efficientnet-b0").name == "efficientnet-b0-355c32eb.pth"
    imagenet_file(tmp_path / "checkpoints" / "adv-efficientnet-b0-b64d5a18.pth")
    config = paper(backbone="efficientnet-b0")
    assert Path(config.backbone_weights).name == "adv-efficientnet-b0-b64d5a18.pth"
    assert config.backbone_normalization == "advprop"
    assert paper(backbone="efficientnet-b0", init="x.safetensors").backbone_weights is None


def test_build_model_loads_imagenet_weights_into_the_backbone(tmp_path):
    state = imagenet_file(tmp_path / "adv-efficientnet-b0-b64d5a18.pth")
    config = paper(
        backbone="efficientnet-b0",
        input_size=64,
        backbone_weights=str(tmp_path / "adv-efficientnet-b0-b64d5a18.pth"),
    )
    model, line = build_model(config, 1, resume_state=None, run_dir=tmp_path)
    assert line.startswith("backbone initialised from AdvProp ImageNet weights adv-efficientnet")
    own = model.backbone.state_dict()
    assert all(torch.equal(own[key], state[key]) for key in own if not key.startswith("_fc."))
    assert own["_fc.weight"].shape == (2, 1280)  # real/fake, not ImageNet's 1000 classes


# --- the authors' frames ---------------------------------------------------------------------


def records(video: str, frames, persons: int = 1) -> list[CropRecord]:
    return [
        CropRecord(Path(f"{video}_{f}_{p}.png"), video, 0, "real", "train", f)
        for f in frames
        for p in range(persons)
    ]


def test_authors_frames_every_10th_of_the_first_500_shifted_each_epoch():
    assert authors_frames(700, 50, 10, epoch=0) == list(range(1, 500, 10))
    assert sorted(authors_frames(700, 50, 10, epoch=9)) == list(range(0, 500, 10))
    seen = {frame for epoch in range(10) for frame in authors_frames(500, 50, 10, epoch)}
    assert seen == set(range(500))  # ten epochs see every frame of the first 500
    short = authors_frames(300, 50, 10, epoch=0)
    assert len(short) == 50 and short[30:] == short[:20]  # wraps round, as the authors'
    assert authors_frames(30, 50, 10, epoch=0) == list(range(30))


def test_a_video_stored_frame_by_frame_gets_the_authors_frames():
    dense = records("v", range(600), persons=2)
    chosen = video_frames(dense, range(len(dense)), frames_per_video=50, frame_stride=10, epoch=2)
    frames = [dense[i].frame_index for i in chosen]
    assert frames == [f for f in range(3, 500, 10) for _ in range(2)]  # both faces of a frame
    # A few frames without a face still count as frame by frame (positions, as the authors').
    missing = records("m", [f for f in range(520) if f not in (4, 77, 300)])
    chosen = video_frames(missing, range(517), frames_per_video=50, frame_stride=10, epoch=0)
    assert len(chosen) == 50
    # 32 evenly spaced frames: spread over the video, as before.
    sparse = records("s", range(0, 320, 10))
    chosen = video_frames(sparse, range(32), frames_per_video=50, frame_stride=10, epoch=0)
    assert chosen == list(range(32))
    plan = epoch_plan(
        dense + sparse,
        split="train",
        frames_per_video=50,
        frame_stride=10,
        epoch=0,
        seed=0,
        self_blend=False,
        balance=False,
        shuffle=False,
    )
    assert len(plan) == 100 + 32
    without = epoch_plan(
        dense,
        split="train",
        frames_per_video=50,
        epoch=0,
        seed=0,
        self_blend=False,
        balance=False,
        shuffle=False,
    )
    assert len(without) == 50  # frame_stride 0: spread over the crops, as before
