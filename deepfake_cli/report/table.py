"""Output for people: a rich table of verdicts (the progress bar is `deepfake_cli.progress`).

Everything taken from the data (paths, error sentences, model names) goes into `rich.text.Text`
objects, never into markup strings, so a file called `[bold]x.mp4` prints as it is named.
Colour follows the console: rich drops colours by itself when the output is not a terminal or
when NO_COLOR is set (the verdict words carry the meaning, colour only repeats it).
"""

from __future__ import annotations

from collections.abc import Iterable

from rich.console import Console
from rich.table import Table
from rich.text import Text

from deepfake_cli.results import (
    STATUS_ERROR,
    STATUS_NO_FACE,
    VERDICT_FAKE,
    ModelInfo,
    VideoResult,
)

#: Shown instead of a number where there is none (error, no face).
NO_VALUE = "—"
DEMO_WARNING = "DEMO MODEL, not validated on deepfake benchmarks"
#: Characters of the weights' sha256 shown in the caption: enough to tell weights apart.
SHA256_SHOWN = 12

_VERDICT_STYLES = {
    "FAKE": "bold red",
    "REAL": "green",
    "NO FACE": "yellow",
    "ERROR": "magenta",
}


def _verdict_label(result: VideoResult) -> str:
    if result.status == STATUS_ERROR:
        return "ERROR"
    if result.status == STATUS_NO_FACE:
        return "NO FACE"
    return result.verdict or NO_VALUE


def _note(result: VideoResult) -> str:
    if result.status == STATUS_ERROR:
        return result.error or "The video could not be scanned."
    if result.status == STATUS_NO_FACE:
        return "No face found."
    return ""


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


def render_table(results: list[VideoResult], console: Console) -> None:
    """Print one row per video, a caption naming the model, and a summary line."""
    if not results:
        console.print("No videos were scanned.")
        return
    models = _distinct_models(results)
    table = Table(caption=Text("\n".join(model_caption(model) for model in models)))
    # fold: a path is shown whole on several lines rather than cut with an ellipsis. Only the
    # verdict never wraps; on a narrow terminal the number headers wrap instead.
    table.add_column("File", overflow="fold")
    table.add_column("Verdict", no_wrap=True)
    table.add_column("Fake prob.", justify="right")
    table.add_column("Persons", justify="right")
    table.add_column("Frames", justify="right")
    table.add_column("Time (s)", justify="right")
    table.add_column("Note", overflow="fold")
    for result in results:
        label = _verdict_label(result)
        table.add_row(
            Text(result.path),
            Text(label, style=_VERDICT_STYLES.get(label, "")),
            Text(_percent(result.fake_probability)),
            Text(str(len(result.persons)) if result.status != STATUS_ERROR else NO_VALUE),
            Text(str(result.frames_used)),
            Text(f"{result.seconds:.1f}"),
            Text(_note(result), style=_VERDICT_STYLES["ERROR"] if label == "ERROR" else ""),
        )
    console.print(table)
    console.print(Text(summary_line(results)))
