"""Turn the openly licensed demo media into a plain `real/` dataset for the demo model.

Writes OUT/real/*.mp4 (the `folders` layout of `mattn extract-faces`):
- carphone_part{0..5}.mp4: frames 0-59 of the carphone sequence in 10-frame clips (frames 60-119
  are held out: they are the examples in examples/);
- hopper_{0..3}.mp4 and astronaut_{0..3}.mp4: 12-frame clips made from the still portraits with a
  slow, seeded zoom/pan and brightness drift, so their crops differ from frame to frame.

Deterministic: the same inputs give the same clips.
Usage: python scripts/prepare_demo_data.py OUT
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

REPOSITORY = Path(__file__).resolve().parents[1]
CARPHONE = REPOSITORY / "tests/data/carphone_pristine.mp4"
PORTRAITS = {
    "hopper": REPOSITORY / "tests/data/grace_hopper.jpg",
    "astronaut": REPOSITORY / "scripts/demo_data/astronaut_face.jpg",
}
TRAINING_FRAMES = 60  # carphone frames 0-59; 60-119 are the held-out examples
CLIP_SIZE = (176, 144)  # the carphone clip's size, for every clip


def write_clip(path: Path, frames: list[np.ndarray], fps: float = 25.0) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, CLIP_SIZE)
    for frame_bgr in frames:
        writer.write(frame_bgr)
    writer.release()


def carphone_clips(out: Path) -> None:
    capture = cv2.VideoCapture(str(CARPHONE))
    frames = []
    while len(frames) < TRAINING_FRAMES:
        ok, frame_bgr = capture.read()
        if not ok:
            break
        frames.append(frame_bgr)
    capture.release()
    for part, start in enumerate(range(0, len(frames), 10)):
        write_clip(out / f"carphone_part{part}.mp4", frames[start : start + 10])


def portrait_clip(image_bgr: np.ndarray, rng: np.random.Generator, length: int = 12) -> list:
    """A slow zoom/pan over a still portrait, resized to the clip size."""
    height, width = image_bgr.shape[:2]
    zoom_start, zoom_end = rng.uniform(0.75, 1.0), rng.uniform(0.75, 1.0)
    shift_x, shift_y = rng.uniform(-0.08, 0.08, size=2)
    gain_start, gain_end = rng.uniform(0.85, 1.15, size=2)
    frames = []
    for step in range(length):
        progress = step / max(1, length - 1)
        zoom = zoom_start + (zoom_end - zoom_start) * progress
        crop_width = width * zoom
        crop_height = min(height, crop_width * CLIP_SIZE[1] / CLIP_SIZE[0])
        centre_x = width / 2 + shift_x * width * progress
        centre_y = height / 2 + shift_y * height * progress
        left = int(np.clip(centre_x - crop_width / 2, 0, width - crop_width))
        top = int(np.clip(centre_y - crop_height / 2, 0, height - crop_height))
        view = image_bgr[top : top + int(crop_height), left : left + int(crop_width)]
        frame = cv2.resize(view, CLIP_SIZE, interpolation=cv2.INTER_AREA).astype(np.float32)
        gain = gain_start + (gain_end - gain_start) * progress
        frames.append(np.clip(frame * gain, 0, 255).astype(np.uint8))
    return frames


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = Path(sys.argv[1]) / "real"
    out.mkdir(parents=True, exist_ok=True)
    carphone_clips(out)
    rng = np.random.default_rng(2021)
    for name, path in PORTRAITS.items():
        image_bgr = cv2.imread(str(path))
        for index in range(4):
            write_clip(out / f"{name}_{index}.mp4", portrait_clip(image_bgr, rng))
    print(f"wrote {len(list(out.glob('*.mp4')))} clips to {out}")


if __name__ == "__main__":
    main()
