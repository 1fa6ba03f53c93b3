"""mattn train: data plan, config layers, initialisation, resume, torchrun, and that it learns.

Every test builds its own tiny faces folder: synthetic face-like crops (shaded ellipses with eyes,
nose and mouth, drawn with OpenCV, plus sensor-like noise) and a manifest.csv written with
`deepfake_cli.manifest`, as `mattn extract-faces` writes it. Models are EfficientNet-B0 at
32-48 px.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from deepfake_cli.errors import UsageError
from deepfake_cli.manifest import read_manifest, write_manifest
from deepfake_cli.model.config import DEFAULT_MARGIN_RATIO, MATConfig
from deepfake_cli.model.mat import MATDetector
from deepfake_cli.model.weights import read_weights_info, save_weights
from deepfake_cli.shards import rank_positions
from deepfake_cli.training import loop
from deepfake_cli.training.checkpoint import init_from_weights, load_training_state
from deepfake_cli.training.config import STAGE1_DEFAULTS, TrainConfig
from deepfake_cli.training.data import CropDataset, FacesData, Transform, epoch_plan, spread_frames
from deepfake_cli.training.settings import resolve_config
from deepfake_cli.training.setup import model_preprocessing
from deepfake_cli.training.toml_text import read_toml, to_toml

REPO = Path(__file__).resolve().parents[1]


# --- a tiny faces folder -----------------------------------------------------------------------


def draw_face(rng: np.random.Generator, size: int, identity: dict, noise: float):
    """A face-like (size, size, 3) uint8 RGB crop and its 5 landmarks in crop pixels."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    image = identity["background"] + 40 * (xx[..., None] - 0.5) * identity["gradient"]
    cx = size / 2 + rng.normal(0, size * 0.02)
    cy = size / 2 + rng.normal(0, size * 0.02)
    ax, ay = size * identity["half_width"], size * identity["half_height"]
    skin = identity["skin"] + rng.normal(0, 4, 3)
    for step in range(8):  # shading: darker rim, lighter centre
        scale = 1 - step / 10
        cv2.ellipse(
            image,
            (int(cx), int(cy)),
            (int(ax * scale), int(ay * scale)),
            0,
            0,
            360,
            (skin * (0.75 + 0.04 * step)).tolist(),
            -1,
            lineType=cv2.LINE_AA,
        )
    eyes = [(cx - ax * 0.4, cy - ay * 0.25), (cx + ax * 0.4, cy - ay * 0.25)]
    for ex, ey in eyes:
        cv2.ellipse(
            image,
            (int(ex), int(ey)),
            (max(2, int(ax * 0.18)), max(1, int(ay * 0.07))),
            0,
            0,
            360,
            (235, 235, 235),
            -1,
            lineType=cv2.LINE_AA,
        )
        cv2.circle(image, (int(ex), int(ey)), max(1, int(ax * 0.07)), (40, 30, 20), -1)
    nose = (cx, cy + ay * 0.1)
    cv2.line(
        image,
        (int(cx), int(cy - ay * 0.12)),
        (int(nose[0]), int(nose[1])),
        (skin * 0.6).tolist(),
        1,
        lineType=cv2.LINE_AA,
    )
    mouth = [(cx - ax * 0.3, cy + ay * 0.45), (cx + ax * 0.3, cy + ay * 0.45)]
    cv2.ellipse(
        image,
        (int(cx), int(cy + ay * 0.45)),
        (int(ax * 0.3), max(1, int(ay * 0.06))),
        0,
        0,
        360,
        (150, 50, 60),
        -1,
        lineType=cv2.LINE_AA,
    )
    image = cv2.GaussianBlur(image, (0, 0), 0.6)
    # Sensor noise: a pasted face that was resampled (as every self-blend source is) is
    # smoother than the frame around it.
    image = image + rng.normal(0, noise, image.shape)
    landmarks = np.array([*eyes, nose, *mouth], dtype=np.float32)
    return np.clip(image, 0, 255).astype(np.uint8), landmarks


