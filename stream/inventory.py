"""The contract of the optional ``inventory`` topic: an item's units on hand at a time.

One JSON object per message (or JSONL line), keyed by ``item_id``::

    {"item_id": "85123A", "units": 120, "ts": 1700000000}

``units`` is a whole number >= 0 (what is on the shelf, not an increment);
``ts`` epoch seconds or ISO-8601, as for events. Like :mod:`stream.events`,
decoding raises nothing but :class:`~stream.events.InvalidEvent`, whose
reason goes to the dead-letter topic.

>>> decode_reading(b'{"item_id": "i9", "units": 12, "ts": 1700000000}')
StockReading(item_id='i9', units=12, ts=1700000000.0)
>>> decode_reading(b'{"item_id": "i9", "units": -1, "ts": 1700000000}')
Traceback (most recent call last):
...
stream.events.InvalidEvent: field 'units' must be a whole number of units >= 0
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from stream.events import MIN_TS, InvalidEvent, _ident, _json, parse_ts

INVENTORY = "inventory"
MAX_UNITS = 10**12


@dataclass(frozen=True, slots=True)
class StockReading:
    item_id: str
    units: int
    ts: float

    @property
    def event_id(self) -> str:
        return f"stock:{self.item_id}:{self.ts!r}"


def reading_from_dict(obj: object, earliest: float = MIN_TS) -> StockReading:
    if not isinstance(obj, dict):
        raise InvalidEvent(f"stock reading must be a JSON object, got {type(obj).__name__}")
    item_id = sys.intern(_ident(obj, "item_id"))  # type: ignore[arg-type]
    units = obj.get("units")
    if units is None:
        raise InvalidEvent("missing field 'units'")
    if isinstance(units, float) and units.is_integer():
        units = int(units)
    if isinstance(units, bool) or not isinstance(units, int) or not 0 <= units <= MAX_UNITS:
        raise InvalidEvent("field 'units' must be a whole number of units >= 0")
    if "ts" not in obj:
        raise InvalidEvent("missing field 'ts'")
    return StockReading(item_id, units, parse_ts(obj["ts"], earliest))


def decode_reading(raw: bytes | None, max_bytes: int = 65536, earliest: float = MIN_TS) -> StockReading:
    """Bytes of one ``inventory`` message to a :class:`StockReading`, or :class:`InvalidEvent`."""
    return reading_from_dict(_json(raw, max_bytes), earliest)
