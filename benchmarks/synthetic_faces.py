"""A faces folder of synthetic face crops, as `mattn extract-faces` writes one, for benchmarks.

Shaded ellipses with eyes, nose and mouth plus sensor-like noise (drawn with OpenCV), their 5
landmarks, and a manifest.csv written with `deepfake_cli.manifest`, so that training and
evaluation can run without videos or a face detector. Fakes get a crude "manipulation" (a
darkened cheek patch); `--synthetic-fakes self-blend` makes better ones from the real crops.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def draw_face(rng: np.random.Generator, side: int, look: dict) -> tuple[np.ndarray, np.ndarray]:
    """A face-like (side, side, 3) uint8 RGB crop and its 5 landmarks (x, y) in crop pixels."""
    xx = np.mgrid[0:side, 0:side][1].astype(np.float32) / side  # (side, side): x / side
    image = look["background"] + 40 * (xx[..., None] - 0.5) * look["gradient"]
    cx, cy = side / 2 + rng.normal(0, side * 0.02, 2)
    ax, ay = side * look["half_width"], side * look["half_height"]
    for ring in range(6):  # shading: a darker rim, a lighter centre
        scale = 1 - ring / 8
        colour = (look["skin"] * (0.75 + 0.05 * ring)).tolist()
        cv2.ellipse(
            image, (int(cx), int(cy)), (int(ax * scale), int(ay * scale)), 0, 0, 360, colour, -1
        )
    eyes = [(cx - ax * 0.4, cy - ay * 0.25), (cx + ax * 0.4, cy - ay * 0.25)]
    for ex, ey in eyes:
        cv2.circle(image, (int(ex), int(ey)), max(2, int(ax * 0.12)), (235, 235, 235), -1)
        cv2.circle(image, (int(ex), int(ey)), max(1, int(ax * 0.06)), (40, 30, 20), -1)
    nose = (cx, cy + ay * 0.1)
    mouth = [(cx - ax * 0.3, cy + ay * 0.45), (cx + ax * 0.3, cy + ay * 0.45)]
    mouth_axes = (int(ax * 0.3), max(1, int(ay * 0.06)))
    cv2.ellipse(image, (int(cx), int(cy + ay * 0.45)), mouth_axes, 0, 0, 360, (150, 50, 60), -1)
    image = image + rng.normal(0, 8.0, image.shape)  # sensor noise, which self-blends smooth
    landmarks = np.array([*eyes, nose, *mouth], dtype=np.float32)
    return np.clip(image, 0, 255).astype(np.uint8), landmarks


def make_faces(root: Path, videos: list[tuple[str, int, str]], frames: int, side: int) -> int:
    """(video_id, label, split) per video -> crops and manifest.csv under root; crops written."""
    from deepfake_cli.manifest import write_manifest

    rng = np.random.default_rng(0)
    rows = []
    for video_id, label, split in videos:
        look = {
            "background": rng.uniform(30, 220, 3),
            "gradient": rng.uniform(-1, 1, 3),
            "skin": rng.uniform([150, 100, 80], [240, 190, 160]),
            "half_width": rng.uniform(0.28, 0.34),
            "half_height": rng.uniform(0.36, 0.42),
        }
        folder = root / "crops" / video_id
        folder.mkdir(parents=True, exist_ok=True)
        for frame in range(frames):
            image, landmarks = draw_face(rng, side, look)
            if label == 1:  # a crude "manipulation": a darkened cheek patch
                image[side // 3 : side // 2, side // 3 : 2 * side // 3] //= 2
            name = f"0_{frame * 10}.png"
            cv2.imwrite(str(folder / name), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            rows.append(
                {
                    "crop_path": f"crops/{video_id}/{name}",
                    "video_path": f"videos/{video_id}.mp4",
                    "video_id": video_id,
                    "label": label,
                    "method": "real" if label == 0 else "patch",
                    "compression": "raw",
                    "split": split,
                    "group": video_id,
                    "frame_index": frame * 10,
                    "time_s": frame / 3,
                    "person": 0,
                    "box": f"0 0 {side} {side}",
                    "landmarks": " ".join(f"{value:.1f}" for value in landmarks.reshape(-1)),
                    "det_prob": 0.99,
                }
            )
    write_manifest(root, rows)
    return len(rows)
