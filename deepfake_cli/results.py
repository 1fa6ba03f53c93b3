"""The scan result schema: what `mattn scan` says about each video.

This schema is a public interface: scripts parse the JSON, JSONL and CSV built from it, so field
names, their order and their null rules only ever change with a documented version bump
(`SCHEMA_VERSION`, written into every record; see docs/scan-output.md). Values are kept at
full precision in memory and rounded only in `to_dict`, so aggregation never works on rounded
numbers while the output stays readable and diff-friendly.

Null rule: a video that could not be scanned (`status == "error"`) or in which no face was found
(`status == "no_face"`, which includes a video whose faces were all too small or too briefly
seen to judge) has `verdict` and `fake_probability` set to None; so has a person that was not
judged (`judged` false, with a `reason`). mattn never makes up a score for what it did not judge.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: The version of this schema, the first key of every JSON record (and the last CSV column).
#: 1 had no `schema_version` key; 2 added it, the persons' `judged`, `reason` and `face_px`, and
#: the record's `min_face_px`, `min_presence` and `decode`.
SCHEMA_VERSION = 2

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


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)


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
    """One tracked person: judged (a score over their frames), or not judged and why."""

    id: int
    fake_probability: float | None  # None when the person was not judged
    verdict: str | None  # "FAKE" | "REAL"; None when the person was not judged
    # Sampled frames the person was found in; for a judged person, also how many frame scores
    # were aggregated into fake_probability (every frame a judged person is in is scored).
    frames: int
    judged: bool = True
    reason: str | None = None  # why not judged (aggregate.REASONS); None when judged
    # Shorter side of the visible face box in pixels, median over the frames; None in records
    # of schema 1, which did not measure it.
    face_px: float | None = None

    def to_dict(self, details: bool = False) -> dict[str, Any]:
        return {
            "id": int(self.id),
            "fake_probability": _round_or_none(self.fake_probability, PROBABILITY_DECIMALS),
            "verdict": self.verdict,
            "frames": int(self.frames),
            "judged": bool(self.judged),
            "reason": self.reason,
            "face_px": _round_or_none(self.face_px, PIXEL_DECIMALS),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PersonResult:
        # Schema 1 records have no `judged`, `reason` or `face_px`: every person was judged.
        return cls(
            id=int(data["id"]),
            fake_probability=_float_or_none(data.get("fake_probability")),
            verdict=data.get("verdict"),
            frames=int(data["frames"]),
            judged=bool(data.get("judged", True)),
            reason=data.get("reason"),
            face_px=_float_or_none(data.get("face_px")),
        )


#: How `DecodeInfo.reason` begins when PyAV read a video decord could have read exactly, because
#: reading it in order cost less there (`video.sequential_is_cheaper_reason`).
CHEAPER_IN_ORDER = "reading in order costs less than seeking"


@dataclass
class DecodeInfo:
    """How the sampled frames were read, so a reader knows what the verdict rests on.

    mattn refuses a video (status "error") rather than judge frames it could not read exactly,
    so in every record that has this object `frames_exact == frames_requested` and the other
    two counts are 0; they are there so that no reader has to assume it.
    """

    decoder: str  # "decord" (seeks to keyframes) or "pyav" (decodes every frame in order)
    reason: str | None  # why "pyav" read this video (needed, or `CHEAPER_IN_ORDER`); None on decord
    frames_requested: int  # sampled frame indices
    frames_exact: int  # frames returned that are exactly the frame named by index and time
    frames_substituted: int = 0  # frames replaced by a neighbour (decord's fault tolerance)
    frames_skipped: int = 0  # requested frames that could not be decoded

    def to_dict(self, details: bool = False) -> dict[str, Any]:
        return {
            "decoder": self.decoder,
            "reason": self.reason,
            "frames_requested": int(self.frames_requested),
            "frames_exact": int(self.frames_exact),
            "frames_substituted": int(self.frames_substituted),
            "frames_skipped": int(self.frames_skipped),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DecodeInfo:
        return cls(
            decoder=str(data["decoder"]),
            reason=data.get("reason"),
            frames_requested=int(data["frames_requested"]),
            frames_exact=int(data["frames_exact"]),
            frames_substituted=int(data.get("frames_substituted", 0)),
            frames_skipped=int(data.get("frames_skipped", 0)),
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
    persons: list[PersonResult]  # judged and not judged, by id; a no_face video may have some
    seconds: float  # wall-clock time spent on this video
    frames: list[FrameRecord] | None = None  # per-frame scores, kept only with --details
    # The judging rule used (`--min-face`, `--min-presence`); None in records of schema 1.
    min_face_px: int | None = None
    min_presence: float | None = None
    # How the frames were read; None for a video never decoded and in records of schema 1.
    decode: DecodeInfo | None = None

    @property
    def judged_persons(self) -> list[PersonResult]:
        """The persons the verdict rests on."""
        return [person for person in self.persons if person.judged]

    def to_dict(self, details: bool = False) -> dict[str, Any]:
        """The JSON-ready form, keys in schema order; `frames` is present only when `details`.

        With `details` but no frames recorded (an error, or a scan run without details) the key
        is present with an empty list, so `--details` output always has the same keys.
        """
        data: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "path": self.path,
            "status": self.status,
            "error": self.error,
            "verdict": self.verdict,
            "fake_probability": _round_or_none(self.fake_probability, PROBABILITY_DECIMALS),
            "threshold": float(self.threshold),
            "aggregate": self.aggregate,
            "min_face_px": None if self.min_face_px is None else int(self.min_face_px),
            "min_presence": self.min_presence,
            "frames_used": int(self.frames_used),
            "decode": None if self.decode is None else self.decode.to_dict(details),
            "model": self.model.to_dict(details),
            "persons": [person.to_dict(details) for person in self.persons],
            "seconds": round(float(self.seconds), SECONDS_DECIMALS),
        }
        if details:
            data["frames"] = [frame.to_dict(details) for frame in (self.frames or [])]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VideoResult:
        raw_frames = data.get("frames")
        return cls(
            path=str(data["path"]),
            status=str(data["status"]),
            error=data.get("error"),
            verdict=data.get("verdict"),
            fake_probability=_float_or_none(data.get("fake_probability")),
            threshold=float(data["threshold"]),
            aggregate=str(data["aggregate"]),
            frames_used=int(data["frames_used"]),
            model=ModelInfo.from_dict(data["model"]),
            persons=[PersonResult.from_dict(person) for person in data.get("persons", [])],
            seconds=float(data["seconds"]),
            frames=None
            if raw_frames is None
            else [FrameRecord.from_dict(frame) for frame in raw_frames],
            min_face_px=data.get("min_face_px"),
            min_presence=data.get("min_presence"),
            decode=None if data.get("decode") is None else DecodeInfo.from_dict(data["decode"]),
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
        min_face_px: int | None = None,
        min_presence: float | None = None,
    ) -> VideoResult:
        """A video that could not be scanned: no verdict and no score, only the reason."""
        return cls._without_verdict(
            path,
            STATUS_ERROR,
            error_message,
            threshold,
            aggregate,
            model,
            seconds,
            frames=None,
            persons=[],
            judging=(min_face_px, min_presence),
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
        persons: list[PersonResult] | None = None,
        min_face_px: int | None = None,
        min_presence: float | None = None,
    ) -> VideoResult:
        """A video that was decoded but showed no face to judge: no verdict.

        `frames` may carry the sampled frames (each with no scored faces) for `--details`
        output; `persons` the faces that were found but not judged, each with its reason.
        """
        return cls._without_verdict(
            path,
            STATUS_NO_FACE,
            None,
            threshold,
            aggregate,
            model,
            seconds,
            frames=frames,
            persons=list(persons or []),
            judging=(min_face_px, min_presence),
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
        *,
        frames: list[FrameRecord] | None,
        persons: list[PersonResult],
        judging: tuple[int | None, float | None],
    ) -> VideoResult:
        """The record of a video with nothing judged: no verdict, no score, no judged person."""
        min_face_px, min_presence = judging
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
            persons=persons,
            seconds=seconds,
            frames=frames,
            min_face_px=min_face_px,
            min_presence=min_presence,
        )
