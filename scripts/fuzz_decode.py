"""Fuzz the decode boundary: mutated MP4, MPG and WebM files through scan's decoding path.

Every input goes where `mattn scan` sends a video: `FrameReader` (the killable worker process,
with `--timeout`) reading `--frames` sampled frames with `video.read_frames`. What must hold,
for any bytes at all:

- the result is frames (exact: `decode.frames_exact == frames_requested`, one frame per index,
  times finite and rising) or one sentence naming the file (no line break, no traceback, a
  capital and a full stop);
- no Python exception escapes the decoding code ("failed in the worker process" is a bug);
- nothing runs past `--timeout` (a hung decoder is killed; the next file gets a fresh worker).

A decoder crashing in C ("the decoding worker process exited unexpectedly") breaks none of
these, since the batch goes on with one sentence, and is counted apart. Inputs that break a
rule are copied to `--keep` with what happened (`findings.jsonl`); small ones become test files
in tests/data/fuzz/ (tests/test_frame_reader.py reads every file there).

The mutator is seeded and structure-aware (bit flips, random runs, truncation at either end,
chunk duplication and deletion, splices of two seeds, and odd values written into MP4 box sizes,
MPEG start-code headers and Matroska element sizes). Coverage-guided fuzzers such as atheris
would add nothing here: the code under test runs in a worker process they cannot observe, in C
libraries (FFmpeg, decord) that are not instrumented. The same `--seed` replays the same inputs.

    python scripts/fuzz_decode.py --seconds 120
    python scripts/fuzz_decode.py --seconds 600 --timeout 10 --seed 7 --keep fuzz-findings/
    python scripts/fuzz_decode.py --seconds 60 --seed-file my_clip.mp4    # mutate your file too
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import tempfile
import time
from collections import Counter
from fractions import Fraction
from pathlib import Path

import numpy as np

from deepfake_cli.errors import MattnError
from deepfake_cli.frame_reader import FrameReader

#: Seeds: (file name, muxer, encoder, options). Small, so that each try takes milliseconds.
SEEDS = (
    ("seed.mp4", "mp4", "libx264", {"crf": "20", "x264-params": "bframes=2:keyint=8"}),
    ("seed.mpg", "mpeg", "mpeg1video", {"qscale": "4", "g": "8", "bf": "2"}),
    ("seed.webm", "webm", "libvpx-vp9", {"crf": "30", "b": "0", "g": "8"}),
)
#: Markers after which a container keeps sizes or headers worth corrupting.
MARKERS = (
    *(box.encode() for box in ("moov", "mdat", "trak", "stsz", "stco", "stts", "ctts", "stss")),
    *(b"\x00\x00\x01" + bytes([code]) for code in (0xBA, 0xBB, 0xE0, 0xB3, 0xB8, 0x00)),
    bytes.fromhex("1a45dfa3"),  # EBML header
    bytes.fromhex("18538067"),  # Segment
    bytes.fromhex("1f43b675"),  # Cluster
    bytes.fromhex("1c53bb6b"),  # Cues
)
ODD_VALUES = (0, 1, 7, 0x7F, 0x80, 0xFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF)


def write_seeds(folder: Path, frame_count: int = 24) -> list[Path]:
    """The seed clips: a gradient with a moving square, 96x64 at 25 fps."""
    import av

    paths = []
    for file_name, muxer, encoder, options in SEEDS:
        path = folder / file_name
        with av.open(str(path), "w", format=muxer) as container:
            stream = container.add_stream(encoder, rate=Fraction(25), options=dict(options))
            stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
            for index in range(frame_count):
                image = np.tile(np.linspace(0, 255, 96, dtype=np.uint8), (64, 1))
                image = np.stack([image, image[::-1], np.roll(image, index, axis=1)], axis=-1)
                image[20:40, 3 * index % 80 : 3 * index % 80 + 16] = 255
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
                container.mux(stream.encode(frame.reformat(format="yuv420p")))
            container.mux(stream.encode(None))
        paths.append(path)
    return paths


# --- mutations --------------------------------------------------------------------------------


def flip_bits(data: bytearray, rng: random.Random, _seeds: list[bytes]) -> bytearray:
    for _ in range(rng.randint(1, 8)):
        position = rng.randrange(len(data))
        data[position] ^= 1 << rng.randrange(8)
    return data


def overwrite_run(data: bytearray, rng: random.Random, _seeds: list[bytes]) -> bytearray:
    length = rng.randint(1, 64)
    start = rng.randrange(len(data))
    data[start : start + length] = rng.randbytes(len(data[start : start + length]))
    return data


def truncate(data: bytearray, rng: random.Random, _seeds: list[bytes]) -> bytearray:
    return data[: rng.randint(1, len(data) - 1)] if len(data) > 1 else data


def cut_head(data: bytearray, rng: random.Random, _seeds: list[bytes]) -> bytearray:
    """The file from somewhere in the middle on: a capture that began late."""
    return data[rng.randrange(len(data)) :] if len(data) > 1 else data


def duplicate_chunk(data: bytearray, rng: random.Random, _seeds: list[bytes]) -> bytearray:
    length = rng.randint(1, max(1, len(data) // 10))
    start = rng.randrange(len(data))
    insert_at = rng.randrange(len(data) + 1)
    return data[:insert_at] + data[start : start + length] + data[insert_at:]


def delete_chunk(data: bytearray, rng: random.Random, _seeds: list[bytes]) -> bytearray:
    length = rng.randint(1, max(1, len(data) // 10))
    start = rng.randrange(len(data))
    return data[:start] + data[start + length :]


def splice(data: bytearray, rng: random.Random, seeds: list[bytes]) -> bytearray:
    other = rng.choice(seeds)
    return data[: rng.randrange(len(data) + 1)] + other[rng.randrange(len(other)) :]


def corrupt_structure(data: bytearray, rng: random.Random, _seeds: list[bytes]) -> bytearray:
    """An odd value in the size or header right before or after a container marker."""
    found = [
        position
        for marker in MARKERS
        for position in _positions(data, marker)
        if position >= 4 and position + len(marker) + 4 <= len(data)
    ]
    if not found:
        return flip_bits(data, rng, _seeds)
    position = rng.choice(found)
    # MP4 sizes precede the box type; start codes and EBML sizes follow the marker.
    target = position - 4 if data[position : position + 1].isalpha() else position + 4
    value = rng.choice(ODD_VALUES)
    if rng.random() < 0.5:
        value = int.from_bytes(data[target : target + 4], "big") + rng.choice((-1, 1, 8, -8))
    data[target : target + 4] = (value & 0xFFFFFFFF).to_bytes(4, "big")
    return data


def _positions(data: bytearray, marker: bytes, limit: int = 64) -> list[int]:
    positions, start = [], 0
    while len(positions) < limit:
        position = data.find(marker, start)
        if position < 0:
            break
        positions.append(position)
        start = position + 1
    return positions


MUTATIONS = (
    flip_bits,
    overwrite_run,
    truncate,
    cut_head,
    duplicate_chunk,
    delete_chunk,
    splice,
    corrupt_structure,
)


def mutate(seed: bytes, rng: random.Random, seeds: list[bytes]) -> tuple[bytes, list[str]]:
    data = bytearray(seed)
    applied = []
    for _ in range(rng.choice((1, 1, 2, 3))):
        mutation = rng.choice(MUTATIONS)
        data = mutation(data, rng, seeds) or data
        applied.append(mutation.__name__)
    return bytes(data), applied


# --- judging one input ------------------------------------------------------------------------


def is_one_sentence(message: str, path: Path) -> bool:
    return (
        path.name in message
        and "\n" not in message
        and "Traceback" not in message
        and message[:1].isupper()
        and message.endswith(".")
    )


def judge(reader: FrameReader, path: Path, frames: int, timeout_s: float) -> tuple[str, str]:
    """(outcome, detail): "ok", "refused", "hang killed", "native crash", or a finding."""
    started = time.monotonic()
    try:
        sampled = reader.read(path, count=frames)
    except MattnError as error:
        elapsed = time.monotonic() - started
        message = error.message
        if elapsed > timeout_s + 15.0:
            return "finding: ran past --timeout", f"{elapsed:.1f} s: {message}"
        if not is_one_sentence(message, path):
            return "finding: not one sentence", message
        if "failed in the worker process" in message:
            return "finding: exception in the decoding code", message
        if "did not finish within" in message:
            return "hang killed", message
        if "exited unexpectedly" in message:
            return "native crash", message
        return "refused", message
    except Exception as error:  # nothing but a MattnError may reach the caller
        return "finding: exception in the parent", f"{type(error).__name__}: {error}"
    elapsed = time.monotonic() - started
    decode = sampled.decode
    consistent = (
        sampled.frames.ndim == 4
        and sampled.frames.shape[0] == len(sampled.frame_indices) == len(sampled.times_s) > 0
        and decode is not None
        and decode.frames_exact == decode.frames_requested == len(sampled.frame_indices)
        and sampled.frame_indices == sorted(set(sampled.frame_indices))
        and sampled.frame_indices[-1] < sampled.info.num_frames
        and all(math.isfinite(time_s) and time_s >= 0 for time_s in sampled.times_s)
        and sampled.times_s == sorted(set(sampled.times_s))
    )
    if not consistent:
        return "finding: inconsistent frames", repr((sampled.info, sampled.frame_indices, decode))
    if elapsed > timeout_s + 15.0:
        return "finding: ran past --timeout", f"{elapsed:.1f} s"
    return "ok", f"{decode.decoder}, {len(sampled.frame_indices)} frames"


def message_kind(message: str) -> str:
    """The reason part of a sentence, for counting ("it is damaged and ...")."""
    reason = message.split("': ", 1)[-1]
    return reason.split(" (", 1)[0].rstrip(".")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="time budget")
    parser.add_argument("--timeout", type=float, default=10.0, help="per file, as mattn scan's")
    parser.add_argument("--frames", type=int, default=32, help="frames sampled, as mattn scan's")
    parser.add_argument("--seed", type=int, default=0, help="random seed: same seed, same inputs")
    parser.add_argument("--seed-file", action="append", default=[], help="another file to mutate")
    parser.add_argument("--keep", type=Path, help="folder for findings (default: a temp folder)")
    parser.add_argument("--verbose", action="store_true", help="print every file's outcome")
    arguments = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mattn-fuzz-"))
    keep = arguments.keep or work / "findings"
    keep.mkdir(parents=True, exist_ok=True)
    seed_paths = [*write_seeds(work), *map(Path, arguments.seed_file)]
    seeds = [path.read_bytes() for path in seed_paths]
    rng = random.Random(arguments.seed)
    outcomes: Counter[str] = Counter()
    refusals: Counter[str] = Counter()
    findings = 0
    deadline = time.monotonic() + arguments.seconds
    with FrameReader(timeout_s=arguments.timeout) as reader:
        for path in seed_paths:  # the seeds themselves must read
            outcome, detail = judge(reader, path, arguments.frames, arguments.timeout)
            if outcome != "ok":
                raise SystemExit(f"seed {path} does not read ({outcome}: {detail})")
        tries = 0
        while time.monotonic() < deadline:
            seed_index = rng.randrange(len(seeds))
            data, applied = mutate(seeds[seed_index], rng, seeds)
            path = work / f"try{tries:06d}{seed_paths[seed_index].suffix}"
            path.write_bytes(data)
            outcome, detail = judge(reader, path, arguments.frames, arguments.timeout)
            outcomes[outcome.split(":")[0]] += 1
            if outcome in ("refused", "hang killed", "native crash"):
                refusals[message_kind(detail)] += 1
            if arguments.verbose:
                print(f"{path.name} [{'+'.join(applied)}] {outcome}: {detail}")
            if outcome.startswith("finding"):
                findings += 1
                shutil.copy(path, keep / path.name)
                with (keep / "findings.jsonl").open("a", encoding="utf-8") as log:
                    record = {"file": path.name, "outcome": outcome, "detail": detail}
                    log.write(json.dumps({**record, "mutations": applied}) + "\n")
                print(f"FINDING {path.name} [{'+'.join(applied)}] {outcome}: {detail}")
            path.unlink()
            tries += 1
    print(f"{tries} files tried in {arguments.seconds:g} s (seed {arguments.seed})")
    for outcome, count in outcomes.most_common():
        print(f"  {count:6d}  {outcome}")
    print("Sentences given for the files refused:")
    for kind, count in refusals.most_common():
        print(f"  {count:6d}  {kind}")
    print(f"{findings} findings" + (f", kept in {keep}" if findings else ""))
    if not findings:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if findings else 0


if __name__ == "__main__":
    raise SystemExit(main())
