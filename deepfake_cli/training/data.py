"""Training data: the faces manifest -> which crops each epoch sees -> augmented tensors.

The faces folder is written by `mattn extract-faces` and read by `deepfake_cli.manifest`:
`manifest.csv` with one row per face crop (square, a little larger than the model input) and
its video, label, method and split.

Every random choice here is a pure function of (seed, epoch, position in the epoch's plan):
which frames of each video an epoch uses, their order, the random crop and flip, the
self-blended fake. So an interrupted run that resumes at an epoch sees exactly what an
uninterrupted run would have seen, whatever the number of DataLoader workers or ranks.

An epoch's plan (MAT.md §6, as the authors trained on FF++):
1. per video, `frames_per_video` frames (all if the video has fewer), shifted by one frame
   every epoch so that different epochs see different frames: for a video stored frame by
   frame (`authors_frames`), the authors' frames, every `frame_stride`-th of its first
   frames_per_video x frame_stride; for any other, frames spread over the whole video;
2. with `--synthetic-fakes self-blend`, every real crop also yields a self-blended fake;
3. the smaller class is oversampled to the size of the larger (the authors repeat real videos),
   unless the loss is class-weighted instead;
4. shuffled, then split between ranks like DistributedSampler (padded to equal length).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from deepfake_cli.errors import LayoutError
from deepfake_cli.manifest import FAKE, REAL, CropRecord, read_manifest
from deepfake_cli.training.degradations import DEGRADATIONS, degrade

SELF_BLEND_METHOD = "self-blend"

# Independent random streams derived from the seed (numpy SeedSequence entropy words).
_TRAIN_STREAM, _VAL_STREAM, _ORDER_STREAM, _BALANCE_STREAM = 11, 12, 13, 14


# --- a split's videos --------------------------------------------------------------------------


def videos_of(records: Sequence[CropRecord], split: str) -> dict[str, list[int]]:
    """video_id -> indices into `records` of that video's crops in `split`, in frame order."""
    videos: dict[str, list[int]] = defaultdict(list)
    for index, record in enumerate(records):
        if record.split == split:
            videos[record.video_id].append(index)
    return {
        video: sorted(indices, key=lambda i: records[i].frame_index)
        for video, indices in sorted(videos.items())
    }


# --- which crops an epoch sees -----------------------------------------------------------------


class Sample(NamedTuple):
    """One item of an epoch: a crop as it is, or a self-blended fake made from a real crop."""

    record: int  # index into the records
    self_blend: bool = False

    def label(self, records: Sequence[CropRecord]) -> int:
        return FAKE if self.self_blend else records[self.record].label

    def video(self, records: Sequence[CropRecord]) -> str:
        video_id = records[self.record].video_id
        return f"{video_id}#{SELF_BLEND_METHOD}" if self.self_blend else video_id

    def method(self, records: Sequence[CropRecord]) -> str:
        return SELF_BLEND_METHOD if self.self_blend else records[self.record].method


def stored_frame_by_frame(frame_indices: Sequence[int]) -> bool:
    """Whether a video's crops are of (nearly) every frame: most gaps between its distinct
    stored frame indices are 1. A face missed in a few frames leaves a few wider gaps, as it
    left the authors' frame folders a few files short; an extraction of evenly spaced frames
    has no gap of 1 at all."""
    distinct = sorted(set(frame_indices))
    gaps = np.diff(distinct)
    return len(gaps) > 0 and float(np.median(gaps)) == 1.0


def authors_frames(num_frames: int, count: int, stride: int, epoch: int) -> list[int]:
    """The authors' training frames of a video stored frame by frame: positions in its list
    of `num_frames` frames (all if it has fewer than `count`).

    Slot i of `count` takes frame (i * stride + epoch + 1) mod min(num_frames, count * stride):
    every `stride`-th of the first count * stride frames (500 for FF++), shifted by one frame
    per epoch (their dataset advances its epoch counter before each epoch, so a stage's first
    epoch is shifted by one), wrapping round in a video shorter than that, so that every video
    gives `count` samples.
    """
    if num_frames < count:
        return list(range(num_frames))
    window = min(num_frames, count * stride)
    return [(slot * stride + epoch + 1) % window for slot in range(count)]


