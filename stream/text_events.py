"""The contract of what customers write: ``reviews`` and ``messages``.

One JSON object per message (or JSONL line)::

    {"review_id": "r1", "user_id": "u1", "item_id": "i9", "ts": 1700000000,
     "text": "物流太慢", "rating": 2, "order_id": "o5", "lang": "zh"}
    {"message_id": "m1", "user_id": "u1", "ts": 1700000100,
     "text": "where is my order?", "channel": "chat", "intent": "track_order"}

``rating`` (1-5), ``order_id``, ``lang`` and ``intent`` (an agent's label)
are optional. Like :mod:`stream.events`, decoding raises nothing but
:class:`~stream.events.InvalidEvent`, whose reason goes to the dead-letter topic.

>>> decode_review(b'{"review_id":"r1","user_id":"u","item_id":"i","ts":1700000000,"text":"ok","rating":4}').rating
4.0
>>> decode_message(b'{"message_id":"m1","user_id":"u","ts":1700000000,"text":" ","channel":"chat"}')
Traceback (most recent call last):
...
stream.events.InvalidEvent: field 'text' must hold some text
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import orjson

from stream.events import MIN_TS, InvalidEvent, _ident, _json, parse_ts

MAX_TEXT_CHARS = 5000
REVIEWS, MESSAGES = "reviews", "messages"


@dataclass(slots=True)
class Review:
    review_id: str
    user_id: str
    item_id: str
    ts: float
    text: str
    rating: float | None = None
    order_id: str | None = None
    lang: str | None = None

    @property
    def event_id(self) -> str:
        return self.review_id

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(slots=True)
class CustomerMessage:
    """A customer-service request; ``intent`` when an agent labelled it."""

    message_id: str
    user_id: str
    ts: float
    text: str
    channel: str
    intent: str | None = None

    @property
    def event_id(self) -> str:
        return self.message_id

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


TextEvent = Review | CustomerMessage


def _text(obj: dict) -> str:
    value = obj.get("text")
    if not isinstance(value, str):
        raise InvalidEvent("field 'text' must be a string")
    if not value.strip():
        raise InvalidEvent("field 'text' must hold some text")
    if len(value) > MAX_TEXT_CHARS:
        raise InvalidEvent(f"field 'text' is longer than {MAX_TEXT_CHARS} characters")
    return value


def review_from_dict(obj: object, earliest: float = MIN_TS) -> Review:
    if not isinstance(obj, dict):
        raise InvalidEvent(f"review must be a JSON object, got {type(obj).__name__}")
    rating = obj.get("rating")
    if rating is not None:
        if isinstance(rating, bool) or not isinstance(rating, (int, float)) or not 1 <= rating <= 5:
            raise InvalidEvent("field 'rating' must be a number from 1 to 5")
        rating = float(rating)
    if "ts" not in obj:
        raise InvalidEvent("missing field 'ts'")
    return Review(
        review_id=_ident(obj, "review_id"),  # type: ignore[arg-type]
        user_id=_ident(obj, "user_id"),  # type: ignore[arg-type]
        item_id=_ident(obj, "item_id"),  # type: ignore[arg-type]
        ts=parse_ts(obj["ts"], earliest),
        text=_text(obj),
        rating=rating,
        order_id=_ident(obj, "order_id", required=False),
        lang=_ident(obj, "lang", required=False),
    )


def message_from_dict(obj: object, earliest: float = MIN_TS) -> CustomerMessage:
    if not isinstance(obj, dict):
        raise InvalidEvent(f"message must be a JSON object, got {type(obj).__name__}")
    if "ts" not in obj:
        raise InvalidEvent("missing field 'ts'")
    return CustomerMessage(
        message_id=_ident(obj, "message_id"),  # type: ignore[arg-type]
        user_id=_ident(obj, "user_id"),  # type: ignore[arg-type]
        ts=parse_ts(obj["ts"], earliest),
        text=_text(obj),
        channel=_ident(obj, "channel"),  # type: ignore[arg-type]
        intent=_ident(obj, "intent", required=False),
    )


def decode_review(raw: bytes | None, max_bytes: int = 65536, earliest: float = MIN_TS) -> Review:
    return review_from_dict(_json(raw, max_bytes), earliest)


def decode_message(raw: bytes | None, max_bytes: int = 65536,
                   earliest: float = MIN_TS) -> CustomerMessage:
    return message_from_dict(_json(raw, max_bytes), earliest)


def decode_text(raw: bytes | None, role: str, max_bytes: int = 65536,
                earliest: float = MIN_TS) -> TextEvent:
    """A message of the ``reviews`` or ``messages`` topic (by ``role``)."""
    if role == REVIEWS:
        return decode_review(raw, max_bytes, earliest)
    return decode_message(raw, max_bytes, earliest)


def to_json(event: TextEvent) -> bytes:
    return orjson.dumps(event.to_dict())
