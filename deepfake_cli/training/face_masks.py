"""Where a self-blend pastes: a random soft face mask from MTCNN's 5 landmarks (SBI's mask).

A face swap replaces the face inside a mask and keeps the frame outside it; the mask's shape,
size and softness vary from one tool (and one video) to the next. So the region is grown from
the landmarks into a face-shaped polygon (an ellipse in the expected face box without them),
then randomly resized, narrowed or widened, elastically deformed and eroded, and blurred so its
soft edge stays inside the face. `synthetic.self_blend` pastes through it; the ranges are
`synthetic.SelfBlendConfig`'s.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:  # the config lives with the self-blend, which imports this module
    from deepfake_cli.training.synthetic import SelfBlendConfig

# MTCNN's landmark order, in crop pixel coordinates (x, y).
LEFT_EYE, RIGHT_EYE, NOSE, MOUTH_LEFT, MOUTH_RIGHT = range(5)

# Mask weights below this cannot move a uint8 value by half a step, so they are set to 0: the
# returned mask is then exactly 0 wherever the fake equals the crop.
NEGLIGIBLE_WEIGHT = 1.0 / 512.0


def face_polygon(size: int, landmarks: np.ndarray | None, config: SelfBlendConfig) -> np.ndarray:
    """The face region as a convex polygon (N, 2) float32 in crop pixels.

    Five points outline too little (eyes to mouth), so the polygon is grown from them along the
    face's own axes: upward from the eyes to the forehead, outward to the temples and cheeks,
    downward from the mouth to the jaw and chin. Falls back to the expected-face-box ellipse when
    the landmarks are missing or degenerate.
    """
    if landmarks is not None:
        points = np.asarray(landmarks, dtype=np.float64).reshape(-1, 2)
        if points.shape != (5, 2):
            raise ValueError(f"landmarks must be 5 (x, y) points, got shape {points.shape}")
        polygon = _polygon_from_landmarks(points)
        if polygon is not None:
            return polygon
    centre = size / 2.0
    face_box_side = size / config.margin_ratio
    half_axes = (
        int(round(config.ellipse_half_width_fraction * face_box_side)),
        int(round(config.ellipse_half_height_fraction * face_box_side)),
    )
    # 10-degree steps: 36 vertices are smooth enough once the mask is blurred.
    ellipse = cv2.ellipse2Poly((int(round(centre)), int(round(centre))), half_axes, 0, 0, 360, 10)
    return ellipse.astype(np.float32)


def _polygon_from_landmarks(points: np.ndarray) -> np.ndarray | None:
    left_eye, right_eye, nose = points[LEFT_EYE], points[RIGHT_EYE], points[NOSE]
    mouth_left, mouth_right = points[MOUTH_LEFT], points[MOUTH_RIGHT]
    eye_centre = (left_eye + right_eye) / 2
    mouth_centre = (mouth_left + mouth_right) / 2
    eye_distance = float(np.linalg.norm(right_eye - left_eye))
    eye_to_mouth = float(np.linalg.norm(eye_centre - mouth_centre))
    if eye_distance < 1e-3 or eye_to_mouth < 1e-3:
        return None
    # The face's own axes, so tilted or rolled faces get a tilted polygon.
    across = (right_eye - left_eye) / eye_distance  # from the left eye towards the right eye
    up = (eye_centre - mouth_centre) / eye_to_mouth  # from the mouth towards the eyes
    # Ratios from average face proportions: face width is about twice the eye distance, the
    # chin is about 0.6 eye-to-mouth distances below the mouth, and the forehead (the part a
    # swap usually replaces, below the hairline) about 0.6 above the eyes.
    grown = [
        left_eye + up * 0.6 * eye_to_mouth - across * 0.3 * eye_distance,  # left forehead
        right_eye + up * 0.6 * eye_to_mouth + across * 0.3 * eye_distance,  # right forehead
        left_eye + up * 0.15 * eye_to_mouth - across * 0.55 * eye_distance,  # left temple
        right_eye + up * 0.15 * eye_to_mouth + across * 0.55 * eye_distance,  # right temple
        left_eye - up * 0.4 * eye_to_mouth - across * 0.55 * eye_distance,  # left cheek
        right_eye - up * 0.4 * eye_to_mouth + across * 0.55 * eye_distance,  # right cheek
        mouth_left - up * 0.35 * eye_to_mouth - across * 0.3 * eye_distance,  # left jaw
        mouth_right - up * 0.35 * eye_to_mouth + across * 0.3 * eye_distance,  # right jaw
        mouth_centre - up * 0.6 * eye_to_mouth,  # chin
    ]
    # The nose and mouth corners are included too: on profile faces they stick out of the
    # polygon grown from the eyes.
    all_points = np.vstack([np.array(grown), nose, mouth_left, mouth_right]).astype(np.float32)
    return cv2.convexHull(all_points).reshape(-1, 2)


def soft_face_mask(
    size: int,
    landmarks: np.ndarray | None,
    rng: np.random.Generator,
    config: SelfBlendConfig,
) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A random soft face mask (size, size) float32 in [0, 1], and the box (x0, y0, x1, y1)
    outside which it is exactly 0. The blend ratio is not applied here.

    The box lets the blur and the blend skip the background, about half of a crop.
    """
    polygon = face_polygon(size, landmarks, config)
    centroid = polygon.mean(axis=0)
    scale = rng.uniform(*config.hull_scale_range)
    stretch = area_preserving_stretch(rng.uniform(*config.hull_aspect_range))
    polygon = centroid + (polygon - centroid) * scale * stretch

    kernel_fraction = rng.uniform(*config.blur_kernel_fraction_range)
    # `| 1` makes the side odd, as GaussianBlur requires.
    kernel_side = max(3, int(round(kernel_fraction * size)) | 1)
    radius = kernel_side // 2
    # Pulling the boundary in by the blur radius (an erosion) keeps the blurred mask's support
    # inside the face region: the soft ramp ends at the face edge instead of spilling over the
    # hair and background.
    polygon = _deform_boundary(polygon, centroid, inward_shift=radius, rng=rng, config=config)

    # The blurred mask is smooth, so a wide blur is computed on a grid `factor` times coarser and
    # upsampled: a 61 px kernel at 380 px costs a fifth as much, and bilinear upsampling of a
    # Gaussian at least 2 coarse pixels wide is accurate to well under one grey level.
    factor = max(1, radius // 6)
    margin = radius + factor + 1
    box_x0, box_y0 = np.floor(polygon.min(axis=0)).astype(int) - margin
    box_x1, box_y1 = np.ceil(polygon.max(axis=0)).astype(int) + margin
    box_x0, box_y0 = max(int(box_x0), 0), max(int(box_y0), 0)
    box_x1, box_y1 = min(int(box_x1), size), min(int(box_y1), size)
    mask = np.zeros((size, size), dtype=np.float32)
    if box_x1 <= box_x0 or box_y1 <= box_y0:  # the whole face region lies outside the crop
        return mask, (0, 0, 0, 0)
    box_width, box_height = box_x1 - box_x0, box_y1 - box_y0
    coarse_width, coarse_height = -(-box_width // factor), -(-box_height // factor)

    # Coarse pixel j covers fine pixels j*factor .. (j+1)*factor - 1, centred at
    # j*factor + (factor-1)/2: the same convention cv2.resize uses when it upsamples.
    coarse_polygon = (polygon - (box_x0, box_y0) - (factor - 1) / 2) / factor
    region = np.zeros((coarse_height, coarse_width), dtype=np.uint8)
    # 4 fractional bits keep the vertices' sub-pixel positions; anti-aliasing keeps small crops'
    # narrow-kernel edges from looking stair-stepped.
    fractional_bits = 4
    cv2.fillPoly(
        region,
        [np.round(coarse_polygon * (1 << fractional_bits)).astype(np.int32)],
        255,
        lineType=cv2.LINE_AA,
        shift=fractional_bits,
    )
    coarse_radius = radius / factor
    coarse_kernel_side = max(3, int(round(2 * coarse_radius)) | 1)
    # sigma = radius / 3 puts the kernel's cut-off at 3 sigma: smooth, with no visible step.
    blurred = cv2.GaussianBlur(
        region.astype(np.float32) * np.float32(1 / 255),
        (coarse_kernel_side, coarse_kernel_side),
        sigmaX=max(coarse_radius / 3.0, 0.5),
        borderType=cv2.BORDER_CONSTANT,
    )
    if factor > 1:
        blurred = cv2.resize(
            blurred,
            (coarse_width * factor, coarse_height * factor),
            interpolation=cv2.INTER_LINEAR,
        )[:box_height, :box_width]
    np.clip(blurred, 0.0, 1.0, out=blurred)
    blurred[blurred < NEGLIGIBLE_WEIGHT] = 0.0
    mask[box_y0:box_y1, box_x0:box_x1] = blurred
    return mask, (box_x0, box_y0, box_x1, box_y1)


def _deform_boundary(
    polygon: np.ndarray,
    centroid: np.ndarray,
    inward_shift: float,
    rng: np.random.Generator,
    config: SelfBlendConfig,
) -> np.ndarray:
    """Elastic deformation of the region's outline, and its erosion by `inward_shift` pixels.

    The outline is resampled evenly and each point moved along its ray from the centroid by a
    random smooth periodic offset (a few low harmonics), so the boundary bulges and dents like a
    hand-made swap mask instead of being a clean convex hull. Deforming ~64 points instead of
    remapping the raster mask costs microseconds.
    """
    size_scale = float(np.ptp(polygon, axis=0).max())  # the region's extent, in pixels
    closed = np.vstack([polygon, polygon[:1]])
    edge_lengths = np.linalg.norm(np.diff(closed, axis=0), axis=1)
    arc_position = np.concatenate([[0.0], np.cumsum(edge_lengths)])
    if arc_position[-1] <= 0:
        return polygon
    sample_count = config.boundary_points
    samples = np.linspace(0.0, arc_position[-1], sample_count, endpoint=False)
    outline = np.stack(
        [
            np.interp(samples, arc_position, closed[:, 0]),
            np.interp(samples, arc_position, closed[:, 1]),
        ],
        axis=1,
    )
    phase = samples / arc_position[-1] * 2 * np.pi
    # Harmonic 1 would just shift the region; 2 and up bend it. Amplitudes split the budget so
    # the total never exceeds elastic_strength_fraction of the region's extent.
    harmonics = np.arange(2, 2 + config.elastic_harmonics)
    amplitudes = rng.uniform(-1, 1, size=harmonics.size) / harmonics.size
    phases = rng.uniform(0, 2 * np.pi, size=harmonics.size)
    offset = (amplitudes[:, None] * np.cos(harmonics[:, None] * phase + phases[:, None])).sum(0)
    offset *= config.elastic_strength_fraction * size_scale

    rays = outline - centroid
    ray_lengths = np.linalg.norm(rays, axis=1)
    ray_lengths = np.maximum(ray_lengths, 1e-6)
    # Never pull a point past 10% of its distance: a tiny region stays a region.
    new_lengths = np.maximum(ray_lengths + offset - inward_shift, 0.1 * ray_lengths)
    return (centroid + rays * (new_lengths / ray_lengths)[:, None]).astype(np.float32)


def area_preserving_stretch(aspect: float) -> np.ndarray:
    """(x, y) factors that make width over height `aspect` and keep the area."""
    return np.array([np.sqrt(aspect), 1.0 / np.sqrt(aspect)])