def spread_frames(num_frames: int, count: int, epoch: int) -> list[int]:
    """`count` of `num_frames` positions spread evenly, shifted by one every epoch (all if fewer).

    With stride s = num_frames / count, position i is floor(i * s) + (epoch mod floor(s)): the
    authors' every 10th frame shifted by one each epoch, but over the whole of whatever frames
    were stored (e.g. 32 evenly spaced ones).
    """
    if count <= 0 or num_frames <= count:
        return list(range(num_frames))
    stride = num_frames / count
    offset = epoch % int(stride)
    return [int(i * stride) + offset for i in range(count)]


def video_frames(
    records: Sequence[CropRecord],
    indices: Sequence[int],
    *,
    frames_per_video: int,
    frame_stride: int,
    epoch: int,
) -> list[int]:
    """The crops (indices into `records`, in frame order) of one video that `epoch` trains on.

    With a `frame_stride`, a video stored frame by frame gets the authors' frames (crops of
    several faces in one frame go together, as frames are what is chosen). Any other video
    gets `frames_per_video` of its crops spread over it (`spread_frames`).
    """
    frame_indices = [records[i].frame_index for i in indices]
    if not frame_stride or not stored_frame_by_frame(frame_indices):
        return [indices[p] for p in spread_frames(len(indices), frames_per_video, epoch)]
    crops_of_frame: dict[int, list[int]] = defaultdict(list)
    for index, frame in zip(indices, frame_indices, strict=True):
        crops_of_frame[frame].append(index)
    frames = sorted(crops_of_frame)
    chosen = authors_frames(len(frames), frames_per_video, frame_stride, epoch)
    return [index for position in chosen for index in crops_of_frame[frames[position]]]


def epoch_plan(
    records: Sequence[CropRecord],
    *,
    split: str,
    frames_per_video: int,
    frame_stride: int = 0,
    epoch: int,
    seed: int,
    self_blend: bool,
    balance: bool,
    shuffle: bool,
) -> list[Sample]:
    """The samples of one epoch of `split` (see the module docstring)."""
    samples: list[Sample] = []
    for indices in videos_of(records, split).values():
        chosen = video_frames(
            records,
            indices,
            frames_per_video=frames_per_video,
            frame_stride=frame_stride,
            epoch=epoch,
        )
        samples += [Sample(index) for index in chosen]
    if self_blend:
        samples += [Sample(s.record, True) for s in samples if records[s.record].label == REAL]
    if balance:
        samples = _oversample_minority(
            samples, records, np.random.default_rng([seed, _BALANCE_STREAM, epoch])
        )
    if shuffle:
        order = np.random.default_rng([seed, _ORDER_STREAM, epoch]).permutation(len(samples))
        samples = [samples[i] for i in order]
    return samples


def _oversample_minority(
    samples: list[Sample], records: Sequence[CropRecord], rng: np.random.Generator
) -> list[Sample]:
    by_label: dict[int, list[Sample]] = {REAL: [], FAKE: []}
    for sample in samples:
        by_label[sample.label(records)].append(sample)
    small, large = sorted(by_label.values(), key=len)
    if not small or len(small) == len(large):
        return samples
    # Whole repeats of the minority, then a random subset for the remainder.
    repeats, remainder = divmod(len(large) - len(small), len(small))
    chosen = sorted(rng.choice(len(small), remainder, replace=False))
    extra = small * repeats + [small[i] for i in chosen]
    return samples + extra


def class_weights(samples: Sequence[Sample], records: Sequence[CropRecord]) -> torch.Tensor:
    """Cross-entropy weights n / (2 n_class): a class-weighted loss instead of oversampling."""
    counts = Counter(sample.label(records) for sample in samples)
    total = sum(counts.values())
    return torch.tensor([total / (2 * max(counts[label], 1)) for label in (REAL, FAKE)])


# --- from a crop file to a tensor ------------------------------------------------------------


@dataclass(frozen=True)
class Transform:
    """How a stored crop becomes a model input."""

    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    # Training: random crop (or centre, see random_crop) + flip (+ robustness augmentation);
    # evaluation: centre crop.
    train: bool = False
    random_crop: bool = True
    hflip: bool = True
    augment: bool = False
    max_crop_slack: float = 1.2
    # Training only: a name of `degradations.DEGRADATIONS` ("video": as if cut from a
    # compressed video frame). Validation crops are never degraded (see `make_input`).
    degradations: str = "none"


