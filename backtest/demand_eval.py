"""Demand forecasts scored on the online-retail protocol (``online-retail/REFERENCE.md``).

Daily units per product (days without a sale count as 0), the products that
sold on at least 60 days up to the cut (2011-09-30), a forecast of the next
7 days at the end of every origin day from the cut to 2011-12-02, and per
forecaster, per horizon 1..7 and overall:

- **RMSSE** (M5): per product sqrt(mean squared error / mean squared one-day
  change of its demand from its first sale to the cut), averaged;
- **MASE**: per product mean absolute error / mean |y(t) - y(t-7)| over the
  days up to the cut, averaged;
- **WAPE** = sum |error| / sum actual; **bias** = sum (forecast - actual) / sum actual;
- **coverage**: the share of actual days inside the 80 % interval [q .1, q .9].

Our forecaster (``models/demand.py``) runs beside the peers REFERENCE.md
names, computed in the same run from the same matrix: the mean and the
median of the last 28 days (their interval: the 28 days' own quantiles .1
and .9), seasonal naive (the same weekday a week before) and zero.

Its knobs (``models.demand.HALF_LIFE_DAYS``, ``UNITS_PER_LINE_HALF_LIFE_DAYS``,
``INTERVAL_MASS``, ``LUMP_CAP``, ``LUMP_KEEP``, the rhythm's ``root_units``) were
tuned on the 64 origins *before* the protocol's (``Protocol().before()``:
origins 2011-07-22..2011-09-23, series and scales as of 2011-07-21, every
forecast day before the protocol's cut): :func:`tune`, printed by
``scripts/demand_tune.py``; the protocol's origins were never looked at to
choose them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import numpy as np

from models.demand import (HALF_LIFE_DAYS, INTERVAL_MASS, LUMP_CAP, LUMP_KEEP,
                           UNITS_PER_LINE_HALF_LIFE_DAYS, DemandForecaster, WeeklyRhythm, root_units)

HORIZON = 7
WINDOW = 28
EPOCH = date(1970, 1, 1)


def day_number(iso: str) -> int:
    return (date.fromisoformat(iso) - EPOCH).days


def day_iso(number: int) -> str:
    return (EPOCH + timedelta(days=number)).isoformat()


@dataclass(frozen=True)
class Protocol:
    cut: str = "2011-09-30"           # scales and series selection up to this day
    first_origin: str = "2011-09-30"
    last_origin: str = "2011-12-02"
    min_days: int = 60

    def before(self) -> "Protocol":
        """As many origins again, ending the day before this protocol's first:
        where knobs are tuned without seeing this protocol's forecast days."""
        first, last = day_number(self.first_origin), day_number(self.last_origin)
        n = last - first + 1
        new_last = first - HORIZON
        new_first = new_last - n + 1
        return Protocol(day_iso(new_first - 1), day_iso(new_first), day_iso(new_last), self.min_days)


@dataclass
class DailyDemand:
    """Units per item and day, dense: ``units[item index, day - first_day]``,
    the order lines (purchase events) that bought them, the same shape, and
    the shop's root units per day (``models.demand.root_units`` of each order
    line, summed: what the stream's weekly rhythm learns)."""

    items: list[str]
    first_day: int
    units: np.ndarray
    lines: np.ndarray
    roots: np.ndarray

    @classmethod
    def from_days(cls, rows: Iterable[tuple[str, str, int]]) -> "DailyDemand":
        """From ``(ISO day, item, units)`` rows, one per order line, e.g.
        ``online_retail.iter_days``."""
        per: dict[str, dict[int, int]] = {}
        count: dict[str, dict[int, int]] = {}
        roots: dict[int, int] = {}
        for iso, item, units in rows:
            d = day_number(iso)
            roots[d] = roots.get(d, 0) + root_units(units)
            row = per.setdefault(item, {})
            row[d] = row.get(d, 0) + units
            row = count.setdefault(item, {})
            row[d] = row.get(d, 0) + 1
        if not per:
            raise ValueError("no sales to forecast")
        first = min(min(r) for r in per.values())
        last = max(max(r) for r in per.values())
        items = sorted(per)
        units = np.zeros((len(items), last - first + 1), dtype=np.float64)
        lines = np.zeros_like(units)
        for i, item in enumerate(items):
            for d, u in per[item].items():
                units[i, d - first] = u
                lines[i, d - first] = count[item][d]
        shop = np.zeros(units.shape[1])
        for d, r in roots.items():
            shop[d - first] = r
        return cls(items, first, units, lines, shop)

    @property
    def days(self) -> int:
        return self.units.shape[1]


@dataclass
class Forecasts:
    """Per series, origin and horizon (S x O x H); quantiles may be None."""

    point: np.ndarray
    median: np.ndarray | None = None
    low: np.ndarray | None = None
    high: np.ndarray | None = None
    extra: dict = field(default_factory=dict)


