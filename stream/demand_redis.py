"""Demand state in Redis: read with a batch's load, written by its one commit script.

Keys (under ``SHOPSTREAM_PREFIX``):

- ``demand:{series}`` (string, JSON): the series' forecaster and the last day
  it surged, rewritten only when it closes days or surges;
- ``demand-days:{series}`` (hash): ``{day}`` -> units so far, ``l{day}`` ->
  order lines so far and ``t{day}`` -> time of the first sale, for the
  series' open days (``HINCRBY``: workers' increments commute); for an item
  with a stock reading (``inventory`` topic) also ``stock`` (units on hand at
  ``stock_ts``), ``sold`` (units bought after it, ``HINCRBY``) and
  ``stock_alerted`` (the reading a ``stock_risk`` alert was raised for);
- ``demand-pending`` (sorted set): series -> its earliest open day, to find
  the series a day close must learn;
- ``demand-shop`` (string, JSON): the weekly rhythm, the last day closed and
  what the rhythm learns (``"root units"``; a document without it learnt
  units: the book rescales it at its next close, ``DemandBook.rhythm_in_units``);
- ``demand-signals:{day}`` (hash): ``v:{series}`` and ``c:{series}``, the views
  and carts of the day; dropped by the commit of the next day's close (no
  close reads it again), else expiring ``SIGNAL_TTL_DAYS`` after its last write;
- ``demand-totals`` (hash): the shop's root units (``models.demand.root_units`` of each
  purchase, summed) per open day, and ``late`` (units that came after their day closed).

A document is rewritten only if it is still as the batch read it (compared
in the commit script, as offsets are): otherwise nothing is written and the
batch runs again.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from models.demand import DemandForecaster, WeeklyRhythm
from stream.demand import FIRST_SALE, LINES, SIGNAL_TTL_DAYS, DemandBook, Series
from stream.events import Event

RHYTHM_LEARNS = "root units"  # in the shop document, beside the rhythm
CLOSE_PER_BATCH = 2000  # series closed per batch at most (the rest learn the day in the next batch)
TRENDING_READ = 20000  # series with open days that /trending reads at most


class DemandKeys:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.shop = f"{prefix}demand-shop"
        self.totals = f"{prefix}demand-totals"
        self.pending = f"{prefix}demand-pending"

    def series(self, key: str) -> str:
        return f"{self.prefix}demand:{key}"

    def days(self, key: str) -> str:
        return f"{self.prefix}demand-days:{key}"

    def signals(self, day: int) -> str:
        return f"{self.prefix}demand-signals:{day}"


def batch_series(events: Sequence[Event], stock_items: Sequence[str] = ()) -> list[str]:
    """The series a batch's purchases add to, and those of its stock readings."""
    out: dict[str, None] = {}
    for item in stock_items:
        out[f"item:{item}"] = None
    for e in events:
        if e.type == "purchase":
            out[f"item:{e.item_id}"] = None
            if e.category:
                out[f"category:{e.category}"] = None
    return list(out)


def queue_head(pipe, keys: DemandKeys, today: int | None) -> int:  # type: ignore[no-untyped-def]
    """The shop's state and the series due for a day close; how many replies."""
    pipe.get(keys.shop)
    pipe.hgetall(keys.totals)
    if today is None:
        return 2
    pipe.zrangebyscore(keys.pending, "-inf", f"({today}", start=0, num=CLOSE_PER_BATCH + 1)  # one more: were all loaded?
    return 3


# One command for what a batch reads: a GET and an HGETALL per series, each
# packed and its reply parsed under its own timeout, cost the worker more in
# the client than Redis spends on them.
LOAD = """\
-- ARGV[1]: JSON {"shop", "totals", "pending": keys ("shop" '': none of the
-- three); "before": the series due before this day are listed ('' for none),
-- at most "limit"; "signals": a day's views-and-carts key ('' for none) and
-- "signal_series" read from it; "doc", "days": the prefixes of a series'
-- keys, and "series"}.
-- Reply: the shop's document, its totals, the series due, the views and carts
-- of each signal series (flat), false for what was not asked; then a document
-- and its days per series.
local req = cjson.decode(ARGV[1])
local out = {false, false, false, false}
if req.shop ~= '' then
    out[1] = redis.call('GET', req.shop)
    out[2] = redis.call('HGETALL', req.totals)
    if req.before ~= '' then
        out[3] = redis.call('ZRANGEBYSCORE', req.pending, '-inf', '(' .. req.before, 'LIMIT', 0, req.limit)
    end
end
if req.signals ~= '' then
    local values = {}
    for _, s in ipairs(req.signal_series) do
        local v = redis.call('HMGET', req.signals, 'v:' .. s, 'c:' .. s)
        values[#values + 1] = v[1]
        values[#values + 1] = v[2]
    end
    out[4] = values
end
for _, s in ipairs(req.series) do
    out[#out + 1] = redis.call('GET', req.doc .. s)
    out[#out + 1] = redis.call('HGETALL', req.days .. s)
end
return out
"""


