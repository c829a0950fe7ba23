"""What shopstream publishes: recommendations, segment changes, alerts and dead letters.

Every output carries a deterministic id derived from the input that caused
it, so a consumer can drop the duplicates that at-least-once delivery may
bring after a crash.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

import orjson

from typing import TYPE_CHECKING, Any

from models.cooccurrence import Recommendation
from models.profile import UserProfile

if TYPE_CHECKING:
    from stream.learner import UserModels

PREVIEW_CHARS = 1000


@dataclass(slots=True)
class Message:
    """One input message as it came off a topic (or a line of a file)."""

    value: bytes | None
    topic: str
    partition: int
    offset: int
    key: bytes | None = None


@dataclass(slots=True)
class DeadLetter:
    """An input message that was not processed, and why."""

    message: Message
    reason: str

    @property
    def dead_letter_id(self) -> str:
        m = self.message
        return f"dlq:{m.topic}:{m.partition}:{m.offset}"

    def to_dict(self) -> dict:
        m = self.message
        raw = m.value or b""
        return {
            "dead_letter_id": self.dead_letter_id,
            "reason": self.reason,
            "topic": m.topic,
            "partition": m.partition,
            "offset": m.offset,
            "key": m.key.decode("utf-8", "replace") if m.key is not None else None,
            "original_b64": base64.b64encode(raw).decode("ascii"),
            "original": raw[:PREVIEW_CHARS].decode("utf-8", "replace"),
            "original_bytes": len(raw),
        }

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())


@dataclass(slots=True)
class UserRecommendations:
    """A user's recommendations as of one of their events."""

    user_id: str
    event_id: str
    ts: float
    items: list[Recommendation] = field(default_factory=list)
    fallback: bool = False  # True when no item came from the user's history

    @property
    def rec_id(self) -> str:
        return f"rec:{self.event_id}"

    def to_dict(self) -> dict:
        return {
            "rec_id": self.rec_id,
            "user_id": self.user_id,
            "event_id": self.event_id,
            "ts": self.ts,
            "fallback": self.fallback,
            "items": [
                {"item_id": r.item_id, "score": round(r.score, 6), "because": list(r.because),
                 "similar_sessions": r.similar_sessions}
                for r in self.items
            ],
        }

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, d: dict) -> "UserRecommendations":
        items = [Recommendation(i["item_id"], i["score"], tuple(i["because"]), i.get("similar_sessions", 0))
                 for i in d["items"]]
        return cls(d["user_id"], d["event_id"], d["ts"], items, d.get("fallback", False))


@dataclass(slots=True)
class SegmentChange:
    """A user moved to another segment (published on the ``segments`` topic)."""

    user_id: str
    event_id: str
    ts: float
    segment: int
    previous: int | None
    name: str | None = None

    @property
    def change_id(self) -> str:
        return f"seg:{self.event_id}"

    def to_dict(self) -> dict:
        return {"change_id": self.change_id, "user_id": self.user_id, "event_id": self.event_id,
                "ts": self.ts, "segment": self.segment, "previous": self.previous, "name": self.name}

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())


@dataclass(slots=True)
class UserView:
    """What ``/users/{user_id}`` shows: profile, features, segment, propensity."""

    profile: UserProfile
    models: "UserModels"
    churn_risk: float | None = None  # as of the stream's event time

    def to_dict(self) -> dict[str, Any]:
        p = self.profile
        x = p.features.values(p.last_seen or 0.0)
        # Against the current centroids, with hysteresis from the stored segment.
        current = self.models.segments.assign(x, p.segment)
        segment = None
        if current is not None:
            profiles = {s["segment"]: s for s in self.models.segments.profiles()}
            segment = profiles.get(current, {"segment": current})
        return {
            **p.summary(),
            "segment": segment,
            "propensity": p.propensity,
            "churn_risk": self.churn_risk,
            "churn_episode_open": p.churn_alerted_at is not None,
            "features": x,
            "recent_items": list(reversed(p.recent)),
            "models_version": self.models.version,
        }


@dataclass(slots=True)
class Reason:
    """Why an alert fired: a feature or rule, its value, and what is normal."""

    name: str
    value: float | str | None
    normal: float | str | None = None

    def to_dict(self) -> dict[str, Any]:
        def fmt(v: float | str | None) -> float | str | None:
            return round(v, 4) if isinstance(v, float) else v

        return {"name": self.name, "value": fmt(self.value), "normal": fmt(self.normal)}


@dataclass(slots=True)
class Alert:
    """Something a person should act on (published on the ``alerts`` topic).

    ``kind`` is ``fraud``, ``churn_risk``, ``retention_offer``, ``no_second_visit``,
    ``churn_recovered`` or ``cart_nudge``; ``alert_id`` is derived from what
    triggered it, so a repeat after a crash carries the same id."""

    kind: str
    user_id: str
    event_id: str | None
    ts: float
    score: float
    threshold: float | None
    reasons: list[Reason] = field(default_factory=list)
    segment: int | None = None
    segment_name: str | None = None
    key: str | None = None  # what makes the id unique when there is no event
    held_out: bool | None = None  # offers and nudges: the holdout decision (stream/actions.py)

    @property
    def alert_id(self) -> str:
        return f"{self.kind}:{self.event_id if self.key is None else self.key}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "alert_id": self.alert_id,
            "kind": self.kind,
            "user_id": self.user_id,
            "event_id": self.event_id,
            "ts": self.ts,
            "score": round(self.score, 6),
            "threshold": None if self.threshold is None else round(self.threshold, 6),
            "reasons": [r.to_dict() for r in self.reasons],
            "segment": self.segment,
            "segment_name": self.segment_name,
            **({} if self.held_out is None else {"held_out": self.held_out}),
        }

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())