def make_faces(
    root: Path, videos, *, frames: int = 4, size: int = 40, noise: float = 8.0, seed: int = 0
) -> Path:
    """videos: (video_id, label, method, split) tuples -> crops and manifest.csv under root."""
    rng = np.random.default_rng(seed)
    rows = []
    for video_id, label, method, split in videos:
        identity = {
            "background": rng.uniform(30, 220, 3),
            "gradient": rng.uniform(-1, 1, 3),
            "skin": rng.uniform([150, 100, 80], [240, 190, 160]),
            "half_width": rng.uniform(0.28, 0.34),
            "half_height": rng.uniform(0.36, 0.42),
        }
        folder = root / "crops" / video_id
        folder.mkdir(parents=True, exist_ok=True)
        for frame in range(frames):
            image, landmarks = draw_face(rng, size, identity, noise)
            if label == 1:  # a crude "manipulation" for the few tests with real fakes
                image[size // 3 : size // 2, size // 3 : 2 * size // 3] //= 2
            name = f"0_{frame * 10}.png"
            cv2.imwrite(str(folder / name), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            rows.append(
                {
                    "crop_path": f"crops/{video_id}/{name}",
                    "video_path": f"v/{video_id}.mp4",
                    "video_id": video_id,
                    "label": label,
                    "method": method,
                    "compression": "c23",
                    "split": split,
                    "group": video_id,
                    "frame_index": frame * 10,
                    "time_s": frame / 3,
                    "person": 0,
                    "box": "8 8 32 32",
                    "landmarks": " ".join(f"{v:.1f}" for v in landmarks.reshape(-1)),
                    "det_prob": 0.99,
                }
            )
    write_manifest(root, rows)
    return root


def real_videos(count: int, split: str, prefix: str = "r"):
    return [(f"{prefix}{split}{i}", 0, "real", split) for i in range(count)]


@pytest.fixture
def one_thread():
    # Two cores shared with other test processes: one thread each avoids OpenMP contention.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_config(data: Path, out: Path, **options) -> TrainConfig:
    settings = {
        "data": str(data),
        "out": str(out),
        "backbone": "efficientnet-b0",
        "input_size": 32,
        "device": "cpu",
        "workers": 0,
        "epochs": 1,
        "batch_size": 4,
        "synthetic_fakes": "self-blend",
        "eval_batch_size": 16,
    }
    settings.update(options)
    return resolve_config(settings)


# --- the data plan -------------------------------------------------------------------------------


def test_spread_frames_shifts_every_epoch_and_keeps_short_videos_whole():
    assert spread_frames(5, 50, epoch=3) == [0, 1, 2, 3, 4]
    first, second = spread_frames(100, 10, 0), spread_frames(100, 10, 1)
    assert first == list(range(0, 100, 10)) and second == list(range(1, 100, 10))
    assert spread_frames(100, 10, 10) == first  # the shift cycles within the stride
    for epoch in range(12):
        frames = spread_frames(37, 5, epoch)
        assert len(set(frames)) == 5 and max(frames) < 37


def test_epoch_plan_balances_shuffles_and_is_deterministic(tmp_path):
    videos = real_videos(2, "train") + [(f"f{i}", 1, "Deepfakes", "train") for i in range(6)]
    records = read_manifest(make_faces(tmp_path, videos, frames=6))
    plan = epoch_plan(
        records,
        split="train",
        frames_per_video=3,
        epoch=0,
        seed=1,
        self_blend=False,
        balance=True,
        shuffle=True,
    )
    labels = [sample.label(records) for sample in plan]
    assert labels.count(0) == labels.count(1) == 18  # 6 real frames oversampled x3
    again = epoch_plan(
        records,
        split="train",
        frames_per_video=3,
        epoch=0,
        seed=1,
        self_blend=False,
        balance=True,
        shuffle=True,
    )
    later = epoch_plan(
        records,
        split="train",
        frames_per_video=3,
        epoch=1,
        seed=1,
        self_blend=False,
        balance=True,
        shuffle=True,
    )
    assert plan == again and plan != later
    frames_0 = {records[s.record].frame_index for s in plan}
    frames_1 = {records[s.record].frame_index for s in later}
    assert frames_0 == {0, 20, 40} and frames_1 == {10, 30, 50}

    blended = epoch_plan(
        records,
        split="train",
        frames_per_video=3,
        epoch=0,
        seed=1,
        self_blend=True,
        balance=True,
        shuffle=False,
    )
    methods = [sample.method(records) for sample in blended]
    assert methods.count("self-blend") == 6  # one per real crop, not per oversampled copy
    assert [s.label(records) for s in blended].count(0) == 24  # reals oversampled to 18+6


def test_shard_pads_like_distributed_sampler():
    shards = [rank_positions(7, rank, 2) for rank in range(2)]
    assert shards == [[0, 2, 4, 6], [1, 3, 5, 0]]
    assert rank_positions(5, 0, 1) == [0, 1, 2, 3, 4]


def test_crop_dataset_items_depend_only_on_seed_epoch_and_position(tmp_path):
    records = read_manifest(make_faces(tmp_path, real_videos(2, "train"), frames=2, size=40))
    plan = epoch_plan(
        records,
        split="train",
        frames_per_video=2,
        epoch=0,
        seed=0,
        self_blend=True,
        balance=False,
        shuffle=True,
    )
    transform = Transform(input_size=32, mean=(0.5,) * 3, std=(0.5,) * 3, train=True, augment=True)
    first = CropDataset(records, plan, transform, seed=0, epoch=0)
    second = CropDataset(records, plan, transform, seed=0, epoch=0)
    other_epoch = CropDataset(records, plan, transform, seed=0, epoch=1)
    for position in reversed(range(len(plan))):  # order of access must not matter
        image, label, index = first[position]
        assert image.shape == (3, 32, 32) and index == position
        assert torch.equal(image, second[position][0])
    assert not all(torch.equal(first[i][0], other_epoch[i][0]) for i in range(len(plan)))


# --- configuration ---------------------------------------------------------------------------


def test_config_toml_round_trip_and_precedence(tmp_path):
    config = TrainConfig(data="faces", out="run", stage=2, amp=False, mean=(0.4, 0.5, 0.6))
    text = to_toml(config.to_dict())
    (tmp_path / "c.toml").write_text(text)
    assert TrainConfig.from_dict(read_toml(tmp_path / "c.toml")) == config
    assert "input_size" not in text  # unset values are left out, not written as a fake value

    (tmp_path / "file.toml").write_text(
        'data = "from-file"\nout = "run"\nseed = 3\nworkers = 1\nrecipe = "paper"\n'
        "[stage1]\nepochs = 7\nlr = 0.002\n[stage2]\nbatch_size = 6\n"
    )
    saved = {"data": "saved", "out": "run", "seed": 1, "frames_per_video": 9}
    resolved = resolve_config(
        {"out": "run", "seed": 5, "lr": 0.01, "backbone": "efficientnet-b0", "workers": None},
        config_file=tmp_path / "file.toml",
        saved=saved,
    )
    assert resolved.seed == 5  # option > file > saved
    assert resolved.data == "from-file" and resolved.workers == 1  # file > saved, unset option
    assert resolved.frames_per_video == 9  # only in the saved config
    assert resolved.stage1.epochs == 7 and resolved.stage2.batch_size == 6
    assert resolved.stage1.lr == resolved.stage2.lr == 0.01  # --lr sets every stage run
    assert resolved.stage2.epochs == 30 and resolved.stage1.batch_size == 16  # paper defaults
    assert resolved.input_size == 224 and resolved.name == "mattn-efficientnet-b0-from-file"

    only_two = resolve_config({"data": "d", "out": "o", "stage": 2, "epochs": 2})
    assert only_two.stage2.epochs == 2 and only_two.stage1 == STAGE1_DEFAULTS

    (tmp_path / "bad.toml").write_text('data = "d"\nout = "o"\nlearning_rate = 1\n')
    with pytest.raises(UsageError, match="learning_rate"):
        resolve_config({}, config_file=tmp_path / "bad.toml")
    with pytest.raises(UsageError, match="--data is required"):
        resolve_config({"out": "o"})


def test_train_command_saves_resolved_config_and_outputs(tmp_path, one_thread):
    """The CLI as a user runs it: a TOML file, options overriding it, every output written."""
    import typer

    from deepfake_cli.commands.training import train_command

    app = typer.Typer()
    app.command("train")(train_command)
    app.command("noop")(lambda: None)  # two commands: Typer then expects the command name
    data = make_faces(
        tmp_path / "faces", real_videos(3, "train") + real_videos(1, "val"), frames=2, size=40
    )
    (tmp_path / "train.toml").write_text(
        'backbone = "efficientnet-b0"\ninput_size = 32\nseed = 3\nworkers = 0\n'
        'device = "cpu"\nsynthetic_fakes = "self-blend"\nframes_per_video = 1\n'
        "[stage1]\nepochs = 1\nbatch_size = 3\n"
    )
    out = tmp_path / "run"
    result = CliRunner().invoke(
        app,
        [
            "train",
            "--data",
            str(data),
            "--out",
            str(out),
            "--config",
            str(tmp_path / "train.toml"),
            "--stage",
            "1",
            "--seed",
            "4",
            "--name",
            "tiny",
            "--demo",
        ],
    )
    assert result.exit_code == 0, result.output
    saved = read_toml(out / "config.toml")
    assert saved["seed"] == 4 and saved["input_size"] == 32 and saved["stage1"]["epochs"] == 1
    for name in (
        "last.safetensors",
        "best.safetensors",
        "log.csv",
        "log.jsonl",
        "state/training_state.pt",
    ):
        assert (out / name).is_file(), name
    assert any((out / "tensorboard").iterdir())
    info = read_weights_info(out / "last.safetensors")
    assert info.config.variant == "backbone" and info.provenance.demo
    assert info.provenance.name == "tiny"
    assert info.provenance.source.startswith(f"trained by mattn train on {data.name}, 3 videos")
    assert info.preprocessing.input_size == 32
    # Crops of 40 px cut at margin 1.3, fitted to 38 px and centre-cropped to 32 px: the
    # model saw faces as in a 32 px crop cut with margin 1.3 * 32 / 38.
    assert info.preprocessing.margin_ratio == pytest.approx(1.3 * 32 / 38, abs=1e-3)
    with open(out / "log.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 1 and rows[0]["stage"] == "1" and float(rows[0]["val_video_auc"]) >= 0

    again = CliRunner().invoke(
        app,
        ["train", "--data", str(data), "--out", str(out), "--config", str(tmp_path / "train.toml")],
    )
    assert again.exit_code == 2 and "--resume" in again.output  # never overwrite a run
    missing = CliRunner().invoke(
        app,
        ["train", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "r2"), "--stage", "1"],
    )
    assert missing.exit_code == 2 and "manifest.csv" in missing.output


# --- initialisation --------------------------------------------------------------------------


def test_stage2_starts_from_stage1_backbone(tmp_path):
    torch.manual_seed(0)
    stage1 = MATDetector(MATConfig(backbone="efficientnet-b0", input_size=64, variant="backbone"))
    with torch.no_grad():
        for parameter in stage1.parameters():
            parameter.add_(torch.randn_like(parameter))  # anything but the init
    save_weights(stage1, tmp_path / "stage1.safetensors")
    stage2 = MATDetector(MATConfig(backbone="efficientnet-b0", input_size=64))
    untouched = {
        k: v.clone() for k, v in stage2.state_dict().items() if not k.startswith("backbone.")
    }
    message = init_from_weights(stage2, tmp_path / "stage1.safetensors")
    assert "initialised" in message
    source, target = stage1.state_dict(), stage2.state_dict()
    backbone_keys = [key for key in target if key.startswith("backbone.")]
    assert backbone_keys and all(torch.equal(target[k], source[k]) for k in backbone_keys)
    assert all(torch.equal(target[k], v) for k, v in untouched.items())  # MAT parts stay


def test_weights_record_the_margin_of_the_crop_the_model_saw(tmp_path):
    """40 px crops fitted to 38 px and centre-cropped to 32 px: the margin shrinks by 32 / 38.
    The stored crops' margin comes from the manifest, else the config, else the default."""
    data = FacesData.load(make_faces(tmp_path / "faces", real_videos(1, "train"), frames=1))
    assert data.stored_margin() is None  # no margin_ratio column in this manifest
    config = tiny_config(tmp_path / "faces", tmp_path / "run")
    preprocessing = model_preprocessing(config, data)
    assert preprocessing.margin_ratio == pytest.approx(DEFAULT_MARGIN_RATIO * 32 / 38, abs=1e-4)
    assert preprocessing.input_size == 32
    wider = dataclasses.replace(config, margin_ratio=1.6)
    assert model_preprocessing(wider, data).margin_ratio == pytest.approx(1.6 * 32 / 38, abs=1e-4)


def _train_b0_stage1(tmp_path, out: str, *extra: str):
    """`mattn train --stage 1` of a B0 at 64 px for one epoch, as a user runs it."""
    import typer

    from deepfake_cli.commands.training import train_command

    app = typer.Typer()
    app.command("train")(train_command)
    app.command("noop")(lambda: None)
    data = tmp_path / "faces"
    if not data.exists():
        make_faces(data, real_videos(2, "train") + real_videos(1, "val"), frames=1, size=72)
    arguments = ["train", "--data", str(data), "--out", str(tmp_path / out), "--stage", "1"]
    arguments += ["--backbone", "efficientnet-b0", "--input-size", "64", "--epochs", "1"]
    arguments += ["--batch-size", "2", "--synthetic-fakes", "self-blend", "--device", "cpu"]
    arguments += ["--workers", "0", *extra]
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 0, result.output
    return result.output


def test_a_run_from_scratch_says_so_once_and_imagenet_weights_set_the_normalisation(
    tmp_path, monkeypatch, one_thread
):
    """No weights: one line saying so, suggesting the preset at the paper's lr. Standard
    ImageNet weights: loaded, and the weights record the ImageNet normalisation they need."""
    from deepfake_cli.model.backbone import TappedEfficientNet

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))  # an empty cache
    output = _train_b0_stage1(tmp_path, "scratch")
    notices = [line for line in output.splitlines() if "training from scratch" in line]
    assert len(notices) == 1 and "try --preset from-scratch" in notices[0], output

    imagenet = TappedEfficientNet.build("efficientnet-b0", input_size=64, num_classes=1000)
    torch.save(imagenet.state_dict(), tmp_path / "efficientnet-b0-355c32eb.pth")
    weights = str(tmp_path / "efficientnet-b0-355c32eb.pth")
    output = _train_b0_stage1(tmp_path, "imagenet", "--backbone-weights", weights)
    assert "backbone initialised from standard ImageNet weights" in output
    assert "training from scratch" not in output
    info = read_weights_info(tmp_path / "imagenet" / "last.safetensors")
    assert info.preprocessing.mean == (0.485, 0.456, 0.406)
    assert info.preprocessing.std == (0.229, 0.224, 0.225)
    assert info.config.backbone_dropout == 0.2 and info.config.legacy_padding
    saved = read_toml(tmp_path / "imagenet" / "config.toml")
    assert saved["backbone_normalization"] == "imagenet" and saved["padding"] == "authors"


