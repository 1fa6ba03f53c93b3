"""Faces -> persons: link each frame's detections into one track per person.

`link_tracks` groups the detections of sampled frames into one `Track` per person, so that a
video with two people yields two verdicts instead of one blend of both; `visible_side_px` says
how large a face is for judging. Boxes are in frame pixels, as `faces.FaceDetector` reports
them (x to the right, y down, not clipped to the frame).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial

from deepfake_cli.faces import Detection


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
