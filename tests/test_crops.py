"""Crop geometry: pure numpy/OpenCV, no face detector."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch

from deepfake_cli.crops import crop_face, eye_angle_degrees, normalize_crops, square_crop_box


def test_square_crop_box_of_a_square_box_scales_it_about_its_center():
    crop_box = square_crop_box((10.0, 20.0, 110.0, 120.0), margin_ratio=1.3)

    assert crop_box == pytest.approx((-5.0, 5.0, 125.0, 135.0))


def test_square_crop_box_of_a_tall_box_uses_the_longer_side():
    # 40 wide, 100 tall, centred at (70, 100): side = 1.3 * 100.
    crop_box = square_crop_box((50.0, 50.0, 90.0, 150.0), margin_ratio=1.3)

    assert crop_box == pytest.approx((5.0, 35.0, 135.0, 165.0))
    assert crop_box[2] - crop_box[0] == pytest.approx(crop_box[3] - crop_box[1])


def test_square_crop_box_of_a_wide_box_uses_the_longer_side():
    crop_box = square_crop_box((0.0, 0.0, 200.0, 50.0), margin_ratio=1.0)

    assert crop_box == pytest.approx((0.0, -75.0, 200.0, 125.0))


def test_square_crop_box_rejects_empty_boxes_and_bad_margins():
    with pytest.raises(ValueError):
        square_crop_box((10.0, 10.0, 10.0, 20.0))
    with pytest.raises(ValueError):
        square_crop_box((0.0, 0.0, 10.0, 10.0), margin_ratio=0.0)


def _quadrant_frame() -> np.ndarray:
    """200x300 frame, black except a 100x100 square at x 100..200, y 50..150 with one colour
    per quadrant (red top-left, green top-right, blue bottom-left, white bottom-right)."""
    frame = np.zeros((200, 300, 3), dtype=np.uint8)
    frame[50:100, 100:150] = (255, 0, 0)
    frame[50:100, 150:200] = (0, 255, 0)
    frame[100:150, 100:150] = (0, 0, 255)
    frame[100:150, 150:200] = (255, 255, 255)
    return frame


def test_crop_without_margin_and_resize_returns_the_box_exactly():
    frame = _quadrant_frame()

    crop = crop_face(frame, (100.0, 50.0, 200.0, 150.0), size=100, margin_ratio=1.0)

    np.testing.assert_array_equal(crop, frame[50:150, 100:200])


def test_crop_lands_the_pattern_where_expected_after_margin_and_resize():
    frame = _quadrant_frame()

    # Side 200 around centre (150, 100): the pattern fills the middle half of the crop.
    crop = crop_face(frame, (100.0, 50.0, 200.0, 150.0), size=64, margin_ratio=2.0)

    assert crop.shape == (64, 64, 3)
    assert crop.dtype == np.uint8
    # Quadrant centres sit at 3/8 and 5/8 of the crop; the outer quarter is black.
    np.testing.assert_array_equal(crop[20, 20], (255, 0, 0))
    np.testing.assert_array_equal(crop[20, 43], (0, 255, 0))
    np.testing.assert_array_equal(crop[43, 20], (0, 0, 255))
    np.testing.assert_array_equal(crop[43, 43], (255, 255, 255))
    assert crop[:14].max() == 0 and crop[50:].max() == 0
    assert crop[:, :14].max() == 0 and crop[:, 50:].max() == 0


def test_crop_partially_outside_the_frame_is_black_there():
    frame = np.full((100, 100, 3), 200, dtype=np.uint8)

    # Square from (-20, -40) to (60, 40): the left 20 columns and top 40 rows are outside.
    crop = crop_face(frame, (-20.0, -40.0, 60.0, 40.0), size=80, margin_ratio=1.0)

    assert crop.shape == (80, 80, 3)
    assert crop[:40].max() == 0
    assert crop[:, :20].max() == 0
    assert (crop[40:, 20:] == 200).all()


def test_crop_entirely_outside_the_frame_is_all_black():
    frame = np.full((50, 50, 3), 255, dtype=np.uint8)

    crop = crop_face(frame, (100.0, 100.0, 140.0, 140.0), size=32)

    assert crop.shape == (32, 32, 3)
    assert crop.max() == 0


@pytest.mark.parametrize("size", [16, 100, 380])
def test_crop_has_the_requested_size_and_dtype_when_shrinking_and_enlarging(size):
    random_generator = np.random.default_rng(0)
    frame = random_generator.integers(0, 256, size=(240, 320, 3), dtype=np.uint8)

    crop = crop_face(frame, (100.5, 60.2, 180.7, 150.9), size=size)

    assert crop.shape == (size, size, 3)
    assert crop.dtype == np.uint8
    assert crop.flags.c_contiguous


def test_crop_rejects_frames_that_are_not_uint8_rgb():
    with pytest.raises(ValueError):
        crop_face(np.zeros((10, 10), dtype=np.uint8), (0, 0, 5, 5), size=8)
    with pytest.raises(ValueError):
        crop_face(np.zeros((10, 10, 3), dtype=np.float32), (0, 0, 5, 5), size=8)


def test_align_without_landmarks_is_an_error():
    with pytest.raises(ValueError):
        crop_face(np.zeros((10, 10, 3), dtype=np.uint8), (0, 0, 5, 5), size=8, align=True)


def _dot_centroid(image: np.ndarray, x_range: slice) -> tuple[float, float]:
    """(x, y) centroid of the bright pixels in the given column range of an RGB image."""
    brightness = image[:, x_range, 0].astype(np.float64)
    rows, cols = np.nonzero(brightness > 64)
    weights = brightness[rows, cols]
    return (
        float((cols * weights).sum() / weights.sum()) + (x_range.start or 0),
        float((rows * weights).sum() / weights.sum()),
    )


def _apply_affine(point_xy: tuple[float, float], matrix: np.ndarray) -> tuple[float, float]:
    rotated = matrix @ np.array([point_xy[0], point_xy[1], 1.0])  # (2, 3) @ (3,) -> (2,)
    return float(rotated[0]), float(rotated[1])


@pytest.mark.parametrize("angle_degrees", [25.0, -40.0])
def test_align_levels_a_rotated_pair_of_eyes(angle_degrees):
    # Two "eyes" on one row of an upright 200x200 image, 60 px apart.
    upright = np.zeros((200, 200, 3), dtype=np.uint8)
    left_eye_xy, right_eye_xy = (70.0, 90.0), (130.0, 90.0)
    for eye_xy in (left_eye_xy, right_eye_xy):
        cv2.circle(upright, (int(eye_xy[0]), int(eye_xy[1])), 5, (255, 255, 255), thickness=-1)
    # Rotate the whole image by a known angle; the eye landmarks follow the same matrix.
    rotation = cv2.getRotationMatrix2D((100.0, 100.0), angle_degrees, 1.0)
    tilted = cv2.warpAffine(upright, rotation, (200, 200), flags=cv2.INTER_LINEAR)
    tilted_left = _apply_affine(left_eye_xy, rotation)
    tilted_right = _apply_affine(right_eye_xy, rotation)
    landmarks = (tilted_left, tilted_right, (100.0, 110.0), (85.0, 130.0), (115.0, 130.0))
    assert abs(eye_angle_degrees(landmarks)) == pytest.approx(abs(angle_degrees), abs=1e-6)
    box_xyxy = (50.0, 50.0, 150.0, 150.0)

    unaligned = crop_face(tilted, box_xyxy, size=128, margin_ratio=1.3)
    aligned = crop_face(
        tilted, box_xyxy, size=128, margin_ratio=1.3, landmarks=landmarks, align=True
    )

    unaligned_left = _dot_centroid(unaligned, slice(0, 64))
    unaligned_right = _dot_centroid(unaligned, slice(64, 128))
    aligned_left = _dot_centroid(aligned, slice(0, 64))
    aligned_right = _dot_centroid(aligned, slice(64, 128))
    # Without alignment the eyes are on different rows; with it they share one row, keep
    # their distance (60 px * 128/130) and stay symmetric about the rotation centre.
    assert abs(unaligned_left[1] - unaligned_right[1]) > 15
    assert aligned_left[1] == pytest.approx(aligned_right[1], abs=0.5)
    eye_distance = math.dist(aligned_left, aligned_right)
    assert eye_distance == pytest.approx(60.0 * 128 / 130, abs=1.0)
    # Box centre (100, 100) maps to the crop centre 64; the eyes were 10 px above it.
    assert aligned_left[1] == pytest.approx(64 - 10 * 128 / 130, abs=1.0)


def test_align_with_level_eyes_matches_the_upright_crop():
    random_generator = np.random.default_rng(1)
    # Smooth content, so the two interpolation paths agree closely.
    frame = cv2.GaussianBlur(
        random_generator.integers(0, 256, size=(120, 160, 3), dtype=np.uint8), (0, 0), 3
    )
    landmarks = ((60.0, 50.0), (100.0, 50.0))

    upright = crop_face(frame, (40.0, 30.0, 120.0, 110.0), size=80, margin_ratio=1.0)
    aligned = crop_face(
        frame,
        (40.0, 30.0, 120.0, 110.0),
        size=80,
        margin_ratio=1.0,
        landmarks=landmarks,
        align=True,
    )

    difference = np.abs(upright.astype(np.int16) - aligned.astype(np.int16))
    assert difference.max() <= 1


def test_normalize_crops_maps_0_and_255_to_minus_one_and_one():
    crops = np.zeros((2, 4, 4, 3), dtype=np.uint8)
    crops[1] = 255

    images = normalize_crops(crops, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))

    assert images.shape == (2, 3, 4, 4)
    assert images.dtype == torch.float32
    assert images.is_contiguous()
    assert torch.all(images[0] == -1.0)
    assert torch.all(images[1] == 1.0)


def test_normalize_crops_puts_channels_first_with_per_channel_statistics():
    crops = np.zeros((1, 2, 3, 3), dtype=np.uint8)
    crops[0, :, :, 0] = 255  # red
    crops[0, 1, 2, 2] = 51  # one blue pixel at row 1, column 2
    mean = (0.485, 0.456, 0.406)
    std = (0.229, 0.224, 0.225)

    images = normalize_crops(crops, mean=mean, std=std)

    assert images.shape == (1, 3, 2, 3)
    expected_red = (1.0 - mean[0]) / std[0]
    assert torch.allclose(images[0, 0], torch.full((2, 3), expected_red))
    assert torch.allclose(images[0, 1], torch.full((2, 3), -mean[1] / std[1]))
    assert images[0, 2, 1, 2].item() == pytest.approx((0.2 - mean[2]) / std[2], abs=1e-6)
    assert images[0, 2, 0, 0].item() == pytest.approx(-mean[2] / std[2], abs=1e-6)


def test_normalize_crops_accepts_read_only_and_single_value_statistics():
    crops = np.full((3, 8, 8, 3), 255, dtype=np.uint8)
    crops.flags.writeable = False

    images = normalize_crops(crops, mean=0.0, std=1.0)

    assert images.shape == (3, 3, 8, 8)
    assert torch.all(images == 1.0)


def test_normalize_crops_rejects_bad_layouts():
    with pytest.raises(ValueError):
        normalize_crops(np.zeros((4, 4, 3), dtype=np.uint8), mean=0.5, std=0.5)
    with pytest.raises(ValueError):
        normalize_crops(np.zeros((1, 3, 4, 4), dtype=np.uint8), mean=0.5, std=0.5)
    with pytest.raises(ValueError):
        normalize_crops(np.zeros((1, 4, 4, 3), dtype=np.float32), mean=0.5, std=0.5)
    with pytest.raises(ValueError):
        normalize_crops(np.zeros((1, 4, 4, 3), dtype=np.uint8), mean=(0.5, 0.5), std=0.5)