# --- resume is bit-identical ----------------------------------------------------------------------


class Interrupted(Exception):
    pass


def test_resume_is_bit_identical(tmp_path, monkeypatch, one_thread):
    """Paper recipe (stage 1, then MAT), interrupted after the MAT's first epoch and resumed
    (with another worker count) == the same run uninterrupted, tensor for tensor."""
    data = make_faces(
        tmp_path / "faces", real_videos(4, "train") + real_videos(1, "val"), frames=2, size=40
    )
    whole = tiny_config(data, tmp_path / "whole", recipe="paper", deterministic=True, seed=7)
    whole = dataclasses.replace(whole, stage2=dataclasses.replace(whole.stage2, epochs=2))
    assert whole.stages == (1, 2) and whole.stage1.epochs == 1 and whole.stage2.epochs == 2
    loop.run_training(whole)

    parted = dataclasses.replace(whole, out=str(tmp_path / "parted"), workers=2)
    save_state = loop.save_training_state

    def save_then_stop(run_dir, **state):
        save_state(run_dir, **state)
        if state["stage"] == 2 and state["epoch"] == 0:
            raise Interrupted

    monkeypatch.setattr(loop, "save_training_state", save_then_stop)
    with pytest.raises(Interrupted):
        loop.run_training(parted)
    monkeypatch.setattr(loop, "save_training_state", save_state)
    assert load_training_state(tmp_path / "parted")["epoch"] == 0
    loop.run_training(parted, resume=True)

    expected = load_file(str(tmp_path / "whole" / "last.safetensors"))
    actual = load_file(str(tmp_path / "parted" / "last.safetensors"))
    assert expected.keys() == actual.keys()
    different = [key for key in expected if not torch.equal(expected[key], actual[key])]
    assert not different, different[:5]
    assert any(key.endswith("feature_centers") for key in expected)  # the RIL state too
    log = (tmp_path / "parted" / "log.jsonl").read_text()
    rows = [json.loads(line) for line in log.splitlines()]
    assert [(row["stage"], row["epoch"]) for row in rows] == [(1, 1), (2, 1), (2, 2)]


