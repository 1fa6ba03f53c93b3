"""HTML reports: a real scan of the talking-head clip, then pages, index and attention files.

One scan per module (tests/data/carphone_pristine.mp4 under a hostile file name, a video
without a face and an empty file, `frames=4`, a tiny B0 model at 64 px) and one report build;
the tests read what was written, as a user's browser or script would.
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from html.parser import HTMLParser
from importlib.resources import files
from pathlib import Path, PurePosixPath

import cv2
import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

from deepfake_cli.commands.report import report_command
from deepfake_cli.errors import UsageError, VideoError
from deepfake_cli.model import MATConfig, Preprocessing, Provenance, build_detector, save_weights
from deepfake_cli.model.weights import load_detector
from deepfake_cli.report import read_results
from deepfake_cli.report.evidence import STRIP_FACES, VideoEvidence, gather_evidence
from deepfake_cli.report.html import (
    INDEX_NAME,
    IndexEntry,
    ReportSummary,
    build_reports,
    render_index,
    render_video_page,
)
from deepfake_cli.report.pictures import attention_overlay, map_colour
from deepfake_cli.results import STATUS_ERROR, STATUS_NO_FACE, STATUS_OK, ModelInfo, VideoResult
from deepfake_cli.scan import ScanOptions, ScanRequest, run_scan
from deepfake_cli.video import probe_video, read_frame_indices, read_frames

CARPHONE = Path(__file__).parent / "data" / "carphone_pristine.mp4"
PYPROJECT = Path(__file__).parent.parent / "pyproject.toml"
# A file name is user input: markup, both quote characters and an ampersand.
HOSTILE_NAME = 'it\'s <script>alert("x") & co.mp4'
SAMPLED = 4
NUM_ATTENTIONS = 4  # MATConfig's default M
VOID_TAGS = {"meta", "img", "br", "hr", "link", "input"}


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    # The 2 CPU cores are shared: one thread avoids OpenMP barriers spinning against others.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --- one scan and one report for the module ---------------------------------------------------


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = build_detector(MATConfig(backbone="efficientnet-b0", input_size=64))
    # A few training-mode passes give BatchNorm running statistics of real activations, so the
    # eval-mode attention maps are not degenerate (all equal) as with the initial statistics.
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(4, 3, 64, 64))
    model.eval()
    return save_weights(
        model,
        tmp_path_factory.mktemp("weights") / "tiny.safetensors",
        preprocessing=Preprocessing(input_size=64),
        provenance=Provenance(name="tiny-test", demo=True),
    )


@pytest.fixture(scope="module")
def scan_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("videos")
    shutil.copy(CARPHONE, folder / HOSTILE_NAME)
    writer = cv2.VideoWriter(
        str(folder / "no face.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (96, 64)
    )
    for brightness in range(0, 240, 20):
        writer.write(np.full((64, 96, 3), brightness, np.uint8))
    writer.release()
    (folder / "empty.mp4").write_bytes(b"")
    return folder


@pytest.fixture(scope="module")
def results_path(scan_folder: Path, tiny_weights: Path) -> Path:
    """The scan through `run_scan`, as `mattn scan --details --format jsonl` runs it."""
    output = scan_folder.parent / f"{scan_folder.name}-results.jsonl"
    run_scan(
        ScanRequest(
            inputs=(str(scan_folder),),
            options=ScanOptions(frames=SAMPLED, details=True),
            weights=tiny_weights,
            device="cpu",
            output_format="jsonl",
            output=output,
            quiet=True,
        )
    )
    return output


@pytest.fixture(scope="module")
def results(results_path: Path) -> dict[str, VideoResult]:
    by_name = {Path(result.path).name: result for result in read_results(results_path)}
    assert by_name[HOSTILE_NAME].status == STATUS_OK
    assert by_name["no face.mp4"].status == STATUS_NO_FACE
    assert by_name["empty.mp4"].status == STATUS_ERROR
    return by_name


@pytest.fixture(scope="module")
def model(tiny_weights: Path):
    return load_detector(tiny_weights)


@pytest.fixture(scope="module")
def report(
    results: dict[str, VideoResult], model, tmp_path_factory: pytest.TempPathFactory
) -> ReportSummary:
    folder = tmp_path_factory.mktemp("report")
    return build_reports(
        list(results.values()),
        folder / "html",
        model=model,
        save_attention_dir=folder / "attention",
    )


def page_of(report: ReportSummary, video_name: str) -> Path:
    """The page the index links from the row of `video_name`."""
    index = parse(report.index_path.read_text(encoding="utf-8"))
    for row_number, row in enumerate(index.rows):
        if Path(row[0]["data-value"]).name == video_name:
            hrefs = [href for link_row, href in index.links if link_row == row_number]
            return report.index_path.parent / hrefs[0]
    raise AssertionError(f"{video_name} is not in the index")


# --- reading pages as a browser would -------------------------------------------------------


class PageParser(HTMLParser):
    """Collects images, links, table rows and text, and checks that elements nest properly."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open_tags: list[str] = []
        self.nesting_errors: list[str] = []
        self.images: list[dict[str, str]] = []
        self.links: list[tuple[int, str]] = []  # (table row number, href)
        self.rows: list[list[dict[str, str]]] = []  # per <tbody> row, the attributes of its cells
        self.scripts = 0
        self.text_parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "img":
            self.images.append(attributes)
        elif tag == "a":
            self.links.append((len(self.rows) - 1, attributes.get("href", "")))
        elif tag == "script":
            self.scripts += 1
        elif tag == "tr" and "tbody" in self.open_tags:
            self.rows.append([])
        elif tag == "td" and "tbody" in self.open_tags:
            self.rows[-1].append(attributes)
        if tag not in VOID_TAGS:
            self.open_tags.append(tag)
        self.text_parts.append(" ")  # as a browser would, roughly: cells and blocks apart

    def handle_endtag(self, tag: str) -> None:
        if not self.open_tags or self.open_tags[-1] != tag:
            self.nesting_errors.append(f"</{tag}> closes {self.open_tags[-1:]}")
            return
        self.open_tags.pop()
        self.text_parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self.open_tags or self.open_tags[-1] not in ("script", "style"):
            self.text_parts.append(data)

    @property
    def text(self) -> str:
        return re.sub(r"\s+", " ", "".join(self.text_parts))