@dataclass
class Setup:
    series: np.ndarray      # item indexes scored
    origins: np.ndarray     # day indexes (into the matrix) of the origins
    actual: np.ndarray      # S x O x H
    rmsse_scale: np.ndarray
    mase_scale: np.ndarray


def setup(demand: DailyDemand, protocol: Protocol) -> Setup:
    cut = day_number(protocol.cut) - demand.first_day
    o0 = day_number(protocol.first_origin) - demand.first_day
    o1 = day_number(protocol.last_origin) - demand.first_day
    if cut < 8 or o1 + HORIZON >= demand.days:
        raise ValueError(f"the data ({day_iso(demand.first_day)}, {demand.days} days) does not cover "
                         f"the protocol {protocol.first_origin}..{protocol.last_origin} + {HORIZON} days")
    history = demand.units[:, :cut + 1]
    sold_days = (history > 0).sum(axis=1)
    series = np.flatnonzero(sold_days >= protocol.min_days)
    history = history[series]
    first_sale = (history > 0).argmax(axis=1)
    rmsse = np.empty(len(series))
    for k, start in enumerate(first_sale):
        rmsse[k] = np.mean(np.diff(history[k, start:]) ** 2)
    mase = np.mean(np.abs(history[:, 7:] - history[:, :-7]), axis=1)
    origins = np.arange(o0, o1 + 1)
    actual = np.stack([demand.units[series][:, o + 1:o + 1 + HORIZON] for o in origins], axis=1)
    return Setup(series, origins, actual, rmsse, mase)


def _scores(s: Setup, point: np.ndarray, low: np.ndarray | None, high: np.ndarray | None,
            horizon: int | None) -> dict:
    sl = slice(None) if horizon is None else slice(horizon - 1, horizon)
    y, f = s.actual[:, :, sl], point[:, :, sl]
    err = f - y
    n = err.shape[1] * err.shape[2]
    mse = (err ** 2).reshape(len(err), n).mean(axis=1)
    mae = np.abs(err).reshape(len(err), n).mean(axis=1)
    total = y.sum()
    out = {
        "rmsse": float(np.mean(np.sqrt(mse / s.rmsse_scale))),
        "mase": float(np.mean(mae / s.mase_scale)),
        "wape": float(np.abs(err).sum() / total),
        "bias": float(err.sum() / total),
    }
    if low is not None and high is not None:
        lo, hi = low[:, :, sl], high[:, :, sl]
        out["coverage_80"] = float(np.mean((lo <= y) & (y <= hi)))
    return {k: round(v, 4) for k, v in out.items()}


def score(s: Setup, point: np.ndarray, low: np.ndarray | None = None,
          high: np.ndarray | None = None) -> dict:
    """Overall and per horizon (``"h1"`` .. ``"h7"``)."""
    out = _scores(s, point, low, high, None)
    out["per_horizon"] = {f"h{h}": _scores(s, point, low, high, h) for h in range(1, HORIZON + 1)}
    return out


# -- the peers ---------------------------------------------------------------

def _windows(demand: DailyDemand, s: Setup) -> np.ndarray:
    """S x O x WINDOW: the last 28 days up to and including each origin."""
    rows = demand.units[s.series]
    return np.stack([rows[:, o - WINDOW + 1:o + 1] for o in s.origins], axis=1)


def peers(demand: DailyDemand, s: Setup) -> dict[str, Forecasts]:
    w = _windows(demand, s)
    shape = s.actual.shape
    lo = np.repeat(np.quantile(w, 0.1, axis=2)[:, :, None], HORIZON, axis=2)
    hi = np.repeat(np.quantile(w, 0.9, axis=2)[:, :, None], HORIZON, axis=2)
    mean = np.repeat(w.mean(axis=2)[:, :, None], HORIZON, axis=2)
    median = np.repeat(np.median(w, axis=2)[:, :, None], HORIZON, axis=2)
    # Seasonal naive: day o+h gets day o+h-7, within the window for h <= 7.
    snaive = w[:, :, WINDOW - 7:WINDOW - 7 + HORIZON]
    return {
        "mean_28": Forecasts(mean, low=lo, high=hi),
        "median_28": Forecasts(median, low=lo, high=hi),
        "seasonal_naive": Forecasts(snaive.copy()),
        "zero": Forecasts(np.zeros(shape)),
    }


# -- ours ---------------------------------------------------------------------

