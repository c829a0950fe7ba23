"""Recorded events: JSONL files of contract events and yoochoose click TSVs.

Two formats, told apart by the first line (then by the file extension):

- **JSONL**: one contract event per line, each decoded with
  ``stream.events.decode(line, role=None)``. Blank lines are skipped; a line
  that breaks the contract is never dropped silently: :func:`read_records`
  and :func:`read_lines` hand it over with its line number and bytes, and
  :func:`read_events` passes it to ``on_error`` or raises.
- **yoochoose TSV**: header ``SessionId<TAB>ItemId<TAB>Time`` (any column
  order). A session stands for a user, so ``user_id = session_id =
  "s<SessionId>"``, ``item_id = str(ItemId)``, ``type = "click"``, ``ts =
  Time`` and ``event_id = "<file stem>:<line number>"``.

Line numbers are 1-based physical lines (a TSV's header is line 1). Files
are read whole into memory (fine for the ~10^5-line files this serves).
Anything that makes a whole file unusable (missing, unreadable, empty,
unknown format) raises :class:`SourceError` with a one-line message, at call
time rather than on first iteration.
"""

from __future__ import annotations

import gzip
import heapq
import os
import math
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from stream.config import Topics
from stream.events import HISTORY_MIN_TS, MAX_TS, Event, InvalidEvent, decode, window
from stream.gc_pause import gc_paused
from backtest.online_retail import OrderLineError, OrderLines, is_order_lines

JSONL = "jsonl"
YOOCHOOSE = "yoochoose"
ORDER_LINES = "order-lines"  # the UCI online-retail CSV (backtest/online_retail.py)
# Lines of order-lines files that are not sales (cancellations, fees, adjustments), by file and reason.
ORDER_LINE_SKIPS: dict[str, dict[str, int]] = {}
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
YOOCHOOSE_COLUMNS = ("SessionId", "ItemId", "Time")


class SourceError(ValueError):
    """A file that cannot be read as events at all."""


@dataclass(slots=True)
class Record:
    """One line of a source file: a valid event, or the bytes and the reason it is not."""

    source: int  # index of the file in the list given to the reader
    line_no: int
    raw: bytes
    event: Event | None
    error: str | None = None
    converted: bool = False  # the event was built from another format (TSV)

    @property
    def ok(self) -> bool:
        return self.event is not None

    def message(self) -> bytes:
        """The bytes to publish: the original line for JSONL, the event's JSON otherwise."""
        if self.event is not None and self.converted:
            return self.event.to_json()
        return self.raw


class Message(NamedTuple):
    """A message ready to publish; ``bad`` names what is wrong with it (None = good)."""

    topic: str
    key: bytes | None
    value: bytes
    bad: str | None = None


ErrorHandler = Callable[[Record], None]


def _read_bytes(path: Path) -> bytes:
    try:
        data = Path(path).read_bytes()
        if data[:2] == b"\x1f\x8b":  # gzip
            data = gzip.decompress(data)
    except (OSError, EOFError) as exc:
        raise SourceError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not data.strip():
        raise SourceError(f"{path} is empty")
    return data


def _first_line(data: bytes) -> bytes:
    for line in data.splitlines():
        if line.strip():
            return line.strip()
    return b""


def detect_format(path: Path, data: bytes | None = None) -> str:
    """``"jsonl"`` or ``"yoochoose"``, from the first non-blank line, else the extension."""
    path = Path(path)
    data = _read_bytes(path) if data is None else data
    first = _first_line(data)
    if first.startswith(b"{"):
        return JSONL
    if is_order_lines(first):
        return ORDER_LINES
    columns = first.decode("utf-8", "replace").split("\t")
    if set(YOOCHOOSE_COLUMNS) <= set(columns):
        return YOOCHOOSE
    if path.suffix.lower() in JSONL_SUFFIXES:
        return JSONL
    raise SourceError(
        f"{path}: unknown format (expected JSONL events or a "
        f"'SessionId<TAB>ItemId<TAB>Time' TSV), first line starts {first[:40]!r}"
    )


def read_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """``(line_no, raw_bytes)`` of every non-blank line, without decoding (for a
    caller that decodes and dead-letters itself)."""
    data = _read_bytes(path)
    return _lines(data)


def _lines(data: bytes) -> Iterator[tuple[int, bytes]]:
    for line_no, line in enumerate(data.splitlines(), start=1):
        if line.strip():
            yield line_no, line


def _jsonl_records(data: bytes, source: int) -> Iterator[Record]:
    for line_no, line in _lines(data):
        try:
            yield Record(source, line_no, line, decode(line, None, earliest=HISTORY_MIN_TS))
        except InvalidEvent as exc:
            yield Record(source, line_no, line, None, exc.reason)


