"""MTCNN's box arithmetic: boxes from PNet's maps, non-maximum suppression, regression, squares.

The arithmetic is facenet-pytorch's (`facenet_pytorch/models/utils/detect_face.py`), written
here so that detection does not import torchvision, whose NMS facenet-pytorch calls (see
`mtcnn_networks`); `tests/test_mtcnn.py` checks each function against facenet-pytorch's.

Boxes are float tensors with rows (x1, y1, x2, y2, score, ...) in the frame's pixels; the
"+ 1" in some widths is MTCNN's original (inclusive pixel) convention, kept where facenet-pytorch
keeps it so that boxes come out as it computes them.
"""

from __future__ import annotations

import numpy as np
import torch

# PNet's window and its step, in the pixels of a pyramid level.
PNET_CELL = 12
PNET_STRIDE = 2
#: Up to this many boxes in a frame, NMS computes all their pairwise overlaps at once.
NMS_MATRIX_MAX_BOXES = 1024


def boxes_from_pnet(
    offsets: torch.Tensor, face_probs: torch.Tensor, scale: float, threshold: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Candidate boxes where PNet's face probability reaches `threshold`.

    `offsets` (B, 4, H', W') and `face_probs` (B, H', W') are PNet's outputs over one pyramid
    level of `scale`. Returns (K, 9) rows: the window in frame pixels (x1, y1, x2, y2), its
    probability and its four offsets; and (K,) the frame index of each.
    """
    mask = face_probs >= threshold
    positions = mask.nonzero()  # (K, 3): frame index, row, column
    frame_indices = positions[:, 0]
    box_offsets = offsets.permute(1, 0, 2, 3)[:, mask].permute(1, 0)  # (K, 4)
    columns_rows = positions[:, 1:].to(offsets.dtype).flip(1)  # (K, 2): x, y of each cell
    top_left = ((PNET_STRIDE * columns_rows + 1) / scale).floor()
    bottom_right = ((PNET_STRIDE * columns_rows + PNET_CELL) / scale).floor()
    boxes = torch.cat([top_left, bottom_right, face_probs[mask].unsqueeze(1), box_offsets], 1)
    return boxes, frame_indices


def batched_nms(
    boxes_xyxy: torch.Tensor,
    scores: torch.Tensor,
    frame_indices: torch.Tensor,
    iou_threshold: float,
    *,
    overlap: str = "union",
) -> torch.Tensor:
    """Greedy non-maximum suppression within each frame: indices of the kept boxes, highest
    score first.

    A box is dropped when its overlap with a kept box of higher score in the same frame is
    above `iou_threshold`. `overlap="union"` is intersection over union with areas (x2 - x1) *
    (y2 - y1), as torchvision's `batched_nms` computes it (MTCNN's first two stages);
    `"min"` is intersection over the smaller box with MTCNN's inclusive areas (x2 - x1 + 1) *
    (y2 - y1 + 1), as facenet-pytorch's `batched_nms_numpy(..., "Min")` (its last stage).
    """
    device = boxes_xyxy.device
    if len(boxes_xyxy) == 0:
        return torch.zeros((0,), dtype=torch.long, device=device)
    boxes = boxes_xyxy.detach().float().cpu().numpy()
    scores_np = scores.detach().float().cpu().numpy()
    frames = frame_indices.detach().cpu().numpy()
    # Frames never suppress each other: each frame's boxes alone.
    by_frame = np.argsort(frames, kind="stable")
    starts = np.flatnonzero(np.diff(frames[by_frame])) + 1
    kept = [
        members[_nms(boxes[members], scores_np[members], iou_threshold, overlap)]
        for members in np.split(by_frame, starts)
    ]
    keep = np.concatenate(kept)
    keep = keep[np.argsort(-scores_np[keep], kind="stable")]
    return torch.from_numpy(keep.astype(np.int64)).to(device)


def _nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, overlap: str) -> np.ndarray:
    """Greedy NMS of one frame's (N, 4) float32 boxes: positions of the kept ones.

    Up to `NMS_MATRIX_MAX_BOXES` boxes, all pairwise overlaps are computed at once (fastest for
    the few hundred boxes a frame usually has); beyond, one kept box's overlaps at a time.
    """
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = (boxes[order, column] for column in range(4))
    inclusive = np.float32(1.0 if overlap == "min" else 0.0)
    areas = (x2 - x1 + inclusive) * (y2 - y1 + inclusive)

    def overlaps(rows: np.ndarray | int, columns: np.ndarray) -> np.ndarray:
        """Overlap of each box in `rows` (an index or (R, 1) indices) with those in `columns`,
        in float32 as the references compute them."""
        widths = np.minimum(x2[rows], x2[columns]) - np.maximum(x1[rows], x1[columns]) + inclusive
        heights = np.minimum(y2[rows], y2[columns]) - np.maximum(y1[rows], y1[columns]) + inclusive
        intersections = np.maximum(widths, 0) * np.maximum(heights, 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            if overlap == "min":
                return intersections / np.minimum(areas[rows], areas[columns])
            return intersections / (areas[rows] + areas[columns] - intersections)

    keep = []
    if len(order) <= NMS_MATRIX_MAX_BOXES:
        everything = np.arange(len(order))
        suppresses = overlaps(everything[:, None], everything) > threshold  # (N, N)
        removed = np.zeros(len(order), dtype=bool)
        for position in range(len(order)):
            if not removed[position]:
                keep.append(position)
                removed |= suppresses[position]
    else:
        remaining = np.arange(len(order))
        while len(remaining):
            keep.append(remaining[0])
            rest = remaining[1:]
            remaining = rest[~(overlaps(remaining[0], rest) > threshold)]
    return order[np.asarray(keep, dtype=np.int64)]


def regressed(boxes: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Boxes moved by a network's (K, 4) offsets, in units of the inclusive box size; the
    other columns (the score) are kept."""
    widths = boxes[:, 2] - boxes[:, 0] + 1
    heights = boxes[:, 3] - boxes[:, 1] + 1
    sizes = torch.stack([widths, heights, widths, heights], dim=1)  # (K, 4)
    return torch.cat([boxes[:, :4] + offsets * sizes, boxes[:, 4:]], dim=1)


def squared(boxes: torch.Tensor) -> torch.Tensor:
    """Boxes made square (the longer side) about their centre; the other columns are kept."""
    widths = boxes[:, 2] - boxes[:, 0]
    heights = boxes[:, 3] - boxes[:, 1]
    sides = torch.maximum(widths, heights)
    left = boxes[:, 0] + widths * 0.5 - sides * 0.5
    top = boxes[:, 1] + heights * 0.5 - sides * 0.5
    corners = torch.stack([left, top, left + sides, top + sides], dim=1)
    return torch.cat([corners, boxes[:, 4:]], dim=1)


def clipped_pixels(
    boxes: torch.Tensor, frame_height: int, frame_width: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(first row, last row, first column, last column) of each box's whole pixels, 1-based
    and inclusive, clipped to the frame: the pixels MTCNN cuts a candidate from."""
    corners = boxes[:, :4].trunc().int().cpu().numpy()
    first_cols = np.maximum(corners[:, 0], 1)
    first_rows = np.maximum(corners[:, 1], 1)
    last_cols = np.minimum(corners[:, 2], frame_width)
    last_rows = np.minimum(corners[:, 3], frame_height)
    return first_rows, last_rows, first_cols, last_cols
