"""From frame scores to person and video verdicts, by named strategies.

The model scores one face crop at a time. A video's verdict needs those scores combined: first
per person (a tracked face) over the frames they appear in, then over the persons. A video is as
fake as its most-fake person, because a deepfake typically swaps one face and leaves the others
real; averaging over persons would dilute it.

Strategies (all take probabilities in [0, 1] and return one in [0, 1]):

- ``mean``: the arithmetic mean, as in the MAT paper (video score = mean of frame scores).
- ``median``: the median; robust to a few badly detected or blurred frames.
- ``topk``: the mean of the k highest scores, k = ceil(n / 4) (25 % of the frames, at least 1).
  Catches manipulations visible in only part of a video.
- ``confident``: the rule of the DFDC winner (Selim Seferbekov), with t = 0.8:
  if more than max(11, n / 2.5) scores are > 0.8, the mean of those; else if more than 0.9 * n
  scores are < 0.2, the mean of those; else the mean of all. All comparisons are strict.
- ``weighted``: a confidence-weighted mean, weight_i = 2 * |p_i - 0.5| + 0.001. Frames the model
  is sure about count more than frames near 0.5; the 0.001 keeps the weights from all being zero
  when every score is exactly 0.5 (the result is then 0.5).

Only *judged* persons count. A tracked person is judged when their face is large enough for the
model (`min_face_px`, the shorter side of the visible face box, median over their frames) and
seen often enough to score (`min_presence`, a fraction of the sampled frames); the others are
reported with a reason (`REASONS`) and no score, so a 40-pixel face on a screen behind a
presenter, or a face seen in two frames, cannot decide the verdict.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from deepfake_cli.errors import EXIT_ERROR, EXIT_FAKE_FOUND, EXIT_OK
from deepfake_cli.results import (
    STATUS_ERROR,
    VERDICT_FAKE,
    VERDICT_REAL,
    PersonResult,
    VideoResult,
)

STRATEGIES: tuple[str, ...] = ("mean", "median", "topk", "confident", "weighted")
DEFAULT_STRATEGY = "mean"
DEFAULT_THRESHOLD = 0.5

#: Share of the frames averaged by the `topk` strategy.
TOPK_FRACTION = 0.25

# The `confident` rule's constants, as in the DFDC winner's `confident_strategy`.
CONFIDENT_FAKE_THRESHOLD = 0.8
CONFIDENT_REAL_THRESHOLD = 0.2
CONFIDENT_MIN_FAKE_FRAMES = 11
CONFIDENT_FAKE_DIVISOR = 2.5
CONFIDENT_REAL_SHARE = 0.9

#: Added to every weight of the `weighted` strategy so the weights never sum to zero.
WEIGHTED_EPSILON = 1e-3

#: Why a person was not judged (`PersonResult.reason`).
REASON_FACE_TOO_SMALL = "face_too_small"
REASON_TOO_FEW_FRAMES = "too_few_frames"
REASONS: tuple[str, ...] = (REASON_FACE_TOO_SMALL, REASON_TOO_FEW_FRAMES)

#: Default `--min-presence`: a person is judged on at least a quarter of the sampled frames (8
#: of the default 32). Faces on a screen behind a presenter, or cut by the frame edge, are
#: typically found in a few frames only; and a mean of fewer scores swings on one bad frame.
DEFAULT_MIN_PRESENCE = 0.25

#: The default `--min-face` is the smallest face the model's crop enlarges at most this many
#: times: beyond that the crop is interpolation, not the texture the model looks at.
MAX_UPSCALE = 6.0


def _mean(fake_probabilities: Sequence[float]) -> float:
    # fsum: exact summation, so the mean of many near-identical scores has no drift.
    return math.fsum(fake_probabilities) / len(fake_probabilities)


def _median(fake_probabilities: Sequence[float]) -> float:
    return float(statistics.median(fake_probabilities))


def _topk(fake_probabilities: Sequence[float]) -> float:
    top_count = max(1, math.ceil(len(fake_probabilities) * TOPK_FRACTION))
    return _mean(sorted(fake_probabilities, reverse=True)[:top_count])


def _confident(fake_probabilities: Sequence[float]) -> float:
    score_count = len(fake_probabilities)
    confident_fakes = [
        probability for probability in fake_probabilities if probability > CONFIDENT_FAKE_THRESHOLD
    ]
    # The original writes `fakes > sz // 2.5 and fakes > 11`. For an integer count,
    # count > floor(x) and count > x are the same test, so this is that rule exactly.
    required_fakes = max(CONFIDENT_MIN_FAKE_FRAMES, score_count / CONFIDENT_FAKE_DIVISOR)
    if len(confident_fakes) > required_fakes:
        return _mean(confident_fakes)
    confident_reals = [
        probability for probability in fake_probabilities if probability < CONFIDENT_REAL_THRESHOLD
    ]
    if len(confident_reals) > CONFIDENT_REAL_SHARE * score_count:
        return _mean(confident_reals)
    return _mean(fake_probabilities)


def _weighted(fake_probabilities: Sequence[float]) -> float:
    weights = [abs(probability - 0.5) * 2 + WEIGHTED_EPSILON for probability in fake_probabilities]
    weighted_sum = math.fsum(
        probability * weight
        for probability, weight in zip(fake_probabilities, weights, strict=True)
    )
    return weighted_sum / math.fsum(weights)


_STRATEGY_FUNCTIONS: dict[str, Callable[[Sequence[float]], float]] = {
    "mean": _mean,
    "median": _median,
    "topk": _topk,
    "confident": _confident,
    "weighted": _weighted,
}


def check_strategy(strategy: str) -> str:
    """Return `strategy` if it is known; otherwise raise ValueError naming the known ones."""
    if strategy not in _STRATEGY_FUNCTIONS:
        raise ValueError(
            f"Unknown aggregation strategy {strategy!r}; choose one of: {', '.join(STRATEGIES)}."
        )
    return strategy


def aggregate_scores(
    fake_probabilities: Sequence[float], strategy: str = DEFAULT_STRATEGY
) -> float:
    """Combine frame fake probabilities into one, by the named strategy (see module docstring).

    Raises ValueError for an unknown strategy, an empty sequence, or a score that is not a
    finite number in [0, 1] (a NaN would otherwise silently become the verdict).
    """
    check_strategy(strategy)
    scores = [float(probability) for probability in fake_probabilities]
    if not scores:
        raise ValueError("Cannot aggregate an empty list of fake probabilities.")
    for score in scores:
        if not (math.isfinite(score) and 0.0 <= score <= 1.0):
            raise ValueError(f"A fake probability must be a number in [0, 1], got {score!r}.")
    return _STRATEGY_FUNCTIONS[strategy](scores)


def verdict_for(fake_probability: float, threshold: float = DEFAULT_THRESHOLD) -> str:
    """ "FAKE" if fake_probability >= threshold, else "REAL".

    The comparison is >=: a score exactly at the threshold is FAKE, so `--threshold 0.9` reads
    as "flag anything scoring 0.9 or more".
    """
    return VERDICT_FAKE if fake_probability >= threshold else VERDICT_REAL


def default_min_face_px(input_size: int, margin_ratio: float) -> int:
    """The default `--min-face` for a model: faces it sees enlarged at most `MAX_UPSCALE` times.

    The model's crop is `margin_ratio` times the face box's longer side, resized to
    `input_size`; a face whose shorter side is at least `input_size / (margin_ratio *
    MAX_UPSCALE)` is therefore enlarged at most `MAX_UPSCALE` times. 49 px for the authors'
    380 px EfficientNet-B4, 24 px for the bundled 160 px model; for small inputs (the 64 px
    demo model of tests/data) the smallest face worth looking for at all,
    `faces.MIN_FACE_FLOOR` (20 px).
    """
    # Imported here: importing this module (as the CLI does to check options) loads no torch.
    from deepfake_cli.faces import MIN_FACE_FLOOR

    return max(MIN_FACE_FLOOR, math.ceil(input_size / (margin_ratio * MAX_UPSCALE)))


@dataclass(frozen=True)
class SeenPerson:
    """A tracked person before judging: how often and how large their face was seen."""

    id: int
    frames: int  # sampled frames in which the person was found
    face_px: float  # shorter side of the visible face box, median over those frames


@dataclass(frozen=True)
class JudgingRule:
    """Which persons the model judges (`--min-face`, `--min-presence`); the others get a reason."""

    # Smallest face judged: the shorter side of the face box inside the frame, in pixels.
    min_face_px: float
    # Least share of the sampled frames a person must be found in.
    min_presence: float = DEFAULT_MIN_PRESENCE

    def __post_init__(self) -> None:
        if self.min_face_px < 0:
            raise ValueError(f"min_face_px must not be negative, got {self.min_face_px}")
        if not 0.0 <= self.min_presence <= 1.0:
            raise ValueError(f"min_presence must be in [0, 1], got {self.min_presence}")

    def required_frames(self, sampled_frames: int) -> int:
        """Frames a person must be found in, out of `sampled_frames` (at least 1)."""
        # The epsilon keeps 0.3 * 10 (3.0000000000000004 in floating point) at 3 frames.
        return max(1, math.ceil(self.min_presence * sampled_frames - 1e-9))

    def reason_not_judged(self, person: SeenPerson, sampled_frames: int) -> str | None:
        """None when `person` is judged, else the reason; size is checked before presence."""
        if person.face_px < self.min_face_px:
            return REASON_FACE_TOO_SMALL
        if person.frames < self.required_frames(sampled_frames):
            return REASON_TOO_FEW_FRAMES
        return None

    def unjudged_persons(
        self, seen: Iterable[SeenPerson], *, sampled_frames: int
    ) -> list[PersonResult]:
        """The records of the persons not judged: each with its reason, no score, no verdict."""
        unjudged = []
        for person in seen:
            reason = self.reason_not_judged(person, sampled_frames)
            if reason is not None:
                unjudged.append(
                    PersonResult(
                        id=person.id,
                        fake_probability=None,
                        verdict=None,
                        frames=person.frames,
                        judged=False,
                        reason=reason,
                        face_px=person.face_px,
                    )
                )
        return unjudged


def video_verdict(
    per_person_scores: Mapping[int, Sequence[float]],
    *,
    strategy: str = DEFAULT_STRATEGY,
    threshold: float = DEFAULT_THRESHOLD,
    face_px: Mapping[int, float] | None = None,
    unjudged: Sequence[PersonResult] = (),
) -> tuple[list[PersonResult], float, str]:
    """Score each judged person by `strategy`, then the video as its most-fake person (the max).

    `per_person_scores` holds the judged persons' frame scores; `face_px` their face sizes (for
    the record); `unjudged` the persons not judged, listed with the others but never counted.
    Returns (every person sorted by id, video fake probability, video verdict). Raises
    ValueError when no person is judged (the caller reports such a video as `no_face`), or
    when a person has no scores.
    """
    check_strategy(strategy)
    if not per_person_scores:
        raise ValueError("Cannot judge a video without any judged person; report it as no_face.")
    judged: list[PersonResult] = []
    person_probabilities: list[float] = []
    for person_id in sorted(per_person_scores):
        person_scores = per_person_scores[person_id]
        person_probability = aggregate_scores(person_scores, strategy)
        person_probabilities.append(person_probability)
        judged.append(
            PersonResult(
                id=person_id,
                fake_probability=person_probability,
                verdict=verdict_for(person_probability, threshold),
                frames=len(person_scores),
                face_px=None if face_px is None else face_px.get(person_id),
            )
        )
    video_probability = max(person_probabilities)
    persons = sorted([*judged, *unjudged], key=lambda person: person.id)
    return persons, video_probability, verdict_for(video_probability, threshold)


def exit_code_for(results: Iterable[VideoResult]) -> int:
    """The process exit code for a finished scan.

    2 (EXIT_ERROR) if any video has status "error", whatever the others say: a scan that could
    not look at everything must not read as a clean or a merely-fake result. Otherwise 1
    (EXIT_FAKE_FOUND) if any video's verdict is FAKE, else 0 (EXIT_OK). A `no_face` video is not
    an error: it was decoded and looked at, there was just no face to judge. An empty scan is 0.
    """
    fake_found = False
    for result in results:
        if result.status == STATUS_ERROR:
            return EXIT_ERROR
        if result.verdict == VERDICT_FAKE:
            fake_found = True
    return EXIT_FAKE_FOUND if fake_found else EXIT_OK
