"""Self-contained HTML reports: one page per video, and an index page for the batch.

Every picture is embedded as a base64 data URI, and the pages load nothing from anywhere, so a
report can be mailed, archived or opened offline, and printed. The video pages use no
JavaScript; the index has a few lines of it to sort the table by a click on a column heading,
and is already sorted by fake probability (highest first) for browsers without it.

Everything that comes from the data (file names are user input, error sentences quote them,
model names come from weights files) passes through `text()`, which escapes it, quotes
included. Page skeletons are `string.Template`s, so there is no template engine to install.

`write_reports` is the entry point: results in, pages out (`deepfake_cli.report.evidence`
gathers the crops, attention maps and timelines each page shows).
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from string import Template
from typing import TYPE_CHECKING
from urllib.parse import quote

from deepfake_cli import __version__
from deepfake_cli.errors import UsageError
from deepfake_cli.files import write_atomically
from deepfake_cli.report.evidence import (
    FaceEvidence,
    PersonEvidence,
    VideoEvidence,
    attention_heatmaps,
    encode_jpeg,
    gather_evidence,
    map_colour,
    save_attention,
)
from deepfake_cli.results import (
    STATUS_ERROR,
    STATUS_NO_FACE,
    STATUS_OK,
    VERDICT_FAKE,
    ModelInfo,
    VideoResult,
)

if TYPE_CHECKING:
    import numpy as np

    from deepfake_cli.model.config import Provenance
    from deepfake_cli.model.mat import MATDetector

INDEX_NAME = "index.html"
#: Characters of a video's name kept in its page's file name (a hash keeps names unique).
PAGE_NAME_LENGTH = 48
#: Recomputed crop scores further than this from the scan's are pointed out on the page.
RESCORE_TOLERANCE = 0.02

DEMO_WARNING = (
    "Demo model: these weights only show the tool working. They have not been validated on any "
    "deepfake benchmark, and their verdicts say nothing about whether a video is fake."
)


def text(value: object) -> str:
    """Any value as HTML text: escaped (quotes too), lone surrogates shown as `\\udcXX`.

    A file name that is not valid UTF-8 reaches Python as lone surrogates, which no UTF-8 page
    can hold; they are written as the same backslash escapes the JSON output uses.
    """
    as_text = str(value).encode("utf-8", "backslashreplace").decode("utf-8")
    return html.escape(as_text, quote=True)


def page_name(video_path: str) -> str:
    """The file name of a video's page: a readable, filesystem-safe stem plus a short hash.

    The hash of the full path keeps two `clip.mp4` from different folders apart.
    """
    stem = PurePath(video_path).name or "video"
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._") or "video"
    digest = hashlib.sha1(video_path.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    return f"{readable[:PAGE_NAME_LENGTH]}-{digest}.html"


def _data_uri(data: bytes, mime_type: str) -> str:
    return f"data:{mime_type};base64,{base64.b64encode(data).decode('ascii')}"


def _image(data: bytes, mime_type: str, *, alt: str, css_class: str) -> str:
    return f'<img class="{css_class}" src="{_data_uri(data, mime_type)}" alt="{text(alt)}">'


def _jpeg(image_rgb: np.ndarray, *, alt: str, css_class: str) -> str:
    return _image(encode_jpeg(image_rgb), "image/jpeg", alt=alt, css_class=css_class)


def _percent(probability: float | None) -> str:
    return "—" if probability is None else f"{probability * 100:.1f}%"


def _seconds(value_s: float) -> str:
    return f"{value_s:.2f} s"


# --- the shared page skeleton -----------------------------------------------------------------

_STYLE = """
:root { --fake: #b3261e; --real: #1b6e3a; --none: #6b5b00; --muted: #5f6368; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #202124;
  max-width: 1100px; margin: 0 auto; padding: 1.5rem; }
h1 { font-size: 1.5rem; margin: 0 0 .2rem; overflow-wrap: anywhere; }
h2 { font-size: 1.2rem; margin: 2rem 0 .6rem; border-bottom: 1px solid #ddd;
  padding-bottom: .2rem; }
