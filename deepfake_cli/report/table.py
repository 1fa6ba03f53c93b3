"""Output for people: a rich table of verdicts (the progress bar is `deepfake_cli.progress`).

Everything taken from the data (paths, error sentences, model names) goes into `rich.text.Text`
objects, never into markup strings, so a file called `[bold]x.mp4` prints as it is named.
Colour follows the console: rich drops colours by itself when the output is not a terminal or
when NO_COLOR is set (the verdict words carry the meaning, colour only repeats it).

The table fits the console's width (80 columns included): the number columns keep their width,
and the file column gets the rest. A path too long for it is shortened from the middle, folders
first (`/data/…/fake/clip.mp4`), so it is never wrapped in the middle of a name; the folder is
dimmed so the file name stands out. A short note under the path says what else a reader should
know: why the video failed, which persons were not judged, how its frames were read.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Sequence

from rich.cells import cell_len
from rich.console import Console, Group, RenderableType
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from deepfake_cli.aggregate import REASON_FACE_TOO_SMALL, REASON_TOO_FEW_FRAMES
from deepfake_cli.results import (
    CHEAPER_IN_ORDER,
    STATUS_ERROR,
    STATUS_NO_FACE,
    VERDICT_FAKE,
    ModelInfo,
    PersonResult,
    VideoResult,
)

#: Shown instead of a number where there is none (error, no face).
NO_VALUE = "—"
#: Marks where the middle of a shortened path was left out.
ELLIPSIS = "…"
DEMO_WARNING = "DEMO MODEL, not validated on deepfake benchmarks"
#: Characters of the weights' sha256 shown in the caption: enough to tell weights apart.
SHA256_SHOWN = 12
#: The file column never gets narrower than this, even on a very narrow console.
MIN_FILE_WIDTH = 16
#: Spaces before the note under a path.
NOTE_INDENT = 2
#: The decoder mattn reads with unless a video needs another (or another costs less): only a
#: needed other is noted.
USUAL_DECODER = "decord"

_VERDICT_STYLES = {
    "FAKE": "bold red",
    "REAL": "green",
    "NO FACE": "yellow",
    "ERROR": "magenta",
}
_FOLDER_STYLE = "dim"
_NOTE_STYLE = "italic"

#: The columns after the file; their headers wrap between words on a narrow console.
_NUMBER_HEADERS: tuple[str, ...] = ("Verdict", "Fake prob.", "Persons", "Frames", "Time (s)")


def _verdict_label(result: VideoResult) -> str:
    if result.status == STATUS_ERROR:
        return "ERROR"
    if result.status == STATUS_NO_FACE:
        return "NO FACE"
    return result.verdict or NO_VALUE


def _percent(fake_probability: float | None) -> str:
    return NO_VALUE if fake_probability is None else f"{fake_probability * 100:.1f}%"


def model_caption(model: ModelInfo) -> str:
    """'Model: NAME (sha256 prefix)', with the demo warning when the weights are a demo."""
    caption = f"Model: {model.name} ({model.sha256[:SHA256_SHOWN]})"
    if model.demo:
        caption += f" — {DEMO_WARNING}"
    return caption


def _distinct_models(results: Iterable[VideoResult]) -> list[ModelInfo]:
    # One scan uses one model, but a resumed scan could mix runs; name every model then.
    models: list[ModelInfo] = []
    for result in results:
        if result.model not in models:
            models.append(result.model)
    return models


def summary_line(results: list[VideoResult]) -> str:
    """'3 videos: 1 FAKE, 1 REAL, 1 no face, 0 errors' — the table's bottom line."""
    fake_count = sum(result.verdict == VERDICT_FAKE for result in results)
    no_face_count = sum(result.status == STATUS_NO_FACE for result in results)
    error_count = sum(result.status == STATUS_ERROR for result in results)
    real_count = len(results) - fake_count - no_face_count - error_count
    video_word = "video" if len(results) == 1 else "videos"
    error_word = "error" if error_count == 1 else "errors"
    return (
        f"{len(results)} {video_word}: {fake_count} FAKE, {real_count} REAL, "
        f"{no_face_count} no face, {error_count} {error_word}"
    )


