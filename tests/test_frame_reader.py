"""FrameReader: decoding in a worker process that is killed when a file hangs, and reading ahead.

The videos are written by the test itself (see tests/test_video.py): every frame carries its own
index, so a test can check that the frames returned are the frames requested.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from deepfake_cli.errors import UsageError, VideoError
from deepfake_cli.frame_reader import FrameReader
from deepfake_cli.video import SampledFrames, read_frames
from tests.test_video import (
    BAD_INPUTS,
    assert_one_sentence_about,
    index_in_frame,
    make_bad_input,
    write_video,
)

# --- decode functions injected into FrameReader's worker (module level, so picklable) ---------


def hang_on_files_named_hang(path: str, **options) -> SampledFrames:
    """Decodes normally, except that files with 'hang' in their name never finish."""
    if "hang" in os.path.basename(path):
        time.sleep(600)
    return read_frames(path, **options)


def report_worker_modules(path: str, **options) -> SampledFrames:
    loaded = sorted(name for name in ("torch", "deepfake_cli.model") if name in sys.modules)
    raise VideoError(f"worker modules: {loaded}.")


def exit_abruptly(path: str, **options) -> SampledFrames:
    if "crash" in os.path.basename(path):
        os._exit(3)
    return read_frames(path, **options)


# --- FrameReader (worker process) -------------------------------------------------------------


def test_frame_reader_reads_and_prefetches_in_order(tmp_path: Path) -> None:
    paths = [
        write_video(tmp_path / f"clip{number}.mp4", num_frames=20 + number) for number in range(3)
    ]
    with FrameReader(timeout_s=60.0) as reader:
        first = reader.read(paths[0], count=4)
        pending = [reader.submit(path, count=4) for path in paths[1:]]  # two videos ahead
        later = [frames.result() for frames in pending]
        with pytest.raises(TypeError, match="unknown read option"):
            reader.submit(paths[0], frames=4)  # a misspelt option fails here, not in the worker
    in_process = read_frames(paths[0], count=4)
    assert first.info == in_process.info
    assert first.frame_indices == in_process.frame_indices
    assert first.times_s == in_process.times_s
    assert first.decode == in_process.decode  # how they were decoded crosses the pipe too
    assert np.array_equal(first.frames, in_process.frames)
    for number, sampled in enumerate(later, start=1):
        assert sampled.info.num_frames == 20 + number
        assert [index_in_frame(frame) for frame in sampled.frames] == sampled.frame_indices
    assert all(frames.done() for frames in pending)


def test_frame_reader_times_out_then_keeps_working(tmp_path: Path) -> None:
    hanging = write_video(tmp_path / "hang.mp4", num_frames=5)
    fine = write_video(tmp_path / "fine.mp4", num_frames=10)
    with FrameReader(timeout_s=2.0, decode_function=hang_on_files_named_hang) as reader:
        hung = reader.submit(hanging)
        queued = reader.submit(fine, count=3)  # waits behind the hung file; its own 2 s apply
        started = time.monotonic()
        with pytest.raises(VideoError, match=r"did not finish within 2 s") as raised:
            hung.result()
        assert time.monotonic() - started < 20.0
        assert_one_sentence_about(raised.value, hanging)
        sampled = queued.result()  # decoded by a fresh worker
        assert [index_in_frame(frame) for frame in sampled.frames] == sampled.frame_indices
        assert reader.read(fine, count=2).frame_indices == [2, 7]


def test_frame_reader_reports_bad_input_and_worker_crashes(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    crashing = write_video(tmp_path / "crash.mp4", num_frames=5)
    fine = write_video(tmp_path / "fine.mp4", num_frames=10)
    with FrameReader(timeout_s=None, decode_function=exit_abruptly) as reader:
        for kind, expected_words in BAD_INPUTS.items():
            (tmp_path / kind).mkdir()
            path = make_bad_input(kind, tmp_path / kind)
            with pytest.raises(VideoError, match=expected_words) as raised:
                reader.read(path)
            assert_one_sentence_about(raised.value, path)
        with pytest.raises(UsageError, match="past the end"):
            reader.read(fine, start_s=100.0)
        with pytest.raises(VideoError, match="exited unexpectedly") as raised:
            reader.read(crashing)
        assert_one_sentence_about(raised.value, crashing)
        assert reader.read(fine, count=1).frame_indices == [5]
    # The worker's stderr (decord's C++ warnings on bad files) does not reach the user.
    assert "ERROR opening" not in capfd.readouterr().err


def test_the_worker_imports_neither_torch_nor_the_package_init(tmp_path: Path) -> None:
    path = write_video(tmp_path / "clip.mp4", num_frames=3)
    with (
        FrameReader(decode_function=report_worker_modules) as reader,
        pytest.raises(VideoError, match=r"worker modules: \[\]\."),
    ):
        reader.read(path)


def test_closing_cancels_pending_reads(tmp_path: Path) -> None:
    hanging = write_video(tmp_path / "hang.mp4", num_frames=3)
    reader = FrameReader(timeout_s=None, decode_function=hang_on_files_named_hang)
    pending = [reader.submit(hanging), reader.submit(hanging)]
    reader.close()
    for frames in pending:
        with pytest.raises(VideoError, match="closed"):
            frames.result()
    with pytest.raises(RuntimeError):
        reader.submit(hanging)
    reader.close()  # closing twice is harmless


def test_read_ahead_keeps_one_video_decoding_ahead(tmp_path: Path) -> None:
    paths = [
        write_video(tmp_path / f"clip{number}.mp4", num_frames=10 + number) for number in range(3)
    ]
    paths.append(make_bad_input("empty", tmp_path))
    taken = []

    def items():
        for number, path in enumerate(paths):
            taken.append(number)
            yield {"number": number, "path": path}

    with FrameReader(timeout_s=60.0) as reader:
        decoding = reader.read_ahead(items(), path_of=lambda item: item["path"], count=2)
        item, pending = next(decoding)
        # The first video is handed out once the second is submitted, and no earlier.
        assert item["number"] == 0 and taken == [0, 1]
        assert pending.result().info.num_frames == 10
        rest = list(decoding)
        assert [item["number"] for item, _ in rest] == [1, 2, 3]
        for (_item, pending), num_frames in zip(rest[:2], (11, 12), strict=True):
            sampled = pending.result()
            assert sampled.info.num_frames == num_frames and len(sampled.frame_indices) == 2
            assert [index_in_frame(frame) for frame in sampled.frames] == sampled.frame_indices
        with pytest.raises(VideoError, match="empty"):  # a bad video fails in its result()
            rest[2][1].result()
        # Plain paths need no path_of; an empty batch yields nothing.
        assert [path for path, _ in reader.read_ahead(paths[:2])] == paths[:2]
        assert list(reader.read_ahead([])) == []


# --- inputs the decode fuzzer (scripts/fuzz_decode.py) found breaking something --------------

FUZZ_FINDINGS = sorted(
    path for path in (Path(__file__).parent / "data" / "fuzz").iterdir() if path.suffix != ".md"
)


@pytest.mark.parametrize("path", FUZZ_FINDINGS, ids=[path.name for path in FUZZ_FINDINGS])
def test_fuzz_findings_read_or_get_one_sentence(path: Path) -> None:
    """Each broke a rule once (a traceback, a hang); now it reads, or is refused in a sentence."""
    with FrameReader(timeout_s=30.0) as reader:
        try:
            sampled = reader.read(path, count=32)
        except VideoError as error:
            assert_one_sentence_about(error, path)
            assert "failed in the worker process" not in str(error)
            assert "did not finish" not in str(error)
            return
    assert sampled.decode.frames_exact == sampled.decode.frames_requested
    assert len(sampled.frames) == len(sampled.frame_indices) == len(sampled.times_s)