def load_request(keys: DemandKeys, series: Sequence[str], *, head: bool = False, today: int | None = None,
                 signals_day: int | None = None, signal_series: Sequence[str] = ()) -> bytes:
    """``LOAD``'s argument: ``series``, with the shop's state (``head``) and the
    series due for a day close before ``today``, and the views and carts of
    ``signal_series`` on ``signals_day``."""
    return orjson.dumps({
        "shop": keys.shop if head else "", "totals": keys.totals, "pending": keys.pending,
        "before": "" if today is None else str(today), "limit": CLOSE_PER_BATCH + 1,  # one more: were all loaded?
        "signals": "" if signals_day is None else keys.signals(signals_day), "signal_series": list(signal_series),
        "doc": keys.series(""), "days": keys.days(""), "series": list(series),
    })


@dataclass
class Read:
    """``LOAD``'s reply as ``build`` reads it."""

    head: list  # [shop document, totals] and the series due when asked
    signals: dict[str, list[int]] | None  # signal series -> [views, carts], those with any
    series: list  # [document, [field, value, ...], ...] per series


def read(reply: list, signal_series: Sequence[str] = ()) -> Read:
    shop, totals, due, signals, *series = reply
    fields = iter(totals or ())
    head = [shop, dict(zip(fields, fields))] + ([] if due is None else [due])
    if signals is None:
        return Read(head, None, series)
    values = [int(v) if v is not None else 0 for v in signals]
    return Read(head, {key: [values[2 * i], values[2 * i + 1]] for i, key in enumerate(signal_series)
                       if values[2 * i] or values[2 * i + 1]}, series)


def closed_through(shop_raw: bytes | None) -> int | None:
    """The shop's last closed day, from its ``demand-shop`` document as read."""
    return None if shop_raw is None else orjson.loads(shop_raw)[1]


class Loaded:
    """What a batch read of the demand documents, for the commit to check."""

    def __init__(self) -> None:
        self.raw: dict[str, bytes | None] = {}  # Redis key -> document as read


def build(book: DemandBook, keys: DemandKeys, head: list, series: Sequence[str],
          replies: list) -> Loaded:
    """Fill a journaled book with what was read (``replies``: ``Read.series``)."""
    loaded = Loaded()
    shop_raw, totals = head[0], head[1]
    loaded.raw[keys.shop] = shop_raw
    if shop_raw is not None:
        shop = orjson.loads(shop_raw)
        book.rhythm = WeeklyRhythm.from_list(shop[0])
        book.closed_through = shop[1]
        book.rhythm_in_units = len(shop) < 3
    for field, value in totals.items():
        name = field.decode()
        if name == "late":
            book.late_units = int(value)
        elif book.closed_through is not None and int(name) <= book.closed_through:
            if book.journal is not None:  # a late increment that landed after its day closed
                book.journal.totals_closed.append(int(name))
        else:
            book.totals[int(name)] = int(value)
    for key, raw, days in zip(series, replies[0::2], replies[1::2]):
        loaded.raw[keys.series(key)] = raw
        s = Series()
        if raw is not None:
            state, s.surged = orjson.loads(raw)
            s.forecaster = DemandForecaster.from_list(state)
        last = s.forecaster.last_day
        stale = []
        firsts: dict[int, float] = {}
        lines: dict[int, int] = {}
        fields = iter(days)
        for field, value in zip(fields, fields):
            name = field.decode()
            if name[0] == "s":  # the item's stock reading
                if name == "stock":
                    s.stock = int(value)
                elif name == "stock_ts":
                    s.stock_ts = float(value)
                elif name == "sold":
                    s.sold = int(value)
                elif name == "stock_alerted":
                    s.stock_alerted = float(value)
            elif name[0] == "t":
                firsts[int(name[1:])] = float(value)
            elif name[0] == "l":
                lines[int(name[1:])] = int(value)
            elif last is not None and int(name) <= last:
                stale.append(int(name))  # a late increment that landed after its day closed
            else:
                s.open[int(name)] = [int(value), 0, math.inf]
        for day, sales in s.open.items():  # one order line: open since before they were counted
            sales[LINES] = lines.get(day, 1)
            sales[FIRST_SALE] = firsts.get(day, math.inf)
        if stale and book.journal is not None:
            book.journal.days_closed[key] = stale
        book.series[key] = s
        if s.open:
            book.pending[key] = min(s.open)
    closed = book.closed_through
    book.left_over = closed is not None and any(first <= closed for first in book.pending.values())
    return loaded


def series_doc(s: Series) -> bytes:
    return orjson.dumps([s.forecaster.to_list(), s.surged])


