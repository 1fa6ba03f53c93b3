"""The evidence behind a verdict: face crops, the model's attention maps and score timelines.

Built after a video's result exists, never inside the scan: the result's per-frame details
(which frames were sampled, each face's box and score) say which frames to decode again and
where the faces were; the model runs `forward_features` once more on the few crops shown
(`STRIP_FACES` per person plus the frame where it was most confident) to get its M attention
maps. So a report costs a few extra decodes and forward passes per person, whatever the
number of frames scanned, and the scan's hot path does not change.

Overlays are drawn with OpenCV, timelines with matplotlib's Agg canvas (no display, and no
change to pyplot's global backend). Everything here returns arrays and PNG/JPEG bytes; turning
them into pages is `deepfake_cli.report.html`'s job.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from deepfake_cli.errors import MattnError
from deepfake_cli.results import STATUS_ERROR, STATUS_OK, VERDICT_FAKE, PersonResult, VideoResult
from deepfake_cli.video import VideoInfo, probe_video, read_frame_indices

if TYPE_CHECKING:
    import torch

    from deepfake_cli.model.mat import MATDetector

#: Face crops shown per person, evenly spaced over the frames they were scored in. Enough to see
#: whether the attention is stable over time; few enough that a report of a long video stays
#: small and fast (each one is an extra decode and forward pass).
STRIP_FACES = 8

#: One colour per attention map (RGB): the Okabe-Ito palette, which stays distinguishable with
#: the common colour-vision deficiencies. Black is left out (it cannot tint a dark face); with
#: more than 7 maps the colours repeat, and the legend says which map is which.
MAP_COLOURS_RGB: tuple[tuple[int, int, int], ...] = (
    (230, 159, 0),  # orange
    (86, 180, 233),  # sky blue
    (0, 158, 115),  # bluish green
    (240, 228, 66),  # yellow
    (0, 114, 178),  # blue
    (213, 94, 0),  # vermillion
    (204, 121, 167),  # reddish purple
)

# How strongly the overlay tints a pixel where a map peaks: enough to see the colour, little
# enough to still see the face under it.
OVERLAY_OPACITY = 0.6
# Share of a map's peak below which it does not tint the crop.
TINT_FLOOR = 0.2
# A map's outline is drawn where it reaches this share of its own peak ("where it looks").
CONTOUR_LEVEL = 0.5
# Largest width of the whole-frame picture in the report, in pixels.
FRAME_PREVIEW_WIDTH = 640
# Crops per forward pass when recomputing attention: bounds memory for large input sizes.
ATTENTION_BATCH = 8
JPEG_QUALITY = 90


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
                )
            )
    return by_person


# --- pictures ---------------------------------------------------------------------------------


def map_colour(map_number: int) -> tuple[int, int, int]:
    """The RGB colour of attention map `map_number` (0-based) in overlays and legends."""
    return MAP_COLOURS_RGB[map_number % len(MAP_COLOURS_RGB)]


def _maps_at_crop_size(attention_maps: np.ndarray, size: int) -> np.ndarray:
    """(M, h, w) maps -> (M, size, size), each scaled to [0, 1] by its own peak.

    Each map is scaled by its own peak because the maps differ in magnitude and the reader needs
    where each one looks, not how large its raw values are.
    """
    resized = np.stack(
        [
            cv2.resize(
                np.ascontiguousarray(attention_map, dtype=np.float32),
                (size, size),
                interpolation=cv2.INTER_CUBIC,
            )
            for attention_map in attention_maps
        ]
    )  # (M, S, S)
    resized = np.clip(resized, 0.0, None)  # cubic interpolation overshoots below zero
    peaks = resized.max(axis=(1, 2), keepdims=True)
    return resized / np.maximum(peaks, 1e-12)


def attention_overlay(crop: np.ndarray, attention_maps: np.ndarray) -> np.ndarray:
    """(S, S, 3) uint8 RGB crop with its (M, h, w) attention maps drawn on it, one colour each.

    Each pixel is tinted with the colour of the map strongest there, more opaquely the stronger
    it is (mixing the colours of overlapping maps would give browns nobody can tell apart), and
    each map's outline at half its peak is drawn in its colour, so overlapping regions stay
    visible.
    """
    size = crop.shape[0]
    normalized = _maps_at_crop_size(attention_maps, size)  # (M, S, S) in [0, 1]
    palette = np.array(
        [map_colour(map_number) for map_number in range(len(normalized))], dtype=np.float32
    )  # (M, 3)
    strongest_map = normalized.argmax(axis=0)  # (S, S)
    strength = normalized.max(axis=0)  # (S, S)
    # Below TINT_FLOOR of its peak a map tints nothing: broad maps would otherwise wash a faint
    # colour over the whole face and hide where they really look.
    opacity = OVERLAY_OPACITY * np.clip((strength - TINT_FLOOR) / (1.0 - TINT_FLOOR), 0.0, 1.0)
    opacity = opacity[..., None]  # (S, S, 1)
    tinted = crop.astype(np.float32) * (1.0 - opacity) + palette[strongest_map] * opacity
    overlay = np.clip(np.rint(tinted), 0, 255).astype(np.uint8)
    line_width = max(1, size // 160)
    for map_number, normalized_map in enumerate(normalized):
        region = (normalized_map >= CONTOUR_LEVEL).astype(np.uint8)
        contours, _hierarchy = cv2.findContours(region, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(overlay, contours, -1, map_colour(map_number), line_width)
    return overlay


def attention_heatmaps(crop: np.ndarray, attention_maps: np.ndarray) -> list[np.ndarray]:
    """One (S, S, 3) uint8 RGB picture per map: the crop under an inferno heat map of it."""
    size = crop.shape[0]
    normalized = _maps_at_crop_size(attention_maps, size)
    pictures = []
    for normalized_map in normalized:
        heat_bgr = cv2.applyColorMap(
            np.rint(normalized_map * 255).astype(np.uint8), cv2.COLORMAP_INFERNO
        )
        heat_rgb = cv2.cvtColor(heat_bgr, cv2.COLOR_BGR2RGB)
        pictures.append(cv2.addWeighted(crop, 0.45, heat_rgb, 0.55, 0.0))
    return pictures


def frame_preview(frame: np.ndarray, crop_square_xyxy: Sequence[float]) -> np.ndarray:
    """The whole frame, at most `FRAME_PREVIEW_WIDTH` wide, with the crop's square drawn on it."""
    height, width = frame.shape[:2]
    scale = min(1.0, FRAME_PREVIEW_WIDTH / width)
    preview = (
        frame.copy()
        if scale == 1.0
        else cv2.resize(
            frame, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA
        )
    )
    left, top, right, bottom = (round(value * scale) for value in crop_square_xyxy)
    line_width = max(1, round(preview.shape[1] / 240))
    cv2.rectangle(preview, (left, top), (right, bottom), (255, 40, 40), line_width)
    return preview


