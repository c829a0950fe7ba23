"""The UCI online-retail order lines (``online_retail.csv.gz``) as purchase events.

One purchase event per order line that sold a product, as the data's own
REFERENCE.md counts demand: ``StockCode`` starting with a digit (the others
are postage, fees, manual adjustments, bank charges), ``InvoiceNo`` not
starting with ``C`` (a ``C`` invoice is a cancellation, with a negative
``Quantity``), ``Quantity`` > 0 and ``UnitPrice`` > 0 (the rest are stock
adjustments and write-offs). Every other line is skipped and counted by
reason, never turned into an event.

``InvoiceDate`` is the shop's local time as written, without a zone: it is
read in ``timezone`` (``SHOPSTREAM_TIMEZONE``, default UTC), so the day of an
event in that zone is the day written in the file.

>>> rows = [b"InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country",
...         b"536365,85123A,WHITE HANGING HEART,6,2010-12-01T08:26:00,2.55,17850.0,United Kingdom",
...         b"C536379,85123A,WHITE HANGING HEART,-1,2010-12-01T09:41:00,2.55,17850.0,United Kingdom",
...         b"536370,POST,POSTAGE,3,2010-12-01T08:45:00,18.0,12583.0,France",
...         b'536371,22139,"RETROSPOT, TEA SET",2,2010-12-01T09:00:00,4.25,,United Kingdom']
>>> sale = OrderLines(rows)
>>> [(e.item_id, e.quantity, e.user_id, e.order_id) for e in sale.events()]
[('85123A', 6, 'c17850', '536365'), ('22139', 2, 'guest:536371', '536371')]
>>> sale.skipped
{'cancellation': 1, 'not a product': 1}
"""

from __future__ import annotations

import csv
import gzip
import io
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from stream.events import Event

HEADER = ("InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice",
          "CustomerID", "Country")


class OrderLineError(ValueError):
    """A file that is not the online-retail order lines (one-line message)."""


def is_order_lines(first_line: bytes) -> bool:
    return first_line.decode("utf-8", "replace").strip().split(",")[:2] == ["InvoiceNo", "StockCode"]


class OrderLines:
    """The events of an order-lines file; ``skipped`` counts the lines that are
    not sales, by reason, once :meth:`events` has run."""

    def __init__(self, lines: Iterable[bytes], timezone: str = "UTC", stem: str = "online_retail") -> None:
        self.lines = lines
        self.zone = ZoneInfo(timezone)
        self.stem = stem
        self.skipped: dict[str, int] = {}

    @classmethod
    def open(cls, path: Path, timezone: str = "UTC") -> "OrderLines":
        try:
            data = Path(path).read_bytes()
            if data[:2] == b"\x1f\x8b":
                data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise OrderLineError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
        return cls(data.splitlines(), timezone, Path(path).name.split(".")[0])

    def events(self) -> list[Event]:
        skipped: Counter[str] = Counter()
        out: list[Event] = []
        rows = csv.reader(io.TextIOWrapper(io.BytesIO(b"\n".join(self.lines)), "utf-8", errors="replace"))
        header = next(rows, None)
        if header is None or tuple(header[:len(HEADER)]) != HEADER:
            raise OrderLineError(f"expected the header {','.join(HEADER)}, got {header!r}")
        stamps: dict[str, float] = {}  # one invoice has one time: parse it once
        for line_no, row in enumerate(rows, start=2):
            if len(row) < len(HEADER):
                skipped["short line"] += 1
                continue
            invoice, code, _, quantity, when, price, customer, _country = row[:8]
            if invoice.startswith("C"):
                skipped["cancellation"] += 1
                continue
            if not code[:1].isdigit():
                skipped["not a product"] += 1
                continue
            try:
                units, unit_price = int(quantity), float(price)
            except ValueError:
                skipped["quantity or price not a number"] += 1
                continue
            if units <= 0 or unit_price <= 0 or units > 1_000_000:
                skipped["adjustment (quantity or price not > 0)"] += 1
                continue
            ts = stamps.get(when)
            if ts is None:
                try:
                    ts = datetime.fromisoformat(when).replace(tzinfo=self.zone).timestamp()
                except ValueError:
                    skipped["bad InvoiceDate"] += 1
                    continue
                stamps[when] = ts
            user = f"c{customer.split('.')[0]}" if customer else f"guest:{invoice}"
            out.append(Event(f"{self.stem}:{line_no}", "purchase", sys.intern(user), sys.intern(code), ts,
                             price=unit_price, quantity=units, order_id=invoice))
        self.skipped = dict(skipped)
        return out


def read(path: Path, timezone: str = "UTC") -> tuple[list[Event], dict[str, int]]:
    """The sale events of ``path`` and the lines skipped, by reason."""
    lines = OrderLines.open(path, timezone)
    events = lines.events()
    return events, lines.skipped


def iter_days(events: Iterable[Event], timezone: str = "UTC") -> Iterator[tuple[str, str, int]]:
    """``(day, item, units)`` of each event, the day in ``timezone``."""
    zone = ZoneInfo(timezone)
    for e in events:
        yield datetime.fromtimestamp(e.ts, zone).date().isoformat(), e.item_id, e.quantity
