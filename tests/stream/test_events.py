"""stream.events: the contract, and nothing but InvalidEvent out of decode."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.events import Event, InvalidEvent, decode

GOOD = {"event_id": "e1", "type": "purchase", "user_id": "u1", "item_id": "i1",
        "ts": 1700000000, "price": 9.5, "quantity": 2, "attrs": {"device_risk": 0.2}}


def test_a_good_event_round_trips() -> None:
    event = decode(orjson.dumps(GOOD), "purchases")
    assert event == Event("e1", "purchase", "u1", "i1", 1700000000.0, price=9.5, quantity=2,
                          attrs={"device_risk": 0.2})
    assert decode(event.to_json(), "purchases") == event


@pytest.mark.parametrize(
    "change, reason",
    [
        ({"event_id": None}, "missing field 'event_id'"),
        ({"user_id": ["u"]}, "field 'user_id' must be a string"),
        ({"ts": "yesterday"}, "field 'ts' is not ISO-8601"),
        ({"ts": 0}, "outside 2000..2100"),
        ({"ts": 1.7e12}, "outside 2000..2100"),
        ({"price": -1}, "field 'price' must be a finite number >= 0"),
        ({"price": None}, "a purchase needs 'price'"),
        ({"price": "9.5"}, "field 'price' must be a number"),
        ({"type": "refund"}, "field 'type' must be one of"),
        ({"quantity": 0}, "field 'quantity' must be an integer >= 1"),
        ({"attrs": {"risk": "high"}}, "must be a finite number"),
        ({"item_id": "x" * 300}, "1..256 printable characters"),
    ],
)
def test_contract_violations_say_why(change: dict, reason: str) -> None:
    event = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    with pytest.raises(InvalidEvent, match=reason.replace("(", r"\(").replace(".", r"\.")):
        decode(orjson.dumps(event), "purchases")


def test_type_must_fit_the_topic() -> None:
    with pytest.raises(InvalidEvent, match="does not belong on topic 'views'"):
        decode(orjson.dumps(GOOD), "views")
    click = {**GOOD, "type": "cart"}
    assert decode(orjson.dumps(click), "clicks").type == "cart"


@pytest.mark.parametrize(
    "raw, reason",
    [
        (b"not json", "not valid JSON"),
        (b"[1,2]", "must be a JSON object"),
        (b'{"a": NaN}', "not valid JSON"),
        (None, "empty message"),
        (b"[" * 5000 + b"]" * 5000, "not valid JSON"),
        (b'{"x": "' + b"a" * 70000 + b'"}', "exceeds the 65536-byte limit"),
    ],
)
def test_hostile_bytes_are_rejected_with_a_reason(raw: bytes | None, reason: str) -> None:
    with pytest.raises(InvalidEvent, match=reason):
        decode(raw, "clicks")


def test_iso_timestamps_are_accepted() -> None:
    event = decode(orjson.dumps({**GOOD, "ts": "2024-05-01T12:00:00+02:00"}), "purchases")
    assert event.ts == 1714557600.0


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise_anything_else(raw: bytes) -> None:
    try:
        decode(raw, "clicks")
    except InvalidEvent as exc:
        assert exc.reason


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.fixed_dictionaries({}, optional={k: json_values for k in GOOD} | {"session_id": json_values}))
def test_arbitrary_json_objects_never_raise_anything_else(obj: dict) -> None:
    try:
        event = decode(orjson.dumps(obj), "purchases")
    except InvalidEvent as exc:
        assert exc.reason
    else:
        assert event.type == "purchase" and event.price is not None and event.price >= 0
