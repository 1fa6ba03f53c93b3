"""Self-blended images (SBI; Shiohara & Yamasaki, CVPR 2022): fake faces made from real ones.

A detector trained on one family of generators learns that family's fingerprints and misses the
next one. SBI instead teaches the artefacts that almost every face swap shares: the swapped face
is a slightly different image (other colour, other sharpness, other compression, a little
misaligned) pasted into the frame through a soft mask, which leaves a blending boundary and a
colour/frequency mismatch between inside and outside. Blending a jittered copy of a real face
back into the same image produces exactly those artefacts and nothing else, so real videos alone
are enough to train on.

Pipeline for one crop (all randomness from one `numpy.random.Generator`, so it is reproducible):

1. source = the crop slightly scaled, stretched, rotated and translated, colour-jittered (hue,
   saturation, brightness/contrast, per-channel RGB shift), then frequency-jittered (sharpened
   or down-and-up-scaled) and optionally JPEG re-compressed.
2. mask = the face region from MTCNN's 5 landmarks, randomly resized, narrowed or widened,
   elastically deformed, eroded and blurred (`face_masks`), times a blend ratio.
3. fake = crop + mask * (source - crop): outside the mask the crop is returned untouched.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from deepfake_cli.model.config import DEFAULT_MARGIN_RATIO
from deepfake_cli.training.degradations import jpeg_round_trip

# Re-exported: callers know the self-blend by one name, `synthetic`.
from deepfake_cli.training.face_masks import (
    LEFT_EYE,
    MOUTH_LEFT,
    MOUTH_RIGHT,
    NEGLIGIBLE_WEIGHT,
    NOSE,
    RIGHT_EYE,
    area_preserving_stretch,
    face_polygon,
    soft_face_mask,
)


@dataclass(frozen=True)
class SelfBlendConfig:
    """Random ranges of the self-blend. Defaults follow SBI's spirit, tuned for 64-380 px crops.

    Ranges are (low, high) and drawn uniformly unless said otherwise. Sizes given as a fraction
    of the crop side S, so one config works for every crop size.
    """

    # --- Colour jitter of the source: a face swap's face comes from another video, so its
    # colour never matches the frame exactly. Kept small: large shifts are trivially detectable
    # and teach nothing that transfers to real fakes.
    # Per-channel additive shift in uint8 levels, each of R, G, B drawn from [-max, max].
    rgb_shift_max: float = 15.0
    # Hue rotation in degrees, drawn from [-max, max].
    hue_shift_degrees_max: float = 6.0
    # Saturation multiplier (1 = unchanged; the colour's distance from grey is scaled).
    saturation_scale_range: tuple[float, float] = (0.85, 1.15)
    # Contrast (multiplier around mid-grey) and brightness (additive, in uint8 levels).
    contrast_range: tuple[float, float] = (0.9, 1.1)
    brightness_shift_max: float = 15.0

    # --- Warp of the source: generators and face alignment never put the new face back on
    # exactly the same pixels, which doubles edges (eyebrows, mouth) near the blend boundary.
    # Uniform scale around the crop centre, then a width-over-height stretch (the swapped face's
    # shape is another person's) and a rotation in degrees drawn from [-max, max].
    scale_range: tuple[float, float] = (0.95, 1.05)
    aspect_range: tuple[float, float] = (0.97, 1.03)
    rotation_degrees_max: float = 3.0
    # Translation along x and y, each drawn from [-max, max] * S.
    translation_max_fraction: float = 0.03

    # --- Frequency jitter of the source: generated faces are blurrier or sharper than the
    # camera's image, and they go through another compression pass.
    # Probabilities of sharpening vs. down-and-up-scaling (the rest: neither).
    sharpen_probability: float = 1.0 / 3.0
    downscale_probability: float = 1.0 / 3.0
    # Unsharp-mask amount: source + amount * (source - blurred source).
    sharpen_amount_range: tuple[float, float] = (0.3, 1.0)
    # Downscale factor before scaling back up (0.5 = half resolution, like a 128 px generator
    # pasted into a 256 px face).
    downscale_factor_range: tuple[float, float] = (0.5, 0.85)
    # Probability and quality range of re-encoding the source as JPEG (block and ringing
    # artefacts that the surrounding frame does not have).
    jpeg_probability: float = 0.5
    jpeg_quality_range: tuple[int, int] = (40, 95)

    # --- Mask: where the swapped face ends and the frame begins.
    # Random resize of the face polygon around its centroid, so the boundary is not always at
    # the same anatomical place (SBI's masks vary between inner face and full face).
    hull_scale_range: tuple[float, float] = (0.9, 1.05)
    # Width-over-height factor of the region: narrower masks leave the cheeks, wider ones take
    # the jaw line, as the different mask shapes of face-swap tools do.
    hull_aspect_range: tuple[float, float] = (0.9, 1.1)
    # Elastic deformation of the outline: it is resampled to boundary_points points, each moved
    # along its ray from the centroid by a sum of elastic_harmonics smooth periodic waves whose
    # total stays below strength * the region's extent, so the boundary is not a clean hull.
    boundary_points: int = 64
    elastic_harmonics: int = 4
    elastic_strength_fraction: float = 0.05
    # Fallback face region when there are no landmarks: an ellipse centred in the crop with
    # half-axes as fractions of the expected face box side (S / margin_ratio; keep margin_ratio
    # equal to the crop's, Preprocessing.margin_ratio). Slightly smaller than 0.5 x 0.6 of the
    # box: the region is grown by the mask's blur and a swap does not replace hair or neck.
    margin_ratio: float = DEFAULT_MARGIN_RATIO
    ellipse_half_width_fraction: float = 0.45
    ellipse_half_height_fraction: float = 0.55
    # Gaussian blur kernel side as a fraction of S (made odd, at least 3). The region is
    # eroded by half a kernel first, so the soft ramp lies inside the face region instead of
    # spilling over the hair and background. Narrow kernels give sharp seams, wide ones
    # gradual colour changes; both occur in real swaps.
    blur_kernel_fraction_range: tuple[float, float] = (0.04, 0.16)
    # Blend ratio: the mask's peak opacity, chosen uniformly from this list. Repeating 1.0 makes
    # a full replacement the most common case, as in SBI; partial opacities make the colour
    # mismatch subtler.
    blend_ratios: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0, 1.0, 1.0)


def face_mask(
    size: int,
    landmarks: np.ndarray | None,
    rng: np.random.Generator,
    config: SelfBlendConfig = SelfBlendConfig(),
) -> np.ndarray:
    """A random soft face mask: (size, size) float32 in [0, 1], about 1 inside the face.

    The blend ratio is not applied here (see `self_blend`).
    """
    mask, _ = soft_face_mask(size, landmarks, rng, config)
    return mask


def _jitter_colour(
    image: np.ndarray, rng: np.random.Generator, config: SelfBlendConfig
) -> np.ndarray:
    """Hue, saturation, contrast, brightness and per-channel shifts as one affine colour map.

    Each step is affine in RGB (hue: a rotation about the grey axis, as CSS's hue-rotate;
    saturation: a blend towards the channel mean; the rest: scale and offset), so they compose
    into one 3x4 matrix and a single cv2.transform pass, 5x cheaper than an HSV round trip.
    """
    hue_angle = np.deg2rad(rng.uniform(-config.hue_shift_degrees_max, config.hue_shift_degrees_max))
    saturation_scale = rng.uniform(*config.saturation_scale_range)
    contrast = rng.uniform(*config.contrast_range)
    brightness = rng.uniform(-config.brightness_shift_max, config.brightness_shift_max)
    channel_shift = rng.uniform(-config.rgb_shift_max, config.rgb_shift_max, size=3)

    # Rodrigues' rotation about the unit grey axis (1, 1, 1) / sqrt(3).
    grey_axis = np.full(3, 1 / np.sqrt(3))
    cross_product_matrix = np.array(
        [
            [0.0, -grey_axis[2], grey_axis[1]],
            [grey_axis[2], 0.0, -grey_axis[0]],
            [-grey_axis[1], grey_axis[0], 0.0],
        ]
    )
    hue_rotation = (
        np.cos(hue_angle) * np.eye(3)
        + np.sin(hue_angle) * cross_product_matrix
        + (1 - np.cos(hue_angle)) * np.outer(grey_axis, grey_axis)
    )
    to_channel_mean = np.full((3, 3), 1 / 3)
    saturation = saturation_scale * np.eye(3) + (1 - saturation_scale) * to_channel_mean
    # Both matrices leave grey unchanged, so contrast around mid-grey can be applied after them.
    linear_part = contrast * saturation @ hue_rotation
    offset = 127.5 * (1 - contrast) + brightness + channel_shift
    colour_map = np.hstack([linear_part, offset[:, None]]).astype(np.float32)
    # cv2.transform rounds and saturates to uint8 itself.
    return cv2.transform(image, colour_map)


def _warp(
    image: np.ndarray,
    box: tuple[int, int, int, int],
    rng: np.random.Generator,
    config: SelfBlendConfig,
) -> np.ndarray:
    """Scale, stretch and rotate around the crop centre, translate; render only `box`'s pixels."""
    size = image.shape[0]
    box_x0, box_y0, box_x1, box_y1 = box
    scale = rng.uniform(*config.scale_range)
    shift_x, shift_y = rng.uniform(-1, 1, size=2) * config.translation_max_fraction * size
    angle = rng.uniform(-config.rotation_degrees_max, config.rotation_degrees_max)
    linear = cv2.getRotationMatrix2D((0.0, 0.0), angle, scale)[:, :2]
    linear = linear @ np.diag(area_preserving_stretch(rng.uniform(*config.aspect_range)))
    centre = np.full(2, (size - 1) / 2.0)
    # The centre stays put; output pixel (0, 0) of the box is crop pixel (box_x0, box_y0).
    offset = centre - linear @ centre + (shift_x - box_x0, shift_y - box_y0)
    matrix = np.hstack([linear, offset[:, None]])
    # Reflection instead of black: pixels pulled in from outside the crop must look like image.
    return cv2.warpAffine(
        image,
        matrix,
        (box_x1 - box_x0, box_y1 - box_y0),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REFLECT_101,
    )


