"""Video-side degradations of training crops, so a model trained on photographs scores video frames.

A photograph (640 px, JPEG quality 92) shows a face far more cleanly than a frame of a
compressed video does. A detector trained only on photographs learns what sharp faces look like
and then meets faces that were filmed small, blurred by optics and motion, noisy, and coded by
H.264 at a few hundred kilobits: blocky, smeared, with coarse colour. `degrade` imitates that
path for one crop (real and self-blended fake alike, after the blend, so it carries no label
signal: only the kind of image changes, never which class it is):

1. resample the face to the side it had in the video frame (`face_side_range`, log-uniform):
   smaller than the crop means resolution loss, larger means the codec's blocks shrink later;
2. at that size: Gaussian blur (optics, motion, the camera's own smoothing), then Gaussian
   noise (the sensor), then an H.264-like codec pass: block-DCT quantisation at low quality
   with 4:2:0 chroma (JPEG's 8x8 luma / 16x16 chroma blocks stand in for H.264's transform and
   macroblocks), optionally softened as H.264's in-loop deblocking filter softens block edges;
3. resample back to the crop's side, bicubic when enlarging as `crops.crop_face` does;
4. maybe a final JPEG re-compression at the crop's side (crops stored as JPEG, re-uploads).

Encoding each crop as a one-frame H.264 video would be closer but costs tens of milliseconds a
crop; this costs about one millisecond. Every random choice comes from the one
`numpy.random.Generator` given, so a run is reproducible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class VideoDegradationConfig:
    """Probabilities and random ranges of the video-side degradations (see the module docstring).

    Ranges are (low, high), drawn uniformly unless said otherwise. Each step is applied with its
    own probability, all of them only to the share `probability` of crops.
    """

    # Share of training crops that go through the video path at all; the rest stay as stored,
    # so the model still sees clean faces (and clean photographs at scan time score well).
    probability: float = 0.8

    # --- Resolution: faces in videos are often 60-200 px tall (a 360p talking head, a face in
    # a wide shot), photographs' faces 300 px and more.
    # Probability of resampling the crop to the side its face had in the frame.
    resample_probability: float = 0.7
    # That side in pixels, drawn log-uniformly (small faces are as common as large ones);
    # below the crop's side it is resolution loss.
    face_side_range: tuple[float, float] = (64.0, 400.0)

    # --- Capture, at the face's side in the frame.
    # Gaussian blur: defocus, motion blur and the camera's noise reduction, sigma in pixels.
    blur_probability: float = 0.3
    blur_sigma_range: tuple[float, float] = (0.4, 1.5)
    # Gaussian noise: sensor noise in low light, standard deviation in uint8 levels (the codec
    # then smooths most of it, as it does in real videos).
    noise_probability: float = 0.3
    noise_std_range: tuple[float, float] = (1.0, 6.0)

    # --- The video codec, at the face's side in the frame.
    # Block-DCT quantisation with 4:2:0 chroma: JPEG quality 20-70 spans roughly FaceForensics++
    # c40 (strong) to c23 (light) compression of a face.
    codec_probability: float = 0.8
    codec_quality_range: tuple[int, int] = (20, 70)
    # H.264 smooths block edges in its own loop; JPEG does not. Without this the model would
    # learn JPEG's hard block edges only. Sigma in pixels.
    deblocking_probability: float = 0.5
    deblocking_sigma_range: tuple[float, float] = (0.4, 0.8)

    # --- After the crop: JPEG re-compression at the crop's side (extract-faces --format jpg,
    # frames saved and re-uploaded), 4:2:0 as most encoders write it.
    jpeg_probability: float = 0.2
    jpeg_quality_range: tuple[int, int] = (60, 95)

    def __post_init__(self) -> None:
        for name in (
            "probability",
            "resample_probability",
            "blur_probability",
            "noise_probability",
            "codec_probability",
            "deblocking_probability",
            "jpeg_probability",
        ):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")
        low_side, high_side = self.face_side_range
        if not 8 <= low_side <= high_side:
            raise ValueError(
                f"face_side_range must be (low, high) with 8 <= low <= high, got "
                f"{self.face_side_range}"
            )
        for name in ("codec_quality_range", "jpeg_quality_range"):
            low_quality, high_quality = getattr(self, name)
            if not 1 <= low_quality <= high_quality <= 100:
                raise ValueError(f"{name} must be (low, high) with 1 <= low <= high <= 100")


#: The named choices of `TrainConfig.degradations`: None = crops as stored.
DEGRADATIONS: dict[str, VideoDegradationConfig | None] = {
    "none": None,
    "video": VideoDegradationConfig(),
}


def degrade(
    image: np.ndarray,
    rng: np.random.Generator,
    config: VideoDegradationConfig = VideoDegradationConfig(),
) -> np.ndarray:
    """A crop as if it had been cut out of a compressed video frame (see the module docstring).

    image: (H, W, 3) uint8 RGB. Returns a new (H, W, 3) uint8 RGB array (the input is never
    changed). The same `rng` state always gives the same result.
    """
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be (H, W, 3), got shape {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8, got {image.dtype}")
    # Every decision is drawn up front, in one fixed order, so a step that is skipped does not
    # shift the draws of the steps after it.
    degraded_at_all = rng.random() < config.probability
    resample = rng.random() < config.resample_probability
    low_side, high_side = config.face_side_range
    face_side = math.exp(rng.uniform(math.log(low_side), math.log(high_side)))
    blur = rng.random() < config.blur_probability
    blur_sigma = rng.uniform(*config.blur_sigma_range)
    noise = rng.random() < config.noise_probability
    noise_std = rng.uniform(*config.noise_std_range)
    noise_seed = int(rng.integers(0, 2**63))
    codec = rng.random() < config.codec_probability
    codec_quality = _quality(rng, config.codec_quality_range)
    deblock = rng.random() < config.deblocking_probability
    deblocking_sigma = rng.uniform(*config.deblocking_sigma_range)
    jpeg = rng.random() < config.jpeg_probability
    jpeg_quality = _quality(rng, config.jpeg_quality_range)

    frame = np.ascontiguousarray(image).copy()
    if not degraded_at_all:
        return frame
    height, width = frame.shape[:2]
    if resample:
        # The longer side becomes the face's side in the frame; the shape is kept.
        scale = face_side / max(height, width)
        frame = _resized(frame, (max(8, round(width * scale)), max(8, round(height * scale))))
    if blur:
        frame = cv2.GaussianBlur(frame, (0, 0), sigmaX=blur_sigma)
    if noise:
        # A child generator of its own: the noise image's size does not shift later draws.
        sensor_noise = np.random.default_rng(noise_seed).normal(0.0, noise_std, frame.shape)
        frame = np.clip(frame + sensor_noise, 0, 255).astype(np.uint8)
    if codec:
        frame = jpeg_round_trip(frame, codec_quality)
        if deblock:
            frame = cv2.GaussianBlur(frame, (0, 0), sigmaX=deblocking_sigma)
    if frame.shape[:2] != (height, width):
        frame = _resized(frame, (width, height))
    if jpeg:
        frame = jpeg_round_trip(frame, jpeg_quality)
    return frame


def jpeg_round_trip(image: np.ndarray, quality: int) -> np.ndarray:
    """(H, W, 3) uint8 RGB encoded as JPEG with 4:2:0 chroma at `quality`, and decoded."""
    # OpenCV's codec works in BGR; the channel order matters for its YCbCr conversion.
    encoded_ok, encoded = cv2.imencode(
        ".jpg",
        cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
        [
            cv2.IMWRITE_JPEG_QUALITY,
            int(quality),
            # Colour at half resolution both ways, as H.264 and most JPEG writers store it.
            cv2.IMWRITE_JPEG_SAMPLING_FACTOR,
            cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420,
        ],
    )
    if not encoded_ok:
        raise RuntimeError("OpenCV could not encode a JPEG image")
    return cv2.cvtColor(cv2.imdecode(encoded, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def _quality(rng: np.random.Generator, quality_range: tuple[int, int]) -> int:
    """A JPEG quality drawn uniformly from the range, both ends included."""
    return int(rng.integers(quality_range[0], quality_range[1] + 1))


def _resized(image: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
    """Area averaging when shrinking, bicubic when enlarging: what `crops.crop_face` does."""
    shrinking = size_wh[0] * size_wh[1] < image.shape[0] * image.shape[1]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
    return cv2.resize(image, size_wh, interpolation=interpolation)