def parse(page: str) -> PageParser:
    parser = PageParser()
    parser.feed(page)
    parser.close()
    assert parser.nesting_errors == []
    assert parser.open_tags == []
    return parser


def decode_image(data_uri: str) -> np.ndarray:
    header, payload = data_uri.split(",", 1)
    assert header in ("data:image/png;base64", "data:image/jpeg;base64"), header
    image = cv2.imdecode(np.frombuffer(base64.b64decode(payload), np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image


# --- the video page ---------------------------------------------------------------------------


def test_video_page_shows_verdict_model_and_what_the_score_means(
    report: ReportSummary, results: dict[str, VideoResult]
) -> None:
    result = results[HOSTILE_NAME]
    page = parse(page_of(report, HOSTILE_NAME).read_text(encoding="utf-8"))
    assert page.scripts == 0  # video pages need no JavaScript
    assert f"{result.verdict} {result.fake_probability * 100:.1f}% fake probability" in page.text
    for fact in ("tiny-test", result.model.sha256, "Aggregation mean", "Threshold 0.5"):
        assert fact in page.text
    frames_used = f"{result.frames_used} with a face, of {SAMPLED} sampled"
    info = probe_video(CARPHONE)
    facts = (f"{info.width} × {info.height} pixels", f"Codec {info.codec}", frames_used)
    for fact in facts:
        assert fact in page.text
    assert "demo model, not validated" in page.text
    assert "It is a model's estimate" in page.text
    assert "REAL is the absence of evidence" in page.text
    assert HOSTILE_NAME in page.text  # the name survives escaping, as the user typed it


def test_video_page_embeds_every_picture_and_loads_nothing(
    report: ReportSummary, results: dict[str, VideoResult]
) -> None:
    result = results[HOSTILE_NAME]
    page = parse(page_of(report, HOSTILE_NAME).read_text(encoding="utf-8"))
    by_class: dict[str, list[np.ndarray]] = {}
    for image in page.images:
        by_class.setdefault(image["class"], []).append(decode_image(image["src"]))
        assert image["alt"]
    persons = len(result.persons)
    strip = sum(min(STRIP_FACES, person.frames) for person in result.persons)
    # Per person: its timeline; its strip plus the most confident face, each as crop and overlay;
    # the whole most-confident frame; and that face's maps one by one.
    expected = {
        "timeline": persons,
        "crop": strip + persons,
        "overlay": strip + persons,
        "frame": persons,
        "heatmap": NUM_ATTENTIONS * persons,
    }
    assert {name: len(images) for name, images in by_class.items()} == expected
    assert all(image.shape == (64, 64, 3) for image in by_class["crop"] + by_class["overlay"])
    frame_height, frame_width = by_class["frame"][0].shape[:2]
    assert (frame_width, frame_height) == (176, 144)
    # The timeline has the threshold line, drawn in red.
    blue, green, red = np.moveaxis(by_class["timeline"][0].astype(int), 2, 0)
    assert ((red > 150) & (green < 100) & (blue < 100)).sum() > 200
    raw = page_of(report, HOSTILE_NAME).read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", raw)


def test_file_names_are_escaped_everywhere(report: ReportSummary) -> None:
    pages = [report.index_path, page_of(report, HOSTILE_NAME)]
    for path in pages:
        raw = path.read_text(encoding="utf-8")
        assert "<script>alert" not in raw
        assert "it&#x27;s &lt;script&gt;alert(&quot;x&quot;) &amp; co.mp4" in raw
    index = parse(report.index_path.read_text(encoding="utf-8"))
    assert index.scripts == 1  # only the sorting script the index brings itself
    # The page's file name is safe on any filesystem and in a URL.
    assert re.fullmatch(r"[A-Za-z0-9._-]+\.html", page_of(report, HOSTILE_NAME).name)


def test_overlay_differs_from_the_crop_where_the_attention_is_high(report: ReportSummary) -> None:
    folders = [path for path in report.attention_files if path.name.endswith("_attention.npy")]
    for maps_path in folders:
        stem = str(maps_path).removesuffix("_attention.npy")
        crop = cv2.imread(stem + "_crop.png").astype(int)
        overlay = cv2.imread(stem + "_overlay.png").astype(int)
        attention_maps = np.load(maps_path)
        size = crop.shape[0]
        strongest = np.max(
            [
                cv2.resize(attention_map, (size, size), interpolation=cv2.INTER_CUBIC)
                / attention_map.max()
                for attention_map in attention_maps
            ],
            axis=0,
        )
        change = np.abs(overlay - crop).sum(axis=2)
        assert change[strongest >= 0.9].mean() > 40
        assert change[strongest >= 0.9].mean() > 2 * change[strongest <= 0.5].mean()


def test_overlay_tints_with_the_map_colour_and_leaves_unattended_pixels() -> None:
    crop = np.full((64, 64, 3), 128, np.uint8)
    attention_maps = np.zeros((2, 8, 8), np.float32)
    attention_maps[0, 1, 1] = 1.0  # map 1 looks at the top-left
    attention_maps[1, 6, 6] = 3.0  # map 2 at the bottom-right (its scale does not matter)
    overlay = attention_overlay(crop, attention_maps).astype(int)
    for map_number, (row, column) in enumerate([(12, 12), (52, 52)]):
        tint = overlay[row, column] - 128
        colour = np.array(map_colour(map_number)) - 128
        assert np.dot(tint, colour) > 0.9 * np.linalg.norm(tint) * np.linalg.norm(colour)
    assert (overlay[30:34, 30:34] == 128).all()  # no attention, no change


def test_save_attention_writes_raw_maps_and_overlays(
    report: ReportSummary, results: dict[str, VideoResult]
) -> None:
    maps = [path for path in report.attention_files if path.suffix == ".npy"]
    pngs = [path for path in report.attention_files if path.suffix == ".png"]
    faces = sum(min(STRIP_FACES, person.frames) for person in results[HOSTILE_NAME].persons)
    assert faces <= len(maps) <= faces + len(results[HOSTILE_NAME].persons)
    assert len(pngs) == 2 * len(maps)  # an overlay and the plain crop per face
    for maps_path in maps:
        attention_maps = np.load(maps_path)
        # (M, h, w): B0's b5 tap is 1/16 of the 64-pixel input.
        assert attention_maps.shape == (NUM_ATTENTIONS, 4, 4)
        assert attention_maps.dtype == np.float32 and attention_maps.max() > 0
    for png_path in pngs:
        assert cv2.imread(str(png_path)).shape == (64, 64, 3)


# --- the index --------------------------------------------------------------------------------


def test_index_lists_every_video_most_fake_first_with_errors(
    report: ReportSummary, results: dict[str, VideoResult]
) -> None:
    index = parse(report.index_path.read_text(encoding="utf-8"))
    listed = [Path(row[0]["data-value"]).name for row in index.rows]
    assert listed == [HOSTILE_NAME, "no face.mp4", "empty.mp4"]
    assert results["empty.mp4"].error in index.text
    assert "No face found in the sampled frames." in index.text
    # Every link leads to a page that exists; the failed video has none.
    hrefs = [href for _row, href in index.links]
    assert len(hrefs) == 2 == len(report.pages)
    assert all((report.index_path.parent / href).is_file() for href in hrefs)
    no_face_page = parse(page_of(report, "no face.mp4").read_text(encoding="utf-8"))
    assert "not a REAL verdict" in no_face_page.text
    assert no_face_page.images == []


# --- when evidence is missing -----------------------------------------------------------------


def test_unreachable_video_keeps_its_timeline_and_says_why(
    results: dict[str, VideoResult], model, tmp_path: Path
) -> None:
    moved = replace(results[HOSTILE_NAME], path=str(tmp_path / "moved away.mp4"))
    evidence = gather_evidence(moved, model)
    assert evidence.crops_problem is not None and "does not exist" in evidence.crops_problem
    page = parse(render_video_page(evidence))
    assert [image["class"] for image in page.images] == ["timeline"] * len(moved.persons)
    assert "No face crops are shown" in page.text


def test_model_without_attention_shows_crops_and_says_so(
    results: dict[str, VideoResult], tmp_path: Path
) -> None:
    config = MATConfig(backbone="efficientnet-b0", input_size=64, variant="backbone")
    path = save_weights(
        build_detector(config),
        tmp_path / "backbone.safetensors",
        preprocessing=Preprocessing(input_size=64),
    )
    evidence = gather_evidence(results[HOSTILE_NAME], load_detector(path))
    page = parse(render_video_page(evidence))
    classes = [image["class"] for image in page.images]
    assert "crop" in classes and "overlay" not in classes and "heatmap" not in classes
    assert "without attention maps" in page.text


# --- `mattn report` ---------------------------------------------------------------------------


def invoke_report(arguments: list[str]):
    app = typer.Typer()
    app.command()(report_command)
    return CliRunner().invoke(app, arguments)


def test_report_command_builds_reports_from_a_results_file(
    results_path: Path, tiny_weights: Path, tmp_path: Path
) -> None:
    output = tmp_path / "report"
    outcome = invoke_report(
        [str(results_path), "-o", str(output), "--weights", str(tiny_weights), "--device", "cpu"]
    )
    assert outcome.exit_code == 0, outcome.output
    assert (output / INDEX_NAME).is_file()
    assert len(list(output.glob("*.html"))) == 3  # the index and two pages


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("other weights", "is not the model that scored these results"),
        ("default weights", "pass --weights"),
        ("no details", "has no per-frame details"),
        ("missing results", "does not exist"),
    ],
)
def test_report_command_refuses_in_one_sentence(
    case: str,
    message: str,
    results_path: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MATTN_WEIGHTS", raising=False)
    arguments = [str(results_path), "-o", str(tmp_path / "report")]
    if case == "other weights":
        other = tmp_path / "other.safetensors"
        other.write_bytes(b"not these weights")
        arguments += ["--weights", str(other)]
    elif case == "no details":
        plain = tmp_path / "plain.jsonl"
        lines = results_path.read_text(encoding="utf-8").splitlines()
        plain.write_text(
            "".join(re.sub(r',"frames":\[.*\]\}$', "}", line) + "\n" for line in lines)
        )
        arguments[0] = str(plain)
    elif case == "missing results":
        arguments[0] = str(tmp_path / "missing.jsonl")
    outcome = invoke_report(arguments)
    assert outcome.exit_code == 2
    lines = outcome.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mattn: ") and message in lines[0], lines


# --- the templates ----------------------------------------------------------------------------


def test_a_file_name_that_is_not_utf8_is_shown_with_escapes() -> None:
    path = "/videos/caf\udce9 <b>.mp4"  # the bytes b"caf\xe9", as Python keeps them
    model = ModelInfo(name="demo", sha256="ab" * 32, demo=True)
    timing = {"threshold": 0.5, "aggregate": "mean", "model": model, "seconds": 0.1}
    no_face = VideoResult.no_face(path, **timing)
    failed = VideoResult.failed(path, f"Cannot decode {path}.", **timing)
    for page in (
        render_video_page(VideoEvidence(result=no_face)),
        render_index([IndexEntry(result=failed, page=None)]),
    ):
        page.encode("utf-8")  # a page is always writable as UTF-8
        assert "caf\\udce9 &lt;b&gt;.mp4" in page
        assert "<b>" not in page
        parse(page)


def test_pages_inline_the_packaged_stylesheet_and_script(report: ReportSummary) -> None:
    templates = files("deepfake_cli.report") / "templates"
    stylesheet = (templates / "style.css").read_text(encoding="utf-8").strip()
    sort_script = (templates / "sort_table.js").read_text(encoding="utf-8").strip()
    video_page = page_of(report, HOSTILE_NAME).read_text(encoding="utf-8")
    index = report.index_path.read_text(encoding="utf-8")
    for page in (video_page, index):
        assert stylesheet in page and "<link" not in page
    assert index.count(sort_script) == 1 and sort_script not in video_page


def test_every_template_file_is_package_data() -> None:
    """A wheel (a non-editable install) carries the templates: pyproject's globs name each file."""
    settings = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))
    globs = settings["tool"]["setuptools"]["package-data"]["deepfake_cli"]
    package = Path(str(files("deepfake_cli")))
    template_files = [
        path for path in (package / "report" / "templates").rglob("*") if path.is_file()
    ]
    assert {path.suffix for path in template_files} >= {".j2", ".css", ".js"}
    for path in template_files:
        relative = PurePosixPath(path.relative_to(package).as_posix())
        assert any(relative.match(glob) for glob in globs), relative


