"""Video-side degradations of training crops (deepfake_cli.training.degradations)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest

from deepfake_cli.errors import UsageError
from deepfake_cli.manifest import REAL, CropRecord
from deepfake_cli.training.config import TrainConfig
from deepfake_cli.training.data import CropDataset, Sample, Transform, make_input
from deepfake_cli.training.degradations import (
    DEGRADATIONS,
    VideoDegradationConfig,
    degrade,
    jpeg_round_trip,
)

GRACE_HOPPER = Path(__file__).parent / "data" / "grace_hopper.jpg"
SEEDS = range(12)
# Every step off: the single-step configs below switch one on.
NOTHING = VideoDegradationConfig(
    probability=1.0,
    resample_probability=0.0,
    blur_probability=0.0,
    noise_probability=0.0,
    codec_probability=0.0,
    deblocking_probability=0.0,
    jpeg_probability=0.0,
)


@pytest.fixture(scope="module")
def face() -> np.ndarray:
    """A 160 px RGB face crop of the test photograph (sharp, as photographs are)."""
    image = cv2.cvtColor(cv2.imread(str(GRACE_HOPPER)), cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(cv2.resize(image[100:420, 100:420], (160, 160)))


def sharpness(image: np.ndarray) -> float:
    """Variance of the Laplacian of the grey image: falls as detail is lost."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def test_deterministic_for_a_seed_and_different_across_seeds(face):
    first = degrade(face, np.random.default_rng(5))
    np.testing.assert_array_equal(first, degrade(face, np.random.default_rng(5)))
    outputs = [degrade(face, np.random.default_rng(seed)) for seed in SEEDS]
    assert len({output.tobytes() for output in outputs}) > len(SEEDS) // 2


def test_keeps_shape_and_dtype_and_leaves_the_input_alone(face):
    before = face.copy()
    for seed in SEEDS:
        for image in (face, face[:, :120]):  # square crops and any other shape
            degraded = degrade(image, np.random.default_rng(seed))
            assert degraded.shape == image.shape and degraded.dtype == np.uint8
    np.testing.assert_array_equal(face, before)


def test_most_crops_change_and_some_stay_clean(face):
    changed = [
        not np.array_equal(degrade(face, np.random.default_rng(seed)), face) for seed in range(60)
    ]
    # probability 0.8 of the video path, and nearly every path changes something.
    assert 0.6 * 60 <= sum(changed) < 60


@pytest.mark.parametrize(
    "step",
    [
        {"resample_probability": 1.0, "face_side_range": (64.0, 64.0)},
        {"blur_probability": 1.0},
        {"codec_probability": 1.0},
    ],
    ids=["resolution loss", "blur", "codec"],
)
def test_each_detail_destroying_step_loses_detail(face, step):
    config = dataclasses.replace(NOTHING, **step)
    for seed in range(4):
        degraded = degrade(face, np.random.default_rng(seed), config)
        assert sharpness(degraded) < 0.9 * sharpness(face)


def test_noise_and_jpeg_change_the_image(face):
    for step in ({"noise_probability": 1.0}, {"jpeg_probability": 1.0}):
        degraded = degrade(face, np.random.default_rng(0), dataclasses.replace(NOTHING, **step))
        difference = np.abs(degraded.astype(np.int16) - face).mean()
        assert 0.2 < difference < 10  # a degradation, not a different picture


def test_with_every_step_off_nothing_changes(face):
    np.testing.assert_array_equal(degrade(face, np.random.default_rng(0), NOTHING), face)


def test_a_skipped_step_does_not_shift_later_draws(face):
    """Every decision is drawn up front, so the generator ends in the same state."""
    all_on = VideoDegradationConfig(
        probability=1.0,
        resample_probability=1.0,
        blur_probability=1.0,
        noise_probability=1.0,
        codec_probability=1.0,
        deblocking_probability=1.0,
        jpeg_probability=1.0,
    )
    after = []
    for config in (NOTHING, all_on, dataclasses.replace(all_on, probability=0.0)):
        rng = np.random.default_rng(3)
        degrade(face, rng, config)
        after.append(rng.random())
    assert after[0] == after[1] == after[2]


def test_codec_blocks_are_on_an_8_pixel_grid(face):
    # Luma steps between 8x8 blocks are larger than within them after strong quantisation.
    coded = cv2.cvtColor(jpeg_round_trip(face, 10), cv2.COLOR_RGB2GRAY).astype(np.float64)
    column_steps = np.abs(np.diff(coded, axis=1)).mean(axis=0)  # step between x and x + 1
    at_block_edges = column_steps[7::8].mean()
    inside_blocks = np.delete(column_steps, np.s_[7::8]).mean()
    assert at_block_edges > 1.3 * inside_blocks


def test_bad_configs_are_refused(face):
    with pytest.raises(ValueError, match="probability"):
        VideoDegradationConfig(blur_probability=1.5)
    with pytest.raises(ValueError, match="codec_quality_range"):
        VideoDegradationConfig(codec_quality_range=(0, 50))
    with pytest.raises(ValueError, match="face_side_range"):
        VideoDegradationConfig(face_side_range=(400.0, 64.0))
    with pytest.raises(ValueError, match="uint8"):
        degrade(face.astype(np.float32), np.random.default_rng(0))


# --- in training -----------------------------------------------------------------------------


def test_off_by_default_and_named_choices_only():
    assert TrainConfig(data="faces", out="run").degradations == "none"
    assert Transform(input_size=32, mean=(0.5,) * 3, std=(0.5,) * 3).degradations == "none"
    assert DEGRADATIONS["none"] is None and isinstance(
        DEGRADATIONS["video"], VideoDegradationConfig
    )
    assert TrainConfig(data="faces", out="run", degradations="video").degradations == "video"
    with pytest.raises(UsageError, match="unknown --degradations 'vhs'"):
        TrainConfig(data="faces", out="run", degradations="vhs")


@pytest.fixture
def crop_record(tmp_path, face) -> CropRecord:
    path = tmp_path / "0_0.png"
    cv2.imwrite(str(path), cv2.cvtColor(face, cv2.COLOR_RGB2BGR))
    return CropRecord(
        path=path, video_id="folders/real/a.jpg", label=REAL, method="real", split="train",
        frame_index=0,
    )  # fmt: skip


def test_training_crops_are_degraded_and_validation_crops_are_not(crop_record):
    base = {"input_size": 128, "mean": (0.5,) * 3, "std": (0.5,) * 3}
    clean, video = (
        Transform(**base, train=True),
        Transform(**base, train=True, degradations="video"),
    )
    differs = [
        not np.array_equal(
            make_input(crop_record, False, clean, np.random.default_rng(seed)).numpy(),
            make_input(crop_record, False, video, np.random.default_rng(seed)).numpy(),
        )
        for seed in range(6)
    ]
    assert any(differs)
    # Validation: the same centre crop with or without the option.
    for self_blend in (False, True):
        items = [
            CropDataset([crop_record], [Sample(0, self_blend)], Transform(**base, **extra))[0][0]
            for extra in ({}, {"degradations": "video"})
        ]
        np.testing.assert_array_equal(items[0].numpy(), items[1].numpy())