h3 { font-size: 1rem; margin: 1.2rem 0 .4rem; }
.path, .muted { color: var(--muted); overflow-wrap: anywhere; }
.verdict { border: 3px solid currentColor; border-radius: 10px; padding: .8rem 1.2rem;
  margin: 1rem 0; display: flex; gap: 2rem; align-items: baseline; flex-wrap: wrap; }
.verdict .word { font-size: 3rem; font-weight: 800; letter-spacing: .04em; }
.verdict .score { font-size: 2.2rem; font-weight: 700; }
.verdict .label { font-size: 1rem; color: #202124; }
.verdict-FAKE { color: var(--fake); } .verdict-REAL { color: var(--real); }
.verdict-NONE { color: var(--none); }
.warning { background: #fff4e5; border-left: 5px solid #e37400; padding: .6rem 1rem;
  margin: 1rem 0; }
.note { background: #f1f3f4; border-left: 5px solid #9aa0a6; padding: .5rem 1rem; margin: .8rem 0; }
table { border-collapse: collapse; margin: .5rem 0; }
th, td { text-align: left; padding: .25rem .8rem .25rem 0; vertical-align: top; }
table.grid th, table.grid td { border-bottom: 1px solid #e0e0e0; padding: .35rem .7rem; }
td.number, th.number { text-align: right; font-variant-numeric: tabular-nums; }
code, .hash { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: .88em;
  overflow-wrap: anywhere; }
.strip { display: flex; flex-wrap: wrap; gap: .7rem; }
figure { margin: 0; break-inside: avoid; page-break-inside: avoid; }
figure img { display: block; }
figcaption { font-size: .8rem; color: var(--muted); max-width: 12rem; }
img.crop, img.overlay, img.heatmap { width: 8rem; height: 8rem; image-rendering: auto;
  border: 1px solid #ccc; }
img.overlay { margin-top: 2px; }
img.frame { max-width: 100%; width: 26rem; border: 1px solid #ccc; }
img.timeline { max-width: 100%; width: 800px; }
.legend { list-style: none; padding: 0; display: flex; flex-wrap: wrap; gap: 1rem;
  margin: .3rem 0; }
.swatch { font-size: 1.3rem; line-height: 1; vertical-align: -.15rem; }
.person { break-before: auto; }
.FAKE { color: var(--fake); font-weight: 700; } .REAL { color: var(--real); font-weight: 700; }
.NO_FACE { color: var(--none); font-weight: 700; } .ERROR { color: #8e24aa; font-weight: 700; }
th[data-sort] { cursor: pointer; text-decoration: underline dotted; }
footer { margin-top: 2.5rem; font-size: .8rem; color: var(--muted); }
@media print {
  body { max-width: none; padding: 0; font-size: 11pt; }
  a { color: inherit; text-decoration: none; }
  .verdict, .swatch, .warning { print-color-adjust: exact; -webkit-print-color-adjust: exact; }
  h2 { break-after: avoid; }
}
"""

_PAGE = Template(
    """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="mattn $version">
<title>$title</title>
<style>$style</style>
</head>
<body>
$body
<footer>Written by mattn $version on $written_at. Self-contained: nothing in this page is
loaded from the network.</footer>
</body>
</html>
"""
)


def _page(title: str, body: str) -> str:
    return _PAGE.substitute(
        version=text(__version__),
        title=text(title),
        style=_STYLE,
        body=body,
        written_at=text(time.strftime("%Y-%m-%d %H:%M %Z")),
    )


# --- one video's page -------------------------------------------------------------------------


def _status_word(result: VideoResult) -> str:
    if result.status == STATUS_ERROR:
        return "ERROR"
    if result.status == STATUS_NO_FACE:
        return "NO FACE"
    return result.verdict or "—"


def _verdict_block(result: VideoResult) -> str:
    if result.status == STATUS_OK:
        return (
            f'<section class="verdict verdict-{text(result.verdict)}">'
            f'<span class="word">{text(result.verdict)}</span>'
            f'<span><span class="score">{_percent(result.fake_probability)}</span> '
            f'<span class="label">fake probability (threshold {result.threshold * 100:g}%)</span>'
            "</span></section>"
        )
    return (
        f'<section class="verdict verdict-NONE"><span class="word">{_status_word(result)}</span>'
        '<span class="label">no verdict and no score</span></section>'
    )


def _rows(pairs: Iterable[tuple[str, str]]) -> str:
    """<tr>s of (label, already escaped HTML value)."""
    return "".join(f"<tr><th>{text(label)}</th><td>{value}</td></tr>" for label, value in pairs)


def _model_rows(model: ModelInfo, provenance: Provenance | None) -> list[tuple[str, str]]:
    if model.demo:
        status = '<strong class="FAKE">demo model, not validated on deepfake benchmarks</strong>'
    else:
        status = (
            "not marked as a demo (its provenance, shown by <code>mattn weights info</code>, "
            "says what it was trained and evaluated on)"
        )
    rows = [
        ("Model", text(model.name)),
        ("Weights sha256", f'<span class="hash">{text(model.sha256)}</span>'),
        ("Status", status),
    ]
    if provenance is not None:
        rows.append(("Trained on", text(provenance.trained_on)))
        rows.append(("Source", text(provenance.source)))
        if provenance.metrics:
            metrics = ", ".join(f"{name} {value}" for name, value in provenance.metrics.items())
            rows.append(("Recorded metrics", text(metrics)))
    return rows


def _video_fact_rows(evidence: VideoEvidence) -> list[tuple[str, str]]:
    result = evidence.result
    info = evidence.video_info
    rows: list[tuple[str, str]] = []
    if info is not None:
        rows += [
            (
                "Duration",
                text(f"{info.duration_s:.2f} s ({info.num_frames} frames at {info.fps:.3g} fps)"),
            ),
            ("Resolution", text(f"{info.width} × {info.height} pixels")),
            ("Codec", text(info.codec or "unknown")),
        ]
        if info.rotation:
            rows.append(("Rotation", text(f"{info.rotation}° (frames shown upright)")))
    else:
        rows.append(
            ("Video", "could not be read again, so its duration, size and codec are unknown")
        )
    sampled = len(result.frames) if result.frames is not None else None
    frames_text = f"{result.frames_used} with a face"
    if sampled is not None:
        frames_text += f", of {sampled} sampled"
    rows.append(("Frames used", text(frames_text)))
    rows.append(("Scan time", text(_seconds(result.seconds))))
    return rows


def _meaning(result: VideoResult) -> str:
    """What the score means and does not mean, in plain words."""
    items: list[str] = []
    if result.status == STATUS_NO_FACE:
        items.append(
            "No face was found in the sampled frames, so the model judged nothing. This is "
            "<strong>not</strong> a REAL verdict: mattn only looks at faces."
        )
    else:
        sampled = len(result.frames) if result.frames else result.frames_used
        items += [
            f"<strong>It is a model's estimate.</strong> {_percent(result.fake_probability)} is "
            f"what model {text(result.model.name)} computed from the faces in {sampled} sampled "
            f"frames, combined by the {text(result.aggregate)} rule (a video is as fake as its "
            "most-fake person). Other weights, other frames or a re-encoded copy of the video "
            "can give another number.",
            f"<strong>FAKE</strong> means the score reached the threshold "
            f"({result.threshold:g}): the model found patterns like those it learned from "
            "manipulated faces. It is a reason to look closer, not proof of manipulation.",
            "<strong>REAL is the absence of evidence, not evidence of authenticity.</strong> The "
            "model did not find what it was trained to find. Manipulation methods unlike those "
            "in its training data, heavy compression, small or blurred faces, and edits that do "
            "not touch a face (voice, cuts, context) can all go unnoticed.",
            "The coloured maps show <strong>where the model looked</strong> when it scored a "
            "crop; they are not a map of manipulated pixels.",
        ]
    if result.model.demo:
        items.append(f"<strong>{text(DEMO_WARNING)}</strong>")
    body = "".join(f"<li>{item}</li>" for item in items)
    return f'<section><h2>What this score means</h2><ul class="meaning">{body}</ul></section>'


def _legend(num_attentions: int) -> str:
    entries = "".join(
        f'<li><span class="swatch" style="color: rgb{map_colour(map_number)}">■</span> '
        f"map {map_number + 1}</li>"
        for map_number in range(num_attentions)
    )
    return (
        f'<ul class="legend" aria-label="attention map colours">{entries}</ul>'
        '<p class="muted">Each colour is one of the model\'s attention maps, tinting where it is '
        "strongest, with its outline where it reaches half its peak. MAT learns its maps without "
        "labels: a map is not a named facial part, but the same colour is the same map in "
        "every crop.</p>"
    )


def _face_caption(face: FaceEvidence) -> str:
    return (
        f"frame {face.frame_index} · {face.time_s:.2f} s<br>"
        f"fake probability {_percent(face.fake_probability)}"
    )


def _face_figure(face: FaceEvidence) -> str:
    label = f"person {face.person_id}, frame {face.frame_index}"
    pictures = _jpeg(face.crop, alt=f"face crop, {label}", css_class="crop")
    if face.overlay is not None:
        pictures += _jpeg(face.overlay, alt=f"attention overlay, {label}", css_class="overlay")
    return f"<figure>{pictures}<figcaption>{_face_caption(face)}</figcaption></figure>"


def _most_confident_section(person: PersonEvidence) -> str:
    face = person.most_confident
    if face is None:
        return ""
    direction = "most fake" if person.person.verdict == VERDICT_FAKE else "least fake"
    label = f"person {face.person_id}, frame {face.frame_index}"
    figures = []
    if person.frame_preview is not None:
        figures.append(
            "<figure>"
            + _jpeg(person.frame_preview, alt=f"whole frame, {label}", css_class="frame")
            + "<figcaption>The whole frame; the red square is the crop the model saw."
            "</figcaption></figure>"
        )
    figures.append(_face_figure(face))
    if face.attention_maps is not None:
        for map_number, heatmap in enumerate(attention_heatmaps(face.crop, face.attention_maps)):
            swatch = f'<span class="swatch" style="color: rgb{map_colour(map_number)}">■</span>'
            figures.append(
                "<figure>"
                + _jpeg(
                    heatmap, alt=f"attention map {map_number + 1}, {label}", css_class="heatmap"
                )
                + f"<figcaption>{swatch} map {map_number + 1} alone (bright = strong)"
                "</figcaption></figure>"
            )
    return (
        f"<h3>The frame where the model was most confident ({direction}): frame "
        f"{face.frame_index}, {face.time_s:.2f} s, {_percent(face.fake_probability)}</h3>"
        f'<div class="strip">{"".join(figures)}</div>'
    )


def _person_section(person: PersonEvidence, num_attentions: int) -> str:
    summary = person.person
    timeline = _image(
        person.timeline_png,
        "image/png",
        alt=f"fake probability per frame of person {summary.id}",
        css_class="timeline",
    )
    parts = [
        f'<section class="person"><h2>Person {summary.id}: '
        f'<span class="{text(summary.verdict)}">{text(summary.verdict)}</span>, '
        f"{_percent(summary.fake_probability)} over {summary.frames} frames</h2>",
        "<h3>Fake probability per sampled frame</h3>",
        timeline,
    ]
    if person.strip:
        parts.append(
            f"<h3>Face crops: {len(person.strip)} of {len(person.scores)}, evenly spaced"
            + (", with the model's attention" if num_attentions else "")
            + "</h3>"
        )
        if num_attentions:
            parts.append(_legend(num_attentions))
        parts.append(
            '<div class="strip">' + "".join(_face_figure(face) for face in person.strip) + "</div>"
        )
    parts.append(_most_confident_section(person))
    parts.append("</section>")
    return "".join(parts)


def _notes(evidence: VideoEvidence, model_aligns: bool) -> str:
    notes = []
    if evidence.crops_problem:
        notes.append(f"No face crops are shown: {text(evidence.crops_problem)}")
    if evidence.attention_problem:
        notes.append(text(evidence.attention_problem))
    if evidence.persons and evidence.persons[0].strip and model_aligns:
        notes.append(
            "This model scores eye-aligned crops, but results do not keep the face landmarks, "
            "so the crops here are upright: the attention shown is for these crops."
        )
    difference = evidence.rescore_difference
    if difference is not None and difference > RESCORE_TOLERANCE:
        notes.append(
            f"Scoring the crops shown here again gave fake probabilities up to "
            f"{difference * 100:.1f} points away from the scan's (another device or precision, "
            "or a crop cut differently); the captions give the scan's values, the maps are "
            "from this run."
        )
    return "".join(f'<p class="note">{note}</p>' for note in notes)


def render_video_page(
    evidence: VideoEvidence,
    *,
    provenance: Provenance | None = None,
    align: bool = False,
    index_name: str | None = INDEX_NAME,
) -> str:
    """One video's self-contained HTML page (no JavaScript).

    `provenance` adds what the weights file says about itself (pass it only when the loaded
    model is the one that scored the video); `align` says the model expects eye-aligned crops.
    """
    result = evidence.result
    name = PurePath(result.path).name or result.path
    parts = []
    if index_name:
        parts.append(f'<p class="muted"><a href="{text(quote(index_name))}">← all videos</a></p>')
    parts += [
        f"<h1>{text(name)}</h1>",
        f'<p class="path">{text(result.path)}</p>',
        _verdict_block(result),
    ]
    if result.model.demo:
        parts.append(f'<p class="warning"><strong>{text(DEMO_WARNING)}</strong></p>')
    if result.status == STATUS_ERROR:
        parts.append(
            f'<p class="note">{text(result.error or "The video could not be scanned.")}</p>'
        )
    judged = [
        ("Threshold", text(f"{result.threshold:g} (FAKE at or above)")),
        ("Aggregation", text(result.aggregate)),
        ("Persons", text(len(result.persons))),
    ]
    parts += [
        "<section><h2>How it was judged</h2><table>",
        _rows(judged + _model_rows(result.model, provenance)),
        "</table></section>",
        "<section><h2>The video</h2><table>",
        _rows(_video_fact_rows(evidence)),
        "</table></section>",
        _meaning(result),
        _notes(evidence, align),
    ]
    if result.persons:
        person_rows = "".join(
            f'<tr><td>{person.id}</td><td class="{text(person.verdict)}">{text(person.verdict)}'
            f'</td><td class="number">{_percent(person.fake_probability)}</td>'
            f'<td class="number">{person.frames}</td></tr>'
            for person in result.persons
        )
        parts.append(
            '<section><h2>Persons</h2><table class="grid"><thead><tr><th>Person</th>'
            '<th>Verdict</th><th class="number">Fake probability</th>'
            '<th class="number">Frames</th></tr></thead>'
            f"<tbody>{person_rows}</tbody></table></section>"
        )
    parts += [_person_section(person, evidence.num_attentions) for person in evidence.persons]
    return _page(f"mattn: {_status_word(result)} {name}", "\n".join(part for part in parts if part))


# --- the index ----------------------------------------------------------------------------------


@dataclass
class IndexEntry:
    """One video's row in the index."""

    result: VideoResult
    page: str | None  # file name of its page, None when there is none (a failed video)
    problem: str | None = None  # why its page lacks crops, if it does


_SORT_SCRIPT = """
// Sort the table by the clicked column (numbers highest first, text A to Z); a second click
// reverses. Cells carry their sort keys in data-value, so numbers sort as numbers and missing
// scores sort below every score.
document.querySelectorAll("th[data-sort]").forEach(function (heading, column) {
  heading.addEventListener("click", function () {
    var body = heading.closest("table").tBodies[0];
    var numeric = heading.dataset.sort === "number";
    var descending = heading.dataset.order ? heading.dataset.order !== "desc" : numeric;
    heading.dataset.order = descending ? "desc" : "asc";
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = a.cells[column].dataset.value, y = b.cells[column].dataset.value;
      if (numeric) { x = x === "" ? -1 : parseFloat(x); y = y === "" ? -1 : parseFloat(y); }
      var order = x < y ? -1 : x > y ? 1 : 0;
      return descending ? -order : order;
    });
    rows.forEach(function (row) { body.appendChild(row); });
  });
});
"""


def _sort_key(entry: IndexEntry) -> tuple[int, float, str]:
    result = entry.result
    # Highest fake probability first; then videos without a face; failed videos last.
    rank = {STATUS_OK: 0, STATUS_NO_FACE: 1}.get(result.status, 2)
    return (rank, -(result.fake_probability or 0.0), result.path)


def _index_row(entry: IndexEntry) -> str:
    result = entry.result
    name = PurePath(result.path).name or result.path
    link = text(name)
    if entry.page:
        link = f'<a href="{text(quote(entry.page))}">{link}</a>'
    word = _status_word(result)
    probability = "" if result.fake_probability is None else f"{result.fake_probability:.6f}"
    note = ""
    if result.status == STATUS_ERROR:
        note = text(result.error or "The video could not be scanned.")
    elif result.status == STATUS_NO_FACE:
        note = "No face found in the sampled frames."
    elif entry.problem:
        note = text(f"No crops shown: {entry.problem}")
    return (
        f'<tr class="status-{text(result.status)}">'
        f'<td data-value="{text(result.path)}">{link}<br><span class="path">{text(result.path)}'
        "</span></td>"
        f'<td data-value="{text(word)}" class="{text(word.replace(" ", "_"))}">{text(word)}</td>'
        f'<td class="number" data-value="{probability}">{_percent(result.fake_probability)}</td>'
        f'<td class="number" data-value="{len(result.persons)}">{len(result.persons)}</td>'
        f'<td class="number" data-value="{result.frames_used}">{result.frames_used}</td>'
        f'<td data-value="{note}">{note}</td></tr>'
    )


def _distinct_models(results: Iterable[VideoResult]) -> list[ModelInfo]:
    models: dict[str, ModelInfo] = {}
    for result in results:
        models.setdefault(result.model.sha256, result.model)
    return list(models.values())


def render_index(entries: Sequence[IndexEntry]) -> str:
    """The batch's index page: one row per video, highest fake probability first."""
    ordered = sorted(entries, key=_sort_key)
    counts = {word: 0 for word in ("FAKE", "REAL", "NO FACE", "ERROR")}
    for entry in ordered:
        word = _status_word(entry.result)
        counts[word] = counts.get(word, 0) + 1
    summary = ", ".join(f"{count} {word}" for word, count in counts.items() if count)
    parts = [
        "<h1>mattn scan report</h1>",
        f'<p class="muted">{len(ordered)} video{"" if len(ordered) == 1 else "s"}'
        f"{': ' + text(summary) if summary else ''}.</p>",
    ]
    models = _distinct_models(entry.result for entry in ordered)
    for model in models:
        parts.append(
            f"<p>Model <strong>{text(model.name)}</strong> "
            f'<span class="hash">sha256 {text(model.sha256)}</span></p>'
        )
    if any(model.demo for model in models):
        parts.append(f'<p class="warning"><strong>{text(DEMO_WARNING)}</strong></p>')
    thresholds = sorted({entry.result.threshold for entry in ordered})
    if thresholds:
        parts.append(
            f"<p>A video is FAKE when its fake probability is at or above the threshold "
            f"({text(', '.join(f'{value:g}' for value in thresholds))}). REAL is the absence of "
            "evidence of manipulation, not proof of authenticity; each video's page says more.</p>"
        )
    rows = "".join(_index_row(entry) for entry in ordered)
    parts.append(
        '<table class="grid" id="videos"><thead><tr>'
        '<th data-sort="text">Video</th><th data-sort="text">Verdict</th>'
        '<th data-sort="number" class="number">Fake probability</th>'
        '<th data-sort="number" class="number">Persons</th>'
        '<th data-sort="number" class="number">Frames used</th>'
        '<th data-sort="text">Note</th></tr></thead>'
        f"<tbody>{rows}</tbody></table>"
        '<p class="muted">Sorted by fake probability, highest first; click a column heading '
        "to sort by it.</p>"
        f"<script>{_SORT_SCRIPT}</script>"
    )
    return _page("mattn scan report", "\n".join(parts))


# --- writing a batch's reports ------------------------------------------------------------------


@dataclass
class ReportSummary:
    """What `build_reports` wrote, and the videos whose pages lack crops (one sentence each)."""

    index_path: Path
    pages: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    attention_files: list[Path] = field(default_factory=list)


def prepare_folder(folder: Path, purpose: str) -> None:
    """Create `folder` (for `purpose`, named in the error) or say in one sentence why not."""
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"Cannot write {purpose} to {folder}: it is a file, not a folder.")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(
            f"Cannot write {purpose} to {folder}: {error.strerror or error}."
        ) from None


def build_reports(
    results: Sequence[VideoResult],
    output_dir: Path,
    *,
    model: MATDetector,
    save_attention_dir: Path | None = None,
) -> ReportSummary:
    """Write one page per scanned video and the index into `output_dir` (see `write_reports`)."""
    output_dir = Path(output_dir)
    prepare_folder(output_dir, "the report")
    if save_attention_dir is not None:
        prepare_folder(Path(save_attention_dir), "attention maps")
    summary = ReportSummary(index_path=output_dir / INDEX_NAME)
    sha256 = getattr(model, "weights_sha256", "")
    provenance = getattr(model, "provenance", None)
    align = bool(getattr(model.preprocessing, "align", False))
    used_names: set[str] = set()
    entries: list[IndexEntry] = []
    for result in results:
        if result.status == STATUS_ERROR:
            entries.append(IndexEntry(result=result, page=None))
            continue
        name = page_name(result.path)
        while name in used_names:  # the same path twice (a resumed scan): keep both pages
            name = name.removesuffix(".html") + "-1.html"
        used_names.add(name)
        evidence = gather_evidence(result, model)
        same_model = bool(sha256) and result.model.sha256 == sha256
        page = render_video_page(
            evidence, provenance=provenance if same_model else None, align=align
        )
        page_path = output_dir / name
        write_atomically(page_path, page)
        summary.pages.append(page_path)
        if evidence.crops_problem:
            summary.problems.append(evidence.crops_problem)
        if save_attention_dir is not None:
            summary.attention_files += save_attention(
                evidence, Path(save_attention_dir) / name.removesuffix(".html")
            )
        entries.append(IndexEntry(result=result, page=name, problem=evidence.crops_problem))
    write_atomically(summary.index_path, render_index(entries))
    return summary


def write_reports(
    results: list[VideoResult],
    output_dir: Path,
    *,
    model: MATDetector,
    save_attention_dir: Path | None = None,
) -> Path:
    """Self-contained HTML reports for scanned videos; returns the path of `index.html`.

    One page per video that was scanned (failed videos appear in the index with their error),
    built from the results' per-frame details and the videos themselves, which must still be
    readable (a page says so when one is not). `model` is the detector that scored them: its
    attention maps are recomputed on the crops shown. With `save_attention_dir`, each shown
    face's raw maps (`.npy`, (M, h, w)) and overlay (`.png`) go to a folder per video there.

    Raises:
        UsageError: `output_dir` or `save_attention_dir` cannot be created or written.
    """
    return build_reports(
        results, output_dir, model=model, save_attention_dir=save_attention_dir
    ).index_path
