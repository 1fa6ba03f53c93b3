"""The evidence behind a verdict: face crops, the model's attention maps and score timelines.

Built after a video's result exists, never inside the scan: the result's per-frame details
(which frames were sampled, each face's box and score) say which frames to decode again and
where the faces were; the model runs `forward_features` once more on the few crops shown
(`STRIP_FACES` per person plus the frame where it was most confident) to get its M attention
maps. So a report costs a few extra decodes and forward passes per person, whatever the
number of frames scanned, and the scan's hot path does not change.

The crops are cut by `deepfake_cli.crops.crop_tracks`, the loop the scan cuts its crops with,
from the result's boxes and the model's `Preprocessing`. The pictures drawn from them are
`deepfake_cli.report.pictures`'s job, and turning them into pages `deepfake_cli.report.html`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from deepfake_cli.errors import MattnError
from deepfake_cli.report.pictures import (
    attention_overlay,
    encode_png,
    frame_preview,
    timeline_png,
)
from deepfake_cli.results import STATUS_ERROR, STATUS_OK, VERDICT_FAKE, PersonResult, VideoResult
from deepfake_cli.video import VideoInfo, probe_video, read_frame_indices

if TYPE_CHECKING:
    import torch

    from deepfake_cli.model.config import Preprocessing
    from deepfake_cli.model.mat import MATDetector
    from deepfake_cli.video import SampledFrames

#: Face crops shown per person, evenly spaced over the frames they were scored in. Enough to see
#: whether the attention is stable over time; few enough that a report of a long video stays
#: small and fast (each one is an extra decode and forward pass).
STRIP_FACES = 8

# Crops per forward pass when recomputing attention: bounds memory for large input sizes.
ATTENTION_BATCH = 8


@dataclass
class FaceEvidence:
    """One face shown in a report: the crop the model saw and where it looked."""

    person_id: int
    frame_index: int
    time_s: float
    box_xyxy: list[float]
    fake_probability: float  # as the scan recorded it
    crop: np.ndarray  # (S, S, 3) uint8 RGB, cut as the scan cut it (without eye alignment)
    attention_maps: np.ndarray | None = None  # (M, h, w) float32; None without attention
    overlay: np.ndarray | None = None  # (S, S, 3) uint8 RGB: the crop, one colour per map
    rescored_probability: float | None = None  # the model's score of this crop, recomputed


@dataclass
class FrameScore:
    """One sampled frame as a person's timeline sees it."""

    frame_index: int
    time_s: float
    fake_probability: float
    box_xyxy: list[float]
    det_prob: float  # the face detector's confidence in the box


@dataclass
class PersonEvidence:
    """One tracked person: every frame score, a strip of faces, the most confident one."""

    person: PersonResult
    scores: list[FrameScore]  # every frame this person was scored in, in time order
    timeline_png: bytes
    strip: list[FaceEvidence] = field(default_factory=list)  # evenly spaced, in time order
    most_confident: FaceEvidence | None = None
    frame_preview: np.ndarray | None = None  # (H, W, 3) uint8 RGB: the most confident frame


@dataclass
class VideoEvidence:
    """What a report shows about one video, and why anything is missing."""

    result: VideoResult
    video_info: VideoInfo | None = None
    persons: list[PersonEvidence] = field(default_factory=list)
    # One sentence each: why crops, or attention maps, could not be shown (None: they are).
    crops_problem: str | None = None
    attention_problem: str | None = None
    # Largest |recomputed - recorded| fake probability over the faces shown (None: not rescored).
    rescore_difference: float | None = None
    num_attentions: int = 0


# --- choosing what to show --------------------------------------------------------------------


