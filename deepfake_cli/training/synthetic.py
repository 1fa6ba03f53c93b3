"""Self-blended images (SBI; Shiohara & Yamasaki, CVPR 2022): fake faces made from real ones.

A detector trained on one family of generators learns that family's fingerprints and misses the
next one. SBI instead teaches the artefacts that almost every face swap shares: the swapped face
is a slightly different image (other colour, other sharpness, other compression, a little
misaligned) pasted into the frame through a soft mask, which leaves a blending boundary and a
colour/frequency mismatch between inside and outside. Blending a jittered copy of a real face
back into the same image produces exactly those artefacts and nothing else, so real videos alone
are enough to train on.

Pipeline for one crop (all randomness from one `numpy.random.Generator`, so it is reproducible):

1. source = the crop slightly scaled and translated, colour-jittered (hue, saturation,
   brightness/contrast, per-channel RGB shift), then frequency-jittered (sharpened or
   down-and-up-scaled) and optionally JPEG re-compressed.
2. mask = the face region (a polygon grown from MTCNN's 5 landmarks, or an ellipse in the
   expected face box), randomly resized and elastically deformed, eroded, then Gaussian-blurred
   so its soft edge stays inside the face region, times a blend ratio.
3. fake = crop + mask * (source - crop): outside the mask the crop is returned untouched.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# MTCNN's landmark order, in crop pixel coordinates (x, y).
LEFT_EYE, RIGHT_EYE, NOSE, MOUTH_LEFT, MOUTH_RIGHT = range(5)

# Mask weights below this cannot move a uint8 value by half a step, so they are set to 0: the
# returned mask is then exactly 0 wherever the fake equals the crop.
NEGLIGIBLE_WEIGHT = 1.0 / 512.0


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
    # Uniform scale around the crop centre.
    scale_range: tuple[float, float] = (0.95, 1.05)
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
    margin_ratio: float = 1.3
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


def face_mask(
    size: int,
    landmarks: np.ndarray | None,
    rng: np.random.Generator,
    config: SelfBlendConfig = SelfBlendConfig(),
) -> np.ndarray:
    """A random soft face mask: (size, size) float32 in [0, 1], about 1 inside the face.

    The blend ratio is not applied here (see `self_blend`).
    """
    mask, _ = _face_mask_and_box(size, landmarks, rng, config)
    return mask


def _face_mask_and_box(
    size: int,
    landmarks: np.ndarray | None,
    rng: np.random.Generator,
    config: SelfBlendConfig,
) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The soft mask and the box (x0, y0, x1, y1) outside which it is exactly 0.

    The box lets the blur and the blend skip the background, about half of a crop.
    """
    polygon = face_polygon(size, landmarks, config)
    centroid = polygon.mean(axis=0)
    polygon = centroid + (polygon - centroid) * rng.uniform(*config.hull_scale_range)

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
    """Scale around the crop centre and translate, rendering only the pixels inside `box`."""
    size = image.shape[0]
    box_x0, box_y0, box_x1, box_y1 = box
    scale = rng.uniform(*config.scale_range)
    shift_x, shift_y = rng.uniform(-1, 1, size=2) * config.translation_max_fraction * size
    centre = (size - 1) / 2.0
    matrix = cv2.getRotationMatrix2D((centre, centre), 0.0, scale)
    # Output pixel (0, 0) of the box is crop pixel (box_x0, box_y0).
    matrix[:, 2] += (shift_x - box_x0, shift_y - box_y0)
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
        quality = int(rng.integers(low_quality, high_quality + 1))
        # OpenCV's codec works in BGR; the channel order matters for its chroma subsampling.
        encoded_ok, encoded = cv2.imencode(
            ".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
        )
        if encoded_ok:
            image = cv2.cvtColor(cv2.imdecode(encoded, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
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
    mask, box = _face_mask_and_box(face.shape[0], landmarks, rng, config)
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
