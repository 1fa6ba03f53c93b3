"""The result schema and its outputs: JSON, JSONL (crash-safe, resumable), CSV and the table."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest
from rich.cells import cell_len
from rich.console import Console

from deepfake_cli.errors import UsageError
from deepfake_cli.report import (
    CSV_COLUMNS,
    FORMATS,
    ScanProgress,
    completed_paths,
    open_sink,
    read_results,
    render_table,
)
from deepfake_cli.report.table import row_note, shorten_path
from deepfake_cli.results import (
    CHEAPER_IN_ORDER,
    SCHEMA_VERSION,
    DecodeInfo,
    FaceScore,
    FrameRecord,
    ModelInfo,
    PersonResult,
    VideoResult,
)

MODEL = ModelInfo(name="mat-efficientnet-b4-demo", sha256="ab12cd34ef56" + "0" * 52, demo=True)
COMMON = {"threshold": 0.5, "aggregate": "mean", "model": MODEL}

VIDEO_KEYS = [
    "schema_version",
    "path",
    "status",
    "error",
    "verdict",
    "fake_probability",
    "threshold",
    "aggregate",
    "min_face_px",
    "min_presence",
    "frames_used",
    "decode",
    "model",
    "persons",
    "seconds",
]
PERSON_KEYS = ["id", "fake_probability", "verdict", "frames", "judged", "reason", "face_px"]

#: Everything a path may hold that trips up naive CSV or JSON writers.
AWKWARD_PATH = 'vidéos/a "quoted", name\nwith newline 視頻 ☃.mp4'


def fake_result(path: str = "clips/fake.mp4") -> VideoResult:
    return VideoResult(
        path=path,
        status="ok",
        error=None,
        verdict="FAKE",
        fake_probability=0.9312345678,
        frames_used=2,
        persons=[
            PersonResult(id=0, fake_probability=0.9312345678, verdict="FAKE", frames=2),
            PersonResult(id=1, fake_probability=0.12, verdict="REAL", frames=1),
            PersonResult(
                id=2,
                fake_probability=None,
                verdict=None,
                frames=1,
                judged=False,
                reason="face_too_small",
                face_px=41.04,
            ),
        ],
        seconds=3.14159,
        min_face_px=49,
        min_presence=0.25,
        frames=[
            FrameRecord(
                index=0,
                time_s=0.0,
                faces=[
                    FaceScore(
                        person=0,
                        box=[10.04, 20.0, 110.0, 140.26],
                        det_prob=0.99,
                        fake_probability=0.95,
                    ),
                    FaceScore(
                        person=1, box=[200, 20, 260, 90], det_prob=0.9, fake_probability=0.12
                    ),
                ],
            ),
            FrameRecord(
                index=30,
                time_s=1.0010004,
                faces=[
                    FaceScore(person=0, box=[12, 21, 111, 141], det_prob=0.98, fake_probability=0.9)
                ],
            ),
        ],
        **COMMON,
    )


def real_result(path: str = "clips/real.mp4") -> VideoResult:
    return VideoResult(
        path=path,
        status="ok",
        error=None,
        verdict="REAL",
        fake_probability=0.05,
        frames_used=16,
        persons=[PersonResult(id=0, fake_probability=0.05, verdict="REAL", frames=16)],
        seconds=2.0,
        **COMMON,
    )


def error_result(path: str = "clips/broken.mp4") -> VideoResult:
    return VideoResult.failed(path, "The video has zero bytes.", seconds=0.01, **COMMON)


def no_face_result(path: str = "clips/landscape.mp4") -> VideoResult:
    return VideoResult.no_face(path, seconds=1.5, **COMMON)


def all_results() -> list[VideoResult]:
    return [fake_result(), real_result(), no_face_result(), error_result()]


# --- schema ---------------------------------------------------------------------------------


def test_to_dict_keys_in_schema_order_without_details() -> None:
    data = fake_result().to_dict()
    assert list(data) == VIDEO_KEYS
    assert data["schema_version"] == SCHEMA_VERSION == 2
    assert list(data["model"]) == ["name", "sha256", "demo"]
    # Schema 1's person keys first, in their order; schema 2's after them.
    assert list(data["persons"][0]) == PERSON_KEYS
    assert PERSON_KEYS[:4] == ["id", "fake_probability", "verdict", "frames"]
    assert data["fake_probability"] == 0.931235  # rounded to 6 decimals in output only
    assert data["seconds"] == 3.142
    assert (data["min_face_px"], data["min_presence"]) == (49, 0.25)
    assert "frames" not in data


def test_a_person_not_judged_has_a_reason_and_no_score() -> None:
    judged, _other, unjudged = fake_result().to_dict()["persons"]
    assert judged["judged"] is True and judged["reason"] is None
    assert unjudged == {
        "id": 2,
        "fake_probability": None,
        "verdict": None,
        "frames": 1,
        "judged": False,
        "reason": "face_too_small",
        "face_px": 41.0,
    }
    assert [person.id for person in fake_result().judged_persons] == [0, 1]


def test_schema_1_records_read_as_judged_persons() -> None:
    """A JSONL file written before schema 2 (e.g. kept by --resume) still reads."""
    old = real_result().to_dict()
    for key in ("schema_version", "min_face_px", "min_presence", "decode"):
        del old[key]
    for person in old["persons"]:
        for key in ("judged", "reason", "face_px"):
            del person[key]
    read_back = VideoResult.from_dict(old)
    assert read_back.persons[0].judged and read_back.persons[0].reason is None
    assert read_back.min_face_px is None and read_back.min_presence is None
    assert read_back.to_dict()["schema_version"] == SCHEMA_VERSION


def test_to_dict_with_details_adds_frames_last() -> None:
    data = fake_result().to_dict(details=True)
    assert list(data) == [*VIDEO_KEYS, "frames"]
    first_frame = data["frames"][0]
    assert list(first_frame) == ["index", "time_s", "faces"]
    assert list(first_frame["faces"][0]) == ["person", "box", "det_prob", "fake_probability"]
    assert first_frame["faces"][0]["box"] == [10.0, 20.0, 110.0, 140.3]
    assert data["frames"][1]["time_s"] == 1.001
    # A result without recorded frames still has the key with --details.
    assert real_result().to_dict(details=True)["frames"] == []


def test_failed_and_no_face_never_carry_a_score() -> None:
    for result in (error_result(), no_face_result()):
        data = result.to_dict()
        assert data["fake_probability"] is None
        assert data["verdict"] is None
        assert data["persons"] == []
        assert data["frames_used"] == 0
    assert error_result().to_dict()["status"] == "error"
    assert error_result().to_dict()["error"] == "The video has zero bytes."
    assert no_face_result().to_dict()["status"] == "no_face"
    assert no_face_result().to_dict()["error"] is None


def test_from_dict_round_trips() -> None:
    for original in all_results():
        data = original.to_dict(details=True)
        assert VideoResult.from_dict(data).to_dict(details=True) == data
        assert VideoResult.from_dict(json.loads(json.dumps(data))).to_dict(details=True) == data
    assert VideoResult.from_dict(real_result().to_dict()).frames is None


# --- JSON -----------------------------------------------------------------------------------


def test_json_file_is_one_array_written_atomically(tmp_path: Path) -> None:
    output = tmp_path / "scan.json"
    with open_sink("json", output, details=False) as sink:
        for result in all_results():
            sink.write(result)
        assert not output.exists()  # nothing is visible until the array is complete
    parsed = json.loads(output.read_text(encoding="utf-8"))
    assert parsed == [result.to_dict() for result in all_results()]
    assert list(parsed[0]) == VIDEO_KEYS
    assert sorted(path.name for path in tmp_path.iterdir()) == ["scan.json"]  # no temp files


def test_json_file_replaces_an_old_one_and_keeps_it_on_abort(tmp_path: Path) -> None:
    output = tmp_path / "scan.json"
    output.write_text("old", encoding="utf-8")
    with pytest.raises(KeyboardInterrupt), open_sink("json", output, details=True) as sink:
        sink.write(fake_result())
        raise KeyboardInterrupt
    assert output.read_text(encoding="utf-8") == "old"
    with open_sink("json", output, details=True) as sink:
        sink.write(fake_result())
    assert json.loads(output.read_text(encoding="utf-8"))[0]["frames"][0]["index"] == 0
    assert sorted(path.name for path in tmp_path.iterdir()) == ["scan.json"]


def test_json_to_stream_with_awkward_path() -> None:
    stream = io.StringIO()
    with open_sink("json", None, details=False, stream=stream) as sink:
        sink.write(real_result(AWKWARD_PATH))
        assert stream.getvalue() == ""  # printed at close
    assert json.loads(stream.getvalue())[0]["path"] == AWKWARD_PATH


# --- JSONL ----------------------------------------------------------------------------------


def read_jsonl(path: Path) -> list[dict]:
    content = path.read_text(encoding="utf-8")
    assert content.endswith("\n")
    return [json.loads(line) for line in content.splitlines()]


def test_jsonl_to_stream_one_object_per_line() -> None:
    stream = io.StringIO()
    with open_sink("jsonl", None, details=False, stream=stream) as sink:
        sink.write(fake_result())
        assert stream.getvalue().count("\n") == 1  # each line as soon as its video is done
        sink.write(real_result(AWKWARD_PATH))
    lines = stream.getvalue().splitlines()
    assert [json.loads(line)["path"] for line in lines] == ["clips/fake.mp4", AWKWARD_PATH]
    assert list(json.loads(lines[0])) == VIDEO_KEYS


def test_jsonl_file_is_written_incrementally(tmp_path: Path) -> None:
    output = tmp_path / "scan.jsonl"
    with open_sink("jsonl", output, details=True) as sink:
        sink.write(fake_result())
        # Already on disk, complete, before the sink is closed.
        assert [line["path"] for line in read_jsonl(output)] == ["clips/fake.mp4"]
        sink.write(error_result())
    parsed = read_jsonl(output)
    assert [line["status"] for line in parsed] == ["ok", "error"]
    assert "frames" in parsed[0]


def test_jsonl_without_resume_truncates(tmp_path: Path) -> None:
    output = tmp_path / "scan.jsonl"
    output.write_text('{"path": "old.mp4"}\n', encoding="utf-8")
    with open_sink("jsonl", output, details=False) as sink:
        sink.write(real_result())
    assert [line["path"] for line in read_jsonl(output)] == ["clips/real.mp4"]


def test_jsonl_resume_after_a_crash(tmp_path: Path) -> None:
    output = tmp_path / "scan.jsonl"
    with open_sink("jsonl", output, details=False) as sink:
        sink.write(fake_result())
        sink.write(real_result(AWKWARD_PATH))
    complete_content = output.read_bytes()
    # A run killed in the middle of a write: half a line, no newline.
    with open(output, "ab") as handle:
        handle.write(b'{"path":"clips/half.mp4","status":"o')

    assert completed_paths(output) == {"clips/fake.mp4", AWKWARD_PATH}

    with open_sink("jsonl", output, details=False, resume=True) as sink:
        assert output.read_bytes() == complete_content  # the partial line is gone at open
        sink.write(error_result())
    parsed = read_jsonl(output)  # valid JSONL: every line parses
    assert [line["path"] for line in parsed] == [
        "clips/fake.mp4",
        AWKWARD_PATH,
        "clips/broken.mp4",
    ]
    assert completed_paths(output) == {"clips/fake.mp4", AWKWARD_PATH, "clips/broken.mp4"}
    assert [result.status for result in read_results(output)] == ["ok", "ok", "error"]


def test_jsonl_resume_of_a_file_that_is_only_a_partial_line(tmp_path: Path) -> None:
    output = tmp_path / "scan.jsonl"
    output.write_bytes(b'{"path":"x')
    assert completed_paths(output) == set()
    with open_sink("jsonl", output, details=False, resume=True) as sink:
        sink.write(real_result())
    assert [line["path"] for line in read_jsonl(output)] == ["clips/real.mp4"]


def test_completed_paths_ignores_garbage_and_missing_files(tmp_path: Path) -> None:
    assert completed_paths(tmp_path / "absent.jsonl") == set()
    output = tmp_path / "scan.jsonl"
    output.write_bytes(
        b'{"path": "a.mp4"}\nnot json\n[1, 2]\n{"no_path": 1}\n\xff\xfe\n{"path": "b.mp4"}\n'
    )
    assert completed_paths(output) == {"a.mp4", "b.mp4"}
    assert read_results(output) == []  # those lines are not whole results


def test_undecodable_file_name_round_trips_through_jsonl(tmp_path: Path) -> None:
    # On Linux a file name that is not UTF-8 reaches Python as a lone surrogate.
    odd_path = "clips/bad\udcff.mp4"
    output = tmp_path / "scan.jsonl"
    with open_sink("jsonl", output, details=False) as sink:
        sink.write(real_result(odd_path))
    assert completed_paths(output) == {odd_path}
    stream = io.StringIO()
    with open_sink("jsonl", None, details=False, stream=stream) as sink:
        sink.write(real_result(odd_path))
    assert json.loads(stream.getvalue())["path"] == odd_path


# --- CSV ------------------------------------------------------------------------------------


def test_csv_file_round_trips_and_is_replaced_atomically(tmp_path: Path) -> None:
    output = tmp_path / "scan.csv"
    results = [fake_result(AWKWARD_PATH), no_face_result(), error_result()]
    with open_sink("csv", output, details=True) as sink:
        for result in results:
            sink.write(result)
        assert not output.exists()  # rows go to a temporary file until close
    assert sorted(path.name for path in tmp_path.iterdir()) == ["scan.csv"]

    with open(output, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames or ()) == CSV_COLUMNS
        rows = list(reader)
    assert [row["path"] for row in rows] == [result.path for result in results]
    fake_row, no_face_row, error_row = rows
    assert fake_row["verdict"] == "FAKE"
    assert float(fake_row["fake_probability"]) == 0.931235
    assert fake_row["persons"] == "3"  # a count
    assert fake_row["judged_persons"] == "2"
    assert (fake_row["min_face_px"], fake_row["min_presence"]) == ("49", "0.25")
    assert fake_row["schema_version"] == str(SCHEMA_VERSION)
    # Schema 1's columns keep their positions: new columns are appended.
    assert CSV_COLUMNS[:13] == (
        "path", "status", "error", "verdict", "fake_probability", "threshold", "aggregate",
        "frames_used", "persons", "model_name", "model_sha256", "model_demo", "seconds",
    )  # fmt: skip
    assert fake_row["model_name"] == MODEL.name
    assert fake_row["model_sha256"] == MODEL.sha256
    assert fake_row["model_demo"] == "true"
    assert float(fake_row["seconds"]) == 3.142
    assert no_face_row["status"] == "no_face"
    assert no_face_row["verdict"] == "" and no_face_row["fake_probability"] == ""  # null
    assert error_row["error"] == "The video has zero bytes."


def test_csv_abort_leaves_no_file(tmp_path: Path) -> None:
    output = tmp_path / "scan.csv"
    with pytest.raises(RuntimeError), open_sink("csv", output, details=False) as sink:
        sink.write(real_result())
        raise RuntimeError("scan failed")
    assert list(tmp_path.iterdir()) == []


def test_csv_to_stream_rows_as_they_come() -> None:
    stream = io.StringIO()
    with open_sink("csv", None, details=False, stream=stream) as sink:
        assert stream.getvalue().startswith("path,status,error,verdict,")
        sink.write(real_result(AWKWARD_PATH))
        assert AWKWARD_PATH.split("\n")[1] in stream.getvalue()
        sink.write(error_result())
    rows = list(csv.reader(io.StringIO(stream.getvalue(), newline="")))
    assert rows[0] == list(CSV_COLUMNS)
    assert rows[1][0] == AWKWARD_PATH
    assert rows[2][1] == "error"


# --- opening --------------------------------------------------------------------------------


def test_formats() -> None:
    assert FORMATS == ("table", "json", "jsonl", "csv")


def test_bad_sink_options_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        open_sink("xml", None, details=False)
    with pytest.raises(UsageError, match="--resume"):
        open_sink("json", tmp_path / "a.json", details=False, resume=True)
    with pytest.raises(UsageError, match="--resume"):
        open_sink("jsonl", None, details=False, resume=True)
    with pytest.raises(UsageError, match="Cannot write"):
        open_sink("json", tmp_path / "missing" / "a.json", details=False)
    with pytest.raises(UsageError, match="Cannot write"):
        open_sink("jsonl", tmp_path, details=False)
    with pytest.raises(UsageError, match="Cannot write"):
        open_sink("csv", tmp_path / "missing" / "a.csv", details=False)


def test_write_after_close_is_refused() -> None:
    sink = open_sink("jsonl", None, details=False, stream=io.StringIO())
    sink.close()
    sink.close()  # closing twice is harmless
    with pytest.raises(ValueError):
        sink.write(real_result())


# --- table ----------------------------------------------------------------------------------

ANSI_COLOUR = re.compile(r"\x1b\[[0-9;]*(?:3[0-9]|9[0-7]|38;)[0-9;]*m")


def test_table_shows_verdicts_scores_and_model() -> None:
    console = Console(record=True, width=120, file=io.StringIO())
    render_table(all_results(), console)
    text = console.export_text()
    for expected in ("FAKE", "REAL", "NO FACE", "ERROR", "The video has zero bytes."):
        assert expected in text
    assert "93.1%" in text
    assert "—" in text  # no score for no_face and error
    assert f"Model: {MODEL.name} (ab12cd34ef56)" in text
    assert "DEMO MODEL, not validated on deepfake benchmarks" in text
    assert "4 videos: 1 FAKE, 1 REAL, 1 no face, 1 error" in text


def test_table_without_demo_warning_and_with_markup_in_names() -> None:
    validated = ModelInfo(name="mat-validated", sha256="f" * 64, demo=False)
    result = real_result("[bold]odd[/bold].mp4")
    result.model = validated
    console = Console(record=True, width=120, file=io.StringIO())
    render_table([result], console)
    text = console.export_text()
    assert "[bold]odd[/bold].mp4" in text  # printed as named, not as markup
    assert "DEMO" not in text
    assert "Model: mat-validated (ffffffffffff)" in text


def test_table_has_no_ansi_codes_when_not_a_terminal() -> None:
    output = io.StringIO()
    render_table(all_results(), Console(file=output, width=120))
    assert "\x1b" not in output.getvalue()


def test_table_respects_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    coloured = io.StringIO()
    render_table(all_results(), Console(file=coloured, width=120, force_terminal=True))
    assert ANSI_COLOUR.search(coloured.getvalue())  # the check below can see colour codes

    monkeypatch.setenv("NO_COLOR", "1")
    plain = io.StringIO()
    render_table(all_results(), Console(file=plain, width=120, force_terminal=True))
    assert not ANSI_COLOUR.search(plain.getvalue())
    assert "FAKE" in plain.getvalue()


def test_table_sink_to_stdout_console_and_to_file(tmp_path: Path) -> None:
    console = Console(record=True, width=120, file=io.StringIO())
    with open_sink("table", None, details=False, console=console) as sink:
        sink.write(fake_result())
    assert "FAKE" in console.export_text()

    output = tmp_path / "scan.txt"
    with open_sink("table", output, details=False) as sink:
        sink.write(error_result())
    text = output.read_text(encoding="utf-8")
    assert "ERROR" in text and "\x1b" not in text


def test_empty_table() -> None:
    console = Console(record=True, width=120, file=io.StringIO())
    render_table([], console)
    assert "No videos were scanned." in console.export_text()


LONG_PATHS = (
    "/tmp/real_eval/fake/ghost_mark.mp4",
    "/home/someone/datasets/FaceForensics++/manipulated_sequences/Deepfakes/c23/videos/000.mp4",
    "relative folder/with spaces in/every part/and in the name of the clip.mp4",
    "/data/視頻/顔の動画/インタビュー 2024.mp4",  # double-width characters
    "short.mp4",
)


def test_table_fits_80_columns_and_never_breaks_a_path_mid_word() -> None:
    results = [real_result(path) for path in LONG_PATHS]
    results[0] = fake_result(LONG_PATHS[0])  # with a person not judged
    results[1].decode = DecodeInfo("pyav", "decord seeks late", 16, 16)
    results.append(error_result("/tmp/real_eval/broken/a damaged file.mp4"))
    console = Console(record=True, width=80, file=io.StringIO())
    render_table(results, console)
    lines = console.export_text().splitlines()

    assert all(cell_len(line) <= 80 for line in lines), "\n".join(lines)
    file_cells = [line.split("│")[1].strip() for line in lines if line.startswith("│")]
    for result in results:
        folders, name = result.path.rsplit("/", 1) if "/" in result.path else ("", result.path)
        # The path is on one line: its file name whole at the end, then whole folder names
        # (or the ellipsis that stands for those left out).
        (cell,) = [cell for cell in file_cells if cell.endswith(name)]
        shown_folders = cell[: -len(name)].split("/")[:-1]
        assert set(shown_folders) <= {*folders.split("/"), "…"}, cell
        assert cell in (result.path, name) or "…" in cell  # shortened visibly, if at all
    assert "short.mp4" in file_cells  # a path that fits is shown whole
    # The notes under the paths wrap between words.
    notes = " ".join(file_cells)
    for note in ("Not judged: 1 face under 49 px.", "Read with pyav.", "The video has zero bytes."):
        assert note in notes, notes


def test_a_decoder_chosen_for_its_cost_is_not_noted_under_the_path() -> None:
    needed, cheaper = real_result("clips/needed.mpg"), real_result("clips/cheaper.mp4")
    needed.decode = DecodeInfo("pyav", "MPEG program stream: decord's seeks are not exact", 8, 8)
    cheaper.decode = DecodeInfo("pyav", f"{CHEAPER_IN_ORDER} for frames this dense", 8, 8)
    assert row_note(needed) == "Read with pyav."
    assert row_note(cheaper) == ""


def test_shorten_path_keeps_the_nearest_folders_and_dims_them() -> None:
    path = "/home/someone/datasets/FaceForensics++/manipulated/Deepfakes/c23/videos/000.mp4"
    assert shorten_path(path, 200).plain == path
    assert shorten_path(path, 30).plain == "…/Deepfakes/c23/videos/000.mp4"
    assert shorten_path(path, 12).plain == "/…/000.mp4"  # rooted: the root is kept
    assert shorten_path("data/clips/000.mp4", 12).plain == "…/000.mp4"
    assert shorten_path("data/clips/000.mp4", 8).plain == "000.mp4"  # no room for a folder
    assert shorten_path("a/very_long_file_name_of_a_clip.mp4", 16).plain == "very_lo…clip.mp4"
    shortened = shorten_path(path, 30)
    assert [span.style for span in shortened.spans] == ["dim"]  # the folder, not the name
    assert shortened.spans[0].end == len("…/Deepfakes/c23/videos/")
    # A line break in a file name would break the table's rows: it is shown escaped.
    assert shorten_path("odd\nname.mp4", 80).plain == "odd\\nname.mp4"


def test_table_says_why_no_face_was_judged() -> None:
    only_small = VideoResult.no_face(
        "clips/far away.mp4",
        seconds=1.0,
        persons=[
            PersonResult(0, None, None, 16, judged=False, reason="face_too_small", face_px=30.0),
            PersonResult(1, None, None, 2, judged=False, reason="too_few_frames", face_px=80.0),
        ],
        min_face_px=49,
        min_presence=0.25,
        **COMMON,
    )
    console = Console(record=True, width=120, file=io.StringIO())
    render_table([only_small, no_face_result()], console)
    text = console.export_text()
    assert "No face to judge: 1 face under 49 px, 1 seen in under 25% of frames." in text, text
    assert "No face found." in text
    assert "2 videos: 0 FAKE, 0 REAL, 2 no face, 0 errors" in text


# --- progress -------------------------------------------------------------------------------


def test_progress_is_silent_when_not_a_terminal() -> None:
    output = io.StringIO()
    with ScanProgress(total=2, console=Console(file=output), enabled=True) as progress:
        progress.set_current("clips/a.mp4")
        progress.advance("clips/a.mp4")
        progress.advance("clips/b.mp4")
        assert not progress.active
        assert progress.completed == 2
    assert output.getvalue() == ""


def test_progress_on_a_terminal_and_quiet() -> None:
    output = io.StringIO()
    console = Console(file=output, force_terminal=True, width=100)
    with ScanProgress(total=1, console=console, enabled=True) as progress:
        assert progress.active
        progress.advance("clips/" + "x" * 80 + ".mp4")
        assert progress.completed == 1
    quiet_output = io.StringIO()
    quiet_console = Console(file=quiet_output, force_terminal=True)
    with ScanProgress(total=1, console=quiet_console, enabled=False) as progress:
        assert not progress.active
        progress.advance("clips/a.mp4")
    assert quiet_output.getvalue() == ""
