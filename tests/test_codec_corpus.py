"""The frames mattn judges are the frames it names, on every common container and codec.

The corpus (tests/codec_corpus.py) is written here with PyAV: tiny clips whose every frame shows
its own index. The reference is a plain PyAV decode from the first packet: frame k is the k-th
frame the decoder shows, at its own timestamp. Each clip is checked three ways:

1. `read_frames` returns, for the indices it names, the reference's frames (drawn index, pixels)
   at the reference's times, and says which decoder read them.
2. Where the rule (`video.decord_exact_reason`) trusts decord, decord's own frames are the
   reference's at several samplings: the fast path is exact there.
3. Where the rule does not, decord's frames are not the reference's (or decord fails) for some
   sampling: the reason the exact path exists. Should a decord release fix one of these, this
   test says so, and the rule may trust decord there too.
"""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import av
import numpy as np
import pytest

from deepfake_cli import pyav_video, video
from deepfake_cli.decord_video import DecordFailed, DecordVideo
from deepfake_cli.errors import VideoError
from deepfake_cli.pyav_video import probe_stream, read_exact
from deepfake_cli.results import CHEAPER_IN_ORDER, DecodeInfo, ModelInfo, VideoResult
from deepfake_cli.video import (
    decord_exact_reason,
    read_frame_indices,
    read_frames,
    sample_frame_indices,
)
from tests.codec_corpus import CORPUS, Clip, clip_named, frame_number, write_clip

#: Which decoder reads each clip, and so which the rule must pick (or fall back to).
EXPECTED_DECODER = {
    "mp4-h264-bframes": "decord",
    "mp4-h264-no-bframes": "decord",
    "mpeg1-ps": "pyav",
    "mpeg2-ps": "pyav",
    "mpeg2-ts": "pyav",
    "h264-ts": "pyav",
    "avi-mpeg4-part2": "pyav",
    "mp4-mpeg4-part2": "pyav",  # FFmpeg's MPEG-4 Part 2 GOPs are open
    "avi-h264": "pyav",
    "avi-mjpeg": "decord",
    "webm-vp9": "decord",
    "mkv-h264": "decord",
    "mkv-mpeg2": "pyav",  # open GOPs
    "mov-h264": "decord",
    "mp4-vfr": "decord",
    "mp4-rotated-90": "decord",
    "mov-rotated-270": "decord",
    "mp4-open-gop": "pyav",
    "mkv-open-gop": "pyav",
    "wmv2-asf": "pyav",
    "flv-h264": "decord",
    "mp4-av1": "pyav",  # the rule trusts decord here, but decord 0.6.0 cannot decode AV1
}
#: The clips whose packets come in presentation order (no B-frames, real timestamps), where PyAV
#: decodes each group of pictures only up to its last sampled frame.
IN_PRESENTATION_ORDER = {"mp4-h264-no-bframes", "avi-mjpeg", "webm-vp9", "wmv2-asf", "mp4-av1"}
#: Mean absolute difference (0-255) allowed between two decoders' RGB of the same frame: their
#: FFmpeg versions convert YUV to RGB with slightly different rounding.
PIXEL_TOLERANCE = 3.0