def _jitter_frequency(
    image: np.ndarray, crop_size: int, rng: np.random.Generator, config: SelfBlendConfig
) -> np.ndarray:
    """Sharpen or down-and-up-scale (or neither), then maybe JPEG re-encode."""
    height, width = image.shape[:2]
    choice = rng.uniform()
    if choice < config.sharpen_probability:
        # Blur width relative to the crop, so a 380 px crop is sharpened at the same facial
        # scale as a 128 px one.
        blurred = cv2.GaussianBlur(image, (0, 0), sigmaX=max(1.0, crop_size / 256.0))
        amount = rng.uniform(*config.sharpen_amount_range)
        image = cv2.addWeighted(image, 1.0 + amount, blurred, -amount, 0.0)
    elif choice < config.sharpen_probability + config.downscale_probability:
        factor = rng.uniform(*config.downscale_factor_range)
        small_size = (max(4, int(round(width * factor))), max(4, int(round(height * factor))))
        small = cv2.resize(image, small_size, interpolation=cv2.INTER_AREA)
        image = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    if rng.uniform() < config.jpeg_probability:
        low_quality, high_quality = config.jpeg_quality_range
        image = jpeg_round_trip(image, int(rng.integers(low_quality, high_quality + 1)))
    return image


def blend_source(
    face: np.ndarray,
    box: tuple[int, int, int, int],
    rng: np.random.Generator,
    config: SelfBlendConfig = SelfBlendConfig(),
) -> np.ndarray:
    """The jittered copy of the face inside `box` (x0, y0, x1, y1) that gets pasted back.

    Warp and colour first, frequency last: a real swap's face is resampled into the frame
    before the final compression, so compression artefacts should not be smeared by the warp.
    The colour map is pointwise, so applying it after the warp (to the box only) is the same as
    before it, at half the cost.
    """
    source = _warp(face, box, rng, config)
    source = _jitter_colour(source, rng, config)
    return _jitter_frequency(source, face.shape[0], rng, config)


