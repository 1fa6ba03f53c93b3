"""Aggregation strategies, verdicts and exit codes, against hand-computed answers."""

from __future__ import annotations

import itertools

import pytest

from deepfake_cli.aggregate import (
    DEFAULT_MIN_PRESENCE,
    REASON_FACE_TOO_SMALL,
    REASON_TOO_FEW_FRAMES,
    REASONS,
    STRATEGIES,
    JudgingRule,
    SeenPerson,
    aggregate_scores,
    default_min_face_px,
    exit_code_for,
    verdict_for,
    video_verdict,
)
from deepfake_cli.errors import EXIT_ERROR, EXIT_FAKE_FOUND, EXIT_OK
from deepfake_cli.results import ModelInfo, VideoResult

MODEL = ModelInfo(name="demo", sha256="0" * 64, demo=True)


def test_strategy_names_are_the_documented_ones() -> None:
    assert STRATEGIES == ("mean", "median", "topk", "confident", "weighted")


# --- mean, median, topk ---------------------------------------------------------------------


def test_mean_is_the_arithmetic_mean() -> None:
    assert aggregate_scores([0.2, 0.4, 0.9], "mean") == pytest.approx(0.5)
    assert aggregate_scores([0.7]) == pytest.approx(0.7)  # mean is the default


def test_median_odd_and_even_counts() -> None:
    assert aggregate_scores([0.9, 0.1, 0.5], "median") == pytest.approx(0.5)
    assert aggregate_scores([0.1, 0.2, 0.6, 0.9], "median") == pytest.approx(0.4)


@pytest.mark.parametrize(
    ("scores", "expected"),
    [
        ([0.3], 0.3),  # n = 1: k = 1
        ([0.1, 0.2, 0.6, 0.9], 0.9),  # n = 4: k = ceil(1) = 1
        ([0.1, 0.2, 0.3, 0.6, 1.0], 0.8),  # n = 5: k = ceil(1.25) = 2 -> (1.0 + 0.6) / 2
        ([0.0] * 6 + [0.5, 1.0], 0.75),  # n = 8: k = 2 -> (1.0 + 0.5) / 2
        ([0.1] * 9 + [0.4, 0.7, 1.0], 0.7),  # n = 12: k = 3 -> (1.0 + 0.7 + 0.4) / 3
    ],
)
def test_topk_averages_the_highest_quarter(scores: list[float], expected: float) -> None:
    assert aggregate_scores(scores, "topk") == pytest.approx(expected)


# --- confident (DFDC winner) ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("scores", "expected"),
    [
        # Fake branch needs count(p > 0.8) > max(11, n / 2.5).
        ([0.9] * 12 + [0.5] * 8, 0.9),  # n = 20: 12 > 11 -> mean of the confident fakes
        ([0.9] * 11 + [0.5] * 9, (0.9 * 11 + 0.5 * 9) / 20),  # 11 > 11 is false -> mean of all
        ([0.9] * 12 + [0.1], 0.9),  # small n = 13: 12 > max(11, 5.2)
        ([0.9] * 11 + [0.1], (0.9 * 11 + 0.1) / 12),  # small n = 12: 11 is not > 11
        # n = 30: n / 2.5 = 12 exactly, so 12 fakes are not enough and 13 are.
        ([0.95] * 12 + [0.5] * 18, (0.95 * 12 + 0.5 * 18) / 30),
        ([0.95] * 13 + [0.5] * 17, 0.95),
        # Large n = 100: n / 2.5 = 40 beats 11.
        ([0.9] * 41 + [0.3] * 59, 0.9),
        ([0.9] * 40 + [0.3] * 60, (0.9 * 40 + 0.3 * 60) / 100),
        # p > 0.8 is strict: 0.8 itself is not a confident fake.
        ([0.8] * 12 + [0.5], (0.8 * 12 + 0.5) / 13),
        ([0.81] * 12 + [0.5], 0.81),
        # Real branch needs count(p < 0.2) > 0.9 * n.
        ([0.1] * 19 + [0.7], 0.1),  # n = 20: 19 > 18 -> mean of the confident reals
        ([0.1] * 18 + [0.7] * 2, (0.1 * 18 + 0.7 * 2) / 20),  # 18 > 18 is false
        ([0.1] * 10, 0.1),  # every score confident: 10 > 9
        # p < 0.2 is strict: 0.2 itself is not a confident real.
        ([0.2] * 19 + [0.9], (0.2 * 19 + 0.9) / 20),
        ([0.19] * 19 + [0.9], 0.19),
        # Neither branch: the plain mean.
        ([0.3, 0.6, 0.9], 0.6),
    ],
)
def test_confident_rule_branches_and_boundaries(scores: list[float], expected: float) -> None:
    assert aggregate_scores(scores, "confident") == pytest.approx(expected)


