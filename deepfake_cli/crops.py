"""Stage 3 of video -> frames -> faces -> crops -> detector -> verdict: cut square face crops.

This is the one crop function that scan, extract-faces and training share, so a model sees at
scan time exactly the kind of crop it was trained on; `recrop` cuts a model's crop out of a
stored, larger one (what `mattn evaluate` does with a faces folder cut with another margin).
The convention is FaceForensics++'s: a square centred on the detector's box, `margin_ratio`
times the box's longer side.

Coordinates are continuous pixel coordinates: pixel (col, row) covers [col, col + 1) x
[row, row + 1), so its centre is at (col + 0.5, row + 0.5); this is how the box
`(0, 0, W, H)` covers a whole W x H frame.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np
import torch

from deepfake_cli.model.config import DEFAULT_MARGIN_RATIO, CropGeometry

if TYPE_CHECKING:
    from deepfake_cli.tracks import Track

BoxXYXY = Sequence[float]


def square_crop_box(
    box_xyxy: BoxXYXY, margin_ratio: float = DEFAULT_MARGIN_RATIO
) -> tuple[float, float, float, float]:
    """Square box centred on `box_xyxy`, of side `margin_ratio` times its longer side."""
    if margin_ratio <= 0:
        raise ValueError(f"margin_ratio must be positive, got {margin_ratio}")
    x_min, y_min, x_max, y_max = (float(value) for value in box_xyxy)
    box_width = x_max - x_min
    box_height = y_max - y_min
    if box_width <= 0 or box_height <= 0:
        raise ValueError(f"box must have a positive width and height, got {tuple(box_xyxy)}")
    center_x = (x_min + x_max) / 2.0
    center_y = (y_min + y_max) / 2.0
    half_side = margin_ratio * max(box_width, box_height) / 2.0
    return (center_x - half_side, center_y - half_side, center_x + half_side, center_y + half_side)


def eye_angle_degrees(landmarks: Sequence[Sequence[float]]) -> float:
    """Angle of the line from the left eye (landmark 0) to the right eye (landmark 1).

    In image coordinates (y down), so a positive angle means the right eye is lower.
    """
    if len(landmarks) < 2:
        raise ValueError("alignment needs at least the two eye landmarks")
    left_eye_x, left_eye_y = (float(value) for value in landmarks[0][:2])
    right_eye_x, right_eye_y = (float(value) for value in landmarks[1][:2])
    return math.degrees(math.atan2(right_eye_y - left_eye_y, right_eye_x - left_eye_x))


def crop_face(
    frame: np.ndarray,
    box_xyxy: BoxXYXY,
    *,
    size: int,
    margin_ratio: float = DEFAULT_MARGIN_RATIO,
    landmarks: Sequence[Sequence[float]] | None = None,
    align: bool = False,
) -> np.ndarray:
    """(size, size, 3) uint8 RGB crop of the square around `box_xyxy` in an (H, W, 3) frame.

    The parts of the square outside the frame are black. Shrinking uses INTER_AREA (averages,
    no aliasing); enlarging uses INTER_CUBIC (sharper than linear on faces).

    With `align=True` the square is rotated about the box centre so the eyes (landmarks 0 and
    1) end on one row. One `cv2.warpAffine` maps the rotated square straight to the output,
    so the pixels are interpolated once; warpAffine has no area filter, so it uses linear
    interpolation when shrinking (a little aliasing when shrinking by more than ~2x).
    """
    if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"frame must be an (H, W, 3) array, got {getattr(frame, 'shape', None)}")
    if frame.dtype != np.uint8:
        raise ValueError(f"frame must be uint8, got {frame.dtype}")
    if size < 1:
        raise ValueError(f"size must be at least 1, got {size}")

    crop_x_min, crop_y_min, crop_x_max, crop_y_max = square_crop_box(box_xyxy, margin_ratio)
    if align:
        if landmarks is None:
            raise ValueError("align=True needs the face's landmarks")
        return _crop_rotated(
            frame,
            center_xy=((crop_x_min + crop_x_max) / 2.0, (crop_y_min + crop_y_max) / 2.0),
            side=crop_x_max - crop_x_min,
            angle_degrees=eye_angle_degrees(landmarks),
            size=size,
        )
    return _crop_upright(frame, crop_x_min, crop_y_min, crop_x_max - crop_x_min, size)


def _crop_upright(
    frame: np.ndarray, crop_x_min: float, crop_y_min: float, side: float, size: int
) -> np.ndarray:
    left, top, side_px = _snap(crop_x_min, crop_y_min, side)
    frame_height, frame_width = frame.shape[:2]

    inside_left, inside_top = max(left, 0), max(top, 0)
    inside_right = min(left + side_px, frame_width)
    inside_bottom = min(top + side_px, frame_height)
    if (
        inside_left == left
        and inside_top == top
        and (inside_right, inside_bottom)
        == (
            left + side_px,
            top + side_px,
        )
    ):
        # Fully inside: a view, no copy.
        square = frame[top : top + side_px, left : left + side_px]
    else:
        square = np.zeros((side_px, side_px, 3), dtype=np.uint8)
        if inside_right > inside_left and inside_bottom > inside_top:
            square[
                inside_top - top : inside_bottom - top, inside_left - left : inside_right - left
            ] = frame[inside_top:inside_bottom, inside_left:inside_right]

    if side_px == size:
        return np.ascontiguousarray(square)
    interpolation = cv2.INTER_AREA if side_px > size else cv2.INTER_CUBIC
    return cv2.resize(square, (size, size), interpolation=interpolation)


def _crop_rotated(
    frame: np.ndarray,
    *,
    center_xy: tuple[float, float],
    side: float,
    angle_degrees: float,
    size: int,
) -> np.ndarray:
    # Map output pixel centres to frame pixel indices (dst -> src, hence WARP_INVERSE_MAP):
    # output pixel (u, v) has its centre at (u + 0.5, v + 0.5); relative to the output centre
    # it is scaled by side/size, rotated by the eye angle (the output's x axis follows the eye
    # line) and moved to the box centre, then shifted by -0.5 from coordinate to pixel index.
    pixels_per_output = side / size
    scaled_cos = math.cos(math.radians(angle_degrees)) * pixels_per_output
    scaled_sin = math.sin(math.radians(angle_degrees)) * pixels_per_output
    center_x, center_y = center_xy
    output_center = size / 2.0
    # src = A @ (dst + 0.5 - output_center) + center - 0.5 = A @ dst + offset, where A is the
    # scaled rotation [[cos, -sin], [sin, cos]] and output pixel 0 sits 0.5 - output_center
    # from the output centre on both axes.
    first_pixel_from_center = 0.5 - output_center
    offset_x = center_x - 0.5 + (scaled_cos - scaled_sin) * first_pixel_from_center
    offset_y = center_y - 0.5 + (scaled_sin + scaled_cos) * first_pixel_from_center
    output_to_frame = np.array(
        [[scaled_cos, -scaled_sin, offset_x], [scaled_sin, scaled_cos, offset_y]], dtype=np.float64
    )
    interpolation = cv2.INTER_LINEAR if pixels_per_output > 1.0 else cv2.INTER_CUBIC
    return cv2.warpAffine(
        frame,
        output_to_frame,
        (size, size),
        flags=interpolation | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(0, 0, 0),
    )


@dataclass(frozen=True)
class TrackCrops:
    """Every (person, frame) crop of a set of tracks, in track order then frame order."""

    # (N, size, size, 3) uint8 RGB, one row per key.
    crops: np.ndarray
    # (person_id, frame position among the sampled frames) of each crop.
    keys: list[tuple[int, int]]


def crop_tracks(
    frames: Sequence[np.ndarray], tracks: Sequence[Track], geometry: CropGeometry
) -> TrackCrops:
    """`crop_face` for every detection of every track: the loop scan, extract and report share.

    `frames[position]` is the frame a track's `detections[position]` was found in. Detections
    without landmarks are cropped upright even when `align` is asked for (a report rebuilt from
    results, which keep boxes only).
    """
    keys: list[tuple[int, int]] = []
    crops: list[np.ndarray] = []
    for track in tracks:
        for position in track.frame_positions:
            detection = track.detections[position]
            crops.append(
                crop_face(
                    frames[position],
                    detection.box_xyxy,
                    size=geometry.size,
                    margin_ratio=geometry.margin_ratio,
                    landmarks=detection.landmarks,
                    align=geometry.align and detection.landmarks is not None,
                )
            )
            keys.append((track.person_id, position))
    empty = np.zeros((0, geometry.size, geometry.size, 3), dtype=np.uint8)
    stacked = np.stack(crops) if crops else empty
    return TrackCrops(crops=stacked, keys=keys)


#: Relative slack when comparing margins: stored margins are written with 6 significant digits
#: and the weights' with 4 decimals, so equal geometries can differ in the last digit.
_MARGIN_TOLERANCE = 1e-4


def recrop_refusal(
    stored_margin_ratio: float, stored_align: bool, geometry: CropGeometry
) -> str | None:
    """Why crops stored with this margin and alignment cannot become `geometry`'s, else None.

    A stored crop holds the square of `stored_margin_ratio` times the face box around the box
    centre; any smaller square about the same centre is inside it, a larger one is not. An
    upright crop cannot be turned into an aligned one (its corners would be missing) nor back.
    """
    if stored_align != geometry.align:
        stored_kind, wanted_kind = (
            ("aligned", "upright") if stored_align else ("upright", "aligned")
        )
        return f"they are {stored_kind} and the model expects {wanted_kind} crops"
    if geometry.margin_ratio > stored_margin_ratio * (1 + _MARGIN_TOLERANCE):
        return (
            f"their margin {stored_margin_ratio:g} is narrower than the {geometry.margin_ratio:g} "
            "the model expects"
        )
    return None


def recrop(
    stored_crop: np.ndarray,
    stored_margin_ratio: float,
    geometry: CropGeometry,
    box_xyxy: BoxXYXY | None = None,
) -> np.ndarray:
    """The crop `geometry` asks for, cut from a stored crop made with a margin at least as large.

    With the face box the stored crop was cut from (`box_xyxy`, frame pixels), an upright
    crop's two whole-pixel squares are placed as `crop_face` placed them in the frame, so a
    crop stored at the frame's resolution gives exactly the pixels scan cuts; otherwise (no
    box, or aligned crops, which are rotated about the box centre without snapping) the model's
    square is the centred one. A square that falls between stored pixels is resampled
    (area-averaged first when shrinking, as `crop_face`), so a stored crop that was itself
    resized is resampled twice where scan resamples once. `recrop_refusal` says whether the
    geometries fit; nothing is rotated here, since a stored aligned crop already is.
    """
    stored_side = stored_crop.shape[0]
    if stored_crop.shape[1] != stored_side:
        raise ValueError(f"stored crops must be square, got {stored_crop.shape[:2]}")
    if box_xyxy is None or geometry.align:
        side = stored_side * geometry.margin_ratio / stored_margin_ratio
        left = top = (stored_side - side) / 2.0
    else:
        stored_left, stored_top, stored_square = snapped_square(box_xyxy, stored_margin_ratio)
        model_left, model_top, model_square = snapped_square(box_xyxy, geometry.margin_ratio)
        stored_per_frame_pixel = stored_side / stored_square
        left = (model_left - stored_left) * stored_per_frame_pixel
        top = (model_top - stored_top) * stored_per_frame_pixel
        side = model_square * stored_per_frame_pixel
    if all(abs(value - round(value)) < 1e-6 for value in (left, top, side)):
        return _crop_upright(stored_crop, round(left), round(top), round(side), geometry.size)
    return _resample_square(stored_crop, left, top, side, geometry.size)


def snapped_square(box_xyxy: BoxXYXY, margin_ratio: float) -> tuple[int, int, int]:
    """(left, top, side) in whole frame pixels of the square an upright `crop_face` cuts."""
    crop_x_min, crop_y_min, crop_x_max, _ = square_crop_box(box_xyxy, margin_ratio)
    return _snap(crop_x_min, crop_y_min, crop_x_max - crop_x_min)


def _snap(crop_x_min: float, crop_y_min: float, side: float) -> tuple[int, int, int]:
    # Whole pixels, as FaceForensics++ crops: the square snaps to the nearest pixel grid.
    return (
        math.floor(crop_x_min + 0.5),
        math.floor(crop_y_min + 0.5),
        max(1, math.floor(side + 0.5)),
    )


def _resample_square(
    image: np.ndarray, left: float, top: float, side: float, size: int
) -> np.ndarray:
    """(size, size) resampling of the square [left, left + side) x [top, top + side) of `image`."""
    if side > size:
        # Area-average down to about the output's scale first (warpAffine has no area filter),
        # then only a sub-pixel shift and a slight scale remain for the cubic warp.
        shrunk_side = max(1, round(image.shape[0] * size / side))
        scale = shrunk_side / image.shape[0]
        image = cv2.resize(image, (shrunk_side, shrunk_side), interpolation=cv2.INTER_AREA)
        left, top, side = left * scale, top * scale, side * scale
    image_per_output = side / size
    # Output pixel u has its centre at u + 0.5, i.e. at left + (u + 0.5) * image_per_output in
    # the image's continuous coordinates, which is pixel index that minus 0.5.
    output_to_image = np.array(
        [
            [image_per_output, 0.0, left + 0.5 * image_per_output - 0.5],
            [0.0, image_per_output, top + 0.5 * image_per_output - 0.5],
        ],
        dtype=np.float64,
    )
    return cv2.warpAffine(
        image,
        output_to_image,
        (size, size),
        flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(0, 0, 0),
    )


def landmarks_in_crop(
    landmarks: Sequence[Sequence[float]],
    box_xyxy: BoxXYXY,
    *,
    size: int,
    margin_ratio: float = DEFAULT_MARGIN_RATIO,
    align: bool = False,
) -> tuple[tuple[float, float], ...]:
    """Where frame points (e.g. MTCNN's 5 landmarks) land in `crop_face`'s output, in its pixels.

    Uses `crop_face`'s geometry exactly: the pixel-snapped square and its resize when upright,
    the rotation about the box centre when aligned (the eye angle is taken from `landmarks`).
    Continuous coordinates on both sides, so a point at a pixel centre maps to a pixel centre.
    """
    if size < 1:
        raise ValueError(f"size must be at least 1, got {size}")
    crop_x_min, crop_y_min, crop_x_max, crop_y_max = square_crop_box(box_xyxy, margin_ratio)
    points = [(float(point[0]), float(point[1])) for point in landmarks]
    if align:
        # Inverse of _crop_rotated's map: frame = side/size * R(angle) @ (crop - size/2) + centre.
        center_x = (crop_x_min + crop_x_max) / 2.0
        center_y = (crop_y_min + crop_y_max) / 2.0
        output_per_pixel = size / (crop_x_max - crop_x_min)
        angle_radians = math.radians(eye_angle_degrees(landmarks))
        cos_angle, sin_angle = math.cos(angle_radians), math.sin(angle_radians)
        output_center = size / 2.0
        return tuple(
            (
                output_center
                + output_per_pixel * (cos_angle * (x - center_x) + sin_angle * (y - center_y)),
                output_center
                + output_per_pixel * (-sin_angle * (x - center_x) + cos_angle * (y - center_y)),
            )
            for x, y in points
        )
    # The same whole-pixel square as _crop_upright, then its uniform resize to `size`.
    left, top, side_px = _snap(crop_x_min, crop_y_min, crop_x_max - crop_x_min)
    output_per_pixel = size / side_px
    return tuple(((x - left) * output_per_pixel, (y - top) * output_per_pixel) for x, y in points)


def normalize_crops(
    crops: np.ndarray,
    mean: float | Sequence[float],
    std: float | Sequence[float],
    *,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """(N, S, S, 3) uint8 RGB crops -> (N, 3, S, S) float32 tensor of (x/255 - mean)/std.

    `mean` and `std` are per channel (R, G, B) on the [0, 1] scale, or one value for all
    three. With `device`, the uint8 crops are moved there before conversion (a quarter of the
    bytes of float32).
    """
    if not isinstance(crops, np.ndarray) or crops.ndim != 4 or crops.shape[3] != 3:
        raise ValueError(
            f"crops must be an (N, S, S, 3) array, got {getattr(crops, 'shape', None)}"
        )
    if crops.dtype != np.uint8:
        raise ValueError(f"crops must be uint8, got {crops.dtype}")
    mean_per_channel = _per_channel(mean, "mean")
    std_per_channel = _per_channel(std, "std")
    if any(value <= 0 for value in std_per_channel):
        raise ValueError(f"std must be positive, got {std}")

    # torch.from_numpy warns on read-only arrays (e.g. decoded frames) and fails on negative
    # strides (flipped views); a copy in those cases is cheap next to the model.
    if not crops.flags.writeable or any(stride < 0 for stride in crops.strides):
        crops = crops.copy()
    crops_tensor = torch.from_numpy(crops)
    if device is not None:
        crops_tensor = crops_tensor.to(device)
    # (N, S, S, 3) -> (N, 3, S, S); the float conversion also lays it out contiguously.
    images = crops_tensor.permute(0, 3, 1, 2).to(
        torch.float32, memory_format=torch.contiguous_format
    )
    images.div_(255.0)
    mean_tensor = torch.tensor(mean_per_channel, dtype=torch.float32, device=images.device)
    std_tensor = torch.tensor(std_per_channel, dtype=torch.float32, device=images.device)
    # (3,) -> (1, 3, 1, 1) to broadcast over batch and pixels.
    images.sub_(mean_tensor.view(1, 3, 1, 1)).div_(std_tensor.view(1, 3, 1, 1))
    return images


def _per_channel(value: float | Sequence[float], name: str) -> tuple[float, float, float]:
    if isinstance(value, numbers.Real):  # also numpy scalars such as np.float32
        return (float(value),) * 3
    values = tuple(float(item) for item in value)
    if len(values) != 3:
        raise ValueError(f"{name} needs one value per RGB channel, got {values}")
    return values  # type: ignore[return-value]
