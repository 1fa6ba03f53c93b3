"""The pictures a report shows: attention overlays and heat maps, the whole frame, timelines.

Pure functions of arrays and scores, so a test can check them without a model or a video.
Overlays are drawn with OpenCV, timelines with matplotlib's Agg canvas (no display, and no
change to pyplot's global backend). Everything here returns arrays and PNG/JPEG bytes; putting
them into pages is `deepfake_cli.report.html`'s job.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:
    from deepfake_cli.report.evidence import FrameScore

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
# Quality of the JPEG photos in a page: no visible loss, a tenth of a PNG's size.
JPEG_QUALITY = 90


# --- attention maps on a crop -------------------------------------------------------------


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


# --- the frame and the score over time -------------------------------------------------------


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


# --- encoding -----------------------------------------------------------------------------------


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
