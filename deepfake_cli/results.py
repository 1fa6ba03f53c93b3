"""The scan result schema: what `mattn scan` says about each video.

This schema is a public interface: scripts parse the JSON, JSONL and CSV built from it, so field
names, their order and their null rules only ever change with a documented version bump (see
docs/scan-output.md). Values are kept at full precision in memory and rounded only in `to_dict`,
so aggregation never works on rounded numbers while the output stays readable and diff-friendly.

Null rule: a video that could not be scanned (`status == "error"`) or in which no face was found
(`status == "no_face"`) has `verdict` and `fake_probability` set to None. mattn never makes up a
score for a video it did not judge.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: `VideoResult.status` values.
STATUS_OK = "ok"
STATUS_NO_FACE = "no_face"
STATUS_ERROR = "error"
STATUSES: tuple[str, ...] = (STATUS_OK, STATUS_NO_FACE, STATUS_ERROR)

#: Verdict values (of a person and of a video).
VERDICT_FAKE = "FAKE"
VERDICT_REAL = "REAL"

# Output precision. Six decimals keep probabilities distinguishable near a threshold without
# printing float noise; milliseconds are as precise as wall-clock timings deserve; a tenth of a
# pixel is finer than any face detector's box.
PROBABILITY_DECIMALS = 6
SECONDS_DECIMALS = 3
PIXEL_DECIMALS = 1


def _round_or_none(value: float | None, decimals: int) -> float | None:
    return None if value is None else round(float(value), decimals)


@dataclass
class ModelInfo:
    """Which weights produced the scores: a result is only meaningful with its model."""

    name: str
    sha256: str
    demo: bool

    def to_dict(self, details: bool = False) -> dict[str, Any]:
        # `details` is accepted so every schema class has the same signature; nothing to add here.
        return {"name": self.name, "sha256": self.sha256, "demo": bool(self.demo)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelInfo:
        return cls(name=str(data["name"]), sha256=str(data["sha256"]), demo=bool(data["demo"]))


@dataclass
class FaceScore:
    """One detected face in one frame, with the detector's confidence and the model's score."""

    person: int
    box: list[float]  # [x1, y1, x2, y2] in pixels of the decoded frame
    det_prob: float
    fake_probability: float

    def to_dict(self, details: bool = False) -> dict[str, Any]:
        return {
            "person": int(self.person),
            "box": [round(float(coordinate), PIXEL_DECIMALS) for coordinate in self.box],
            "det_prob": round(float(self.det_prob), PROBABILITY_DECIMALS),
            "fake_probability": round(float(self.fake_probability), PROBABILITY_DECIMALS),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FaceScore:
        return cls(
            person=int(data["person"]),
            box=[float(coordinate) for coordinate in data["box"]],
            det_prob=float(data["det_prob"]),
            fake_probability=float(data["fake_probability"]),
        )


@dataclass
class FrameRecord:
    """One sampled frame: where it is in the video and the faces scored in it."""

    index: int  # frame number in the decoded video, 0-based
    time_s: float  # presentation time of the frame, seconds from the start
    faces: list[FaceScore]

    def to_dict(self, details: bool = False) -> dict[str, Any]:
        return {
            "index": int(self.index),
            "time_s": round(float(self.time_s), SECONDS_DECIMALS),
            "faces": [face.to_dict(details) for face in self.faces],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FrameRecord:
        return cls(
            index=int(data["index"]),
            time_s=float(data["time_s"]),
            faces=[FaceScore.from_dict(face) for face in data["faces"]],
        )


@dataclass
class PersonResult:
    """One tracked person: their aggregated score over the frames they appear in."""

    id: int
    fake_probability: float
    verdict: str  # "FAKE" | "REAL"
    frames: int  # how many frame scores were aggregated into fake_probability

    def to_dict(self, details: bool = False) -> dict[str, Any]:
        return {
            "id": int(self.id),
            "fake_probability": round(float(self.fake_probability), PROBABILITY_DECIMALS),
            "verdict": self.verdict,
            "frames": int(self.frames),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PersonResult:
        return cls(
            id=int(data["id"]),
            fake_probability=float(data["fake_probability"]),
            verdict=str(data["verdict"]),
            frames=int(data["frames"]),
        )


@dataclass
class VideoResult:
    """Everything `mattn scan` reports about one video; one JSON object / JSONL line / CSV row."""

    path: str
    status: str  # "ok" | "no_face" | "error"
    error: str | None  # one sentence when status == "error", else None
    verdict: str | None  # "FAKE" | "REAL"; None unless status == "ok"
    fake_probability: float | None  # the most-fake person's score; None unless status == "ok"
    threshold: float
    aggregate: str  # name of the aggregation strategy (deepfake_cli.aggregate.STRATEGIES)
    frames_used: int  # frames in which at least one face was scored
    model: ModelInfo
    persons: list[PersonResult]
    seconds: float  # wall-clock time spent on this video
    frames: list[FrameRecord] | None = None  # per-frame scores, kept only with --details

    def to_dict(self, details: bool = False) -> dict[str, Any]:
        """The JSON-ready form, keys in schema order; `frames` is present only when `details`.

        With `details` but no frames recorded (an error, or a scan run without details) the key
        is present with an empty list, so `--details` output always has the same keys.
        """
        data: dict[str, Any] = {
            "path": self.path,
            "status": self.status,
            "error": self.error,
            "verdict": self.verdict,
            "fake_probability": _round_or_none(self.fake_probability, PROBABILITY_DECIMALS),
            "threshold": float(self.threshold),
            "aggregate": self.aggregate,
            "frames_used": int(self.frames_used),
            "model": self.model.to_dict(details),
            "persons": [person.to_dict(details) for person in self.persons],
            "seconds": round(float(self.seconds), SECONDS_DECIMALS),
        }
        if details:
            data["frames"] = [frame.to_dict(details) for frame in (self.frames or [])]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VideoResult:
        raw_probability = data.get("fake_probability")
        raw_frames = data.get("frames")
        return cls(
            path=str(data["path"]),
            status=str(data["status"]),
            error=data.get("error"),
            verdict=data.get("verdict"),
            fake_probability=None if raw_probability is None else float(raw_probability),
            threshold=float(data["threshold"]),
            aggregate=str(data["aggregate"]),
            frames_used=int(data["frames_used"]),
            model=ModelInfo.from_dict(data["model"]),
            persons=[PersonResult.from_dict(person) for person in data.get("persons", [])],
            seconds=float(data["seconds"]),
            frames=None
            if raw_frames is None
            else [FrameRecord.from_dict(frame) for frame in raw_frames],
        )

    @classmethod
    def failed(
        cls,
        path: str,
        error_message: str,
        *,
        threshold: float,
        aggregate: str,
        model: ModelInfo,
        seconds: float,
    ) -> VideoResult:
        """A video that could not be scanned: no verdict and no score, only the reason."""
        return cls._without_verdict(
            path, STATUS_ERROR, error_message, threshold, aggregate, model, seconds, frames=None
        )

    @classmethod
    def no_face(
        cls,
        path: str,
        *,
        threshold: float,
        aggregate: str,
        model: ModelInfo,
        seconds: float,
        frames: list[FrameRecord] | None = None,
    ) -> VideoResult:
        """A video that was decoded but showed no face: nothing to judge, so no verdict.

        `frames` may carry the sampled frames (each with no faces) for `--details` output.
        """
        return cls._without_verdict(
            path, STATUS_NO_FACE, None, threshold, aggregate, model, seconds, frames
        )

    @classmethod
    def _without_verdict(
        cls,
        path: str,
        status: str,
        error: str | None,
        threshold: float,
        aggregate: str,
        model: ModelInfo,
        seconds: float,
        frames: list[FrameRecord] | None,
    ) -> VideoResult:
        """The record of a video with nothing judged: no verdict, no score, no persons."""
        return cls(
            path=path,
            status=status,
            error=error,
            verdict=None,
            fake_probability=None,
            threshold=threshold,
            aggregate=aggregate,
            frames_used=0,
            model=model,
            persons=[],
            seconds=seconds,
            frames=frames,
        )
