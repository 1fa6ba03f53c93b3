"""What MTCNN's networks see: the image pyramid of a frame and the crops of candidate boxes.

`faces.FaceDetector` runs MTCNN's three stages (PNet over every pyramid level, then RNet and
ONet over crops of the candidate boxes); this module resamples the frames for them, in one of
two ways with the same geometry:

- `TorchAreaSampler`: facenet-pytorch's own arithmetic (torch's area interpolation of a float
  copy of the frames, for every level and every crop). Used for small frames, where it costs
  little and keeps boxes bit for bit what facenet-pytorch finds, and off the CPU.
- `HalvingSampler`: the same from the uint8 frames with OpenCV. Each frame is halved (2x2 means,
  the fast path of INTER_AREA) while it stays at least as large as the first pyramid level; a
  level is area-resized from the smallest halving at least its size, a crop from the smallest
  at least twice its size (halving further measured no faster and further from facenet). On
  720p frames float resampling was about half of facenet-pytorch's time. Boxes move against
  `TorchAreaSampler` by a few per cent (32 frames of the 720p carphone head: IoU mean 0.96,
  minimum 0.84), about what +-1 grey level of noise did to facenet-pytorch's own detector with
  its resize to 1024 px (docs/model.md), more than it does to `TorchAreaSampler` at full size
  (IoU mean 0.998): OpenCV's INTER_AREA weighs pixels by the area they cover, torch's "area" is
  an adaptive average pool whose windows overlap. See `tests/test_faces.py`.

Both give (N, 3, H, W) float32 tensors on the device, on MTCNN's scale ((x - 127.5) / 128),
with channels_last strides.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import torch

from deepfake_cli.mtcnn_boxes import clipped_pixels

# PNet scans the image with a 12x12 window; a minimum face size below that would make MTCNN
# upsample the frame, which costs a lot and finds nothing a deepfake detector could use.
MTCNN_WINDOW = 12
# MTCNN's scale step between pyramid levels.
PYRAMID_FACTOR = 0.709

# On the CPU, frames up to CIF (352x288) are resampled exactly as facenet-pytorch does: that
# costs little at this size (measured 20 vs 13 ms per 352x288 frame, all of MTCNN) and keeps
# the boxes of the example clips (176x144) bit for bit. Larger frames use `HalvingSampler`.
EXACT_RESAMPLING_MAX_PIXELS = 352 * 288

#: Candidate crops cut per task of `HalvingSampler`'s thread pool.
CROPS_PER_TASK = 64

#: (box index, frame index in the batch, top, bottom, left, right): a box's pixels in its frame.
Region = tuple[int, int, int, int, int, int]


def pyramid_levels(
    frame_height: int, frame_width: int, smallest_face_px: float
) -> list[tuple[float, int, int]]:
    """MTCNN's image pyramid for a frame: (scale, height, width) of each level, largest first.

    A face of `smallest_face_px` is 12 px (PNet's window) in the first level; each level is
    `PYRAMID_FACTOR` times the one before, down to the last whose shorter side is still 12 px.
    The sizes are facenet-pytorch's (`int(side * scale + 1)`), as are the scales its boxes are
    mapped back with.
    """
    scale = MTCNN_WINDOW / smallest_face_px
    shorter_side = min(frame_height, frame_width) * scale
    levels = []
    while shorter_side >= MTCNN_WINDOW:
        levels.append((scale, int(frame_height * scale + 1), int(frame_width * scale + 1)))
        scale *= PYRAMID_FACTOR
        shorter_side *= PYRAMID_FACTOR
    return levels


def _scaled(images: torch.Tensor) -> torch.Tensor:
    """Pixel values 0..255 -> MTCNN's input scale, about -1..1, in place (every caller passes
    a float tensor made for the purpose; the same two roundings as out of place)."""
    return images.sub_(127.5).mul_(0.0078125)


def box_regions(
    boxes: torch.Tensor, image_inds: torch.Tensor, frame_height: int, frame_width: int
) -> list[Region]:
    """The `Region` each box is cut from, for boxes with pixels inside the frame.

    As facenet-pytorch cuts them: the whole-pixel box clipped to the frame (so a box over the
    edge is squeezed, not padded); boxes with nothing inside the frame are left out.
    """
    if len(boxes) == 0:
        return []
    # 1-based first rows and columns and inclusive last ones, clipped to the frame.
    first_rows, last_rows, first_cols, last_cols = clipped_pixels(boxes, frame_height, frame_width)
    regions = []
    for index, frame_index in enumerate(image_inds.tolist()):
        top, bottom = int(first_rows[index]) - 1, int(last_rows[index])
        left, right = int(first_cols[index]) - 1, int(last_cols[index])
        if bottom > top and right > left:
            regions.append((index, frame_index, top, bottom, left, right))
    return regions


class TorchAreaSampler:
    """facenet-pytorch's resampling: torch's area interpolation of a float copy of the frames."""

    def __init__(self, frames: list[np.ndarray], device: torch.device) -> None:
        from torch.nn.functional import interpolate

        self._interpolate = interpolate
        # (B, 3, H, W) float32 with channels_last strides, as facenet-pytorch makes it.
        self.images = torch.from_numpy(np.stack(frames)).to(device).permute(0, 3, 1, 2).float()

    def level(self, height: int, width: int) -> torch.Tensor:
        return _scaled(self._interpolate(self.images, size=(height, width), mode="area"))

    def crops(self, regions: list[Region], size: int) -> tuple[torch.Tensor, list[int]]:
        crops = [
            self._interpolate(
                self.images[frame_index : frame_index + 1, :, top:bottom, left:right],
                size=(size, size),
                mode="area",
            )
            for _, frame_index, top, bottom, left, right in regions
        ]
        kept = [region[0] for region in regions]
        return (_scaled(torch.cat(crops)) if crops else self.images[:0]), kept


class HalvingSampler:
    """The same resampling from the uint8 frames and their OpenCV halvings.

    Every level of every frame is made when the sampler is, one task per frame on `pool` (a
    thread pool; OpenCV releases the GIL): small resizes gain little from OpenCV's own threads
    (measured on 2 cores, 720p: 4.8 ms per frame for halvings and levels one frame after
    another, 2.3-2.8 in a pool of two). Crops are cut `CROPS_PER_TASK` at a time. Each pixel is
    computed as without the pool.
    """

    def __init__(
        self,
        frames: list[np.ndarray],
        level_sizes: list[tuple[int, int]],
        *,
        device: torch.device,
        pool: ThreadPoolExecutor | None = None,
    ) -> None:
        self.device = device
        self.frame_height, self.frame_width = frames[0].shape[:2]
        self._map = pool.map if pool is not None else map
        first_level_size = level_sizes[0]
        # Per frame: its halvings, and its levels keyed by (height, width).
        per_frame = list(
            self._map(
                lambda frame: _halvings_and_levels(frame, first_level_size, level_sizes), frames
            )
        )
        self.halvings = [halvings for halvings, _ in per_frame]
        self._levels = {
            size: np.stack([levels[size] for _, levels in per_frame]) for size in level_sizes
        }

    def _network_input(self, images: np.ndarray) -> torch.Tensor:
        """(N, H, W, 3) uint8 -> (N, 3, H, W) float32, channels_last strides without a copy."""
        return _scaled(torch.from_numpy(images).to(self.device).permute(0, 3, 1, 2).float())

    def level(self, height: int, width: int) -> torch.Tensor:
        return self._network_input(self._levels[(height, width)])  # from (B, H, W, 3) uint8

    def crops(self, regions: list[Region], size: int) -> tuple[torch.Tensor, list[int]]:
        slices = [
            regions[start : start + CROPS_PER_TASK]
            for start in range(0, len(regions), CROPS_PER_TASK)
        ]
        crops = [
            crop
            for part in self._map(lambda part: self._crops(part, size), slices)
            for crop in part
        ]
        kept = [region[0] for region in regions]
        images = np.stack(crops) if crops else np.zeros((0, size, size, 3), np.uint8)
        return self._network_input(images), kept

    def _crops(self, regions: list[Region], size: int) -> list[np.ndarray]:
        crops = []
        for _, frame_index, top, bottom, left, right in regions:
            halvings = self.halvings[frame_index]
            level = 0
            side = min(bottom - top, right - left)
            while level + 1 < len(halvings) and side >> (level + 1) >= 2 * size:
                level += 1
            source = halvings[level]
            if level:  # the same pixels in the halving's coordinates (its extent is the frame's)
                row_scale = source.shape[0] / self.frame_height
                col_scale = source.shape[1] / self.frame_width
                top, bottom = round(top * row_scale), round(bottom * row_scale)
                left, right = round(left * col_scale), round(right * col_scale)
            region = source[top:bottom, left:right]
            crops.append(cv2.resize(region, (size, size), interpolation=cv2.INTER_AREA))
        return crops


def _halvings_and_levels(
    frame: np.ndarray, first_level_size: tuple[int, int], level_sizes: list[tuple[int, int]]
) -> tuple[list[np.ndarray], dict[tuple[int, int], np.ndarray]]:
    """A frame's halvings (down to the first level's size) and its pyramid levels, each
    area-resized from the smallest halving at least its size."""
    min_height, min_width = first_level_size
    halvings = [frame]
    while halvings[-1].shape[0] // 2 >= min_height and halvings[-1].shape[1] // 2 >= min_width:
        height, width = halvings[-1].shape[:2]
        halvings.append(
            cv2.resize(halvings[-1], (width // 2, height // 2), interpolation=cv2.INTER_AREA)
        )
    levels = {}
    for height, width in level_sizes:
        source = halvings[0]
        for halving in halvings[1:]:
            if halving.shape[0] >= height and halving.shape[1] >= width:
                source = halving
        levels[(height, width)] = cv2.resize(source, (width, height), interpolation=cv2.INTER_AREA)
    return halvings, levels


def sampler_for(
    frames: list[np.ndarray],
    level_sizes: list[tuple[int, int]],
    device: torch.device,
    pool: ThreadPoolExecutor | None = None,
) -> TorchAreaSampler | HalvingSampler:
    """The sampler for a batch of same-size frames with this pyramid ((height, width) of each
    level, largest first); `pool` runs OpenCV's resizes (CPU only)."""
    frame_height, frame_width = frames[0].shape[:2]
    # Off the CPU the float resampling runs on the accelerator, as facenet-pytorch runs it.
    if device.type != "cpu" or frame_height * frame_width <= EXACT_RESAMPLING_MAX_PIXELS:
        return TorchAreaSampler(frames, device)
    return HalvingSampler(frames, level_sizes, device=device, pool=pool)