def as_drawn(frame: np.ndarray, clip: Clip) -> np.ndarray:
    """An upright frame turned back to how it was drawn (before the container's rotation)."""
    return np.rot90(frame, k=clip.rotation // 90)


def reference(path: Path, clip: Clip) -> tuple[np.ndarray, list[float]]:
    """Every frame, upright, and its time after frame 0: PyAV decoding from the first packet.

    A frame's time is its own timestamp, unless the timestamps do not rise frame by frame
    (AVI has none; the MPEG-1 program stream repeats one): then it is index / frame rate.
    """
    frames, pts = [], []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            pts.append(frame.pts)
            frames.append(np.rot90(frame.to_ndarray(format="rgb24"), k=-clip.rotation // 90))
        time_base = stream.time_base
    if all(later > earlier for earlier, later in zip(pts, pts[1:], strict=False)):
        times_s = [float((frame_pts - pts[0]) * time_base) for frame_pts in pts]
    else:
        times_s = [index / clip.fps for index in range(len(pts))]
    return np.stack(frames), times_s


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Clip, Path]]:
    folder = tmp_path_factory.mktemp("corpus")
    return {clip.name: (clip, write_clip(clip, folder)) for clip in CORPUS}


def test_the_corpus_is_what_it_says(corpus) -> None:
    """Every clip's frames are numbered 0, 1, 2, ... in the reference decode."""
    assert set(EXPECTED_DECODER) == {clip.name for clip in CORPUS}
    for clip, path in corpus.values():
        frames, times_s = reference(path, clip)
        assert [frame_number(as_drawn(frame, clip)) for frame in frames] == list(
            range(clip.num_frames)
        ), clip.name
        assert times_s[0] == 0.0 and times_s == sorted(set(times_s)), clip.name


@pytest.mark.parametrize("cost_rule", ["on", "off"])
@pytest.mark.parametrize("clip_name", EXPECTED_DECODER)
def test_read_frames_returns_the_frames_it_names(
    corpus, clip_name: str, cost_rule: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the cost rule off, each clip is read by the decoder the exactness rule picks; with
    it on (as mattn runs), these short clips are sampled densely enough that PyAV's sequential
    decode costs less than decord's seeks everywhere: the same frames either way."""
    clip, path = corpus[clip_name]
    reference_frames, reference_times = reference(path, clip)
    expected_decoder = EXPECTED_DECODER[clip_name]
    if cost_rule == "off":
        monkeypatch.setattr(video, "sequential_is_cheaper_reason", lambda facts, choose: None)
    elif expected_decoder == "decord":
        expected_decoder = "pyav"
    for options in ({"count": 8}, {"count": 32}, {"every": 7, "start_s": 0.3}):
        sampled = read_frames(path, **options)
        indices = sampled.frame_indices
        assert [frame_number(as_drawn(frame, clip)) for frame in sampled.frames] == indices
        difference = np.abs(sampled.frames.astype(float) - reference_frames[indices]).mean()
        assert difference <= PIXEL_TOLERANCE, (clip_name, options, difference)
        assert sampled.times_s == pytest.approx([reference_times[i] for i in indices], abs=1e-3)
        assert sampled.info.num_frames == clip.num_frames
        assert sampled.info.rotation == clip.rotation
        turned = clip.rotation in (90, 270)
        upright_size = (clip.width, clip.height) if turned else (clip.height, clip.width)
        assert sampled.frames.shape[1:3] == upright_size  # (height, width)
        assert sampled.decode.decoder == expected_decoder, sampled.decode
        assert sampled.decode.frames_requested == sampled.decode.frames_exact == len(indices)
        assert (sampled.decode.frames_substituted, sampled.decode.frames_skipped) == (0, 0)
        assert (sampled.decode.reason is None) == (sampled.decode.decoder == "decord")
    # The report goes back to a scan's frames by index: the same frames come back.
    again = read_frame_indices(path, sampled.frame_indices[::2])
    assert [frame_number(as_drawn(frame, clip)) for frame in again.frames] == again.frame_indices


@pytest.mark.parametrize("clip_name", EXPECTED_DECODER)
def test_frames_no_sample_needs_are_not_decoded_and_the_rest_are_the_same(
    corpus, clip_name: str
) -> None:
    """Where packets come in presentation order, PyAV decodes each group of pictures only up to
    its last sampled frame: the same frames, bit for bit, at the same times as decoding every
    packet. Where they do not (B-frames; AVI's made-up timestamps), every packet is decoded."""
    clip, path = corpus[clip_name]
    facts = probe_stream(str(path))
    assert facts.in_presentation_order == (clip_name in IN_PRESENTATION_ORDER)
    for count in (3, 8, 32):

        def choose(num_frames: int, fps: float, count: int = count) -> list[int]:
            return sample_frame_indices(num_frames, fps, count)

        every_packet = read_exact(str(path), facts, choose, skip_unneeded=False)
        needed = read_exact(str(path), facts, choose)
        assert needed.frame_indices == every_packet.frame_indices
        assert np.array_equal(needed.frames, every_packet.frames), (clip_name, count)
        assert needed.times_s == every_packet.times_s
        assert (needed.num_frames, needed.rotation) == (clip.num_frames, clip.rotation)
        assert every_packet.frames_decoded == every_packet.frame_indices[-1] + 1
        if clip_name in IN_PRESENTATION_ORDER and count <= 8:
            assert needed.frames_decoded < every_packet.frames_decoded, (clip_name, count)
        elif clip_name not in IN_PRESENTATION_ORDER:
            assert needed.frames_decoded == every_packet.frames_decoded


def test_packets_held_back_past_the_limit_are_decoded_and_the_frames_stay_the_same(
    corpus, monkeypatch: pytest.MonkeyPatch
) -> None:
    clip, path = corpus["mp4-h264-no-bframes"]
    facts = probe_stream(str(path))
    frames, _ = reference(path, clip)
    wanted = [3, 17, 31]
    unlimited = read_exact(str(path), facts, lambda num_frames, fps: wanted)
    monkeypatch.setattr(pyav_video, "HELD_BYTES_MAX", 1)  # every packet goes to the decoder
    limited = read_exact(str(path), facts, lambda num_frames, fps: wanted)
    assert np.array_equal(limited.frames, unlimited.frames)
    assert np.array_equal(limited.frames, frames[wanted])
    assert unlimited.frames_decoded < limited.frames_decoded == 32


def test_a_stream_that_reorders_after_all_is_decoded_packet_by_packet(corpus) -> None:
    """Should the first packets have misled the probe, the frames are still the right ones."""
    clip, path = corpus["mp4-h264-bframes"]
    misled = replace(probe_stream(str(path)), in_presentation_order=True)
    frames, _ = reference(path, clip)
    read = read_exact(str(path), misled, lambda num_frames, fps: [3, 4, 17, 31])
    assert np.array_equal(read.frames, frames[[3, 4, 17, 31]])
    assert read.frames_decoded == 32  # every packet, after the skipping decode gave up


def test_b_frames_are_read_in_order_when_dense_and_by_decord_when_sparse(tmp_path: Path) -> None:
    """With B-frames every packet up to the last sample is decoded, which pays only for dense
    samplings; without them PyAV decodes what decord would, without its seeks."""
    with_b = write_clip(clip_named("mp4-h264-bframes"), tmp_path, num_frames=300)
    dense, sparse = read_frames(with_b, count=32), read_frames(with_b, count=4)
    assert dense.decode == DecodeInfo(
        "pyav", f"{CHEAPER_IN_ORDER} for frames this dense (keyframes every 10 frames)", 32, 32
    )
    assert sparse.decode == DecodeInfo("decord", None, 4, 4)
    without_b = write_clip(clip_named("mp4-h264-no-bframes"), tmp_path, num_frames=300)
    for count in (32, 4):
        assert read_frames(without_b, count=count).decode.reason == (
            f"{CHEAPER_IN_ORDER}: with no B-frames, only the frames the samples need are decoded "
            "(keyframes every 10 frames)"
        )


def test_variable_frame_rate_times_are_the_frames_own(corpus) -> None:
    clip, path = corpus["mp4-vfr"]
    sampled = read_frames(path, count=40)
    # Durations of 90, 20, 20 and 40 ms, repeated: the times are not index / average rate.
    assert sampled.times_s[:6] == pytest.approx([0.0, 0.09, 0.11, 0.13, 0.17, 0.26], abs=1e-3)


@pytest.mark.parametrize(
    "clip_name", [name for name, decoder in EXPECTED_DECODER.items() if decoder == "decord"]
)
def test_decord_is_exact_wherever_the_rule_trusts_it(corpus, clip_name: str) -> None:
    clip, path = corpus[clip_name]
    assert decord_exact_reason(probe_stream(str(path))) is None
    video = DecordVideo.open(str(path))
    for count in (32, 8, 3):
        indices = sample_frame_indices(video.num_frames, clip.fps, count)
        drawn = [frame_number(as_drawn(frame, clip)) for frame in video.decode(indices)]
        assert drawn == indices, (clip_name, count)


@pytest.mark.parametrize(
    "clip_name", [name for name, decoder in EXPECTED_DECODER.items() if decoder == "pyav"]
)
def test_decord_is_not_exact_where_the_rule_reads_with_pyav(tmp_path: Path, clip_name: str) -> None:
    # 120 frames: enough GOPs for decord's seeks to go wrong everywhere the rule distrusts it.
    clip = clip_named(clip_name)
    path = write_clip(clip, tmp_path, num_frames=120)
    reason = decord_exact_reason(probe_stream(str(path)))
    outcomes = []
    for count in (32, 8, 3):
        try:
            video = DecordVideo.open(str(path))  # fresh: decord counts substitutions per reader
            indices = sample_frame_indices(video.num_frames, clip.fps, count)
            drawn = [frame_number(as_drawn(frame, clip)) for frame in video.decode(indices)]
            outcomes.append("exact" if drawn == indices else "wrong frames")
        except DecordFailed as failure:
            outcomes.append(failure.reason)
    assert outcomes != ["exact"] * 3, f"decord is exact on {clip_name}; the rule says {reason}"
    assert (reason is None) == (clip_name == "mp4-av1")  # AV1: decord fails, nothing wrong


def test_a_program_stream_cut_mid_stream_reads_the_frames_that_decode(tmp_path: Path) -> None:
    """Cut at a pack before a sequence header: its first GOP's leading frames cannot decode.

    The container has more video packets than the decoder shows frames; frame 0 is the first
    frame shown, and the sampled frames are those of the frames shown.
    """
    data = write_clip(clip_named("mpeg2-ps"), tmp_path).read_bytes()
    sequence_header = data.find(b"\x00\x00\x01\xb3", len(data) * 2 // 5)
    cut_at = data.rfind(b"\x00\x00\x01\xba", 0, sequence_header)  # the pack holding it
    path = tmp_path / "cut.mpg"
    path.write_bytes(data[cut_at:])
    shown = [frame_number(frame) for frame in reference(path, clip_named("mpeg2-ps"))[0]]
    sampled = read_frames(path, count=8)
    assert sampled.info.num_frames == len(shown)
    assert sampled.frame_indices == sample_frame_indices(len(shown), 25.0, 8)
    assert [frame_number(frame) for frame in sampled.frames] == [
        shown[index] for index in sampled.frame_indices
    ]


@pytest.mark.parametrize("clip_name", ["mpeg1-ps", "h264-ts", "webm-vp9", "mp4-h264-bframes"])
def test_damaged_files_are_refused_not_judged_on_substitutes(tmp_path: Path, clip_name) -> None:
    data = bytearray(write_clip(clip_named(clip_name), tmp_path).read_bytes())
    randomness = random.Random(0)
    for position in range(len(data) // 3, 2 * len(data) // 3, 40):
        data[position] = randomness.randrange(256)
    path = tmp_path / f"damaged {clip_name}{Path(clip_named(clip_name).file_name).suffix}"
    path.write_bytes(bytes(data))
    with pytest.raises(VideoError, match="damaged|no video stream|cannot be determined") as raised:
        read_frames(path, count=40)
    message = str(raised.value)
    assert path.name in message and "\n" not in message and message.endswith(".")


def test_the_decode_record_round_trips_through_the_result_schema() -> None:
    decode = DecodeInfo("pyav", "MPEG program stream: decord's seeks are not frame-exact", 32, 32)
    data = decode.to_dict()
    assert list(data) == [
        "decoder",
        "reason",
        "frames_requested",
        "frames_exact",
        "frames_substituted",
        "frames_skipped",
    ]
    assert DecodeInfo.from_dict(data) == decode
    model = ModelInfo(name="tiny", sha256="0" * 64, demo=True)
    result = VideoResult.failed(
        "clip.mpg", "Cannot read video 'clip.mpg'.", threshold=0.5, aggregate="mean",
        model=model, seconds=0.0,
    )  # fmt: skip
    assert result.to_dict()["decode"] is None  # a video never decoded has no decode record
    result.decode = decode
    assert VideoResult.from_dict(result.to_dict()).decode == decode
