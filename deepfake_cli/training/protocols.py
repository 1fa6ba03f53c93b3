"""Which crops of a split `mattn evaluate` scores, and how they make each video's score.

Two protocols:

- `all`: every crop of the split; a video's score aggregates all of its crops (every person).
- `authors`: the authors' evaluation (MAT.md §6; their evaluation script): a video's face
  images in frame order, 20 of them at stride 5 from the first 100 (positions 0, 5, ..., 95);
  a video with fewer than 100 face images is not looked at and scores 0.5. Their face folders
  hold one face per frame, so mattn takes one person per video: the one with the most crops
  (the lowest person id among equals). The frame-level metrics then cover the scored frames
  only, the video-level ones every video, 0.5 for the short ones, as theirs do.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from deepfake_cli.aggregate import aggregate_scores
from deepfake_cli.errors import UsageError
from deepfake_cli.manifest import CropRecord

PROTOCOLS = ("all", "authors")
#: The authors' evaluation: this many face images per video, this far apart, from a video with
#: at least this many (their `imgs_per_video`, `frame_interval` and `min_frames` at test time).
AUTHORS_FRAMES = 20
AUTHORS_STRIDE = 5
AUTHORS_MIN_FACE_FRAMES = 100
#: The score the authors give a video with too few face images, without scoring any frame.
SHORT_VIDEO_SCORE = 0.5


@dataclass(frozen=True)
class VideoSelection:
    """One video of the split and the crops of it a protocol scores."""

    video_id: str
    label: int
    method: str
    # The persons whose crops are scored (all of them for `all`, one for `authors`).
    persons: tuple[int, ...]
    # Indices into the records of the scored crops, in frame order; empty for a short video.
    records: tuple[int, ...]
    # Face crops the protocol chose from (of `persons`), before any stride.
    face_frames: int
    # `authors` only: too few face images, so the video scores SHORT_VIDEO_SCORE unseen.
    short: bool = False


def check_protocol(protocol: str) -> None:
    if protocol not in PROTOCOLS:
        raise UsageError(f"unknown protocol {protocol!r}; use one of {', '.join(PROTOCOLS)}.")


def select_videos(records: Sequence[CropRecord], split: str, protocol: str) -> list[VideoSelection]:
    """The split's videos, sorted by id, with the crops `protocol` scores of each."""
    check_protocol(protocol)
    by_video: dict[str, list[int]] = defaultdict(list)
    for index, record in enumerate(records):
        if record.split == split:
            by_video[record.video_id].append(index)
    selections = []
    for video_id in sorted(by_video):
        indices = sorted(
            by_video[video_id], key=lambda i: (records[i].frame_index, records[i].person)
        )
        first = records[indices[0]]
        if protocol == "all":
            persons = tuple(sorted({records[i].person for i in indices}))
            selections.append(
                VideoSelection(
                    video_id, first.label, first.method, persons, tuple(indices), len(indices)
                )
            )
            continue
        crops_per_person: dict[int, list[int]] = defaultdict(list)
        for index in indices:
            crops_per_person[records[index].person].append(index)
        # The most crops, then the lowest id: the face of an authors'-style one-face folder.
        person = min(crops_per_person, key=lambda p: (-len(crops_per_person[p]), p))
        face_frames = crops_per_person[person]
        short = len(face_frames) < AUTHORS_MIN_FACE_FRAMES
        chosen = (
            () if short else tuple(face_frames[: AUTHORS_FRAMES * AUTHORS_STRIDE : AUTHORS_STRIDE])
        )
        selections.append(
            VideoSelection(
                video_id, first.label, first.method, (person,), chosen, len(face_frames), short
            )
        )
    return selections


def per_video_scores(
    records: Sequence[CropRecord],
    selections: Sequence[VideoSelection],
    probability_of: Mapping[int, float],
    aggregate: str,
) -> list[dict]:
    """One JSON-ready entry per video: its score (frames aggregated, or 0.5 if short) and frames.

    `probability_of` maps a record index to its crop's fake probability.
    """
    entries = []
    for selection in selections:
        probabilities = [probability_of[index] for index in selection.records]
        score = SHORT_VIDEO_SCORE if selection.short else aggregate_scores(probabilities, aggregate)
        entries.append(
            {
                "video_id": selection.video_id,
                "label": selection.label,
                "method": selection.method,
                "persons": list(selection.persons),
                "fake_probability": float(score),
                "frames": len(selection.records),
                "frame_indices": [records[index].frame_index for index in selection.records],
                "frame_probabilities": [float(p) for p in probabilities],
                "face_frames": selection.face_frames,
                "short": selection.short,
            }
        )
    return entries
