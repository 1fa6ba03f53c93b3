"""Self-blended fakes (deepfake_cli.training.synthetic): invariants on a drawn face-like image."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest

from deepfake_cli.training.synthetic import (
    SelfBlendConfig,
    blend_source,
    face_mask,
    face_polygon,
    self_blend,
)

SIZES = (64, 128, 380)
SEEDS = range(8)
GRACE_HOPPER = Path(__file__).parent / "data" / "grace_hopper.jpg"

# 5 MTCNN points (left eye, right eye, nose, mouth left, mouth right) as fractions of the crop
# side, measured on a real 1.3x-margin crop (Grace Hopper, see the last test).
LANDMARK_FRACTIONS = np.array(
    [[0.35, 0.37], [0.66, 0.35], [0.52, 0.53], [0.39, 0.67], [0.64, 0.66]], dtype=np.float32
)


def synthetic_face(size: int, seed: int = 0) -> np.ndarray:
    """A face-like (size, size, 3) uint8 RGB crop: textured background, shaded skin ellipse,
    eyes, nose and mouth where LANDMARK_FRACTIONS put them, and sensor-like noise."""
    rng = np.random.default_rng(seed)
    rows, columns = np.mgrid[0:size, 0:size].astype(np.float32) / size
    background = np.stack([60 + 80 * columns, 90 + 40 * rows, 140 - 40 * columns], axis=-1)
    image = background.astype(np.float32)

    skin = np.zeros((size, size), dtype=np.float32)
    centre = (size // 2, int(size * 0.52))
    axes = (int(size * 0.5 / 1.3 * 0.85), int(size * 0.6 / 1.3 * 0.9))
    cv2.ellipse(skin, centre, axes, 0, 0, 360, 1.0, thickness=-1)
    skin = cv2.GaussianBlur(skin, (0, 0), sigmaX=max(1.0, size / 100))
    # Light from the upper left: brighter on that side, like a real face.
    shading = 0.75 + 0.35 * (1 - columns) * (1 - rows)
    skin_colour = np.array([205, 160, 135], dtype=np.float32)
    image = image * (1 - skin[..., None]) + (skin * shading)[..., None] * skin_colour

    points = LANDMARK_FRACTIONS * size
    feature_radius = max(2, size // 25)
    for eye in points[:2]:
        cv2.circle(image, tuple(int(v) for v in eye), feature_radius, (40, 30, 30), -1)
    nose = tuple(int(v) for v in points[2])
    cv2.circle(image, nose, feature_radius, (170, 120, 100), -1)
    mouth_ends = [tuple(int(v) for v in point) for point in points[3:]]
    cv2.line(image, mouth_ends[0], mouth_ends[1], (150, 60, 60), max(1, size // 40))

    image += rng.normal(0, 6, size=image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def landmarks_for(size: int) -> np.ndarray:
    return LANDMARK_FRACTIONS * size


@pytest.fixture(scope="module")
def faces() -> dict[int, np.ndarray]:
    return {size: synthetic_face(size) for size in SIZES}


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("use_landmarks", [True, False])
def test_shape_dtype_and_range(faces, size, use_landmarks):
    landmarks = landmarks_for(size) if use_landmarks else None
    fake, mask = self_blend(faces[size], landmarks, np.random.default_rng(0))
    assert fake.shape == (size, size, 3) and fake.dtype == np.uint8
    assert mask.shape == (size, size) and mask.dtype == np.float32
    assert mask.min() >= 0.0 and mask.max() <= 1.0


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("use_landmarks", [True, False])
def test_unchanged_where_mask_is_zero(faces, size, use_landmarks):
    face = faces[size]
    landmarks = landmarks_for(size) if use_landmarks else None
    for seed in SEEDS:
        fake, mask = self_blend(face, landmarks, np.random.default_rng(seed))
        outside = mask == 0
        # A face mask, not the whole crop: most of the border is outside.
        assert outside.mean() > 0.2
        np.testing.assert_array_equal(fake[outside], face[outside])


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("use_landmarks", [True, False])
def test_changed_inside_the_mask(faces, size, use_landmarks):
    face = faces[size]
    landmarks = landmarks_for(size) if use_landmarks else None
    for seed in SEEDS:
        fake, mask = self_blend(face, landmarks, np.random.default_rng(seed))
        difference = np.abs(fake.astype(np.int16) - face.astype(np.int16)).mean(axis=2)
        inside = mask >= 0.5 * mask.max()
        # At least a grey level on average even at blend ratio 0.25, and far more than in the
        # soft rim: the change is concentrated in the face.
        assert difference[inside].mean() > 1.0, seed
        rim = (mask > 0) & (mask < 0.1 * mask.max())
        assert difference[inside].mean() > difference[rim].mean(), seed


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("use_landmarks", [True, False])
def test_face_mask_is_soft_zero_at_corners_and_high_at_centre(size, use_landmarks):
    landmarks = landmarks_for(size) if use_landmarks else None
    for seed in SEEDS:
        mask = face_mask(size, landmarks, np.random.default_rng(seed))
        assert mask.shape == (size, size) and mask.dtype == np.float32
        assert mask.min() == 0.0 and mask.max() <= 1.0
        corners = mask[[0, 0, -1, -1], [0, -1, 0, -1]]
        assert (corners == 0).all()
        assert mask[size // 2, size // 2] > 0.9
        # Soft: a blurred edge has intermediate values, not just 0 and 1.
        assert ((mask > 0.05) & (mask < 0.95)).any()


def test_mask_covers_the_landmarks():
    size = 128
    landmarks = landmarks_for(size)
    mask = face_mask(size, landmarks, np.random.default_rng(0))
    for x_coordinate, y_coordinate in landmarks:
        assert mask[int(y_coordinate), int(x_coordinate)] > 0.5


def test_returned_mask_is_face_mask_times_a_blend_ratio(faces):
    config = SelfBlendConfig()
    for seed in SEEDS:
        _, mask = self_blend(faces[128], landmarks_for(128), np.random.default_rng(seed), config)
        assert min(abs(mask.max() - ratio) for ratio in config.blend_ratios) < 1e-3


@pytest.mark.parametrize("use_landmarks", [True, False])
def test_deterministic_given_the_seed(faces, use_landmarks):
    face = faces[128]
    landmarks = landmarks_for(128) if use_landmarks else None
    fake_a, mask_a = self_blend(face, landmarks, np.random.default_rng(7))
    fake_b, mask_b = self_blend(face, landmarks, np.random.default_rng(7))
    np.testing.assert_array_equal(fake_a, fake_b)
    np.testing.assert_array_equal(mask_a, mask_b)
    fake_c, mask_c = self_blend(face, landmarks, np.random.default_rng(8))
    assert not np.array_equal(fake_a, fake_c)
    assert not np.array_equal(mask_a, mask_c)


def test_does_not_modify_the_input(faces):
    face = faces[64]
    before = face.copy()
    self_blend(face, landmarks_for(64), np.random.default_rng(0))
    np.testing.assert_array_equal(face, before)


def test_tilted_face_gets_a_tilted_polygon():
    size = 128
    centre = np.array([size / 2, size / 2], dtype=np.float32)
    angle = np.deg2rad(30)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    tilted = (landmarks_for(size) - centre) @ rotation.T + centre
    upright_polygon = face_polygon(size, landmarks_for(size), SelfBlendConfig())
    tilted_polygon = face_polygon(size, tilted, SelfBlendConfig())
    # Rotating the landmarks rotates the region: same area, different place.
    assert cv2.contourArea(tilted_polygon) == pytest.approx(cv2.contourArea(upright_polygon), 0.02)
    assert not np.allclose(np.sort(tilted_polygon, axis=0), np.sort(upright_polygon, axis=0))


def test_degenerate_landmarks_fall_back_to_the_ellipse(faces):
    collapsed = np.full((5, 2), 64.0, dtype=np.float32)
    ellipse = face_polygon(128, None, SelfBlendConfig())
    np.testing.assert_array_equal(face_polygon(128, collapsed, SelfBlendConfig()), ellipse)
    fake, mask = self_blend(faces[128], collapsed, np.random.default_rng(0))
    assert mask[64, 64] > 0


def test_landmarks_outside_the_crop_change_nothing(faces):
    far_away = landmarks_for(64) + 1000
    fake, mask = self_blend(faces[64], far_away, np.random.default_rng(0))
    assert not mask.any()
    np.testing.assert_array_equal(fake, faces[64])


def test_rejects_bad_inputs(faces):
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="uint8"):
        self_blend(faces[64].astype(np.float32), None, rng)
    with pytest.raises(ValueError, match="S, S, 3"):
        self_blend(faces[64][:, :32], None, rng)
    with pytest.raises(ValueError, match="5"):
        self_blend(faces[64], np.zeros((4, 2)), rng)


def test_mask_shape_varies_from_narrow_to_wide():
    def width_over_height(aspect: float) -> float:
        config = SelfBlendConfig(hull_aspect_range=(aspect, aspect))
        rows, columns = np.nonzero(
            face_mask(128, landmarks_for(128), np.random.default_rng(0), config)
        )
        return float(np.ptp(columns) / np.ptp(rows))

    assert width_over_height(0.8) < 0.9 * width_over_height(1.0) < 0.9 * width_over_height(1.25)


def test_source_is_warped_by_scale_stretch_rotation_and_shift(faces):
    """With every jitter off the source is the crop itself; each warp alone moves it."""
    still = SelfBlendConfig(
        rgb_shift_max=0.0,
        hue_shift_degrees_max=0.0,
        saturation_scale_range=(1.0, 1.0),
        contrast_range=(1.0, 1.0),
        brightness_shift_max=0.0,
        scale_range=(1.0, 1.0),
        aspect_range=(1.0, 1.0),
        rotation_degrees_max=0.0,
        translation_max_fraction=0.0,
        sharpen_probability=0.0,
        downscale_probability=0.0,
        jpeg_probability=0.0,
    )
    face, box = faces[128], (20, 16, 108, 120)
    inside_box = face[box[1] : box[3], box[0] : box[2]]
    np.testing.assert_array_equal(
        blend_source(face, box, np.random.default_rng(0), still), inside_box
    )
    for warp in (
        {"scale_range": (1.05, 1.05)},
        {"aspect_range": (1.05, 1.05)},
        {"rotation_degrees_max": 3.0},
        {"translation_max_fraction": 0.03},
    ):
        config = dataclasses.replace(still, **warp)
        source = blend_source(face, box, np.random.default_rng(0), config)
        assert source.shape == inside_box.shape
        assert np.abs(source.astype(np.int16) - inside_box).mean() > 0.5, warp


@pytest.mark.skipif(not GRACE_HOPPER.exists(), reason="tests/data/grace_hopper.jpg not present")
def test_real_photo_crop():
    image = cv2.cvtColor(cv2.imread(str(GRACE_HOPPER)), cv2.COLOR_BGR2RGB)
    # MTCNN's box and points on matplotlib's 512x600 sample photo, cropped like mattn does: a
    # square 1.3x the box's longer side, centred on the box.
    box = np.array([174.4, 119.6, 355.6, 340.5])
    points = np.array(
        [[221.7, 192.2], [309.8, 186.1], [269.4, 239.2], [232.7, 279.6], [306.6, 275.9]]
    )
    size = 128
    side = 1.3 * max(box[2] - box[0], box[3] - box[1])
    left, top = (box[0] + box[2] - side) / 2, (box[1] + box[3] - side) / 2
    zoom = size / side
    to_crop = np.float32([[zoom, 0, -left * zoom], [0, zoom, -top * zoom]])
    crop = cv2.warpAffine(image, to_crop, (size, size), borderMode=cv2.BORDER_REFLECT_101)
    landmarks = (points - (left, top)) * zoom
    for seed in SEEDS:
        fake, mask = self_blend(crop, landmarks, np.random.default_rng(seed))
        np.testing.assert_array_equal(fake[mask == 0], crop[mask == 0])
        inside = mask >= 0.5 * mask.max()
        difference = np.abs(fake.astype(np.int16) - crop.astype(np.int16)).mean(axis=2)
        assert difference[inside].mean() > 1.0
        # Subtle: not a gross artefact (a mean change of a fifth of the range would be).
        assert difference[inside].mean() < 50