# --- the note under a path --------------------------------------------------------------------


def unjudged_note(persons: Sequence[PersonResult], result: VideoResult) -> str:
    """'2 faces under 49 px, 1 seen in under 25% of frames' for the persons not judged."""
    reasons = Counter(person.reason for person in persons if not person.judged)
    phrases = []
    if small := reasons.pop(REASON_FACE_TOO_SMALL, 0):
        faces = "face" if small == 1 else "faces"
        limit = "too small" if result.min_face_px is None else f"under {result.min_face_px} px"
        phrases.append(f"{small} {faces} {limit}")
    if brief := reasons.pop(REASON_TOO_FEW_FRAMES, 0):
        share = "too few" if result.min_presence is None else f"under {result.min_presence:.0%} of"
        phrases.append(f"{brief} seen in {share} frames")
    # Reasons from a later schema than this code knows: name them as they are.
    phrases.extend(f"{count} {reason}" for reason, count in reasons.items())
    return ", ".join(phrases)


def _decode_note(result: VideoResult) -> str:
    decode = getattr(result, "decode", None)  # absent from results of other versions
    if decode is None:
        return ""
    parts = []
    # A decoder chosen only because it was cheaper here is nothing a reader needs to know.
    if decode.decoder != USUAL_DECODER and not (decode.reason or "").startswith(CHEAPER_IN_ORDER):
        parts.append(f"read with {decode.decoder}")
    if decode.frames_substituted:
        parts.append(f"{decode.frames_substituted} frames substituted")
    if decode.frames_skipped:
        parts.append(f"{decode.frames_skipped} frames skipped")
    return ", ".join(parts)


def row_note(result: VideoResult) -> str:
    """What a reader should know beyond the numbers; '' when there is nothing to add."""
    if result.status == STATUS_ERROR:
        message = result.error or "The video could not be scanned."
        # The path is on the line above: name the file only, so the sentence stays short.
        return message.replace(result.path, _display_name(os.path.basename(result.path)))
    notes = []
    unjudged = unjudged_note(result.persons, result)
    if result.status == STATUS_NO_FACE:
        notes.append(f"No face to judge: {unjudged}." if unjudged else "No face found.")
    elif unjudged:
        notes.append(f"Not judged: {unjudged}.")
    if decode := _decode_note(result):
        notes.append(decode[0].upper() + decode[1:] + ".")
    return " ".join(notes)


# --- paths that fit -------------------------------------------------------------------------


def _display_name(text: str) -> str:
    # A line break or tab in a file name would break the table's rows: show it escaped.
    return text.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")


def _split_path(path: str) -> tuple[str, str]:
    """(folder with its trailing separator, file name)."""
    cut = max(path.rfind("/"), path.rfind(os.sep))
    return path[: cut + 1], path[cut + 1 :]


def _shorten_middle(text: str, width: int) -> str:
    """`text` with its middle replaced by an ellipsis so that it takes at most `width` cells."""
    if cell_len(text) <= width:
        return text
    keep_start, keep_end = "", ""
    for character_index in range(len(text)):
        # Alternate ends, the end first (a file's extension and counter are at its end).
        take_end = character_index % 2 == 0
        end_candidate = text[len(text) - len(keep_end) - 1 :] if take_end else keep_end
        start_candidate = keep_start if take_end else text[: len(keep_start) + 1]
        if cell_len(start_candidate) + cell_len(ELLIPSIS) + cell_len(end_candidate) > width:
            break
        keep_start, keep_end = start_candidate, end_candidate
    return keep_start + ELLIPSIS + keep_end


