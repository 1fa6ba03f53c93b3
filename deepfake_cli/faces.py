"""Stage 2 of video -> frames -> faces -> crops -> detector -> verdict: find the faces.

`FaceDetector` runs MTCNN (facenet-pytorch's networks, thresholds and box arithmetic) over
sampled frames in batches and returns boxes, probabilities and 5-point landmarks in the frame's
pixels; linking them into persons is `tracks.py`.

The three stages run here rather than through facenet-pytorch's `detect_face`, which converts a
whole batch to float32 and area-resamples it in torch once per pyramid level and once per
candidate box: on 720p frames that resampling (with the resize to 1024 px before it) was about
half of its time. Here the frames are resampled by `mtcnn_inputs` (from OpenCV halvings of the
uint8 frames, except small ones), and the networks run channels_last, in chunks that keep their
activations in the CPU's caches. The networks (`mtcnn_networks`, with facenet-pytorch's weight
files) and the box arithmetic (`mtcnn_boxes`) are defined in mattn, so that detecting faces
does not import torchvision. With `runtime="openvino"` (`mattn scan --backend openvino`) the
networks run on OpenVINO's CPU plugin in fp32 (`mtcnn_openvino`), the rest as here.

Coordinates are continuous pixel coordinates as MTCNN reports them: x to the right, y down,
(0, 0) the top-left corner of the frame. Boxes are not clipped to the frame: a face cut by the
frame edge keeps its full box, and the crop stage fills the missing part with black.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from deepfake_cli.mtcnn_boxes import batched_nms, boxes_from_pnet, regressed, squared
from deepfake_cli.mtcnn_inputs import MTCNN_WINDOW, box_regions, pyramid_levels, sampler_for
from deepfake_cli.mtcnn_networks import load_networks

# Faces smaller than this are not worth looking for even in a small frame: a crop of under 20
# pixels blown up to the detector's 380 pixels carries no texture to judge.
MIN_FACE_FLOOR = 20

# The input sizes of MTCNN's second and third networks.
RNET_SIZE = 24
ONET_SIZE = 48
# Images per network call. Small enough that the first layer's output (a few MB) stays in the
# CPU's caches, which makes the memory-bound PReLUs and poolings about twice as fast on 2 cores
# as whole batches (measured: PNet on 16 levels of 174x308, 65 vs 122 ms in chunks of 4 or 16;
# RNet on 512 crops, 28 vs 57 ms in chunks of 128; ONet on 128 crops, 41 vs 65 ms in 64s).
PNET_PIXELS_PER_CALL = 2**18
RNET_CROPS_PER_CALL = 128
ONET_CROPS_PER_CALL = 64
# Off the CPU: whole batches for PNet and this many crops per call, as facenet-pytorch does.
ACCELERATOR_CROPS_PER_CALL = 512
#: What runs the three networks: torch, or OpenVINO's CPU plugin (the openvino extra).
RUNTIMES = ("torch", "openvino")


@dataclass(frozen=True)
class Detection:
    """One face found in one frame, in that frame's original pixels."""

    box_xyxy: tuple[float, float, float, float]
    det_prob: float
    # Five points: left eye, right eye, nose, mouth left, mouth right, where left and right are
    # as seen in the image (MTCNN's order); None for detections made by hand.
    landmarks: tuple[tuple[float, float], ...] | None = None

    @property
    def width(self) -> float:
        return self.box_xyxy[2] - self.box_xyxy[0]

    @property
    def height(self) -> float:
        return self.box_xyxy[3] - self.box_xyxy[1]

    @property
    def area(self) -> float:
        return max(0.0, self.width) * max(0.0, self.height)

    @property
    def center_xy(self) -> tuple[float, float]:
        return (
            (self.box_xyxy[0] + self.box_xyxy[2]) / 2.0,
            (self.box_xyxy[1] + self.box_xyxy[3]) / 2.0,
        )


Frames = np.ndarray | Sequence[np.ndarray]