def commit_args(book: DemandBook, keys: DemandKeys, loaded: Loaded) -> tuple[dict, list[tuple[str, str]]]:
    """The ``demand`` part of the commit script's argument, and the documents it
    rewrites as they were read (the script's ``cas``: written only if still so)."""
    j = book.journal
    assert j is not None
    cas, docs = [], []
    for key in sorted(j.docs):
        rkey = keys.series(key)
        cas.append((rkey, (loaded.raw.get(rkey) or b"").decode()))
        docs.append((rkey, series_doc(book.series[key]).decode()))
    if j.shop:
        cas.append((keys.shop, (loaded.raw.get(keys.shop) or b"").decode()))
        docs.append((keys.shop, orjson.dumps([book.rhythm.to_list(), book.closed_through,
                                              RHYTHM_LEARNS]).decode()))
    units = [(keys.days(k), str(d), str(u)) for (k, d), u in j.units.items()]
    units += [(keys.days(k), f"l{d}", str(n)) for (k, d), n in j.lines.items()]
    first = [(keys.days(k), f"t{d}", repr(t)) for (k, d), t in j.first_sales.items()]
    closed = [(keys.days(k), str(d)) for k, days in j.days_closed.items() for d in days]
    # Series whose earliest open day may have moved: recomputed in the script.
    pending = sorted({k for k, _ in j.units} | set(j.days_closed))
    return {
        "docs": docs, "units": units, "first": first, "closed": closed,
        "pending_key": keys.pending,
        "pending": [(k, keys.days(k)) for k in pending],
        "totals_key": keys.totals,
        "totals": [(str(d), str(u)) for d, u in j.totals.items()],
        "totals_closed": [str(d) for d in j.totals_closed],
        "late": str(j.late),
        "readings": [(keys.days(k), str(u), repr(t)) for k, (u, t) in j.readings.items()],
        "sold": [(keys.days(k), repr(t), str(u)) for k, (t, u) in j.sold.items()],
        "stock_alerted": [(keys.days(k), repr(t)) for k, t in j.stock_alerted.items()],
        "signals": [[keys.signals(d), *_signal_counts(counts)] for d, counts in j.signals.items()],
        "signals_ttl": str(int(SIGNAL_TTL_DAYS * 86400)),
        # Days before the last closed: read by no later close (DemandBook.close).
        "signals_drop": [keys.signals(d) for d in range(min(j.totals_closed) - 1, max(j.totals_closed))]
        if j.totals_closed else [],
    }, cas


def _signal_counts(counts: dict[str, list[int]]) -> list[str]:
    """A day's views and carts, key -> [views, carts], as the fields of its
    ``demand-signals`` hash and their increments: [field, count, ...]."""
    out: list[str] = []
    for key, (views, carts) in counts.items():
        if views:
            out += ("v:" + key, str(views))
        if carts:
            out += ("c:" + key, str(carts))
    return out


# The demand part of COMMIT_BATCH (stream/redis_scripts.py), run after the checks.
LUA_APPLY = """\
if b.demand then
    local d = b.demand
    for _, x in ipairs(d.docs) do redis.call('SET', x[1], x[2]) end
    for _, x in ipairs(d.units) do redis.call('HINCRBY', x[1], x[2], x[3]) end
    for _, x in ipairs(d.first) do
        local t = redis.call('HGET', x[1], x[2])
        if (not t) or tonumber(x[3]) < tonumber(t) then redis.call('HSET', x[1], x[2], x[3]) end
    end
    for _, x in ipairs(d.closed) do redis.call('HDEL', x[1], x[2], 't' .. x[2], 'l' .. x[2]) end
    for _, x in ipairs(d.pending) do
        local first = nil
        for _, f in ipairs(redis.call('HKEYS', x[2])) do
            local day = tonumber(f)
            if day and (first == nil or day < first) then first = day end
        end
        if first == nil then redis.call('ZREM', d.pending_key, x[1])
        else redis.call('ZADD', d.pending_key, first, x[1]) end
    end
    for _, x in ipairs(d.signals) do  -- a day's key, then field, count, field, count, ...
        for i = 2, #x, 2 do redis.call('HINCRBY', x[1], x[i], x[i + 1]) end
        redis.call('EXPIRE', x[1], d.signals_ttl)
    end
    for _, k in ipairs(d.signals_drop) do redis.call('DEL', k) end
    for _, x in ipairs(d.totals) do redis.call('HINCRBY', d.totals_key, x[1], x[2]) end
    for _, f in ipairs(d.totals_closed) do redis.call('HDEL', d.totals_key, f) end
    if d.late ~= '0' then redis.call('HINCRBY', d.totals_key, 'late', d.late) end
    -- Stock: a newer reading replaces the one kept; sales and an alert count
    -- only against the reading they were made against.
    for _, x in ipairs(d.readings) do
        local t = redis.call('HGET', x[1], 'stock_ts')
        if (not t) or tonumber(x[3]) > tonumber(t) then
            redis.call('HSET', x[1], 'stock', x[2], 'stock_ts', x[3], 'sold', '0')
            redis.call('HDEL', x[1], 'stock_alerted')
        end
    end
    for _, x in ipairs(d.sold) do
        if redis.call('HGET', x[1], 'stock_ts') == x[2] then redis.call('HINCRBY', x[1], 'sold', x[3]) end
    end
    for _, x in ipairs(d.stock_alerted) do
        if redis.call('HGET', x[1], 'stock_ts') == x[2] then redis.call('HSET', x[1], 'stock_alerted', x[2]) end
    end
end
"""
