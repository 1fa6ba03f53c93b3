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
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable, Sequence

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


def video_verdict(
    per_person_scores: dict[int, list[float]],
    *,
    strategy: str = DEFAULT_STRATEGY,
    threshold: float = DEFAULT_THRESHOLD,
) -> tuple[list[PersonResult], float, str]:
    """Score each person by `strategy`, then the video as its most-fake person (the maximum).

    Returns (persons sorted by id, video fake probability, video verdict). Raises ValueError when
    there are no persons (the caller reports such a video as `no_face`), or when a person has
    no scores.
    """
    check_strategy(strategy)
    if not per_person_scores:
        raise ValueError("Cannot judge a video without any person; report it as no_face.")
    persons: list[PersonResult] = []
    for person_id in sorted(per_person_scores):
        person_scores = per_person_scores[person_id]
        person_probability = aggregate_scores(person_scores, strategy)
        persons.append(
            PersonResult(
                id=person_id,
                fake_probability=person_probability,
                verdict=verdict_for(person_probability, threshold),
                frames=len(person_scores),
            )
        )
    video_probability = max(person.fake_probability for person in persons)
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