class FaceDetector:
    """Batched MTCNN face detection over frames of any size.

    The smallest face searched for is `min(min_face_size, max(20, min_face_fraction * shorter
    side))` pixels of the frame scaled so that its longer side is at most `max_side`: 40 px
    for ordinary video (so 50 px in a 720p frame and 75 px in a 1080p one, which keeps the
    pyramid cheap), but lower in small frames, where a talking head is only a few dozen pixels
    tall (28 px in a 176x144 QCIF frame). That size alone sets MTCNN's work (its first pyramid
    level is the frame scaled by 12 / that size); the frame itself is never enlarged. Frames
    whose shorter side is below that minimum cannot hold a face MTCNN would find and get no
    detections.

    `runtime` runs the three networks on torch (on `device`) or on OpenVINO's CPU plugin
    (`mtcnn_openvino`, fp32: the same boxes to within float rounding).
    """

    def __init__(
        self,
        device: str | torch.device = "cpu",
        *,
        min_face_size: int = 40,
        min_face_fraction: float = 0.2,
        thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7),
        min_det_prob: float = 0.9,
        max_side: int = 1024,
        batch_size: int = 16,
        runtime: str = "torch",
    ) -> None:
        if min_face_size < MTCNN_WINDOW:
            raise ValueError(f"min_face_size must be at least {MTCNN_WINDOW}, got {min_face_size}")
        if not 0.0 < min_face_fraction <= 1.0:
            raise ValueError(f"min_face_fraction must be in (0, 1], got {min_face_fraction}")
        if len(thresholds) != 3:
            raise ValueError(f"thresholds needs one value per MTCNN stage, got {thresholds}")
        if max_side < MTCNN_WINDOW:
            raise ValueError(f"max_side must be at least {MTCNN_WINDOW}, got {max_side}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if runtime not in RUNTIMES:
            raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
        if runtime == "openvino" and torch.device(device).type != "cpu":
            raise ValueError("the openvino runtime runs on the CPU")

        self.device = torch.device(device)
        self.min_face_size = int(min_face_size)
        self.min_face_fraction = float(min_face_fraction)
        self.thresholds = tuple(float(value) for value in thresholds)
        self.min_det_prob = float(min_det_prob)
        self.max_side = int(max_side)
        self.batch_size = int(batch_size)
        self.runtime = runtime
        self._pool: ThreadPoolExecutor | None = None
        # The pretrained networks (weights shipped inside facenet-pytorch), channels_last: on a
        # CPU their small convolutions, PReLUs and poolings run about 1.5-3x faster that way.
        networks = tuple(
            network.to(memory_format=torch.channels_last) for network in load_networks(self.device)
        )
        if runtime == "openvino":
            from deepfake_cli.mtcnn_openvino import openvino_networks

            networks = openvino_networks(networks)
        self._pnet, self._rnet, self._onet = networks

    def detection_size(self, frame_height: int, frame_width: int) -> tuple[int, int]:
        """(height, width) of the frame scaled to `max_side`, in which the minimum face is set."""
        longer_side = max(frame_height, frame_width)
        if longer_side <= self.max_side:
            return frame_height, frame_width
        scale = self.max_side / longer_side
        return max(1, round(frame_height * scale)), max(1, round(frame_width * scale))

    def min_face_size_for(self, det_height: int, det_width: int) -> int:
        """Smallest face side looked for in a frame of this `detection_size`, in its pixels."""
        relative_size = max(MIN_FACE_FLOOR, self.min_face_fraction * min(det_height, det_width))
        return max(MTCNN_WINDOW, min(self.min_face_size, math.floor(relative_size)))

    def smallest_face_px(self, frame_height: int, frame_width: int) -> float:
        """Smallest face side looked for in a frame of this size, in the frame's pixels."""
        det_height, det_width = self.detection_size(frame_height, frame_width)
        frame_per_det = max(frame_height, frame_width) / max(det_height, det_width)
        return self.min_face_size_for(det_height, det_width) * frame_per_det

    def detect(self, frames: Frames) -> list[list[Detection]]:
        """Faces in each frame, most probable first; one (possibly empty) list per frame.

        `frames` is an (N, H, W, 3) uint8 RGB array or a sequence of (H, W, 3) uint8 RGB arrays
        whose sizes may differ (e.g. the frames of several videos).
        """
        frame_list = _as_frame_list(frames)
        detections_per_frame: list[list[Detection]] = [[] for _ in frame_list]

        # The networks take a batch as one tensor, so frames are grouped by size.
        positions_by_size: dict[tuple[int, int], list[int]] = {}
        for frame_position, frame in enumerate(frame_list):
            positions_by_size.setdefault(frame.shape[:2], []).append(frame_position)

        for (frame_height, frame_width), positions in positions_by_size.items():
            levels = pyramid_levels(
                frame_height, frame_width, self.smallest_face_px(frame_height, frame_width)
            )
            if not levels:  # the frame is smaller than the smallest face looked for
                continue
            for start in range(0, len(positions), self.batch_size):
                batch_positions = positions[start : start + self.batch_size]
                faces_per_frame = self._detect_batch(
                    [frame_list[position] for position in batch_positions], levels
                )
                for position, (boxes, points) in zip(batch_positions, faces_per_frame, strict=True):
                    detections_per_frame[position] = self._to_detections(boxes, points)
        return detections_per_frame

    @torch.inference_mode()
    def _detect_batch(
        self, frames: list[np.ndarray], levels: list[tuple[float, int, int]]
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """MTCNN's three stages over frames of one size: per frame, (n, 5) boxes with their
        probability and (n, 5, 2) landmarks, in frame pixels."""
        frame_height, frame_width = frames[0].shape[:2]
        sampler = sampler_for(
            frames, [level[1:] for level in levels], self.device, self._resize_pool()
        )
        pnet_threshold, rnet_threshold, onet_threshold = self.thresholds
        on_cpu = self.device.type == "cpu"
        rnet_chunk = RNET_CROPS_PER_CALL if on_cpu else ACCELERATOR_CROPS_PER_CALL
        onet_chunk = ONET_CROPS_PER_CALL if on_cpu else ACCELERATOR_CROPS_PER_CALL

        # Stage 1: PNet over the pyramid proposes boxes (NMS per level, then across levels).
        level_boxes, level_images = [], []
        for scale, level_height, level_width in levels:
            frames_per_call = len(frames)
            if on_cpu:
                frames_per_call = max(1, PNET_PIXELS_PER_CALL // (level_height * level_width))
            level = sampler.level(level_height, level_width)  # (B, 3, height, width)
            offsets, probs = _in_chunks(self._pnet, level, frames_per_call)
            boxes, image_inds = boxes_from_pnet(offsets, probs[:, 1], scale, pnet_threshold)
            pick = batched_nms(boxes[:, :4], boxes[:, 4], image_inds, 0.5)
            level_boxes.append(boxes[pick])
            level_images.append(image_inds[pick])
        boxes, image_inds = torch.cat(level_boxes), torch.cat(level_images)
        pick = batched_nms(boxes[:, :4], boxes[:, 4], image_inds, 0.7)
        boxes, image_inds = boxes[pick], image_inds[pick]
        # (K, 9): x1, y1, x2, y2, score, then the four offsets in units of the box size.
        box_sizes = (boxes[:, 2:4] - boxes[:, 0:2]).repeat(1, 2)
        boxes = torch.cat([boxes[:, :4] + boxes[:, 5:9] * box_sizes, boxes[:, 4:5]], dim=1)
        boxes = squared(boxes)

        # Stage 2: RNet rescores and moves each proposal.
        crops, kept = sampler.crops(
            box_regions(boxes, image_inds, frame_height, frame_width), RNET_SIZE
        )
        if kept:
            boxes, image_inds = boxes[kept], image_inds[kept]
            offsets, probs = _in_chunks(self._rnet, crops, rnet_chunk)
            passed = probs[:, 1] > rnet_threshold
            boxes = torch.cat([boxes[passed, :4], probs[passed, 1:2]], dim=1)
            image_inds, offsets = image_inds[passed], offsets[passed]
            pick = batched_nms(boxes[:, :4], boxes[:, 4], image_inds, 0.7)
            boxes = squared(regressed(boxes[pick], offsets[pick]))
            image_inds = image_inds[pick]
        else:  # no proposal has pixels inside the frame
            boxes, image_inds = boxes[:0], image_inds[:0]

        # Stage 3: ONet gives the final probability, box and landmarks.
        points = torch.zeros((0, 5, 2))
        crops, kept = sampler.crops(
            box_regions(boxes, image_inds, frame_height, frame_width), ONET_SIZE
        )
        if kept:
            boxes, image_inds = boxes[kept], image_inds[kept]
            offsets, landmarks, probs = _in_chunks(self._onet, crops, onet_chunk)
            passed = probs[:, 1] > onet_threshold
            boxes = torch.cat([boxes[passed, :4], probs[passed, 1:2]], dim=1)
            image_inds, offsets, landmarks = image_inds[passed], offsets[passed], landmarks[passed]
            # Landmarks: (K, 10) = 5 x's then 5 y's, in units of the box; (K, 5, 2) in pixels.
            box_width = (boxes[:, 2:3] - boxes[:, 0:1]) + 1
            box_height = (boxes[:, 3:4] - boxes[:, 1:2]) + 1
            points_x = box_width * landmarks[:, :5] + boxes[:, 0:1] - 1
            points_y = box_height * landmarks[:, 5:] + boxes[:, 1:2] - 1
            points = torch.stack([points_x, points_y], dim=2)
            boxes = regressed(boxes, offsets)
            pick = batched_nms(boxes[:, :4], boxes[:, 4], image_inds, 0.7, overlap="min")
            boxes, image_inds, points = boxes[pick], image_inds[pick], points[pick]
        else:
            boxes = torch.zeros((0, 5))
            image_inds = torch.zeros((0,), dtype=torch.long)

        boxes_np, points_np = boxes.cpu().numpy(), points.cpu().numpy()
        image_inds_np = image_inds.cpu().numpy()
        return [
            (boxes_np[image_inds_np == index], points_np[image_inds_np == index])
            for index in range(len(frames))
        ]

    def _resize_pool(self) -> ThreadPoolExecutor | None:
        """The threads that run OpenCV's resizes on the CPU (one per torch thread), started on
        first use; None elsewhere."""
        if self.device.type != "cpu":
            return None
        if self._pool is None:
            workers = max(1, torch.get_num_threads())
            self._pool = ThreadPoolExecutor(workers, thread_name_prefix="mattn-mtcnn-resize")
        return self._pool

    def _to_detections(self, boxes: np.ndarray, points: np.ndarray) -> list[Detection]:
        detections = [
            Detection(
                box_xyxy=tuple(float(value) for value in box[:4]),
                det_prob=float(box[4]),
                landmarks=tuple((float(point_x), float(point_y)) for point_x, point_y in point),
            )
            for box, point in zip(boxes.astype(np.float64), points.astype(np.float64), strict=True)
            if box[4] >= self.min_det_prob
        ]
        detections.sort(key=lambda detection: detection.det_prob, reverse=True)
        return detections


def _as_frame_list(frames: Frames) -> list[np.ndarray]:
    if isinstance(frames, np.ndarray):
        if frames.ndim != 4:
            raise ValueError(f"frames must be an (N, H, W, 3) array, got shape {frames.shape}")
        frame_list = list(frames)
    else:
        frame_list = list(frames)
    for frame in frame_list:
        if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3:
            shape = getattr(frame, "shape", None)
            raise ValueError(f"each frame must be an (H, W, 3) RGB array, got shape {shape}")
        if frame.dtype != np.uint8:
            raise ValueError(f"frames must be uint8, got {frame.dtype}")
    return frame_list


def _in_chunks(
    network: torch.nn.Module, images: torch.Tensor, chunk: int
) -> tuple[torch.Tensor, ...]:
    """The network over at most `chunk` images at a time, outputs concatenated."""
    outputs = [network(images[start : start + chunk]) for start in range(0, len(images), chunk)]
    return tuple(torch.cat(parts) for parts in zip(*outputs, strict=True))
