"""`mattn scan` starts decoding its first videos before the models load, and loses nothing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from deepfake_cli import scoring
from deepfake_cli.errors import WeightsError
from deepfake_cli.frame_reader import FrameReader
from deepfake_cli.report import read_results
from deepfake_cli.scan import ScanOptions, ScanRequest, run_scan

CARPHONE = Path(__file__).parent / "data" / "carphone_pristine.mp4"


@pytest.fixture
def clips(tmp_path: Path) -> list[Path]:
    paths = []
    for name in ("a.mp4", "b.mp4", "c.mp4"):
        paths.append(tmp_path / name)
        shutil.copy(CARPHONE, paths[-1])
    return paths


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What happened, in order: "decode NAME" for each request sent, "models" when they load."""
    recorded: list[str] = []
    submit, open_scorer = FrameReader.submit, scoring.open_scorer

    def recording_submit(self, path, **options):
        recorded.append(f"decode {Path(path).name}")
        return submit(self, path, **options)

    def recording_open_scorer(*args, **kwargs):
        recorded.append("models")
        return open_scorer(*args, **kwargs)

    monkeypatch.setattr(FrameReader, "submit", recording_submit)
    monkeypatch.setattr(scoring, "open_scorer", recording_open_scorer)
    return recorded


def scan(clips: list[Path], weights: Path, output: Path) -> int:
    return run_scan(
        ScanRequest(
            inputs=tuple(str(path) for path in clips),
            options=ScanOptions(frames=4),
            weights=weights,
            device="cpu",
            decode_workers=1,
            output_format="jsonl",
            output=output,
            quiet=True,
        )
    )


def test_first_videos_decode_while_the_models_load(
    clips: list[Path], events: list[str], tiny_weights: Path, tmp_path: Path
) -> None:
    output = tmp_path / "results.jsonl"
    scan(clips, tiny_weights, output)
    # One worker, one video at a time: the first video and the one after it are requested
    # before the models load, the third once the first is taken.
    assert events == ["decode a.mp4", "decode b.mp4", "models", "decode c.mp4"]
    results = read_results(output)
    assert [Path(result.path).name for result in results] == ["a.mp4", "b.mp4", "c.mp4"]
    assert {result.status for result in results} == {"ok"}
    # Judged as before: the same frames give the same score (up to the precision's rounding).
    scores = [result.fake_probability for result in results]
    assert scores == pytest.approx([scores[0]] * 3, abs=1e-4)


def test_weights_that_fail_to_load_stop_the_decoding_cleanly(
    clips: list[Path], events: list[str], tmp_path: Path
) -> None:
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not a safetensors file")
    output = tmp_path / "results.jsonl"
    with pytest.raises(WeightsError):
        scan(clips, broken, output)
    assert events[:3] == ["decode a.mp4", "decode b.mp4", "models"]
    assert read_results(output) == []  # no result for a video that was never judged