def load_crop(path: Path) -> np.ndarray:
    """(S, S, 3) uint8 RGB."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise LayoutError(f"cannot read face crop {path}.")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def fitted_side(side: int, input_size: int, max_slack: float) -> int:
    """A stored crop's side once fitted into [input_size, input_size * max_slack]."""
    return int(min(max(side, input_size), round(input_size * max_slack)))


def model_input_margin(
    stored_margin: float, stored_side: int, input_size: int, max_slack: float
) -> float:
    """The margin of the centre crop the model sees (what scanning must cut).

    A crop stored at `stored_side` px with `stored_margin` is fitted, then centre-cropped to
    the input: the face box then fills the input as in a crop cut with this margin.
    """
    return round(stored_margin * input_size / fitted_side(stored_side, input_size, max_slack), 4)


def fit_crop(
    image: np.ndarray, landmarks: np.ndarray | None, input_size: int, max_slack: float
) -> tuple[np.ndarray, np.ndarray | None]:
    """Resize so the side lies in [input_size, input_size * max_slack] (landmarks follow)."""
    height, width = image.shape[:2]
    target = fitted_side(min(height, width), input_size, max_slack)
    if (height, width) != (target, target):
        interpolation = cv2.INTER_AREA if min(height, width) > target else cv2.INTER_LINEAR
        image = cv2.resize(image, (target, target), interpolation=interpolation)
        if landmarks is not None:
            landmarks = landmarks * np.array([target / width, target / height])
    return image, landmarks


