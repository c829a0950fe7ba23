"""Hostile input, property-based: nothing raises, nothing is lost, bad input says why."""

from __future__ import annotations

import asyncio
import json
import math

import orjson
from hypothesis import HealthCheck, given, settings, strategies as st

from stream.events import (
    EVENT_TYPES,
    MAX_ID_CHARS,
    MAX_TS,
    MIN_TS,
    TYPES_BY_ROLE,
    Event,
    InvalidEvent,
    decode,
    decode_label,
)
from stream.outputs import Message
from stream.processor import Processor
from stream.state import MemoryState

ROLES = list(TYPES_BY_ROLE) + [None]
LIMIT = 65536

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=30,
)
# Anything a field could hold, including what JSON should never carry.
field_values = (
    st.none() | st.booleans() | st.integers() | st.floats() | st.text()
    | st.text(alphabet=st.characters(), min_size=MAX_ID_CHARS - 2, max_size=MAX_ID_CHARS + 2)
    | st.sampled_from([float("nan"), float("inf"), -float("inf"), 0, -1, 10**30, 1e300, "", " ",
                       "\u0000", "\u200b", "\ud7ff", "\U0001f600", "2024-03-04T00:00:00Z",
                       "9999-12-31T23:59:59Z", "1970-01-01T00:00:00Z", 253402300799, 1e-300])
    | json_values
)
BASE = {"event_id": "e1", "type": "view", "user_id": "u1", "item_id": "i1", "ts": 1_700_000_000.0}


def dumps(value: object) -> bytes:
    """JSON the way a careless producer writes it: huge integers, NaN and
    Infinity tokens, lone surrogates escaped."""
    return json.dumps(value).encode()


def check_event(event: Event, role: str | None) -> None:
    """What a decoded event promises, whatever the input was."""
    assert event.type in EVENT_TYPES
    if role is not None:
        assert event.type in TYPES_BY_ROLE[role]
    for name in ("event_id", "user_id", "item_id"):
        value = getattr(event, name)
        assert isinstance(value, str) and 0 < len(value) <= MAX_ID_CHARS and value.isprintable()
    assert MIN_TS <= event.ts <= MAX_TS
    assert event.price is None or (math.isfinite(event.price) and event.price >= 0)
    assert isinstance(event.quantity, int) and event.quantity >= 1
    assert all(math.isfinite(v) for v in event.attrs.values())
    if event.type == "purchase":
        assert event.price is not None


def decode_or_reason(raw: bytes, role: str | None) -> Event | str:
    try:
        event = decode(raw, role, LIMIT)
    except InvalidEvent as exc:
        assert exc.reason and len(exc.reason) < 400
        return exc.reason
    check_event(event, role)
    return event


@given(raw=st.binary(max_size=300), role=st.sampled_from(ROLES))
def test_arbitrary_bytes_never_raise_anything_but_a_reason(raw: bytes, role: str | None) -> None:
    decode_or_reason(raw, role)


@given(value=json_values, role=st.sampled_from(ROLES))
def test_arbitrary_json_never_raises_anything_but_a_reason(value: object, role: str | None) -> None:
    decode_or_reason(dumps(value), role)


@given(name=st.sampled_from(["event_id", "type", "user_id", "item_id", "ts", "session_id",
                              "category", "price", "quantity", "order_id", "attrs"]),
       value=field_values, role=st.sampled_from(ROLES))
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
def test_any_value_in_any_field_is_taken_or_refused_with_a_reason(name: str, value: object,
                                                                  role: str | None) -> None:
    decode_or_reason(dumps({**BASE, name: value}), role)


@given(depth=st.integers(1, 5000))
@settings(max_examples=30)
def test_deep_nesting_is_refused_not_a_crash(depth: int) -> None:
    raw = b'{"attrs":' + b"[" * depth + b"]" * depth + b"}"
    assert isinstance(decode_or_reason(raw, None), str)


