"""Detection metrics at frame and video level, computed with scikit-learn.

Video level as in the paper: a video's score is its frames' fake probabilities combined by an
`aggregate.py` strategy (the mean by default). AUC, AP and EER need both classes; with one
class they are None and a note says why, instead of a crash or a made-up number. `plot_roc`
draws the curves `mattn evaluate --roc` writes.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.metrics import average_precision_score, log_loss, roc_auc_score, roc_curve

from deepfake_cli.aggregate import aggregate_scores

#: Probabilities are clipped to [EPS, 1 - EPS] for the log-loss, so one confident mistake is
#: a large but finite penalty.
EPS = 1e-7


def binary_metrics(
    labels: Sequence[int], fake_probabilities: Sequence[float], threshold: float = 0.5
) -> dict:
    """AUC, AP, EER, accuracy at `threshold`, log-loss and counts of one set of scores."""
    y = np.asarray(labels, dtype=np.int64)
    p = np.asarray(fake_probabilities, dtype=np.float64)
    result: dict = {
        "count": int(y.size),
        "real": int((y == 0).sum()),
        "fake": int((y == 1).sum()),
        "auc": None,
        "ap": None,
        "eer": None,
        "acc": None,
        "log_loss": None,
    }
    if y.size == 0:
        result["note"] = "no samples"
        return result
    result["acc"] = float(((p >= threshold).astype(np.int64) == y).mean())
    result["log_loss"] = float(log_loss(y, np.clip(p, EPS, 1 - EPS), labels=[0, 1]))
    if result["real"] == 0 or result["fake"] == 0:
        only = "real" if result["fake"] == 0 else "fake"
        result["note"] = f"only {only} samples: AUC, AP and EER are undefined"
        return result
    result["auc"] = float(roc_auc_score(y, p))
    result["ap"] = float(average_precision_score(y, p))
    result["eer"] = equal_error_rate(y, p)
    return result


def equal_error_rate(labels: np.ndarray, fake_probabilities: np.ndarray) -> float:
    """Where the false-positive rate equals the false-negative rate on the ROC curve.

    Linear interpolation between the two ROC points where FPR - FNR changes sign.
    """
    fpr, tpr, _ = roc_curve(labels, fake_probabilities)
    fnr = 1.0 - tpr
    difference = fpr - fnr  # rises from -1 (threshold above every score) to +1
    crossing = int(np.argmax(difference >= 0))
    if crossing == 0 or difference[crossing] == 0:
        return float((fpr[crossing] + fnr[crossing]) / 2)
    before, after = crossing - 1, crossing
    t = -difference[before] / (difference[after] - difference[before])
    return float(fpr[before] + t * (fpr[after] - fpr[before]))


def balanced_threshold(labels: Sequence[int], fake_probabilities: Sequence[float]) -> float | None:
    """The decision threshold with the best balanced accuracy, (TPR + TNR) / 2, on these scores.

    Candidates are the midpoints between consecutive distinct scores (and the ends), so the
    threshold separates what it separates with the widest margin; among equally good ones the
    middle one is taken. None with only one class: there is nothing to balance.
    """
    y = np.asarray(labels, dtype=np.int64)
    p = np.asarray(fake_probabilities, dtype=np.float64)
    if (y == 0).sum() == 0 or (y == 1).sum() == 0:
        return None
    distinct = np.unique(p)
    candidates = np.concatenate(
        [[distinct[0] - 1e-6], (distinct[:-1] + distinct[1:]) / 2, [distinct[-1] + 1e-6]]
    )
    # (candidates, samples) comparison: fine for validation sets of thousands of videos.
    predicted_fake = p[None, :] >= candidates[:, None]
    true_positive_rate = (predicted_fake & (y == 1)).sum(axis=1) / (y == 1).sum()
    true_negative_rate = (~predicted_fake & (y == 0)).sum(axis=1) / (y == 0).sum()
    balanced = (true_positive_rate + true_negative_rate) / 2
    best = np.flatnonzero(balanced >= balanced.max() - 1e-12)
    return float(np.clip(candidates[best[len(best) // 2]], 0.0, 1.0))


def video_scores(
    video_ids: Sequence[str],
    labels: Sequence[int],
    fake_probabilities: Sequence[float],
    strategy: str = "mean",
) -> tuple[list[str], list[int], list[float]]:
    """Frames -> (video ids, video labels, video scores), one entry per video, sorted by id."""
    frames: dict[str, list[float]] = defaultdict(list)
    video_label: dict[str, int] = {}
    for video, label, probability in zip(video_ids, labels, fake_probabilities, strict=True):
        frames[video].append(float(probability))
        video_label[video] = int(label)
    videos = sorted(frames)
    return (
        videos,
        [video_label[v] for v in videos],
        [aggregate_scores(frames[v], strategy) for v in videos],
    )


def frame_and_video_metrics(
    video_ids: Sequence[str],
    labels: Sequence[int],
    fake_probabilities: Sequence[float],
    strategy: str = "mean",
) -> dict:
    """{"frame": binary_metrics of the crops, "video": binary_metrics of the video scores}."""
    _, video_labels, scores = video_scores(video_ids, labels, fake_probabilities, strategy)
    return {
        "frame": binary_metrics(labels, fake_probabilities),
        "video": binary_metrics(video_labels, scores),
    }


def flatten(metrics: dict, prefix: str = "") -> dict[str, float | None]:
    """{"frame": {"auc": x}} -> {"frame_auc": x} (numbers only), for logs."""
    flat: dict[str, float | None] = {}
    for level, values in metrics.items():
        for name, value in values.items():
            if name == "note":
                continue
            if value is None or isinstance(value, int | float) and math.isfinite(value):
                flat[f"{prefix}{level}_{name}"] = value
    return flat


def plot_roc(
    frame_labels: Sequence[int],
    frame_probabilities: Sequence[float],
    videos: Sequence[dict],
    path: str | Path,
    *,
    title: str = "",
) -> Path:
    """Video-level ROC curves (overall and per method) and the frame-level one, as a PNG.

    `videos` are per-video entries with `label`, `method` and `fake_probability`.
    """
    import matplotlib

    matplotlib.use("Agg")  # no display needed; set here, never at import time
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure, axes = plt.subplots(figsize=(6, 6))
    video_labels = [video["label"] for video in videos]
    curves = [
        ("videos, all methods", video_labels, [v["fake_probability"] for v in videos], True),
        ("frames, all methods", list(frame_labels), list(frame_probabilities), False),
    ]
    for method in sorted({v["method"] for v in videos if v["label"] == 1}):
        kept = [v for v in videos if v["label"] == 0 or v["method"] == method]
        curves.append(
            (
                f"videos, {method}",
                [v["label"] for v in kept],
                [v["fake_probability"] for v in kept],
                True,
            )
        )
    plotted = 0
    for name, ys, ps, per_video in curves:
        if len(set(ys)) < 2:
            continue
        fpr, tpr, _ = roc_curve(np.asarray(ys), np.asarray(ps))
        auc = binary_metrics(ys, ps)["auc"]
        style = "--" if not per_video else "-"
        axes.plot(fpr, tpr, style, label=f"{name} (AUC {auc:.3f})")
        plotted += 1
    axes.plot([0, 1], [0, 1], ":", color="grey", linewidth=1)
    axes.set_xlabel("false positive rate (real judged fake)")
    axes.set_ylabel("true positive rate (fake judged fake)")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.01)
    axes.set_title(title or "ROC")
    if plotted:
        axes.legend(loc="lower right", fontsize="small")
    else:
        axes.text(0.5, 0.5, "one class only: no ROC curve", ha="center")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