# --- weighted -------------------------------------------------------------------------------


def test_weighted_uses_distance_from_one_half_plus_epsilon() -> None:
    # weights: 2 * |p - 0.5| + 0.001
    assert aggregate_scores([1.0, 0.5], "weighted") == pytest.approx(
        (1.0 * 1.001 + 0.5 * 0.001) / (1.001 + 0.001)
    )
    assert aggregate_scores([0.9, 0.3], "weighted") == pytest.approx(
        (0.9 * 0.801 + 0.3 * 0.401) / (0.801 + 0.401)
    )


def test_weighted_edge_cases() -> None:
    assert aggregate_scores([0.5, 0.5, 0.5], "weighted") == pytest.approx(0.5)  # epsilon only
    assert aggregate_scores([0.0, 1.0], "weighted") == pytest.approx(0.5)  # symmetric


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_refuses_empty_input(strategy: str) -> None:
    with pytest.raises(ValueError, match="empty"):
        aggregate_scores([], strategy)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_returns_a_probability(strategy: str) -> None:
    result = aggregate_scores([0.0, 0.2, 0.5, 0.97, 1.0], strategy)
    assert 0.0 <= result <= 1.0


def test_unknown_strategy_lists_the_known_ones() -> None:
    with pytest.raises(ValueError) as raised:
        aggregate_scores([0.5], "max")
    for name in STRATEGIES:
        assert name in str(raised.value)


@pytest.mark.parametrize("bad_score", [float("nan"), float("inf"), -0.1, 1.5])
def test_scores_outside_zero_one_are_refused(bad_score: float) -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        aggregate_scores([0.5, bad_score])


# --- verdicts -------------------------------------------------------------------------------


def test_verdict_threshold_is_inclusive() -> None:
    assert verdict_for(0.5) == "FAKE"
    assert verdict_for(0.4999999) == "REAL"
    assert verdict_for(0.9, threshold=0.9) == "FAKE"
    assert verdict_for(0.8999, threshold=0.9) == "REAL"
    assert verdict_for(0.0, threshold=0.0) == "FAKE"


def test_video_is_as_fake_as_its_most_fake_person() -> None:
    persons, video_probability, verdict = video_verdict(
        {2: [0.9, 0.7], 1: [0.1, 0.2, 0.3]}, strategy="mean", threshold=0.5
    )
    assert [person.id for person in persons] == [1, 2]  # sorted by id
    assert persons[0].fake_probability == pytest.approx(0.2)
    assert persons[0].verdict == "REAL"
    assert persons[0].frames == 3
    assert persons[1].fake_probability == pytest.approx(0.8)
    assert persons[1].verdict == "FAKE"
    assert persons[1].frames == 2
    assert video_probability == pytest.approx(0.8)
    assert verdict == "FAKE"


def test_video_verdict_uses_the_strategy_and_threshold() -> None:
    persons, video_probability, verdict = video_verdict(
        {0: [0.1, 0.2, 0.3, 0.6, 1.0]}, strategy="topk", threshold=0.85
    )
    assert video_probability == pytest.approx(0.8)
    assert verdict == "REAL"
    assert persons[0].verdict == "REAL"


def test_video_verdict_without_persons_is_refused() -> None:
    with pytest.raises(ValueError, match="no_face"):
        video_verdict({}, strategy="mean", threshold=0.5)
    with pytest.raises(ValueError):
        video_verdict({0: []}, strategy="mean", threshold=0.5)
    with pytest.raises(ValueError):
        video_verdict({0: [0.5]}, strategy="nope", threshold=0.5)


# --- which persons are judged ---------------------------------------------------------------


def test_default_min_face_follows_the_models_input_size() -> None:
    # 380 / (1.3 * 6) = 48.7: the authors' B4 judges faces of 49 px and more; a 64 px model
    # enlarges nothing much, so the floor (MTCNN's smallest useful face) applies.
    assert default_min_face_px(380, 1.3) == 49
    assert default_min_face_px(64, 1.3) == 20
    assert default_min_face_px(224, 1.3) == 29
    assert DEFAULT_MIN_PRESENCE == 0.25


