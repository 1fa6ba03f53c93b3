"""Stage 2 of video -> frames -> faces -> crops -> detector -> verdict: find faces, link them.

`FaceDetector` runs facenet-pytorch's MTCNN over sampled frames in batches and returns boxes,
probabilities and 5-point landmarks in the original frame's pixels. `link_tracks` groups the
detections of each frame into one track per person, so that a video with two people yields two
verdicts instead of one blend of both.

Coordinates are continuous pixel coordinates as MTCNN reports them: x to the right, y down,
(0, 0) the top-left corner of the frame. Boxes are not clipped to the frame: a face cut by the
frame edge keeps its full box, and the crop stage fills the missing part with black.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial

import cv2
import numpy as np
import torch

# PNet scans the image with a 12x12 window; a minimum face size below that would make MTCNN
# upsample the frame, which costs a lot and finds nothing a deepfake detector could use.
MTCNN_WINDOW = 12

# Faces smaller than this are not worth looking for even in a small frame: a crop of under 20
# pixels blown up to the detector's 380 pixels carries no texture to judge.
MIN_FACE_FLOOR = 20


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

    Frames are scaled down so that their longer side is at most `max_side` before detection
    (MTCNN's cost grows with the pixel count, and a face that matters is still tens of pixels
    wide at 1024), and the boxes are scaled back to the original frame.

    The smallest face searched for, in pixels of the image MTCNN sees, is
    `min(min_face_size, max(20, min_face_fraction * shorter side))`: 40 px for ordinary video
    (a 1080p frame is seen at 1024x576, so faces under ~7% of the height are skipped, which
    keeps the pyramid cheap), but lower in small frames, where a talking head is only a few
    dozen pixels tall (28 px in a 176x144 QCIF frame). Frames whose shorter side is below that
    minimum cannot hold a face MTCNN would find and get no detections.
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

        # Imported here so that importing mattn (e.g. for --help) does not load MTCNN's stack.
        from facenet_pytorch import MTCNN

        self.device = torch.device(device)
        self.min_face_size = int(min_face_size)
        self.min_face_fraction = float(min_face_fraction)
        self.thresholds = tuple(float(value) for value in thresholds)
        self.min_det_prob = float(min_det_prob)
        self.max_side = int(max_side)
        self.batch_size = int(batch_size)
        # keep_all: every face, not just one; post_process/select_largest only affect MTCNN's
        # own cropping and ordering, set so its output is raw and sorted by probability.
        self._mtcnn = MTCNN(
            min_face_size=self.min_face_size,
            thresholds=list(self.thresholds),
            keep_all=True,
            post_process=False,
            select_largest=False,
            device=self.device,
        )
        self._mtcnn.eval()

    def detection_size(self, frame_height: int, frame_width: int) -> tuple[int, int]:
        """(height, width) of the image MTCNN sees for a frame of this size."""
        longer_side = max(frame_height, frame_width)
        if longer_side <= self.max_side:
            return frame_height, frame_width
        scale = self.max_side / longer_side
        return max(1, round(frame_height * scale)), max(1, round(frame_width * scale))

    def min_face_size_for(self, det_height: int, det_width: int) -> int:
        """Smallest face side MTCNN looks for in a detection image of this size."""
        relative_size = max(MIN_FACE_FLOOR, self.min_face_fraction * min(det_height, det_width))
        return max(MTCNN_WINDOW, min(self.min_face_size, math.floor(relative_size)))

    def detect(self, frames: Frames) -> list[list[Detection]]:
        """Faces in each frame, most probable first; one (possibly empty) list per frame.

        `frames` is an (N, H, W, 3) uint8 RGB array or a sequence of (H, W, 3) uint8 RGB arrays
        whose sizes may differ.
        """
        frame_list = _as_frame_list(frames)
        detections_per_frame: list[list[Detection]] = [[] for _ in frame_list]

        # MTCNN stacks a batch into one tensor, so frames are grouped by the size they are
        # detected at; frames of different sizes that scale to the same size share a group.
        positions_by_size: dict[tuple[int, int], list[int]] = {}
        for frame_position, frame in enumerate(frame_list):
            det_height, det_width = self.detection_size(frame.shape[0], frame.shape[1])
            # Below this MTCNN's scale pyramid is empty and detect_face crashes on torch.cat.
            if min(det_height, det_width) < self.min_face_size_for(det_height, det_width):
                continue
            positions_by_size.setdefault((det_height, det_width), []).append(frame_position)

        for (det_height, det_width), positions in positions_by_size.items():
            # The pyramid depends on the image size, so MTCNN's minimum is set per group.
            self._mtcnn.min_face_size = self.min_face_size_for(det_height, det_width)
            for start in range(0, len(positions), self.batch_size):
                batch_positions = positions[start : start + self.batch_size]
                batch = np.stack(
                    [
                        _resize_for_detection(frame_list[position], det_height, det_width)
                        for position in batch_positions
                    ]
                )  # (B, det_height, det_width, 3) uint8
                # MTCNN.detect, not MTCNN.forward: forward's batch path crashes on frames
                # without faces. It returns None (boxes, landmarks) for such frames.
                boxes_per_image, probs_per_image, points_per_image = self._mtcnn.detect(
                    batch, landmarks=True
                )
                for position, boxes, probs, points in zip(
                    batch_positions, boxes_per_image, probs_per_image, points_per_image, strict=True
                ):
                    frame_height, frame_width = frame_list[position].shape[:2]
                    detections_per_frame[position] = self._to_detections(
                        boxes,
                        probs,
                        points,
                        scale_x=frame_width / det_width,
                        scale_y=frame_height / det_height,
                    )
        return detections_per_frame

    def _to_detections(
        self,
        boxes: np.ndarray | None,
        probs: np.ndarray | Sequence[float | None],
        points: np.ndarray | None,
        *,
        scale_x: float,
        scale_y: float,
    ) -> list[Detection]:
        if boxes is None or len(boxes) == 0:
            return []
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        probs = np.asarray(probs, dtype=np.float64).reshape(-1)
        points = np.asarray(points, dtype=np.float64).reshape(-1, 5, 2)
        # Back from detection-image pixels to original-frame pixels.
        box_scale = np.array([scale_x, scale_y, scale_x, scale_y])
        point_scale = np.array([scale_x, scale_y])
        detections = [
            Detection(
                box_xyxy=tuple(float(value) for value in box * box_scale),
                det_prob=float(det_prob),
                landmarks=tuple(
                    (float(point_x), float(point_y)) for point_x, point_y in point * point_scale
                ),
            )
            for box, det_prob, point in zip(boxes, probs, points, strict=True)
            if det_prob >= self.min_det_prob
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


def _resize_for_detection(frame: np.ndarray, det_height: int, det_width: int) -> np.ndarray:
    if frame.shape[:2] == (det_height, det_width):
        return frame
    # INTER_AREA: the only OpenCV filter that averages when shrinking, so no aliasing.
    return cv2.resize(frame, (det_width, det_height), interpolation=cv2.INTER_AREA)


@dataclass
class Track:
    """One person across the sampled frames."""

    # 0, 1, ... in order of first appearance, then by face size within that frame.
    person_id: int
    # Frame position (0..N-1 among the sampled frames) -> that person's detection there.
    detections: dict[int, Detection] = field(default_factory=dict)

    @property
    def frame_positions(self) -> list[int]:
        return sorted(self.detections)

    def last_detection(self) -> Detection:
        return self.detections[max(self.detections)]

    def face_side_px(self, frame_sizes: Sequence[tuple[int, int]]) -> float:
        """The median over this person's frames of `visible_side_px` (how big the face is).

        `frame_sizes[position]` is the (height, width) of the frame at that position.
        """
        return statistics.median(
            visible_side_px(detection.box_xyxy, *frame_sizes[position])
            for position, detection in self.detections.items()
        )


def visible_side_px(box_xyxy: Sequence[float], frame_height: int, frame_width: int) -> float:
    """The shorter side of the part of a face box inside the frame, in pixels.

    The shorter side, because it is the face's resolution across (MTCNN's boxes are taller than
    wide), and the visible part, because boxes are not clipped: a face cut by the frame edge
    keeps its full box, but only the part inside the frame carries pixels to judge.
    """
    visible_width = min(box_xyxy[2], frame_width) - max(box_xyxy[0], 0.0)
    visible_height = min(box_xyxy[3], frame_height) - max(box_xyxy[1], 0.0)
    return max(0.0, min(visible_width, visible_height))


def box_iou(box_a_xyxy: Sequence[float], box_b_xyxy: Sequence[float]) -> float:
    """Intersection over union of two xyxy boxes (0 when either has no area)."""
    overlap_width = min(box_a_xyxy[2], box_b_xyxy[2]) - max(box_a_xyxy[0], box_b_xyxy[0])
    overlap_height = min(box_a_xyxy[3], box_b_xyxy[3]) - max(box_a_xyxy[1], box_b_xyxy[1])
    if overlap_width <= 0 or overlap_height <= 0:
        return 0.0
    intersection = overlap_width * overlap_height
    area_a = (box_a_xyxy[2] - box_a_xyxy[0]) * (box_a_xyxy[3] - box_a_xyxy[1])
    area_b = (box_b_xyxy[2] - box_b_xyxy[0]) * (box_b_xyxy[3] - box_b_xyxy[1])
    union = area_a + area_b - intersection
    return float(intersection / union) if union > 0 else 0.0


# Sampled frames are far apart (32 over a minute: about two seconds), so a head moves between
# them, further still across frames where it was not detected. A track's motion is estimated
# over at most this many of its last detections (a longer baseline averages out jitter)...
MOTION_HISTORY = 4
# ...and the distance a detection may be from a track grows with the frames since that track was
# last seen, as a random walk's does (by the square root of the gap), up to this factor.
MAX_GAP_GROWTH = 1.5

_TrackEntries = list[tuple[int, Detection]]  # (frame position, detection), in frame order


def link_tracks(
    detections_per_frame: Sequence[Sequence[Detection]],
    *,
    iou_threshold: float = 0.3,
    max_center_distance: float = 1.25,
    max_size_ratio: float = 2.0,
    max_faces: int | None = None,
    min_track_fraction: float = 0.0,
) -> list[Track]:
    """Group per-frame detections into one track per person, ordered by `person_id`.

    Frames are visited in order, and each frame's detections are matched greedily against every
    track seen so far (a person missing from some frames keeps their track), each track where
    it is expected: its last box, moved along its recent motion. A pair may match when their
    IoU is at least `iou_threshold`, or, because sampled frames can be seconds apart and a head
    moves further than IoU tolerates, when their centres are within `max_center_distance`
    times the larger box's longer side (times the square root of the frames since the track
    was last seen, at most `MAX_GAP_GROWTH`) and their sizes (longer side) differ by at most
    `max_size_ratio`. Overlapping pairs are matched first, highest IoU first, then the rest by
    increasing centre distance, then pairs that only match the track's unmoved last box; a
    detection left over starts a new track. Two faces of one frame never share a track.

    `max_faces` keeps only the largest faces of each frame (ties: most probable) to bound the
    work downstream. Tracks present in fewer than `min_track_fraction` of the frames (spurious
    detections, passers-by) are dropped before ids are given.
    """
    if max_faces is not None and max_faces < 1:
        raise ValueError(f"max_faces must be at least 1, got {max_faces}")
    if not 0.0 <= min_track_fraction <= 1.0:
        raise ValueError(f"min_track_fraction must be in [0, 1], got {min_track_fraction}")

    open_tracks: list[_TrackEntries] = []
    for frame_position, frame_detections in enumerate(detections_per_frame):
        # Largest first so that new tracks started in one frame are numbered by size.
        ranked_detections = sorted(
            frame_detections,
            key=lambda detection: (detection.area, detection.det_prob),
            reverse=True,
        )
        if max_faces is not None:
            ranked_detections = ranked_detections[:max_faces]

        candidate_pairs: list[tuple[tuple[int, float, float], int, int]] = []
        for track_index, track_entries in enumerate(open_tracks):
            last_position, last_detection = track_entries[-1]
            gap_growth = min(math.sqrt(frame_position - last_position), MAX_GAP_GROWTH)
            match = partial(
                _match_key,
                iou_threshold=iou_threshold,
                max_center_distance=max_center_distance * gap_growth,
                max_size_ratio=max_size_ratio,
            )
            expected = _expected_detection(track_entries, frame_position)
            for detection_index, detection in enumerate(ranked_detections):
                match_key = match(expected, detection)
                if match_key is None and expected is not last_detection:
                    # Where it was last seen (a head that moved, then stopped), ranked after
                    # every match at an expected place.
                    still_key = match(last_detection, detection)
                    match_key = None if still_key is None else (2 + still_key[0], *still_key[1:])
                if match_key is not None:
                    candidate_pairs.append((match_key, track_index, detection_index))
        candidate_pairs.sort()

        matched_tracks: set[int] = set()
        matched_detections: set[int] = set()
        for _, track_index, detection_index in candidate_pairs:
            if track_index in matched_tracks or detection_index in matched_detections:
                continue
            open_tracks[track_index].append((frame_position, ranked_detections[detection_index]))
            matched_tracks.add(track_index)
            matched_detections.add(detection_index)
        for detection_index, detection in enumerate(ranked_detections):
            if detection_index not in matched_detections:
                open_tracks.append([(frame_position, detection)])

    num_frames = len(detections_per_frame)
    kept_tracks = [
        track_entries
        for track_entries in open_tracks
        if len(track_entries) >= min_track_fraction * num_frames
    ]
    # Tracks were opened in frame order and, within a frame, largest face first, so a stable
    # sort on the first frame keeps that order: ids follow first appearance, then size.
    kept_tracks.sort(key=lambda track_entries: track_entries[0][0])
    return [
        Track(person_id=person_id, detections=dict(track_entries))
        for person_id, track_entries in enumerate(kept_tracks)
    ]


def _expected_detection(track_entries: _TrackEntries, frame_position: int) -> Detection:
    """The track's last box, moved to where its recent motion puts it at `frame_position`.

    The motion is the centre's displacement per frame position between the track's last
    detection and the one `MOTION_HISTORY - 1` detections before it: constant velocity, which
    keeps a walking person or a panning camera on one track and tells two crossing people apart.
    A track seen once has no motion yet; its last box is returned as it is.
    """
    last_position, last_detection = track_entries[-1]
    if len(track_entries) < 2:
        return last_detection
    first_position, first_detection = track_entries[-min(len(track_entries), MOTION_HISTORY)]
    (first_x, first_y), (last_x, last_y) = first_detection.center_xy, last_detection.center_xy
    frames_ahead = (frame_position - last_position) / (last_position - first_position)
    shift_x = (last_x - first_x) * frames_ahead
    shift_y = (last_y - first_y) * frames_ahead
    x_min, y_min, x_max, y_max = last_detection.box_xyxy
    return Detection(
        box_xyxy=(x_min + shift_x, y_min + shift_y, x_max + shift_x, y_max + shift_y),
        det_prob=last_detection.det_prob,
    )


def _match_key(
    previous: Detection,
    current: Detection,
    *,
    iou_threshold: float,
    max_center_distance: float,
    max_size_ratio: float,
) -> tuple[int, float, float] | None:
    """Sort key for a possible match (smaller is better), or None when they cannot match."""
    overlap = box_iou(previous.box_xyxy, current.box_xyxy)
    previous_x, previous_y = previous.center_xy
    current_x, current_y = current.center_xy
    previous_side = max(previous.width, previous.height)
    current_side = max(current.width, current.height)
    larger_side = max(previous_side, current_side)
    if larger_side <= 0:
        return None
    # Centre distance in units of face size, so the rule means the same at any resolution.
    relative_distance = math.hypot(current_x - previous_x, current_y - previous_y) / larger_side
    if overlap >= iou_threshold:
        return (0, -overlap, relative_distance)
    smaller_side = min(previous_side, current_side)
    size_ratio = larger_side / smaller_side if smaller_side > 0 else math.inf
    if relative_distance <= max_center_distance and size_ratio <= max_size_ratio:
        return (1, relative_distance, -overlap)
    return None