def robustness_augment(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Degradations seen in the wild: colour jitter, blur, noise, JPEG re-compression."""
    if rng.random() < 0.3:  # brightness / contrast / saturation
        image = image.astype(np.float32)
        grey = image.mean(axis=2, keepdims=True)
        image = grey + (image - grey) * rng.uniform(0.7, 1.3)  # saturation
        image = (image - 128.0) * rng.uniform(0.8, 1.2) + 128.0 + rng.uniform(-20, 20)
        image = np.clip(image, 0, 255).astype(np.uint8)
    if rng.random() < 0.2:
        sigma = rng.uniform(0.3, 1.5)
        image = cv2.GaussianBlur(image, (0, 0), sigmaX=sigma)
    if rng.random() < 0.2:
        noise = rng.normal(0.0, rng.uniform(2.0, 8.0), image.shape)
        image = np.clip(image.astype(np.float32) + noise, 0, 255).astype(np.uint8)
    if rng.random() < 0.3:
        quality = int(rng.integers(30, 96))
        _, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        image = cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED)
    return image


def normalize(image: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """(S, S, 3) uint8 RGB -> (3, S, S) float32, (x/255 - mean)/std: the shared crop function."""
    from deepfake_cli.crops import normalize_crops

    return normalize_crops(image[None], mean, std)[0]


def make_input(
    record: CropRecord, self_blend: bool, transform: Transform, rng: np.random.Generator
) -> torch.Tensor:
    """A crop file -> the (3, S, S) tensor the model sees, all randomness from `rng`.

    Video-side degradations (`transform.degradations`) come after the self-blend, so real and
    fake crops go through the same ones and they say nothing about the label, and before the
    random crop, so the codec's block grid does not always sit on the input's pixel grid.
    Validation crops are not degraded: checkpoints are then chosen on the crops as they are,
    with numbers comparable between runs with and without degradations (and with `mattn
    evaluate`, which never degrades); how well the model copes with video is measured on
    real videos, not on an imitation of them.
    """
    image = load_crop(record.path)
    landmarks = None if record.landmarks is None else np.array(record.landmarks).reshape(5, 2)
    image, landmarks = fit_crop(image, landmarks, transform.input_size, transform.max_crop_slack)
    if self_blend:
        from deepfake_cli.training.synthetic import self_blend as make_self_blend

        image, _ = make_self_blend(image, landmarks, rng)
    degradation = DEGRADATIONS[transform.degradations] if transform.train else None
    if degradation is not None:
        image = degrade(image, rng, degradation)
    size, side = transform.input_size, image.shape[0]
    if transform.train and transform.random_crop:
        top, left = (int(v) for v in rng.integers(0, side - size + 1, size=2))
    else:
        top = left = (side - size) // 2
    image = image[top : top + size, left : left + size]
    if transform.train and transform.hflip and rng.random() < 0.5:
        image = image[:, ::-1]
    if transform.train and transform.augment:
        image = robustness_augment(np.ascontiguousarray(image), rng)
    return normalize(np.ascontiguousarray(image), transform.mean, transform.std)


class CropDataset(Dataset):
    """The samples of one epoch (or an evaluation split) as (image, label, position) items."""

    def __init__(
        self,
        records: Sequence[CropRecord],
        samples: Sequence[Sample],
        transform: Transform,
        *,
        seed: int = 0,
        epoch: int = 0,
    ) -> None:
        self.records = records
        self.samples = list(samples)
        self.transform = transform
        self.seed = seed
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, position: int) -> tuple[torch.Tensor, int, int]:
        sample = self.samples[position]
        # Training: a fresh stream per (seed, epoch, position). Evaluation: per crop, the same
        # every epoch, so validation fakes and scores are stable.
        if self.transform.train:
            rng = np.random.default_rng([self.seed, _TRAIN_STREAM, self.epoch, position])
        else:
            rng = np.random.default_rng([self.seed, _VAL_STREAM, sample.record])
        record = self.records[sample.record]
        image = make_input(record, sample.self_blend, self.transform, rng)
        return image, sample.label(self.records), position


def make_loader(
    dataset: CropDataset,
    positions: Sequence[int],
    *,
    batch_size: int,
    workers: int,
    drop_last: bool,
    pin_memory: bool = False,
) -> DataLoader:
    """Batches of `dataset` in the order of `positions` (this rank's shard of the plan)."""
    if workers:
        # OpenCV's thread pool does not survive fork(): a worker process that touches it
        # deadlocks. Workers parallelise the crops already, so OpenCV runs single-threaded.
        # (PyTorch itself gives each worker one thread.)
        cv2.setNumThreads(0)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=list(positions),
        num_workers=workers,
        drop_last=drop_last,
        pin_memory=pin_memory,
        # A private generator: the loader never draws from (and so never shifts) the global
        # torch RNG, which dropout and AGDA use.
        generator=torch.Generator().manual_seed(0),
        persistent_workers=False,
    )


# --- a dataset's splits, summarised --------------------------------------------------------------


@dataclass(frozen=True)
class FacesData:
    """A faces folder's records and what training needs to know about it."""

    root: Path
    records: list[CropRecord]

    @classmethod
    def load(cls, data_dir: str | Path) -> FacesData:
        return cls(Path(data_dir), read_manifest(data_dir))

    def videos(self, split: str) -> dict[str, list[int]]:
        return videos_of(self.records, split)

    def count_videos(self, split: str) -> dict[int, int]:
        """label -> number of videos in `split`."""
        counts: Counter[int] = Counter()
        for indices in self.videos(split).values():
            counts[self.records[indices[0]].label] += 1
        return {REAL: counts[REAL], FAKE: counts[FAKE]}

    def methods(self, split: str) -> list[str]:
        return sorted({r.method for r in self.records if r.split == split and r.label == FAKE})

    def stored_margin(self) -> float | None:
        """The margin extract-faces cut the crops with (the most common one), if recorded."""
        margins = Counter(r.margin_ratio for r in self.records if r.margin_ratio is not None)
        return margins.most_common(1)[0][0] if margins else None

    def stored_side(self) -> int:
        """Side in pixels of the (first) stored crop."""
        return int(load_crop(self.records[0].path).shape[0])

    def describe(self) -> str:
        """One line: what the model was trained on, for provenance and the console."""
        train = self.count_videos("train")
        methods = self.methods("train")
        compressions = sorted({r.compression for r in self.records if r.compression})
        text = (
            f"{self.root.name}: {train[REAL] + train[FAKE]} training videos "
            f"({train[REAL]} real, {train[FAKE]} fake"
        )
        text += f": {', '.join(methods)})" if methods else ")"
        if compressions:
            text += f", compression {', '.join(compressions)}"
        return text