# --- torchrun -------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as handle:
        handle.bind(("127.0.0.1", 0))
        return handle.getsockname()[1]


def test_two_process_gloo_run_keeps_ranks_in_sync(tmp_path):
    data = make_faces(
        tmp_path / "faces", real_videos(3, "train") + real_videos(1, "val"), frames=2, size=40
    )
    out = tmp_path / "run"
    module = "deepfake_cli"  # torchrun runs `python -m deepfake_cli train ...` in each process
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        f"--master_port={_free_port()}",
        "-m",
        module,
        "train",
        "--data",
        str(data),
        "--out",
        str(out),
        "--stage",
        "2",
        "--epochs",
        "2",
        "--batch-size",
        "2",
        "--backbone",
        "efficientnet-b0",
        "--input-size",
        "32",
        "--synthetic-fakes",
        "self-blend",
        "--device",
        "cpu",
        "--workers",
        "0",
    ]
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        command, cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert len(rows) == 2  # one process wrote the log
    for row in rows:
        assert row["ranks_in_sync"] is True
        centers = row["ril_centers_sha256_per_rank"]
        assert len(centers) == 2 and centers[0] == centers[1]
        assert row["parameters_sha256_per_rank"][0] == row["parameters_sha256_per_rank"][1]
    assert sorted(p.name for p in out.iterdir()) == [
        "best.safetensors",
        "config.toml",
        "last.safetensors",
        "log.csv",
        "log.jsonl",
        "state",
        "tensorboard",
    ]
    assert [p.name for p in (out / "state").iterdir()] == ["training_state.pt"]
    state = load_training_state(out)
    assert len(state["rng"]) == 2  # every rank's RNG states
    assert "device cpu x 2 processes" in " ".join(done.stdout.split())


