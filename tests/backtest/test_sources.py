"""Reading recorded events: JSONL and yoochoose TSV, merging by event time."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest

from stream.config import Topics
from stream.events import Event
from backtest.sources import (
    SourceError,
    detect_format,
    merge_in_time_order,
    merge_records,
    read_events,
    read_lines,
    read_records,
    to_messages,
)
from shop.synthetic import Shop

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "yoochoose-100k"


def _event(event_id: str, ts: float, type: str = "click", user: str = "u1") -> bytes:
    return orjson.dumps({"event_id": event_id, "type": type, "user_id": user, "item_id": "i1", "ts": ts})


def _write(path: Path, *lines: bytes | str) -> Path:
    path.write_bytes(b"\n".join(x.encode() if isinstance(x, str) else x for x in lines) + b"\n")
    return path


def test_jsonl_events_round_trip(tmp_path):
    events = list(Shop(seed=1, users=20).events(500))
    path = _write(tmp_path / "shop.jsonl", *(e.to_json() for e in events))
    assert list(read_events(path)) == events


def test_jsonl_bad_lines_are_handed_over_not_lost(tmp_path):
    path = _write(tmp_path / "mixed.jsonl", _event("a", 1.5e9), b"{not json", b"", _event("b", 1.6e9), b"[1]")
    assert list(read_lines(path)) == [
        (1, _event("a", 1.5e9)), (2, b"{not json"), (4, _event("b", 1.6e9)), (5, b"[1]")
    ]
    bad = []
    assert [e.event_id for e in read_events(path, on_error=bad.append)] == ["a", "b"]
    assert [(r.line_no, r.raw) for r in bad] == [(2, b"{not json"), (5, b"[1]")]
    assert all(r.error and r.event is None for r in bad)
    with pytest.raises(SourceError, match=r"mixed.jsonl:2: not valid JSON"):
        list(read_events(path))


def test_yoochoose_tsv_rows_become_click_events(tmp_path):
    path = _write(
        tmp_path / "day.tsv", "SessionId\tItemId\tTime", "7\t214\t1396860669.5", "7\t215\t1396860700"
    )
    assert detect_format(path) == "yoochoose"
    assert list(read_events(path)) == [
        Event("day:2", "click", "s7", "214", 1396860669.5, session_id="s7"),
        Event("day:3", "click", "s7", "215", 1396860700.0, session_id="s7"),
    ]


def test_tsv_columns_in_any_order_and_bad_rows_reported(tmp_path):
    path = _write(
        tmp_path / "x.tsv", "Time\tSessionId\tItemId",
        "1396860669\t3\t9", "soon\t3\t9", "-1\t3\t9", "1396860669",
    )
    records = list(read_records(path))
    assert records[0].event == Event("x:2", "click", "s3", "9", 1396860669.0, session_id="s3")
    assert [(r.line_no, r.error) for r in records[1:]] == [
        (3, "column 'Time' is not a number"),
        (4, "column 'Time' -1.0 is outside 1970..2100"),
        (5, "expected 3 tab-separated columns"),
    ]


def test_jsonl_recognised_by_extension_when_first_line_is_garbage(tmp_path):
    path = _write(tmp_path / "broken.jsonl", b"garbage", _event("a", 1.5e9))
    assert detect_format(path) == "jsonl"
    assert [r.ok for r in read_records(path)] == [False, True]


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("missing.jsonl", None, "cannot read"),
        ("empty.jsonl", b"", "is empty"),
        ("blank.tsv", b"\n  \n", "is empty"),
        ("notes.txt", b"dear diary\n", "unknown format"),
        ("header.tsv", b"SessionId\tItemId\tTime\n", "no rows"),
    ],
)
def test_unusable_files_raise_one_line_source_errors(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(SourceError, match=message) as error:
        read_events(path)  # raises on call, not on first iteration
    assert "\n" not in str(error.value)
    with pytest.raises(SourceError, match=message):
        merge_in_time_order([path])


def test_a_directory_is_not_a_source(tmp_path):
    with pytest.raises(SourceError, match="cannot read"):
        read_lines(tmp_path)


def test_merge_orders_by_time_ties_by_file_then_line(tmp_path):
    a = _write(tmp_path / "a.jsonl", _event("a1", 1.5e9 + 2), _event("a2", 1.5e9), _event("a3", 1.5e9 + 5))
    b = _write(
        tmp_path / "b.tsv", "SessionId\tItemId\tTime",
        "9\t1\t1500000005", "8\t1\t1500000002", "8\t2\t1500000001",
    )
    merged = [(e.event_id, i) for e, i in merge_in_time_order([a, b])]
    assert merged == [
        ("a2", 0), ("b:4", 1), ("a1", 0), ("b:3", 1), ("a3", 0), ("b:2", 1)
    ]


def test_bad_lines_keep_their_place_in_the_merge(tmp_path):
    a = _write(tmp_path / "a.jsonl", _event("a1", 1.5e9 + 1), b"oops", _event("a2", 1.5e9 + 9))
    b = _write(tmp_path / "b.jsonl", _event("b1", 1.5e9 + 5))
    assert [r.event.event_id if r.ok else r.raw for r in merge_records([a, b])] == ["a1", b"oops", "b1", "a2"]
    bad = []
    assert [e.event_id for e, _ in merge_in_time_order([a, b], on_error=bad.append)] == ["a1", "b1", "a2"]
    assert [(r.source, r.line_no) for r in bad] == [(0, 2)]


def test_to_messages_sends_original_bytes_and_bad_lines_to_clicks(tmp_path):
    view = b'{"type":"view","event_id":"v","user_id":"u9","item_id":"i","ts":1500000000}'
    a = _write(tmp_path / "a.jsonl", view, b"nope")
    b = _write(tmp_path / "b.tsv", "SessionId\tItemId\tTime", "4\t2\t1500000001")
    topics = Topics(clicks="c", views="v")
    out = list(to_messages(merge_records([a, b]), topics))
    assert [(m.topic, m.key, m.bad) for m in out] == [
        ("v", b"u9", None), ("c", None, "undecodable"), ("c", b"s4", None)
    ]
    assert out[0].value == view and out[1].value == b"nope"
    assert orjson.loads(out[2].value)["event_id"] == "b:2"


@pytest.mark.skipif(not (DATA / "test.tsv").exists(), reason=f"yoochoose sample not found at {DATA}")
def test_real_yoochoose_test_split():
    events = list(read_events(DATA / "test.tsv"))
    assert len(events) == 13_568
    assert len({e.session_id for e in events}) == 3_416
    merged = [e for e, _ in merge_in_time_order([DATA / "test.tsv"])]
    assert sorted(e.event_id for e in merged) == sorted(e.event_id for e in events)
    assert all(a.ts <= b.ts for a, b in zip(merged, merged[1:]))


@pytest.mark.skipif(not (DATA / "train_full.tsv").exists(), reason=f"yoochoose sample not found at {DATA}")
def test_real_yoochoose_train_split_loads_fast():
    started = time.perf_counter()
    merged = list(merge_in_time_order([DATA / "train_full.tsv"]))
    assert len(merged) == 70_278
    assert time.perf_counter() - started < 3.0  # typically ~0.3 s; generous for busy CI machines


def test_a_backtest_takes_history_from_1970_on_and_live_events_from_2000(tmp_path):
    """Replaying a 1990s purchase log must work; a live message of that time
    is still refused, and a time in milliseconds is refused by both."""
    from stream.events import InvalidEvent, decode

    old = _event("a", 852076800.0, type="purchase")  # 1997-01-01
    old = old[:-1] + b', "price": 9.5}'
    path = _write(tmp_path / "1997.jsonl", old, _event("b", 1.7e12))
    records = list(read_records(path))
    assert records[0].ok and records[0].event.ts == 852076800.0
    assert records[1].error == "field 'ts' 1700000000000.0 is outside 1970..2100"
    with pytest.raises(InvalidEvent, match="outside 2000..2100"):
        decode(old)