def self_blend(
    face: np.ndarray,
    landmarks: np.ndarray | None,
    rng: np.random.Generator,
    config: SelfBlendConfig = SelfBlendConfig(),
) -> tuple[np.ndarray, np.ndarray]:
    """Make a self-blended fake of a face crop.

    face: (S, S, 3) uint8 RGB crop; landmarks: MTCNN's 5 points (5, 2) in crop pixels, or None
    (then the face is assumed to fill the expected detector box in the middle of the crop).
    Returns (fake (S, S, 3) uint8, mask (S, S) float32 in [0, 1]), where the mask is the blend
    weight actually used (soft face mask times blend ratio): fake == face wherever mask == 0.
    Deterministic given the state of `rng`.
    """
    if face.ndim != 3 or face.shape[2] != 3 or face.shape[0] != face.shape[1]:
        raise ValueError(f"face must be an (S, S, 3) crop, got shape {face.shape}")
    if face.dtype != np.uint8:
        raise ValueError(f"face must be uint8, got {face.dtype}")
    face = np.ascontiguousarray(face)
    mask, box = soft_face_mask(face.shape[0], landmarks, rng, config)
    blend_ratio = np.float32(rng.choice(config.blend_ratios))
    fake = face.copy()
    box_x0, box_y0, box_x1, box_y1 = box
    if box_x1 <= box_x0 or box_y1 <= box_y0:
        return fake, mask
    weight = mask[box_y0:box_y1, box_x0:box_x1]
    weight *= blend_ratio
    weight[weight < NEGLIGIBLE_WEIGHT] = 0.0
    source = blend_source(face, box, rng, config)

    original = face[box_y0:box_y1, box_x0:box_x1].astype(np.float32)
    # crop + w * (source - crop) is exactly the crop where w == 0 (no rounding drift), and lies
    # between crop and source elsewhere, so it needs no clipping before the uint8 cast.
    blended = original + weight[..., None] * (source.astype(np.float32) - original)
    fake[box_y0:box_y1, box_x0:box_x1] = np.rint(blended).astype(np.uint8)
    return fake, mask


__all__ = [
    "LEFT_EYE",
    "MOUTH_LEFT",
    "MOUTH_RIGHT",
    "NEGLIGIBLE_WEIGHT",
    "NOSE",
    "RIGHT_EYE",
    "SelfBlendConfig",
    "blend_source",
    "face_mask",
    "face_polygon",
    "self_blend",
]