# --- reading given frames ---------------------------------------------------------------------


def test_read_frame_indices_returns_exactly_those_frames() -> None:
    first_frames = read_frames(CARPHONE, every=1, count=6)
    sampled = read_frame_indices(CARPHONE, [5, 0, 5])
    assert sampled.frame_indices == [0, 5]
    assert np.array_equal(sampled.frames[0], first_frames.frames[0])
    assert np.array_equal(sampled.frames[1], first_frames.frames[5])
    # Times are the frames' own timestamps (from frame 0), to the container's precision.
    assert sampled.times_s == pytest.approx([0.0, 5 / sampled.info.fps], abs=1e-3)
    with pytest.raises(VideoError, match="has 120 frames"):
        read_frame_indices(CARPHONE, [120])
    with pytest.raises(UsageError):
        read_frame_indices(CARPHONE, [])


# --- what a browser shows ---------------------------------------------------------------------

BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(BROWSER is None, reason="no headless Chromium installed")
def test_page_renders_in_a_headless_browser(report: ReportSummary, tmp_path: Path) -> None:
    screenshot = tmp_path / "page.png"
    page = page_of(report, HOSTILE_NAME)
    subprocess.run(
        [
            BROWSER,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1200,2400",
            f"--screenshot={screenshot}",
            page.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    image = cv2.imread(str(screenshot))
    assert image is not None and image.shape[:2] == (2400, 1200)
    # Something was drawn: the verdict, pictures and text, not a blank page.
    assert image.std() > 20