def evenly_spaced(count: int, wanted: int) -> list[int]:
    """`wanted` positions out of range(count), at the centres of equal segments (all if fewer)."""
    if count <= wanted:
        return list(range(count))
    return [((2 * segment + 1) * count) // (2 * wanted) for segment in range(wanted)]


def most_confident_position(scores: Sequence[FrameScore], verdict: str) -> int:
    """The frame that speaks most for the person's verdict: highest score if FAKE, else lowest.

    "Most confident" is read in the direction of the verdict, because that frame is the evidence
    for it; the frame most against the verdict is visible on the timeline.
    """
    probabilities = [score.fake_probability for score in scores]
    if verdict == VERDICT_FAKE:
        return int(np.argmax(probabilities))
    return int(np.argmin(probabilities))


def person_scores(result: VideoResult) -> dict[int, list[FrameScore]]:
    """Per person id, the frames they were scored in (time order), from the result's details."""
    by_person: dict[int, list[FrameScore]] = {}
    for frame in sorted(result.frames or [], key=lambda record: record.index):
        for face in frame.faces:
            by_person.setdefault(face.person, []).append(
                FrameScore(
                    frame_index=frame.index,
                    time_s=frame.time_s,
                    fake_probability=face.fake_probability,
                    box_xyxy=list(face.box),
                    det_prob=face.det_prob,
                )
            )
    return by_person


# --- gathering the evidence for one video -----------------------------------------------------


@dataclass
class _PersonPlan:
    """Which of a person's frames a report shows: positions in `person.scores`."""

    person: PersonEvidence
    strip_positions: list[int]
    confident_position: int

    @property
    def positions(self) -> list[int]:
        return sorted({*self.strip_positions, self.confident_position})


def _facts(result: VideoResult) -> VideoInfo | None:
    try:
        return probe_video(result.path)
    except MattnError:
        return None


def gather_evidence(
    result: VideoResult, model: MATDetector, *, faces_per_person: int = STRIP_FACES
) -> VideoEvidence:
    """Crops, attention maps, overlays and timelines for one scanned video.

    Never raises for a problem with the video: a video that can no longer be read, results
    without per-frame details, or a model other than the one that scored the video each leave
    one sentence in the evidence (and the parts that can still be shown, such as timelines).
    """
    evidence = VideoEvidence(result=result)
    if result.status == STATUS_ERROR:
        return evidence
    if result.status != STATUS_OK:  # no face: only the video's facts to show
        evidence.video_info = _facts(result)
        return evidence
    if result.frames is None:
        evidence.crops_problem = (
            "These results carry no per-frame details (scan with --details or --report), so "
            "no timeline, crops or attention maps can be shown."
        )
        evidence.video_info = _facts(result)
        return evidence

    plans = _plan_persons(result, faces_per_person)
    evidence.persons = [plan.person for plan in plans]
    wanted_indices = sorted(
        {plan.person.scores[position].frame_index for plan in plans for position in plan.positions}
    )
    if not wanted_indices:
        evidence.video_info = _facts(result)
        return evidence
    try:
        sampled = read_frame_indices(result.path, wanted_indices)
    except MattnError as error:
        evidence.crops_problem = error.message
        return evidence
    evidence.video_info = sampled.info
    faces = _cut_faces(plans, sampled, model.preprocessing)
    _explain_scores(evidence, faces, model)
    return evidence


def _plan_persons(result: VideoResult, faces_per_person: int) -> list[_PersonPlan]:
    """Per person (by id), the frames to show and their timeline, drawn from the scores alone."""
    sampled_times_s = [frame.time_s for frame in result.frames or []]
    persons_by_id = {person.id: person for person in result.persons}
    plans: list[_PersonPlan] = []
    for person_id, scores in sorted(person_scores(result).items()):
        person = persons_by_id.get(person_id)
        if person is None:  # a face without its person summary: nothing to explain
            continue
        strip_positions = evenly_spaced(len(scores), faces_per_person)
        confident_position = most_confident_position(scores, person.verdict)
        timeline = timeline_png(
            scores,
            threshold=result.threshold,
            sampled_times_s=sampled_times_s,
            shown_frame_indices=[scores[position].frame_index for position in strip_positions],
            most_confident_frame_index=scores[confident_position].frame_index,
            title=f"Person {person_id}: fake probability per sampled frame",
        )
        plans.append(
            _PersonPlan(
                person=PersonEvidence(person=person, scores=scores, timeline_png=timeline),
                strip_positions=strip_positions,
                confident_position=confident_position,
            )
        )
    return plans


def _cut_faces(
    plans: Sequence[_PersonPlan], sampled: SampledFrames, preprocessing: Preprocessing
) -> list[FaceEvidence]:
    """Cut the planned faces from the decoded frames and fill in each person's strip."""
    from deepfake_cli.crops import crop_tracks, square_crop_box
    from deepfake_cli.faces import Detection
    from deepfake_cli.tracks import Track

    position_of_frame = {index: position for position, index in enumerate(sampled.frame_indices)}
    tracks = [
        Track(
            person_id=plan.person.person.id,
            detections={
                position_of_frame[score.frame_index]: Detection(
                    box_xyxy=tuple(score.box_xyxy), det_prob=score.det_prob
                )
                for score in (plan.person.scores[position] for position in plan.positions)
            },
        )
        for plan in plans
    ]
    # Results keep boxes, not landmarks, so these crops are upright even for a model that
    # aligns the eyes (the page says so).
    cut = crop_tracks(sampled.frames, tracks, preprocessing.crop_geometry)
    crop_by_key = dict(zip(cut.keys, cut.crops, strict=True))

    faces: list[FaceEvidence] = []
    for plan in plans:
        person_id = plan.person.person.id
        person_faces: dict[int, FaceEvidence] = {}
        for position in plan.positions:
            score = plan.person.scores[position]
            person_faces[position] = FaceEvidence(
                person_id=person_id,
                frame_index=score.frame_index,
                time_s=score.time_s,
                box_xyxy=score.box_xyxy,
                fake_probability=score.fake_probability,
                crop=crop_by_key[(person_id, position_of_frame[score.frame_index])],
            )
        plan.person.strip = [person_faces[position] for position in plan.strip_positions]
        confident = person_faces[plan.confident_position]
        plan.person.most_confident = confident
        plan.person.frame_preview = frame_preview(
            sampled.frames[position_of_frame[confident.frame_index]],
            square_crop_box(confident.box_xyxy, preprocessing.margin_ratio),
        )
        faces.extend(person_faces.values())
    return faces


# --- what the model saw in the faces shown ----------------------------------------------------


def _explain_scores(evidence: VideoEvidence, faces: list[FaceEvidence], model: MATDetector) -> None:
    """Score the faces shown again, with their attention maps and overlays, if this model can."""
    result = evidence.result
    if model.config.variant == "backbone":
        evidence.attention_problem = (
            f"Model {model.provenance.name} is a plain backbone classifier without attention "
            "maps, so only the crops it scored are shown."
        )
        return
    if result.model.sha256 and result.model.sha256 != getattr(model, "weights_sha256", ""):
        evidence.attention_problem = (
            f"The loaded model is not the one that scored this video ({result.model.name}, "
            f"sha256 {result.model.sha256[:12]}), so its attention maps would not explain "
            "these scores and are not shown."
        )
        return
    attention_maps, rescored = compute_attention(model, np.stack([face.crop for face in faces]))
    differences = []
    for face_number, face in enumerate(faces):
        face.rescored_probability = float(rescored[face_number])
        differences.append(abs(face.rescored_probability - face.fake_probability))
        if attention_maps is not None:
            face.attention_maps = attention_maps[face_number]
            face.overlay = attention_overlay(face.crop, face.attention_maps)
    evidence.rescore_difference = max(differences)
    if attention_maps is not None:
        evidence.num_attentions = attention_maps.shape[1]


def _model_device(model: MATDetector) -> torch.device:
    return next(model.parameters()).device


def compute_attention(
    model: MATDetector, crops: np.ndarray
) -> tuple[np.ndarray | None, np.ndarray]:
    """(N, S, S, 3) uint8 crops -> ((N, M, h, w) attention maps or None, (N,) fake probabilities).

    Runs in eval mode without autocast (full precision, like the scan's reference scores),
    whatever mode the model was left in, and puts the model back as it was.
    The maps are None for a model without attention (variant "backbone").
    """
    import torch

    from deepfake_cli.crops import normalize_crops
    from deepfake_cli.model.mat import fake_probabilities

    preprocessing = model.preprocessing
    device = _model_device(model)
    was_training = model.training
    model.eval()
    maps_batches: list[np.ndarray] = []
    probability_batches: list[np.ndarray] = []
    try:
        with torch.inference_mode():
            for start in range(0, len(crops), ATTENTION_BATCH):
                images = normalize_crops(
                    crops[start : start + ATTENTION_BATCH],
                    preprocessing.mean,
                    preprocessing.std,
                    device=device,
                )  # (B, 3, S, S)
                features = model.forward_features(images)
                probability_batches.append(fake_probabilities(features.logits).cpu().numpy())
                if features.attention_maps is not None:
                    maps_batches.append(features.attention_maps.float().cpu().numpy())
    finally:
        model.train(was_training)
    attention_maps = np.concatenate(maps_batches) if maps_batches else None  # (N, M, h, w)
    return attention_maps, np.concatenate(probability_batches)


# --- raw attention maps on disk ---------------------------------------------------------------


def save_attention(evidence: VideoEvidence, directory: Path) -> list[Path]:
    """Write each shown face's maps (`.npy`, (M, h, w) float32), overlay and crop (`.png`).

    Files are `person{P}_frame{F}_attention.npy`, `..._overlay.png` and `..._crop.png` in
    `directory`; returns the paths written (none when the video has no attention maps).
    """
    faces: dict[tuple[int, int], FaceEvidence] = {}
    for person_evidence in evidence.persons:
        for face in [*person_evidence.strip, person_evidence.most_confident]:
            if face is not None and face.attention_maps is not None:
                faces[(face.person_id, face.frame_index)] = face
    written: list[Path] = []
    if not faces:
        return written
    directory.mkdir(parents=True, exist_ok=True)
    for (person_id, frame_index), face in sorted(faces.items()):
        stem = directory / f"person{person_id}_frame{frame_index:06d}"
        maps_path = stem.with_name(stem.name + "_attention.npy")
        np.save(maps_path, face.attention_maps.astype(np.float32))
        overlay_path = stem.with_name(stem.name + "_overlay.png")
        overlay_path.write_bytes(encode_png(face.overlay))
        crop_path = stem.with_name(stem.name + "_crop.png")
        crop_path.write_bytes(encode_png(face.crop))
        written.extend([maps_path, overlay_path, crop_path])
    return written