def encode_jpeg(image_rgb: np.ndarray) -> bytes:
    """RGB uint8 -> JPEG bytes (photos: a tenth of PNG's size at no visible loss)."""
    encoded_ok, buffer = cv2.imencode(
        ".jpg", cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
    )
    if not encoded_ok:
        raise ValueError("OpenCV could not encode an image as JPEG")
    return buffer.tobytes()


def encode_png(image_rgb: np.ndarray) -> bytes:
    """RGB uint8 -> PNG bytes (lossless: for files a script may read back)."""
    encoded_ok, buffer = cv2.imencode(".png", cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR))
    if not encoded_ok:
        raise ValueError("OpenCV could not encode an image as PNG")
    return buffer.tobytes()


def timeline_png(
    scores: Sequence[FrameScore],
    *,
    threshold: float,
    sampled_times_s: Sequence[float] = (),
    shown_frame_indices: Sequence[int] = (),
    most_confident_frame_index: int | None = None,
    title: str = "",
) -> bytes:
    """A PNG plot of one person's fake probability per frame, with the threshold line.

    Frames whose crops the report shows are ringed, the most confident one is a star, and
    sampled frames in which this person was not found are grey ticks on the time axis (not
    points: no score exists there, and plotting one would make it up).
    """
    # The Agg canvas is chosen here, on this figure only: pyplot's global backend (and any GUI
    # the caller may run) is left alone, and no display is ever needed.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8.0, 2.6), dpi=110)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    times_s = [score.time_s for score in scores]
    probabilities = [score.fake_probability for score in scores]
    axes.axhspan(threshold, 1.0, color="#d62728", alpha=0.06, linewidth=0)
    axes.axhline(
        threshold, color="#d62728", linestyle="--", linewidth=1.5, label=f"threshold {threshold:g}"
    )
    axes.plot(times_s, probabilities, color="#333333", linewidth=1.2, marker="o", markersize=3.5)
    scored_times = set(times_s)
    missing_times = [time_s for time_s in sampled_times_s if time_s not in scored_times]
    if missing_times:
        axes.plot(
            missing_times,
            [0.0] * len(missing_times),
            linestyle="none",
            marker="|",
            markersize=10,
            color="#999999",
            label="sampled, this face not found",
        )
    shown = set(shown_frame_indices)
    shown_scores = [score for score in scores if score.frame_index in shown]
    if shown_scores:
        axes.plot(
            [score.time_s for score in shown_scores],
            [score.fake_probability for score in shown_scores],
            linestyle="none",
            marker="o",
            markersize=9,
            markerfacecolor="none",
            markeredgecolor="#1f77b4",
            markeredgewidth=1.5,
            label="crop shown below",
        )
    confident = [score for score in scores if score.frame_index == most_confident_frame_index]
    if confident:
        axes.plot(
            [confident[0].time_s],
            [confident[0].fake_probability],
            linestyle="none",
            marker="*",
            markersize=15,
            color="#ff7f0e",
            markeredgecolor="#333333",
            label="most confident frame",
        )
    axes.set_ylim(-0.03, 1.03)
    all_times = times_s + missing_times
    if all_times and max(all_times) > min(all_times):
        margin_s = 0.03 * (max(all_times) - min(all_times))
        axes.set_xlim(min(all_times) - margin_s, max(all_times) + margin_s)
    axes.set_xlabel("time in the video (s)")
    axes.set_ylabel("fake probability")
    if title:
        axes.set_title(title, fontsize=10)
    axes.grid(True, alpha=0.25)
    # Outside the axes, so the legend never hides a score; bbox_inches="tight" makes room for it.
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()


