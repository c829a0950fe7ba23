"""The input event contract: decoding and validation.

An event is one JSON object per message (or per JSONL line)::

    {"event_id": "e1", "type": "click", "user_id": "u1", "item_id": "i9",
     "ts": 1700000000.5, "session_id": "s1", "category": "shoes"}

``decode`` never raises anything but :class:`InvalidEvent`, whose ``reason``
is a short sentence for the dead-letter topic.

>>> decode(b'{"event_id":"e1","type":"view","user_id":"u","item_id":"i","ts":1700000000}', "views").item_id
'i'
>>> decode(b'{"event_id":"e1","type":"purchase","user_id":"u","item_id":"i","ts":1700000000}', "views")
Traceback (most recent call last):
...
stream.events.InvalidEvent: type 'purchase' does not belong on topic 'views'
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone

import orjson

EVENT_TYPES = ("view", "click", "cart", "purchase")
# A live event's time must fall in this window (2000-01-01 .. 2100-01-01 UTC):
# anything outside is a producer bug (milliseconds sent as seconds, zero,
# garbage). A backtest takes any real history, from 1970 on (HISTORY_MIN_TS).
MIN_TS = 946684800.0
HISTORY_MIN_TS = 0.0
MAX_TS = 4102444800.0
MAX_ID_CHARS = 256
MAX_ATTRS = 64
# Which event types each input topic carries, by topic role.
TYPES_BY_ROLE = {"views": ("view",), "clicks": ("click", "cart"), "purchases": ("purchase",)}
# Demand's leading signals: event type -> its counter among a series' day's [views, carts].
DEMAND_SIGNALS = {"view": 0, "cart": 1}


class InvalidEvent(ValueError):
    """An input message that breaks the contract; ``reason`` says how."""

    @property
    def reason(self) -> str:
        return str(self.args[0])


@dataclass(slots=True)
class Event:
    event_id: str
    type: str
    user_id: str
    item_id: str
    ts: float
    session_id: str | None = None
    category: str | None = None
    price: float | None = None
    quantity: int = 1
    order_id: str | None = None
    attrs: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = {
            "event_id": self.event_id,
            "type": self.type,
            "user_id": self.user_id,
            "item_id": self.item_id,
            "ts": self.ts,
        }
        for name in ("session_id", "category", "price", "order_id"):
            value = getattr(self, name)
            if value is not None:
                d[name] = value
        if self.quantity != 1:
            d["quantity"] = self.quantity
        if self.attrs:
            d["attrs"] = self.attrs
        return d

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())


def _ident(obj: dict, name: str, required: bool = True) -> str | None:
    value = obj.get(name)
    if value is None:
        if required:
            raise InvalidEvent(f"missing field '{name}'")
        return None
    if isinstance(value, int) and not isinstance(value, bool) and name != "event_id":
        value = str(value)  # numeric ids are common upstream; keep them
    if not isinstance(value, str):
        raise InvalidEvent(f"field '{name}' must be a string, got {type(value).__name__}")
    if not value or len(value) > MAX_ID_CHARS or not value.isprintable():
        raise InvalidEvent(
            f"field '{name}' must be 1..{MAX_ID_CHARS} printable characters"
        )
    return value


def parse_ts(value: object, earliest: float = MIN_TS) -> float:
    """Event time as epoch seconds, from epoch seconds or ISO-8601, between
    ``earliest`` and 2100.

    >>> parse_ts("2014-04-01T00:00:00Z")
    1396310400.0
    >>> parse_ts(1396310400)
    1396310400.0
    >>> parse_ts("1997-01-01T00:00:00Z", earliest=HISTORY_MIN_TS)
    852076800.0
    """
    if isinstance(value, bool):
        raise InvalidEvent("field 'ts' must be epoch seconds or ISO-8601")
    if isinstance(value, (int, float)):
        ts = float(value)
    elif isinstance(value, str) and len(value) <= 40:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidEvent("field 'ts' is not ISO-8601") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=timezone.utc)
        ts = parsed.timestamp()
    else:
        raise InvalidEvent("field 'ts' must be epoch seconds or ISO-8601")
    if not (earliest <= ts <= MAX_TS):  # also false for NaN
        raise InvalidEvent(f"field 'ts' {ts!r} is outside {window(earliest)}")
    return ts


def window(earliest: float) -> str:
    """The years an event time may fall in, for error messages.

    >>> window(MIN_TS), window(HISTORY_MIN_TS)
    ('2000..2100', '1970..2100')
    """
    return f"{datetime.fromtimestamp(earliest, timezone.utc).year}..2100"


def _number(obj: dict, name: str) -> float | None:
    value = obj.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidEvent(f"field '{name}' must be a number")
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise InvalidEvent(f"field '{name}' must be a finite number >= 0")
    return value


def _attrs(obj: dict) -> dict[str, float]:
    value = obj.get("attrs")
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidEvent("field 'attrs' must be an object of numbers")
    if len(value) > MAX_ATTRS:
        raise InvalidEvent(f"field 'attrs' has more than {MAX_ATTRS} entries")
    out: dict[str, float] = {}
    for key, v in value.items():
        if len(key) > MAX_ID_CHARS:
            raise InvalidEvent("an 'attrs' key is too long")
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise InvalidEvent(f"attrs['{key[:40]}'] must be a finite number")
        out[key] = float(v)
    return out


def from_dict(obj: object, role: str | None = None, earliest: float = MIN_TS) -> Event:
    """Validate a decoded JSON value; ``role`` is the input topic's role
    (``views``, ``clicks``, ``purchases``) or None when read from a file."""
    if not isinstance(obj, dict):
        raise InvalidEvent(f"event must be a JSON object, got {type(obj).__name__}")
    event_type = obj.get("type")
    if event_type not in EVENT_TYPES:
        raise InvalidEvent(f"field 'type' must be one of {', '.join(EVENT_TYPES)}")
    if role is not None and event_type not in TYPES_BY_ROLE[role]:
        raise InvalidEvent(f"type '{event_type}' does not belong on topic '{role}'")
    event_id = _ident(obj, "event_id")
    user_id = _ident(obj, "user_id")
    # One object per item, whatever event named it: the ranking's table and
    # the models' dicts then match items by identity, not by comparing strings.
    item_id = sys.intern(_ident(obj, "item_id"))  # type: ignore[arg-type]
    if "ts" not in obj:
        raise InvalidEvent("missing field 'ts'")
    ts = parse_ts(obj["ts"], earliest)
    price = _number(obj, "price")
    if event_type == "purchase" and price is None:
        raise InvalidEvent("a purchase needs 'price' >= 0")
    quantity = obj.get("quantity", 1)
    if isinstance(quantity, bool) or not isinstance(quantity, int) or not 1 <= quantity <= 1_000_000:
        raise InvalidEvent("field 'quantity' must be an integer >= 1")
    return Event(
        event_id=event_id,  # type: ignore[arg-type]
        type=event_type,
        user_id=user_id,  # type: ignore[arg-type]
        item_id=item_id,  # type: ignore[arg-type]
        ts=ts,
        session_id=_ident(obj, "session_id", required=False),
        category=_ident(obj, "category", required=False),
        price=price,
        quantity=quantity,
        order_id=_ident(obj, "order_id", required=False),
        attrs=_attrs(obj),
    )


@dataclass(frozen=True, slots=True)
class Label:
    """A confirmed outcome (``labels`` topic): one purchase by ``event_id``, or
    every purchase of an ``order_id``; ``fraud`` true or false; ``ts`` when known.

    >>> decode_label(b'{"order_id": "o7", "fraud": true, "ts": 1700000000}')
    Label(fraud=True, ts=1700000000.0, event_id=None, order_id='o7')
    >>> decode_label(b'{"event_id": "e1", "fraud": "yes", "ts": 1700000000}')
    Traceback (most recent call last):
    ...
    stream.events.InvalidEvent: field 'fraud' must be true or false
    """

    fraud: bool
    ts: float
    event_id: str | None = None
    order_id: str | None = None


def label_from_dict(obj: object, earliest: float = MIN_TS) -> Label:
    if not isinstance(obj, dict):
        raise InvalidEvent(f"label must be a JSON object, got {type(obj).__name__}")
    event_id = _ident(obj, "event_id", required=False)
    order_id = _ident(obj, "order_id", required=False)
    if (event_id is None) == (order_id is None):
        raise InvalidEvent("a label needs exactly one of 'event_id' and 'order_id'")
    fraud = obj.get("fraud")
    if not isinstance(fraud, bool):
        raise InvalidEvent("field 'fraud' must be true or false")
    if "ts" not in obj:
        raise InvalidEvent("missing field 'ts'")
    return Label(fraud, parse_ts(obj["ts"], earliest), event_id, order_id)


def decode_label(raw: bytes | None, max_bytes: int = 65536) -> Label:
    """Bytes of one ``labels`` message to a :class:`Label`, or :class:`InvalidEvent`."""
    return label_from_dict(_json(raw, max_bytes))


def _json(raw: bytes | None, max_bytes: int) -> object:
    if raw is None:
        raise InvalidEvent("empty message (no value)")
    if len(raw) > max_bytes:
        raise InvalidEvent(f"message of {len(raw)} bytes exceeds the {max_bytes}-byte limit")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent(f"not valid JSON: {str(exc)[:80]}") from None


def decode(raw: bytes | None, role: str | None = None, max_bytes: int = 65536,
           earliest: float = MIN_TS) -> Event:
    """Bytes of one message to a valid :class:`Event`, or :class:`InvalidEvent`;
    ``earliest``: the first event time taken (a backtest's is 1970)."""
    return from_dict(_json(raw, max_bytes), role, earliest)