def test_judging_rule_gives_the_reason_size_first() -> None:
    rule = JudgingRule(min_face_px=49, min_presence=0.25)
    assert rule.required_frames(32) == 8
    assert rule.required_frames(4) == 1
    assert rule.required_frames(1) == 1
    assert JudgingRule(min_face_px=0, min_presence=0.3).required_frames(10) == 3  # not 4
    assert JudgingRule(min_face_px=0, min_presence=0.0).required_frames(32) == 1
    presenter = SeenPerson(id=0, frames=32, face_px=120.0)
    on_screen = SeenPerson(id=1, frames=3, face_px=45.0)  # small and brief: size is named
    brief = SeenPerson(id=2, frames=7, face_px=80.0)
    at_the_limits = SeenPerson(id=3, frames=8, face_px=49.0)
    assert rule.reason_not_judged(presenter, 32) is None
    assert rule.reason_not_judged(on_screen, 32) == REASON_FACE_TOO_SMALL
    assert rule.reason_not_judged(brief, 32) == REASON_TOO_FEW_FRAMES
    assert rule.reason_not_judged(at_the_limits, 32) is None  # both limits are inclusive
    assert REASONS == (REASON_FACE_TOO_SMALL, REASON_TOO_FEW_FRAMES)

    unjudged = rule.unjudged_persons([presenter, on_screen, brief], sampled_frames=32)
    assert [(person.id, person.reason) for person in unjudged] == [
        (1, "face_too_small"),
        (2, "too_few_frames"),
    ]
    assert all(
        person.fake_probability is None and person.verdict is None and not person.judged
        for person in unjudged
    )
    assert [person.face_px for person in unjudged] == [45.0, 80.0]
    assert [person.frames for person in unjudged] == [3, 7]


@pytest.mark.parametrize("rule", [{"min_face_px": -1}, {"min_face_px": 20, "min_presence": 1.5}])
def test_judging_rule_refuses_nonsense(rule: dict) -> None:
    with pytest.raises(ValueError):
        JudgingRule(**rule)


def test_only_judged_persons_decide_the_verdict() -> None:
    rule = JudgingRule(min_face_px=49)
    (small_face,) = rule.unjudged_persons([SeenPerson(1, 30, 40.0)], sampled_frames=32)
    persons, video_probability, verdict = video_verdict(
        {0: [0.1, 0.2], 2: [0.3]},
        strategy="mean",
        threshold=0.5,
        face_px={0: 120.0, 2: 90.0},
        unjudged=[small_face],
    )
    assert [(person.id, person.judged) for person in persons] == [(0, True), (1, False), (2, True)]
    assert [person.face_px for person in persons] == [120.0, 40.0, 90.0]
    assert video_probability == pytest.approx(0.3) and verdict == "REAL"
    # Nobody judged: no verdict, whatever was seen.
    with pytest.raises(ValueError, match="no_face"):
        video_verdict({}, strategy="mean", threshold=0.5, unjudged=[small_face])


# --- exit codes -----------------------------------------------------------------------------


def _result(kind: str) -> VideoResult:
    common = {"threshold": 0.5, "aggregate": "mean", "model": MODEL, "seconds": 1.0}
    if kind == "error":
        return VideoResult.failed(f"{kind}.mp4", "The video could not be decoded.", **common)
    if kind == "no_face":
        return VideoResult.no_face(f"{kind}.mp4", **common)
    probability = 0.9 if kind == "FAKE" else 0.1
    return VideoResult(
        path=f"{kind}.mp4",
        status="ok",
        error=None,
        verdict=kind,
        fake_probability=probability,
        frames_used=8,
        persons=[],
        **common,
    )


ALL_KINDS = ("REAL", "FAKE", "no_face", "error")
KIND_COMBINATIONS = [
    combination
    for length in range(len(ALL_KINDS) + 1)
    for subset in itertools.combinations(ALL_KINDS, length)
    for combination in itertools.permutations(subset)
]


@pytest.mark.parametrize("kinds", KIND_COMBINATIONS, ids=lambda kinds: "+".join(kinds) or "empty")
def test_exit_code_for_every_combination(kinds: tuple[str, ...]) -> None:
    if "error" in kinds:
        expected = EXIT_ERROR  # an error wins over a FAKE
    elif "FAKE" in kinds:
        expected = EXIT_FAKE_FOUND
    else:
        expected = EXIT_OK  # REAL and no_face alike: scanned, nothing fake
    assert exit_code_for([_result(kind) for kind in kinds]) == expected


def test_exit_code_values() -> None:
    assert (EXIT_OK, EXIT_FAKE_FOUND, EXIT_ERROR) == (0, 1, 2)
    assert exit_code_for(iter([_result("FAKE"), _result("error")])) == 2  # any iterable
