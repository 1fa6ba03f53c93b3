"""Several decoding workers: results in input order, one hung worker does not stop the others,
and the frames in flight are bounded.

The videos are written by the test itself (see tests/test_video.py): every frame carries its own
index, so a test can check that the frames returned are the frames requested. The decode
functions below run inside the workers (module level, so picklable; this module imports no
torch, so importing it there is cheap).
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from deepfake_cli.errors import UsageError, VideoError
from deepfake_cli.frame_reader import (
    MAX_DEFAULT_DECODE_WORKERS,
    FrameReader,
    default_decode_workers,
    open_frame_reader,
)
from deepfake_cli.video import SampledFrames, read_frames
from tests.test_video import assert_one_sentence_about, index_in_frame, write_video


def sleep_by_name(path: str, **options) -> SampledFrames:
    """Sleeps the seconds its name says ('clip-0.8s-3.mp4': 0.8 s), hangs on 'hang', then reads."""
    name = os.path.basename(path)
    if "hang" in name:
        time.sleep(600)
    seconds = re.search(r"-([0-9.]+)s-", name)
    if seconds:
        time.sleep(float(seconds.group(1)))
    return read_frames(path, **options)


def meet_the_other_workers(path: str, **options) -> SampledFrames:
    """Signs in (a file named after this process), waits until 3 processes have, and says so."""
    folder = Path(path).parent / "signed-in"
    folder.mkdir(exist_ok=True)
    (folder / str(os.getpid())).touch()
    deadline = time.monotonic() + 30.0
    while len(list(folder.iterdir())) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    raise VideoError(f"pid {os.getpid()} met {len(list(folder.iterdir()))}.")


def clips(folder: Path, seconds: list[float]) -> list[Path]:
    """One clip per entry, clip k with 10 + k frames (so each result tells which clip it is)."""
    return [
        write_video(folder / f"clip-{delay}s-{number}.mp4", num_frames=10 + number)
        for number, delay in enumerate(seconds)
    ]


def assert_is_clip(sampled: SampledFrames, number: int) -> None:
    assert sampled.info.num_frames == 10 + number
    assert [index_in_frame(frame) for frame in sampled.frames] == sampled.frame_indices


def test_workers_decode_at_once_and_results_keep_the_input_order(tmp_path: Path) -> None:
    # The first clips are the slowest, so the workers finish them last.
    paths = clips(tmp_path, [1.2, 0.9, 0.6, 0.3, 0.0, 0.0])
    with FrameReader(timeout_s=60.0, workers=3, decode_function=sleep_by_name) as reader:
        reader.read(paths[-1], count=2)  # every worker is up (they start together)
        started = time.monotonic()
        results = [(path, pending.result()) for path, pending in reader.read_ahead(paths, count=3)]
        elapsed = time.monotonic() - started
    assert [path for path, _ in results] == paths
    for number, (_path, sampled) in enumerate(results):
        assert_is_clip(sampled, number)
    # 3 s of sleeping in all: one worker alone would need more than 3 s.
    assert elapsed < 3.0


def test_each_worker_is_its_own_process(tmp_path: Path) -> None:
    paths = clips(tmp_path, [0.0] * 3)
    messages = []
    with FrameReader(timeout_s=60.0, workers=3, decode_function=meet_the_other_workers) as reader:
        for pending in [reader.submit(path) for path in paths]:
            with pytest.raises(VideoError, match=r"pid \d+") as raised:
                pending.result()
            messages.append(str(raised.value))
    # Three processes held a request at the same time (one worker alone would wait for itself).
    assert len(set(messages)) == 3 and all(message.endswith("met 3.") for message in messages)
    assert str(os.getpid()) not in " ".join(messages)


def test_a_hung_worker_is_killed_while_the_others_deliver(tmp_path: Path) -> None:
    hanging = write_video(tmp_path / "hang.mp4", num_frames=5)
    paths = clips(tmp_path, [0.0, 0.0, 0.0])
    with FrameReader(timeout_s=6.0, workers=2, decode_function=sleep_by_name) as reader:
        reader.read(paths[0], count=1)
        started = time.monotonic()
        decoding = list(reader.read_ahead([hanging, *paths], count=2))
        (_, hung), *others = decoding
        # The other worker decodes every other clip while the first one hangs.
        for number, (_path, pending) in enumerate(others):
            assert_is_clip(pending.result(), number)
        assert not hung.done()
        with pytest.raises(VideoError, match=r"did not finish within 6 s") as raised:
            hung.result()
        assert 5.0 < time.monotonic() - started < 30.0
        assert_one_sentence_about(raised.value, hanging)
        # The killed worker is replaced: both slots decode again.
        again = [reader.submit(path, count=2) for path in paths[:2]]
        for number, pending in enumerate(again):
            assert_is_clip(pending.result(), number)


def test_read_ahead_bounds_the_videos_in_flight(tmp_path: Path) -> None:
    paths = clips(tmp_path, [0.0] * 6)
    taken: list[int] = []

    def items():
        for number, path in enumerate(paths):
            taken.append(number)
            yield number, path

    with FrameReader(timeout_s=60.0, workers=3) as reader:
        # Default: one video ahead per worker; item k + 3 is taken when item k is handed out.
        decoding = reader.read_ahead(items(), path_of=lambda item: item[1], count=2)
        for (number, _path), pending in decoding:
            assert len(taken) == min(number + 1 + 3, len(paths))
            assert_is_clip(pending.result(), number)
        taken.clear()
        for (number, _path), _pending in reader.read_ahead(
            items(), path_of=lambda item: item[1], ahead=1, count=2
        ):
            assert len(taken) == min(number + 2, len(paths))
        with pytest.raises(ValueError, match="ahead"):
            next(reader.read_ahead(paths, ahead=-1))


def test_closing_cancels_what_every_worker_has_and_what_waits(tmp_path: Path) -> None:
    hanging = write_video(tmp_path / "hang.mp4", num_frames=3)
    reader = FrameReader(timeout_s=None, workers=2, decode_function=sleep_by_name)
    pending = [reader.submit(hanging) for _ in range(4)]  # two hang, two wait behind them
    time.sleep(0.5)
    reader.close()
    for frames in pending:
        with pytest.raises(VideoError, match="closed"):
            frames.result()


def test_default_decode_workers_and_the_decode_step() -> None:
    # The CPU keeps one worker reading ahead; a GPU gets every core but one, within a cap.
    assert default_decode_workers("cpu", cpu_count=64) == 1
    assert default_decode_workers("cuda", cpu_count=16) == 15
    assert default_decode_workers("cuda", cpu_count=1) == 1
    assert default_decode_workers("cuda", cpu_count=256) == MAX_DEFAULT_DECODE_WORKERS
    assert default_decode_workers("cuda") >= 1
    with open_frame_reader("cpu", timeout_s=10.0) as reader:
        assert reader.workers == 1 and reader.timeout_s == 10.0
    with open_frame_reader("cpu", timeout_s=None, workers=2) as reader:
        assert reader.workers == 2
    with pytest.raises(UsageError, match="--decode-workers must be at least 1"):
        open_frame_reader("cpu", timeout_s=None, workers=0)
    with pytest.raises(ValueError, match="workers"):
        FrameReader(workers=0)