def shorten_path(path: str, width: int) -> Text:
    """`path` in at most `width` cells: folders dropped from the middle first, the name last.

    The folder is dimmed. Whole folder names are kept or dropped, never cut, and the file name
    is kept whole whenever `…/name` fits; only a name longer than the column is shortened, from
    its middle. The text never wraps (were the column squeezed further, it would be cut).
    """
    folder, name = _split_path(_display_name(path))
    if cell_len(folder) + cell_len(name) > width:
        folder = _shorten_folder(folder, width - cell_len(name))
    if folder is None:
        return Text(_shorten_middle(name, width), no_wrap=True, overflow="ellipsis")
    return Text.assemble((folder, _FOLDER_STYLE), name, no_wrap=True, overflow="ellipsis")


def _shorten_folder(folder: str, width: int) -> str | None:
    """`folder` (ending in a separator) in `width` cells with folders left out, or None."""
    separator = "/" if "/" in folder else os.sep
    parts = folder.split(separator)[:-1]
    # As many of the folders nearest to the file as fit (they say the most about it), then as
    # many from the start of the path (where it is rooted) as still fit.
    for from_end in range(len(parts) - 1, -1, -1):
        for from_start in range(len(parts) - 1 - from_end, -1, -1):
            shortened = [*parts[:from_start], ELLIPSIS, *parts[len(parts) - from_end :]]
            short_folder = separator.join(shortened) + separator
            if cell_len(short_folder) <= width:
                return short_folder
    return None


# --- the table -------------------------------------------------------------------------------


def _number_cells(result: VideoResult) -> list[Text]:
    label = _verdict_label(result)
    return [
        Text(label, style=_VERDICT_STYLES.get(label, "")),
        Text(_percent(result.fake_probability)),
        Text(str(len(result.judged_persons)) if result.status != STATUS_ERROR else NO_VALUE),
        Text(str(result.frames_used)),
        Text(f"{result.seconds:.1f}"),
    ]


def _column_width(header: str, cells: Iterable[Text]) -> int:
    # The header may wrap between its words; the values never wrap.
    longest_word = max(cell_len(word) for word in header.split())
    return max(longest_word, *(cell.cell_len for cell in cells))


def render_table(results: list[VideoResult], console: Console) -> None:
    """Print one row per video, a line naming the model, and a summary line."""
    if not results:
        console.print("No videos were scanned.")
        return
    models = _distinct_models(results)
    rows = [(result, row_note(result), _number_cells(result)) for result in results]
    number_widths = [
        _column_width(header, [cells[column] for _result, _note, cells in rows])
        for column, header in enumerate(_NUMBER_HEADERS)
    ]
    # The default box: a border before, between and after the columns, a space either side.
    columns = 1 + len(_NUMBER_HEADERS)
    available = console.width - (columns + 1) - 2 * columns - sum(number_widths)
    wanted = max(
        max(cell_len(_display_name(result.path)), NOTE_INDENT + cell_len(note), len("File"))
        for result, note, _cells in rows
    )
    file_width = max(MIN_FILE_WIDTH, min(wanted, available))

    table = Table()
    # A fixed width for the file column: paths are shortened to it, never wrapped; the note
    # under a path wraps between words (only a word longer than the column is folded).
    table.add_column("File", width=file_width, overflow="fold")
    for header, width in zip(_NUMBER_HEADERS, number_widths, strict=True):
        justify = "left" if header == "Verdict" else "right"
        table.add_column(header, width=width, justify=justify)
    for result, note, cells in rows:
        file_cell: RenderableType = shorten_path(result.path, file_width)
        if note:
            style = _VERDICT_STYLES["ERROR"] if result.status == STATUS_ERROR else _NOTE_STYLE
            # Indented under the path, so a note never reads as the next video's path.
            indented_note = Padding(Text(note, style=style), (0, 0, 0, NOTE_INDENT))
            file_cell = Group(file_cell, indented_note)
        table.add_row(file_cell, *cells)
    console.print(table)
    # Under the table rather than as its caption: a caption wraps at the table's width, this
    # at the console's.
    for model in models:
        console.print(Text(model_caption(model)))
    console.print(Text(summary_line(results)))
