"""The compiled counting of purchases and closing of days (stream/demand_sales.pyx)
gives the Python reference's book: the same alerts, forecasts, state and journal."""

from __future__ import annotations

from dataclasses import asdict, fields

import numpy as np
import pytest

from models.demand import root_units
from stream.demand import COMPILED, DemandBook, Sales, SalesPython, SeriesCounts, SeriesCountsPython
from stream.events import Event

DAY = 86400.0
START = 1_704_067_200.0  # 2024-01-01 00:00 UTC, a Monday

# DemandBook's own methods over the reference base instead of the compiled one.
ReferenceBook = type("ReferenceBook", (SalesPython,),
                     {k: v for k, v in vars(DemandBook).items() if k not in ("__dict__", "__weakref__")})


def test_the_compiled_sales_are_built() -> None:
    assert COMPILED and DemandBook.__mro__[1] is Sales, \
        "stream/demand_sales.pyx is not built: run `bash scripts/bootstrap.sh` (needs a C compiler)"


def test_a_series_has_the_references_fields_and_defaults() -> None:
    compiled, reference = SeriesCounts(), SeriesCountsPython()
    for name in (f.name for f in fields(SeriesCountsPython)):
        mine, theirs = getattr(compiled, name), getattr(reference, name)
        if name == "forecaster":
            mine, theirs = mine.to_list(), theirs.to_list()
        assert mine == theirs and type(mine) is type(theirs), name


def shop(seed: int, days: int = 60) -> list[tuple[str, Event]]:
    """Purchases of a few items, some in categories, wholesale quantities, bursts
    (surges), purchases arriving after their day closed, stock readings, and
    views, clicks and carts (some late too); in the order they arrive."""
    rng = np.random.default_rng(seed)
    out: list[tuple[str, Event]] = []
    n = 0
    for d in range(days):
        for k in range(int(rng.integers(5, 60))):
            item = f"i{int(rng.zipf(1.6)) % 40}"
            ts = START + d * DAY + float(rng.uniform(0, DAY))
            if rng.random() < 0.03:
                ts -= 3 * DAY  # late: its day has closed
            burst = d % 17 == 16 and item == "i1"
            quantity = int(rng.choice([1, 1, 2, 3, 12, 1500])) * (30 if burst else 1)
            category = None if rng.random() < 0.3 else f"c{int(item[1:]) % 4}"
            out.append(("buy", Event(f"e{n}", "purchase", f"u{n % 23}", item, ts, category=category,
                                     quantity=quantity)))
            kind = str(rng.choice(["view", "view", "click", "cart"]))
            out.append(("look", Event(f"v{n}", kind, f"u{n % 23}", item, ts - 60.0, category=category)))
            n += 1
        if d % 9 == 4:
            out.append(("stock", Event(f"s{d}", "stock", "", "i2", START + d * DAY + 3600.0, quantity=40)))
    return out


def book_of(kind: type, events: list[tuple[str, Event]], journal: bool) -> list:
    book = kind(surge_min_units=20)
    if journal:
        book.journaled()
    seen: list = []
    for i in range(0, len(events), 50):
        batch = events[i:i + 50]
        for what, e in batch:
            if what == "buy":
                seen += [a.to_dict() for a in book.add(e)]
            elif what == "look":
                book.add_signal(e)
            else:
                book.read_stock(e.item_id, e.quantity, e.ts, e.event_id)
        seen += [a.to_dict() for a in book.take_alerts()]
        seen += [f.to_dict() for f in book.close(max(e.ts for _, e in batch), forecast=True)]
    state = {k: (s.to_list(), s.stock, s.sold, s.stock_ts, s.stock_alerted) for k, s in book.series.items()}
    return [seen, state, book.rhythm.to_list(), book.totals, book.pending, book.closed_through, book.late_units,
            book.signals, asdict(book.journal) if journal else None]


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("journal", [False, True])
def test_a_compiled_book_is_the_references(seed: int, journal: bool) -> None:
    events = shop(seed)
    compiled, reference = book_of(DemandBook, events, journal), book_of(ReferenceBook, events, journal)
    assert compiled == reference
    seen = compiled[0]
    assert any(x.get("kind") == "demand_surge" for x in seen)  # the bursts surged
    assert compiled[6] > 0  # some came late
    assert any(key.startswith("category:") for key in compiled[1])
    assert any(f["views"] and f["carts"] for f in seen if "forecast_id" in f)  # signals published
    if journal:
        assert any(counts for counts in compiled[8]["signals"].values())


def test_totals_and_series_keys_read_between_purchases_are_the_references() -> None:
    """The compiled book sums a day's root units in C and keeps one key string per
    item and per category: read after every purchase, across days open at once,
    its totals and series are the reference's, an item and a category of the same
    name two series."""
    compiled, reference = DemandBook(), ReferenceBook()
    days = [0, 0, 1, 0, 2, 2, 1, 3]
    for n, d in enumerate(days):
        e = Event(f"e{n}", "purchase", "u", "kitchen", START + d * DAY + n, category="kitchen", quantity=n + 1)
        compiled.add(e)
        reference.add(e)
        assert compiled.totals == reference.totals
        assert sorted(compiled.series) == sorted(reference.series) == ["category:kitchen", "item:kitchen"]
    assert sum(compiled.totals.values()) == sum(root_units(n + 1) for n in range(len(days)))
    compiled.totals = {}
    compiled.add(Event("e9", "purchase", "u", "mug", START, quantity=4))
    assert compiled.totals == {int(START // DAY): root_units(4)}  # nothing of before the reset