# --- gathering the evidence for one video -----------------------------------------------------


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
    from deepfake_cli.crops import crop_face, square_crop_box

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

    sampled_times_s = [frame.time_s for frame in result.frames]
    persons_by_id = {person.id: person for person in result.persons}
    plans: list[tuple[PersonEvidence, list[int], int]] = []
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
        person_evidence = PersonEvidence(person=person, scores=scores, timeline_png=timeline)
        evidence.persons.append(person_evidence)
        plans.append((person_evidence, strip_positions, confident_position))

    wanted_indices = sorted(
        {
            person_evidence.scores[position].frame_index
            for person_evidence, strip_positions, confident_position in plans
            for position in [*strip_positions, confident_position]
        }
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
    frame_by_index = dict(zip(sampled.frame_indices, sampled.frames, strict=True))

    preprocessing = model.preprocessing
    faces: list[FaceEvidence] = []
    for person_evidence, strip_positions, confident_position in plans:
        person_faces: dict[int, FaceEvidence] = {}
        for position in sorted({*strip_positions, confident_position}):
            score = person_evidence.scores[position]
            # Eye alignment needs landmarks, which results do not keep: these crops are upright.
            crop = crop_face(
                frame_by_index[score.frame_index],
                score.box_xyxy,
                size=preprocessing.input_size,
                margin_ratio=preprocessing.margin_ratio,
            )
            person_faces[position] = FaceEvidence(
                person_id=person_evidence.person.id,
                frame_index=score.frame_index,
                time_s=score.time_s,
                box_xyxy=score.box_xyxy,
                fake_probability=score.fake_probability,
                crop=crop,
            )
        person_evidence.strip = [person_faces[position] for position in strip_positions]
        confident = person_faces[confident_position]
        person_evidence.most_confident = confident
        person_evidence.frame_preview = frame_preview(
            frame_by_index[confident.frame_index],
            square_crop_box(confident.box_xyxy, preprocessing.margin_ratio),
        )
        faces.extend(person_faces.values())

    if model.config.variant == "backbone":
        evidence.attention_problem = (
            f"Model {model.provenance.name} is a plain backbone classifier without attention "
            "maps, so only the crops it scored are shown."
        )
        return evidence
    if result.model.sha256 and result.model.sha256 != getattr(model, "weights_sha256", ""):
        evidence.attention_problem = (
            f"The loaded model is not the one that scored this video ({result.model.name}, "
            f"sha256 {result.model.sha256[:12]}), so its attention maps would not explain "
            "these scores and are not shown."
        )
        return evidence
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
    return evidence


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
