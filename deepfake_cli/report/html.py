"""Self-contained HTML reports: one page per video, and an index page for the batch.

Every picture is embedded as a base64 data URI and the stylesheet is inlined, so the pages load
nothing from anywhere: a report can be mailed, archived or opened offline, and printed. The
video pages use no JavaScript; the index has a few lines of it to sort the table by a click on
a column heading, and is already sorted by fake probability (highest first) for browsers
without it.

The pages are Jinja2 templates in `templates/` (package data, beside the stylesheet and the
script they inline). Autoescaping is on, so everything a template prints from the data (file
names are user input, error sentences quote them, model names come from weights files) is
escaped, quotes included; `_page_text` is the one place that says how.

`write_reports` is the entry point: results in, pages out (`deepfake_cli.report.evidence`
gathers the crops, attention maps and timelines each page shows, `deepfake_cli.report.pictures`
draws them).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import html
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import TYPE_CHECKING
from urllib.parse import quote

import jinja2
from markupsafe import Markup

from deepfake_cli import __version__
from deepfake_cli.errors import UsageError
from deepfake_cli.files import write_atomically
from deepfake_cli.report.evidence import VideoEvidence, gather_evidence, save_attention
from deepfake_cli.report.pictures import attention_heatmaps, encode_jpeg, map_colour
from deepfake_cli.report.table import unjudged_note
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


def page_name(video_path: str) -> str:
    """The file name of a video's page: a readable, filesystem-safe stem plus a short hash.

    The hash of the full path keeps two `clip.mp4` from different folders apart.
    """
    stem = PurePath(video_path).name or "video"
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._") or "video"
    digest = hashlib.sha1(video_path.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    return f"{readable[:PAGE_NAME_LENGTH]}-{digest}.html"


# --- the templates ------------------------------------------------------------------------------


def _page_text(value: object) -> Markup:
    """What a template prints for `value`: escaped HTML text (quotes too), ready for the page.

    The environment's `finalize`, so it sees every printed value before autoescaping does, which
    then leaves the result alone. Markup (a macro's output, HTML a template wrote itself) passes
    as it is. A file name that is not valid UTF-8 reaches Python as lone surrogates, which no
    UTF-8 page can hold (escaping alone would keep them); they are written as the same backslash
    escapes the JSON output uses, then escaped as `html.escape` does.
    """
    if hasattr(value, "__html__"):
        return Markup(value.__html__())
    as_text = str(value).encode("utf-8", "backslashreplace").decode("utf-8")
    return Markup(html.escape(as_text, quote=True))


def _data_uri(data: bytes, mime_type: str) -> str:
    return f"data:{mime_type};base64,{base64.b64encode(data).decode('ascii')}"


def _jpeg_uri(image_rgb: np.ndarray) -> str:
    return _data_uri(encode_jpeg(image_rgb), "image/jpeg")


def _png_uri(png: bytes) -> str:
    return _data_uri(png, "image/png")


def _percent(probability: float | None) -> str:
    return "—" if probability is None else f"{probability * 100:.1f}%"


@functools.cache
def _templates() -> jinja2.Environment:
    """The page templates, read from the installed package (a wheel carries them as data)."""
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("deepfake_cli.report", "templates"),
        autoescape=jinja2.select_autoescape(["html.j2"]),
        finalize=_page_text,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters.update(percent=_percent, jpeg_uri=_jpeg_uri, png_uri=_png_uri, url=quote)
    environment.globals.update(
        map_colour=map_colour,
        attention_heatmaps=attention_heatmaps,
        demo_warning=DEMO_WARNING,
        verdict_fake=VERDICT_FAKE,
        version=__version__,
    )
    return environment


def _render(template_name: str, **context: object) -> str:
    template = _templates().get_template(template_name)
    return template.render(written_at=time.strftime("%Y-%m-%d %H:%M %Z"), **context)


def _status_word(result: VideoResult) -> str:
    if result.status == STATUS_ERROR:
        return "ERROR"
    if result.status == STATUS_NO_FACE:
        return "NO FACE"
    return result.verdict or "—"


# --- one video's page -------------------------------------------------------------------------


def _notes(evidence: VideoEvidence, model_aligns: bool) -> list[str]:
    """Sentences on what the page lacks, or shows differently from the scan."""
    notes = []
    if evidence.crops_problem:
        notes.append(f"No face crops are shown: {evidence.crops_problem}")
    if evidence.attention_problem:
        notes.append(evidence.attention_problem)
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
    return notes


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
    return _render(
        "video.html.j2",
        evidence=evidence,
        result=result,
        name=name,
        status_word=_status_word(result),
        scanned=result.status == STATUS_OK,
        failed=result.status == STATUS_ERROR,
        no_face=result.status == STATUS_NO_FACE,
        # The frames the score was computed from, as "What this score means" counts them.
        frames_judged=len(result.frames) if result.frames else result.frames_used,
        provenance=provenance,
        notes=_notes(evidence, align),
        index_name=index_name,
    )


# --- the index ----------------------------------------------------------------------------------


@dataclass
class IndexEntry:
    """One video's row in the index."""

    result: VideoResult
    page: str | None  # file name of its page, None when there is none (a failed video)
    problem: str | None = None  # why its page lacks crops, if it does


@dataclass(frozen=True)
class _IndexRow:
    """What the index template shows of an entry besides the result's own fields."""

    entry: IndexEntry
    name: str  # the video's file name
    word: str  # FAKE, REAL, NO FACE or ERROR
    note: str  # one sentence on why the video has no verdict or no crops, or ""


def _sort_key(entry: IndexEntry) -> tuple[int, float, str]:
    result = entry.result
    # Highest fake probability first; then videos without a face; failed videos last.
    rank = {STATUS_OK: 0, STATUS_NO_FACE: 1}.get(result.status, 2)
    return (rank, -(result.fake_probability or 0.0), result.path)


def _index_row(entry: IndexEntry) -> _IndexRow:
    result = entry.result
    note = ""
    if result.status == STATUS_ERROR:
        note = result.error or "The video could not be scanned."
    elif result.status == STATUS_NO_FACE and result.persons:
        note = f"No face to judge: {unjudged_note(result.persons, result)}."
    elif result.status == STATUS_NO_FACE:
        note = "No face found in the sampled frames."
    elif entry.problem:
        note = f"No crops shown: {entry.problem}"
    name = PurePath(result.path).name or result.path
    return _IndexRow(entry=entry, name=name, word=_status_word(result), note=note)


def render_index(entries: Sequence[IndexEntry]) -> str:
    """The batch's index page: one row per video, highest fake probability first."""
    rows = [_index_row(entry) for entry in sorted(entries, key=_sort_key)]
    counts = {word: 0 for word in ("FAKE", "REAL", "NO FACE", "ERROR")}
    for row in rows:
        counts[row.word] = counts.get(row.word, 0) + 1
    models: dict[str, ModelInfo] = {}
    for row in rows:
        models.setdefault(row.entry.result.model.sha256, row.entry.result.model)
    thresholds = sorted({row.entry.result.threshold for row in rows})
    return _render(
        "index.html.j2",
        rows=rows,
        summary=", ".join(f"{count} {word}" for word, count in counts.items() if count),
        models=list(models.values()),
        thresholds=", ".join(f"{value:g}" for value in thresholds),
    )


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