def ours(demand: DailyDemand, s: Setup, half_life_days: float = HALF_LIFE_DAYS, spread: float = 1.0,
         mass: float = INTERVAL_MASS, progress: Callable[[int], None] | None = None,
         units_half_life_days: float = UNITS_PER_LINE_HALF_LIFE_DAYS) -> Forecasts:
    """``models/demand.py`` learning day by day from the first day of the data,
    the rhythm from the shop's days (``root_units`` of each order line,
    summed, as the stream's ``DemandBook`` counts them), forecasting at each
    origin from what it learned up to and including that day."""
    rhythm = WeeklyRhythm()
    totals = demand.roots
    rows = demand.units[s.series]
    lines = demand.lines[s.series]
    forecasters = [DemandForecaster(half_life_days, spread, mass, units_half_life_days) for _ in s.series]
    shape = s.actual.shape
    point, med, lo, hi = (np.zeros(shape) for _ in range(4))
    origin_at = {int(o): k for k, o in enumerate(s.origins)}
    last = int(s.origins[-1])
    for d in range(last + 1):
        day = demand.first_day + d
        rhythm.learn_one(float(totals[d]), day)
        sold = np.flatnonzero(rows[:, d])
        for i in sold:
            forecasters[i].learn_one(rows[i, d], day, rhythm, lines[i, d])
        k = origin_at.get(d)
        if k is not None:
            for i, f in enumerate(forecasters):
                if f.last_day is None:
                    continue
                if f.last_day < day:
                    f.learn_one(0.0, day, rhythm)
                for h, df in enumerate(f.forecast(HORIZON, rhythm)):
                    point[i, k, h], med[i, k, h], lo[i, k, h], hi[i, k, h] = (
                        df.expected, df.median, df.low, df.high)
        if progress is not None:
            progress(1)
    return Forecasts(point, med, lo, hi)


def evaluate(demand: DailyDemand, protocol: Protocol = Protocol(), half_life_days: float = HALF_LIFE_DAYS,
             mass: float = INTERVAL_MASS, progress: Callable[[int], None] | None = None,
             top: int = 4) -> dict:
    """The ``demand`` section of ``metrics.json``."""
    s = setup(demand, protocol)
    table: dict[str, dict] = {}
    mine = ours(demand, s, half_life_days, 1.0, mass, progress)
    table["ours_expected"] = score(s, mine.point, mine.low, mine.high)
    table["ours_median"] = score(s, mine.median, mine.low, mine.high)
    for name, f in peers(demand, s).items():
        table[name] = score(s, f.point, f.low, f.high)
    return {
        "h1_series": _h1_series(demand, s, mine, top),
        "protocol": {"cut": protocol.cut, "origins": [protocol.first_origin, protocol.last_origin],
                     "series": int(len(s.series)), "horizon": HORIZON, "min_days": protocol.min_days},
        "model": {"half_life_days": half_life_days,
                  "units_per_line_half_life_days": UNITS_PER_LINE_HALF_LIFE_DAYS,
                  "lump_cap": LUMP_CAP, "lump_keep": LUMP_KEEP, "rhythm_from": "root units of each purchase",
                  "interval_levels": [round(0.5 - mass / 2, 4), round(0.5 + mass / 2, 4)]},
        "forecasters": table,
    }


def _h1_series(demand: DailyDemand, s: Setup, mine: Forecasts, top: int) -> dict:
    """Next-day forecasts against actual units per forecast day, for the
    report's plots: the scored products together, and the ``top`` best sellers."""
    days = [day_iso(demand.first_day + int(o) + 1) for o in s.origins]
    out = {"days": days, "aggregate": {
        "actual": s.actual[:, :, 0].sum(axis=0).tolist(),
        "expected": np.round(mine.point[:, :, 0].sum(axis=0), 2).tolist()}, "items": {}}
    best = np.argsort(-s.actual.sum(axis=(1, 2)))[:top]
    for k in best:
        out["items"][demand.items[s.series[k]]] = {
            "actual": s.actual[k, :, 0].tolist(),
            "expected": np.round(mine.point[k, :, 0], 2).tolist(),
            "median": mine.median[k, :, 0].tolist(),
            "low": mine.low[k, :, 0].tolist(), "high": mine.high[k, :, 0].tolist()}
    return out


def from_events(events: Iterable, timezone: str = "UTC", progress: bool = True) -> dict:
    """The ``demand`` section of a replay's metrics from its purchase events, or
    ``{"skipped": why}`` when they do not cover the protocol's days."""
    import time
    from zoneinfo import ZoneInfo

    started = time.perf_counter()
    zone = ZoneInfo(timezone)
    rows = ((datetime.fromtimestamp(e.ts, zone).date().isoformat(), e.item_id, e.quantity)
            for e in events if e.type == "purchase")
    try:
        demand = DailyDemand.from_days(rows)
        protocol = Protocol()
        setup(demand, protocol)
    except ValueError as exc:
        return {"skipped": str(exc)}
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=day_number(protocol.last_origin) - demand.first_day + 1, unit="day",
                   desc="demand", mininterval=0.5)
    try:
        out = evaluate(demand, protocol, progress=bar.update if bar is not None else None)
    finally:
        if bar is not None:
            bar.close()
    out["seconds"] = round(time.perf_counter() - started, 3)
    return out