# --- it learns ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_learns_self_blended_fakes_from_real_faces(tmp_path, one_thread):
    """Stage 1 on real faces only (+ self-blended fakes): validation AUC reaches 0.9."""
    data = make_faces(
        tmp_path / "faces",
        real_videos(16, "train") + real_videos(6, "val"),
        frames=4,
        size=56,
        noise=40.0,
    )
    (tmp_path / "fast.toml").write_text(
        # Short run: BatchNorm statistics must settle within ~200 steps.
        "bn_momentum = 0.1\n[stage1]\nlr = 0.001\nlr_step_epochs = 8\n"
    )
    config = resolve_config(
        {
            "data": str(data),
            "out": str(tmp_path / "run"),
            "stage": 1,
            "backbone": "efficientnet-b0",
            "input_size": 48,
            "epochs": 8,
            "batch_size": 8,
            "synthetic_fakes": "self-blend",
            "device": "cpu",
            "workers": 0,
            "seed": 0,
        },
        config_file=tmp_path / "fast.toml",
    )
    result = loop.run_training(config)
    losses = [row["loss"] for row in result.history]
    assert np.mean(losses[-3:]) < np.mean(losses[:3]) - 0.1, losses
    assert result.best_metric is not None and result.best_metric >= 0.9, [
        (row["val_frame_auc"], row["val_video_auc"]) for row in result.history
    ]
    info = read_weights_info(result.best)
    assert info.provenance.metrics["val_video_auc"] == pytest.approx(result.best_metric)


def test_amp_dtype_chooses_the_autocast_dtype_and_the_first_line_names_the_batch_norm():
    from deepfake_cli.training.distributed import Runtime
    from deepfake_cli.training.runlog import describe_run
    from deepfake_cli.training.setup import Precision

    cpu = torch.device("cpu")
    assert Precision.choose(True, cpu, "fp16").dtype == torch.float16
    assert Precision.choose(True, cpu, "bf16").dtype == torch.bfloat16
    assert Precision.choose(None, cpu, "fp16").dtype is None  # AMP is off on the CPU by default
    with pytest.raises(UsageError, match="amp-dtype"):
        TrainConfig(data="d", out="o", amp_dtype="fp8")
    config = TrainConfig(data="d", out="o", amp=True, amp_dtype="fp16")
    line = describe_run(config, Runtime(cpu, rank=0, world_size=2))
    assert "x 2 processes, per-process BatchNorm, float16" in line
    assert "BatchNorm" not in describe_run(config, Runtime(cpu))