def _yoochoose_records(data: bytes, path: Path, source: int) -> Iterator[Record]:
    lines = data.splitlines()
    header = lines[0].decode("utf-8", "replace").strip().split("\t")
    s_col, i_col, t_col = (header.index(name) for name in YOOCHOOSE_COLUMNS)
    width = len(header)
    stem = path.stem
    # Built directly, not through decode(): this path must stay fast (70k rows << 1 s).
    for line_no, line in enumerate(lines[1:], start=2):
        cells = line.split(b"\t")
        if len(cells) != width:
            if line.strip():
                yield Record(source, line_no, line, None, f"expected {width} tab-separated columns")
            continue
        try:
            ts = float(cells[t_col])
        except ValueError:
            yield Record(source, line_no, line, None, "column 'Time' is not a number")
            continue
        session = cells[s_col].decode("utf-8", "replace").strip()
        item = cells[i_col].decode("utf-8", "replace").strip()
        if not session or not item:
            yield Record(source, line_no, line, None, "empty 'SessionId' or 'ItemId'")
            continue
        if not HISTORY_MIN_TS <= ts <= MAX_TS:  # also false for NaN
            yield Record(source, line_no, line, None, f"column 'Time' {ts!r} is outside {window(HISTORY_MIN_TS)}")
            continue
        user = f"s{session}"
        event = Event(f"{stem}:{line_no}", "click", user, sys.intern(item), ts, session_id=user)
        yield Record(source, line_no, line, event, converted=True)


def _order_line_records(data: bytes, path: Path, source: int) -> Iterator[Record]:
    lines = OrderLines(data.splitlines(), os.environ.get("SHOPSTREAM_TIMEZONE", "UTC"), path.name.split(".")[0])
    try:
        events = lines.events()
    except OrderLineError as exc:
        raise SourceError(f"{path}: {exc}") from None
    ORDER_LINE_SKIPS[str(path)] = lines.skipped
    return (Record(source, int(e.event_id.rsplit(":", 1)[1]), b"", e, converted=True) for e in events)


def read_records(path: Path, source: int = 0) -> Iterator[Record]:
    """Every line of a JSONL or yoochoose file as a :class:`Record`, in file order."""
    path = Path(path)
    data = _read_bytes(path)
    kind = detect_format(path, data)
    if kind == JSONL:
        return _jsonl_records(data, source)
    if kind == ORDER_LINES:
        return _order_line_records(data, path, source)
    if len(data.splitlines()) < 2:
        raise SourceError(f"{path} has a header but no rows")
    return _yoochoose_records(data, path, source)


def _raiser(paths: list[Path]) -> ErrorHandler:
    def raise_error(record: Record) -> None:
        raise SourceError(f"{paths[record.source]}:{record.line_no}: {record.error}")

    return raise_error


def _events(records: Iterable[Record], handle: ErrorHandler) -> Iterator[Event]:
    for record in records:
        if record.event is not None:
            yield record.event
        else:
            handle(record)


def read_events(path: Path, on_error: ErrorHandler | None = None) -> Iterator[Event]:
    """The valid events of one file, in file order.

    A bad line goes to ``on_error(record)``; without a handler it raises
    :class:`SourceError` naming the line, so nothing is lost unnoticed.
    """
    return _events(read_records(path), on_error or _raiser([Path(path)]))


def _time_sorted(records: Iterable[Record]) -> list[tuple[float, Record]]:
    """Records keyed by event time; a bad line keeps the time of the good line
    before it, so it stays where it was in the file."""
    keyed: list[tuple[float, Record]] = []
    last = -math.inf
    for record in records:
        if record.event is not None:
            last = record.event.ts
        keyed.append((last, record))
    keyed.sort(key=lambda pair: pair[0])  # stable: ties keep line order
    return keyed


def merge_records(paths: Iterable[Path]) -> Iterator[Record]:
    """The records of several files as one stream in event-time order.

    Each file is loaded and sorted in memory (yoochoose TSVs are sorted by
    session, not time); ties keep file order, then line order.
    """
    with gc_paused():
        per_file = [_time_sorted(read_records(Path(p), i)) for i, p in enumerate(paths)]
    return (record for _, record in heapq.merge(*per_file, key=lambda pair: pair[0]))


def merge_in_time_order(
    paths: Iterable[Path], on_error: ErrorHandler | None = None
) -> Iterator[tuple[Event, int]]:
    """``(event, index of its file)`` for every valid event of several files, by event time.

    Bad lines go to ``on_error`` or raise :class:`SourceError`, as in :func:`read_events`.
    """
    paths = [Path(p) for p in paths]
    return _tagged_events(merge_records(paths), on_error or _raiser(paths))


def _tagged_events(records: Iterable[Record], handle: ErrorHandler) -> Iterator[tuple[Event, int]]:
    for record in records:
        if record.event is not None:
            yield record.event, record.source
        else:
            handle(record)


def to_messages(records: Iterable[Record], topics: Topics) -> Iterator[Message]:
    """Records as messages for the input topics: a valid event to the topic of its
    type keyed by user, a bad line unchanged to the clicks topic (where the worker
    dead-letters it)."""
    for record in records:
        event = record.event
        if event is None:
            yield Message(topics.clicks, None, record.raw, "undecodable")
        else:
            yield Message(
                topics.for_event_type(event.type), event.user_id.encode(), record.message()
            )