def book_cost(events: Sequence, total_events: int, timezone: str = "UTC", batch: int = 1000) -> dict:
    """What the stream's demand book (``stream/demand.py``) costs a replay: the
    purchases through ``DemandBook.add``, the other events through
    ``add_signal`` (views and carts count) and a day close per batch of
    ``batch`` events, as the Processor calls them, timed; per event of the
    whole replay (``total_events``), in CPU seconds of this thread. The cyclic garbage
    collector runs as in a worker (``stream/app.py``): paused while a batch
    runs, and no full pass of its own (a worker makes them on a schedule);
    else the book's allocations would time full passes over every event the
    replay holds, which no worker holds."""
    import gc
    import time

    from stream.demand import DemandBook
    from stream.gc_pause import full_passes_on_schedule, gc_paused

    book = DemandBook(timezone)
    thresholds = gc.get_threshold()
    full_passes_on_schedule()
    seconds, alerts = 0.0, 0
    try:
        for i in range(0, len(events), batch):
            # The Processor's own work, not demand's, off the clock: which events are
            # purchases, and the batch's watermark. It reads each event just before
            # demand does, as the Processor does (the replay's events lie scattered
            # through its heap by now: read cold, they cost demand a third more).
            chunk = events[i:i + batch]
            purchases = [e for e in chunk if e.type == "purchase"]
            others = [e for e in chunk if e.type != "purchase"]
            watermark = max(e.ts for e in chunk)
            # This thread's CPU time: the machine may be shared, and the process's other
            # threads (OpenBLAS's, spinning after numpy's last call; tqdm's) are not demand's.
            started = time.thread_time()
            with gc_paused():
                for e in purchases:
                    alerts += len(book.add(e))
                for e in others:  # a purchase and a view touch different counts: order is free
                    book.add_signal(e)
                book.close(watermark, forecast=False)
            seconds += time.thread_time() - started
    finally:
        gc.set_threshold(*thresholds)
    return {"seconds": round(seconds, 3), "us_per_event": round(1e6 * seconds / max(total_events, 1), 3),
            "series": len(book.series), "surge_alerts": alerts}


def redis_memory(url: str, prefix: str) -> dict:
    """What demand keeps in Redis (``MEMORY USAGE`` of its keys under ``prefix``, every
    field counted, as bench.workers.redis_memory_mb counts the run's keys),
    in all, per key kind, and per series (item or category with a forecaster)."""
    import redis

    client = redis.Redis.from_url(url)
    parts: dict[str, int] = {}
    series = 0
    try:
        for key in client.scan_iter(match=f"{prefix}demand*", count=1000):
            kind = key.decode()[len(prefix):].split(":", 1)[0]
            parts[kind] = parts.get(kind, 0) + (client.memory_usage(key, samples=0) or 0)
            series += kind == "demand"
    finally:
        client.close()
    total = sum(parts.values())
    return {"series": series, "bytes": total, "by_key": parts,
            "bytes_per_series": round(total / series, 1) if series else None}


HALF_LIVES = ((7, 42), (7, 63), (10, 42), (10, 63), (10, 84), (14, 42), (14, 63), (21, 63))


def tune(demand: DailyDemand, protocol: Protocol, half_lives: Sequence[tuple[float, float]] = HALF_LIVES,
         masses: Sequence[float] = (0.6, 0.65, 0.7, 0.75, 0.8)) -> list[dict]:
    """Our forecaster's figures for each pair of half lives (order lines per
    day, units per line; at INTERVAL_MASS) and each interval mass (at the
    chosen half lives), and the peers', on ``protocol``."""
    s = setup(demand, protocol)
    rows = []
    chosen = (HALF_LIFE_DAYS, UNITS_PER_LINE_HALF_LIFE_DAYS)
    grid = [(h, INTERVAL_MASS) for h in half_lives] + [(chosen, m) for m in masses if m != INTERVAL_MASS]
    for (lines_half_life, units_half_life), mass in grid:
        mine = ours(demand, s, lines_half_life, 1.0, mass, units_half_life_days=units_half_life)
        e, m = score(s, mine.point, mine.low, mine.high), score(s, mine.median)
        rows.append({"forecaster": f"ours half lives {lines_half_life:g}/{units_half_life:g} d, mass {mass:g}",
                     "rmsse": e["rmsse"], "mase_median": m["mase"], "bias": e["bias"],
                     "coverage_80": e["coverage_80"]})
    for name, f in peers(demand, s).items():
        e = score(s, f.point, f.low, f.high)
        rows.append({"forecaster": name, "rmsse": e["rmsse"], "mase_median": e["mase"], "bias": e["bias"],
                     "coverage_80": e.get("coverage_80")})
    return rows