def test_oversize_messages_are_refused_before_parsing() -> None:
    # Broken JSON past the limit: the reason is the size, so it was never parsed.
    raw = b"{" + b"x" * LIMIT
    assert decode_or_reason(raw, None) == f"message of {LIMIT + 1} bytes exceeds the {LIMIT}-byte limit"
    huge_id = orjson.dumps({**BASE, "user_id": "u" * 100_000})
    assert "exceeds" in decode_or_reason(huge_id, None)


def test_ids_timestamps_and_numbers_at_their_edges() -> None:
    cases = {
        "user_id": ("u" * MAX_ID_CHARS, "u" * (MAX_ID_CHARS + 1), "u\u0000", "\u2028"),
        "ts": (MIN_TS, MAX_TS, MIN_TS - 1, MAX_TS + 1, "0001-01-01T00:00:00Z"),
    }
    assert isinstance(decode_or_reason(orjson.dumps({**BASE, "user_id": cases["user_id"][0]}), None), Event)
    for bad in cases["user_id"][1:]:
        assert "printable" in decode_or_reason(orjson.dumps({**BASE, "user_id": bad}), None)
    assert isinstance(decode_or_reason(orjson.dumps({**BASE, "ts": MIN_TS}), None), Event)
    assert isinstance(decode_or_reason(orjson.dumps({**BASE, "ts": MAX_TS}), None), Event)
    for bad in cases["ts"][2:]:
        assert "ts" in decode_or_reason(orjson.dumps({**BASE, "ts": bad}), None)
    for raw in (b'{"event_id":"e","type":"view","user_id":"u","item_id":"i","ts":NaN}',
                b'{"event_id":"e","type":"view","user_id":"u","item_id":"i","ts":Infinity}',
                b'{"event_id":"e","type":"purchase","user_id":"u","item_id":"i","ts":1.7e9,"price":1e999}'):
        assert isinstance(decode_or_reason(raw, None), str)


@given(value=json_values | st.binary(max_size=100).map(lambda b: b))
def test_labels_never_raise_anything_but_a_reason(value: object) -> None:
    raw = value if isinstance(value, bytes) else dumps(value)
    try:
        decode_label(raw)
    except InvalidEvent as exc:
        assert exc.reason


messages = st.lists(
    st.one_of(
        st.builds(lambda i, t: ("good", i, t), st.integers(0, 30), st.sampled_from(EVENT_TYPES)),
        st.builds(lambda raw: ("bytes", raw), st.binary(max_size=60)),
        st.builds(lambda value: ("json", value), json_values),
    ),
    max_size=60,
)


@given(batch=messages, size=st.integers(1, 20))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_in_equals_processed_plus_dead_lettered_plus_duplicates(batch: list, size: int) -> None:
    """Whatever arrives, every message is accounted for and a repeated event id
    is applied once."""
    topic_of = {"view": "views", "click": "clicks", "cart": "clicks", "purchase": "purchases"}
    out = []
    for offset, item in enumerate(batch):
        if item[0] == "good":
            _, i, kind = item
            event = {**BASE, "event_id": f"e{i}", "type": kind, "user_id": f"u{i % 3}",
                     "ts": 1_700_000_000.0 + i, "price": 5.0}
            out.append(Message(orjson.dumps(event), topic_of[kind], 0, offset))
        elif item[0] == "bytes":
            out.append(Message(item[1], "clicks", 0, offset))
        else:
            out.append(Message(dumps(item[1]), "views", 0, offset))
    processor = Processor(MemoryState())

    async def go() -> list:
        return [await processor.handle(out[i : i + size]) for i in range(0, len(out), size)]

    results = asyncio.run(go())
    assert sum(r.received for r in results) == len(out)
    dead = [d for r in results for d in r.dead_letters]
    assert all(d.reason for d in dead)
    applied = sum(r.processed for r in results)
    good_ids = {orjson.loads(m.value)["event_id"] for m in out
                if m.value and _is_good(m)}
    assert applied == len(good_ids)  # each distinct good event once, repeats are duplicates
    counted = sum(p.events for p in processor.state.profiles.values())  # type: ignore[attr-defined]
    assert counted == applied


def _is_good(message: Message) -> bool:
    try:
        decode(message.value, {"views": "views", "clicks": "clicks", "purchases": "purchases"}[message.topic])
    except InvalidEvent:
        return False
    return True
