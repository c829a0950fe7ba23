"""Demand per item and category on event time: what the Processor keeps of purchases.

A :class:`DemandBook` counts the units bought and the order lines (purchase
events) that bought them per series (``item:{id}``, ``category:{name}``) and
day in the shop's time zone (``SHOPSTREAM_TIMEZONE``), and closes a day when
the event-time watermark has passed its end: each series that sold learns its
open days (``models/demand.py``, days without a sale in between learned as
0), the shop's day (``models.demand.root_units`` of each purchase's units,
summed) teaches the shared weekly rhythm. A series nobody bought from is not touched: its days without
a sale are learned when it next sells, or when it is forecast.

While a day is open, a series whose units so far pass the
``SHOPSTREAM_SURGE_LEVEL`` quantile of that day's forecast (.99: far above
its 80 % interval) and ``SHOPSTREAM_SURGE_MIN_UNITS`` raises one
``demand_surge`` alert for that day. Purchases of a day already closed for their series (behind the
watermark) are counted as ``late_units`` and not learned.

Its state is plain numbers: per series the forecaster's seven numbers, its
open days (units and order lines) and the day of its last surge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import orjson

from models.demand import DayForecast, DemandForecaster, WeeklyRhythm, nb_cdf, nb_upper, root_units, weekday
from stream.events import DEMAND_SIGNALS, Event
from stream.outputs import Alert, Reason

HORIZON = 7
TRENDING_LEVEL = 0.9  # /trending: selling above this quantile of the day's forecast
NO_ALERTS: list = []  # shared, never appended to
# A day's views and carts are read by the close that publishes the day's forecasts
# and by no later one: a close drops the days before the last closed (in memory
# and in Redis). In Redis a day no close reaches (views before the first purchase,
# a stream stalled for a week) expires this long after its last write.
SIGNAL_TTL_DAYS = 7
UNITS, LINES, FIRST_SALE = 0, 1, 2  # a series' open day: [units, order lines, time of the first sale]


@dataclass(slots=True)
class SeriesCountsPython:
    """A series's state: the reference for ``stream/demand_sales.pyx``'s
    ``SeriesCounts``, the same fields as C fields (the hot path reads them)."""

    forecaster: DemandForecaster = field(default_factory=DemandForecaster)
    # day -> [units, order lines (purchases), time of the first sale] so far: one
    # list, not three dicts, as the hot path touches all three on each purchase.
    open: dict[int, list] = field(default_factory=dict)
    surged: int = -1  # the last day a surge alert was raised for
    # The item's latest stock reading (inventory topic): units on hand at stock_ts, units
    # bought after it, and the reading a stock_risk alert was raised for (-1: none).
    stock: int | None = None
    stock_ts: float = -1.0
    sold: int = 0
    stock_alerted: float = -1.0
    # The last surge check's line and expected units (not stored).
    limit: float = 0.0
    expected: float = 0.0


try:  # built by the install (setup.py); without a C compiler the references serve, slower
    from stream.demand_sales import Sales, SeriesCounts
    COMPILED = True
except ImportError:
    SeriesCounts = SeriesCountsPython  # and Sales = SalesPython, below
    COMPILED = False


class Series(SeriesCounts):  # type: ignore[misc, valid-type]
    """A series's state (item or category) in the book."""

    __slots__ = ()

    def to_list(self) -> list:
        """Plain numbers, to compare books (Redis keeps the parts apart: stream/demand_redis.py)."""
        days = sorted(self.open.items())
        return [self.forecaster.to_list(), [(d, v[UNITS]) for d, v in days], [(d, v[LINES]) for d, v in days],
                [(d, v[FIRST_SALE]) for d, v in days], self.surged]

    def units(self, day: int) -> int:
        sales = self.open.get(day)
        return 0 if sales is None else sales[UNITS]


@dataclass(slots=True)
class Forecast:
    """A series' next days as of the day it closed (published on the ``demand`` topic)."""

    series: str
    closed_day: int
    units: int | None  # sold on the closed day (None: not known here)
    days: list[DayForecast]
    # The closed day's views and carts of the item (or category): leading signals.
    views: int | None = None
    carts: int | None = None

    @property
    def forecast_id(self) -> str:
        return f"demand:{self.series}:{day_iso(self.closed_day)}"

    def to_dict(self) -> dict:
        kind, _, name = self.series.partition(":")
        return {"forecast_id": self.forecast_id, kind: name, "day": day_iso(self.closed_day),
                "units": self.units, "views": self.views, "carts": self.carts,
                "forecast": [{**d.to_dict(), "day": day_iso(d.day)} for d in self.days]}

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())


def day_iso(day: int) -> str:
    return (datetime(1970, 1, 1) + timedelta(days=day)).date().isoformat()


@dataclass
class Journal:
    """What a batch changed in a :class:`DemandBook`: increments that commute
    (units per series and day, the shop's totals, late units), and the
    documents rewritten (series that closed days or surged, the shop's rhythm)."""

    units: dict[tuple[str, int], int] = field(default_factory=dict)
    lines: dict[tuple[str, int], int] = field(default_factory=dict)
    first_sales: dict[tuple[str, int], float] = field(default_factory=dict)
    totals: dict[int, int] = field(default_factory=dict)
    late: int = 0
    docs: set[str] = field(default_factory=set)
    days_closed: dict[str, list[int]] = field(default_factory=dict)
    totals_closed: list[int] = field(default_factory=list)
    shop: bool = False
    # Views and carts counted: day -> series -> [views, carts].
    signals: dict[int, dict[str, list[int]]] = field(default_factory=dict)
    # Stock: readings taken (series -> units, time), units sold against the
    # reading read (series -> (its time, units)), alerts raised (series -> reading time).
    readings: dict[str, tuple[int, float]] = field(default_factory=dict)
    sold: dict[str, tuple[float, int]] = field(default_factory=dict)
    stock_alerted: dict[str, float] = field(default_factory=dict)


class DayClock:
    """Event time -> day number in a time zone; caches the current day's bounds."""

    def __init__(self, timezone: str = "UTC") -> None:
        self.zone = ZoneInfo(timezone)
        self.start = self.end = 0.0
        self.day = 0

    def __call__(self, ts: float) -> int:
        if self.start <= ts < self.end:
            return self.day
        local = datetime.fromtimestamp(ts, self.zone)
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        self.day = (midnight.date() - datetime(1970, 1, 1).date()).days
        self.start = midnight.timestamp()
        self.end = (midnight + timedelta(days=1)).replace(tzinfo=None).replace(tzinfo=self.zone).timestamp()
        return self.day


class SalesPython:
    """Purchases counted into their series's open days (``add``, one call per
    purchase), views and carts beside them (``add_signal``), and the days
    learnt when they close (``due``, ``learn_day``, ``settle``, as
    ``DemandBook.close`` calls them): the base of
    :class:`DemandBook` (its state), and the reference for
    ``stream/demand_sales.pyx``, which does the same in C. A series's first
    purchase asks the book for the series (``_new_series``), a sale after a
    stock reading tells it (``_sell``), and so does a day's units passing
    ``surge_min_units`` and the ``surge_level`` quantile of its forecast (``_surge``)."""

    day_of: DayClock
    journal: Journal | None
    closed_through: int | None
    late_units: int
    surge_min_units: int
    surge_level: float
    rhythm: WeeklyRhythm
    series: dict[str, Series]
    totals: dict[int, int]
    pending: dict[str, int]
    signals: dict[int, dict[str, list[int]]]

    def add(self, event: Event) -> list[Alert]:
        """Count a purchase; the surge alerts it raises (its item's, its category's)."""
        ts, quantity = event.ts, event.quantity
        clock = self.day_of
        day = clock.day if clock.start <= ts < clock.end else clock(ts)
        j = self.journal
        closed = self.closed_through
        if closed is not None and day <= closed:
            self.late_units += quantity
            if j is not None:
                j.late += quantity
            return []
        roots, totals = root_units(quantity), self.totals
        totals[day] = totals.get(day, 0) + roots
        if j is not None:
            j.totals[day] = j.totals.get(day, 0) + roots
        alert = self._add_to("item:" + event.item_id, day, ts, quantity, event)
        if not event.category:
            return NO_ALERTS if alert is None else [alert]
        alerts = [] if alert is None else [alert]
        alert = self._add_to("category:" + event.category, day, ts, quantity, event)
        if alert is not None:
            alerts.append(alert)
        return alerts

    def add_signal(self, event: Event) -> None:
        """Count a view or a cart toward its item's and category's day: the
        leading signals published beside the units sold."""
        which = DEMAND_SIGNALS.get(event.type)
        if which is None:
            return
        day = self.day_of(event.ts)
        if self.closed_through is not None and day <= self.closed_through:
            return  # its day was published already
        counts = [self.signals.setdefault(day, {})]  # and the journal's, to commit
        if self.journal is not None:
            counts.append(self.journal.signals.setdefault(day, {}))
        keys = ["item:" + event.item_id] + (["category:" + event.category] if event.category else [])
        for key in keys:
            for by_series in counts:
                by_series.setdefault(key, [0, 0])[which] += 1

    def _add_to(self, key: str, day: int, ts: float, quantity: int, event: Event) -> Alert | None:
        s = self.series.get(key)
        if s is None:
            s = self._new_series(key)
        sales = s.open.get(day)
        if sales is None:
            sales = s.open[day] = [quantity, 1, ts]
            pending = self.pending
            if pending.get(key, day) >= day:
                pending[key] = day
        else:
            sales[UNITS] += quantity
            sales[LINES] += 1
            if ts < sales[FIRST_SALE]:
                sales[FIRST_SALE] = ts
        j = self.journal
        if j is not None:
            j.units[key, day] = j.units.get((key, day), 0) + quantity
            j.lines[key, day] = j.lines.get((key, day), 0) + 1
            j.first_sales[key, day] = sales[FIRST_SALE]
        if s.stock is not None and ts > s.stock_ts:
            self._sell(key, s, day, event)
        units = sales[UNITS]
        if units < self.surge_min_units or s.surged == day or not self._above_forecast(s, day, units):
            return None
        return self._surge(key, s, day, units, event)

    def _above_forecast(self, s: Series, day: int, units: int) -> bool:
        """Whether the day's ``units`` pass the ``surge_level`` quantile of its forecast
        (one CDF to rule a surge out; the line itself only for an alert)."""
        f = s.forecaster
        if f.last_day is None:
            return False  # nothing learned yet: no forecast to be above
        s.expected = f.level * self.rhythm.weights[weekday(day)]
        return nb_cdf(units - 1, s.expected, f.dispersion()) >= self.surge_level

    def due(self, today: int) -> list[tuple[str, Series]]:
        """The series with an open day before ``today``."""
        series = self.series
        return [(key, series[key]) for key, first in self.pending.items() if first < today]

    def learn_day(self, day: int, due: list[tuple[str, Series]], rhythm: WeeklyRhythm, sold: dict[str, int]) -> None:
        """Each of ``due`` that sold on ``day`` learns it, its open day closed;
        ``sold``: key -> the units learnt."""
        j = self.journal
        for key, s in due:
            sales = s.open.pop(day, None)
            if sales is None:
                continue
            sold[key] = units = sales[UNITS]
            s.forecaster.learn_one(units, day, rhythm, sales[LINES])
            if j is not None:
                j.days_closed.setdefault(key, []).append(day)

    def settle(self, due: list[tuple[str, Series]], sold: dict[str, int]) -> list[tuple[str, Series]]:
        """Those of ``due`` that learnt a day: their earliest open day now
        (none: not pending), their documents rewritten."""
        pending, j = self.pending, self.journal
        settled = []
        for key, s in due:
            if key not in sold:  # due on a day this close left for the next
                continue
            if s.open:
                pending[key] = min(s.open)
            else:
                del pending[key]
            if j is not None:
                j.docs.add(key)
            settled.append((key, s))
        return settled


if not COMPILED:
    Sales = SalesPython  # type: ignore[misc, assignment]


class DemandBook(Sales):  # type: ignore[misc, valid-type]
    """Every series' demand, the shop's weekly rhythm and the days still open."""

    def __init__(self, timezone: str = "UTC", surge_level: float = 0.99, surge_min_units: int = 50,
                 close_after_s: float = 3600.0, restock_days: float = 7.0) -> None:
        self.day_of = DayClock(timezone)
        self.close_after_s = close_after_s
        self.restock_days = restock_days
        self.alerts: list[Alert] = []  # stock_risk alerts raised, for the Processor to take
        self.surge_level = surge_level
        self.surge_min_units = surge_min_units
        self.series: dict[str, Series] = {}
        self.rhythm = WeeklyRhythm()
        self.totals: dict[int, int] = {}  # the shop's root units (models.demand.root_units) per open day
        self.closed_through: int | None = None  # the last day closed for the shop
        # A rhythm saved when it learnt the shop's units (before root units): its sums are
        # rescaled once, at the next close (_rescale_rhythm).
        self.rhythm_in_units = False
        # A store that loads at most so many series per close (stream/demand_redis.py)
        # says when it loaded fewer than were due (then one day closes, so that those
        # left learn it before the rhythm learns the next), and when some loaded series
        # have yet to learn a day closed already (left over).
        self.partial_close = False
        self.left_over = False
        self.pending: dict[str, int] = {}  # series with open days -> the earliest
        # Views and carts per open day and the last closed: day -> series -> [views, carts]
        # (a Redis batch loads only the closing day's, of the series it closes).
        self.signals: dict[int, dict[str, list[int]]] = {}
        self.late_units = 0
        self.journal: Journal | None = None  # what changed, for a store that persists it

    def journaled(self) -> "DemandBook":
        self.journal = Journal()
        return self

    def _new_series(self, key: str) -> Series:
        s = self.series[key] = Series()
        return s

    def _surge(self, key: str, s: Series, day: int, units: int, event: Event) -> Alert:
        """The surge alert of a day whose ``units`` passed its forecast (``_above_forecast``)."""
        s.limit = float(nb_upper(s.expected, s.forecaster.dispersion(), self.surge_level, at_most=units - 1))
        s.surged = day
        if self.journal is not None:
            self.journal.docs.add(key)
        kind, _, name = key.partition(":")
        reasons = [Reason(kind, name), Reason("units_today", float(units), round(s.expected, 4)),
                   Reason(f"forecast_q{round(100 * self.surge_level)}", s.limit),
                   Reason("since", s.open[day][FIRST_SALE])]
        return Alert("demand_surge", event.user_id, event.event_id, event.ts, float(units),
                     s.limit, reasons, key=f"{key}:{day_iso(day)}")

    # -- stock ----------------------------------------------------------------------

    def read_stock(self, item_id: str, units: int, ts: float, event_id: str | None = None) -> None:
        """An item's units on hand at ``ts``; an older reading than the one kept changes nothing.
        A ``stock_risk`` alert it raises goes to ``alerts``."""
        key = "item:" + item_id
        s = self.series.get(key)
        if s is None:
            s = self._new_series(key)
        if ts <= s.stock_ts:
            return
        s.stock, s.stock_ts, s.sold, s.stock_alerted = units, ts, 0, -1.0
        j = self.journal
        if j is not None:
            j.readings[key] = (units, ts)
            j.sold.pop(key, None)
            j.stock_alerted.pop(key, None)
        self._check_stock(key, s, self.day_of(ts), ts, "", event_id)

    def _sell(self, key: str, s: Series, day: int, event: Event) -> None:
        """A purchase after the stock reading: fewer units on hand."""
        s.sold += event.quantity
        j = self.journal
        if j is not None:
            j.sold[key] = (s.stock_ts, j.sold[key][1] + event.quantity if key in j.sold else event.quantity)
        if s.stock_alerted != s.stock_ts:
            self._check_stock(key, s, day, event.ts, event.user_id, event.event_id)

    def days_of_cover(self, s: Series, day: int) -> tuple[float | None, float]:
        """How many days from ``day`` on the item's stock lasts at its expected demand
        (None: beyond the 7-day forecast), and the expected units over the restock days.
        What a day has sold so far counts against its expected units."""
        f = s.forecaster
        closed = self.closed_through
        assert s.stock is not None and f.last_day is not None and closed is not None
        if f.last_day < closed:
            f = DemandForecaster.from_list(f.to_list())
            self._catch_up(f, closed)
        level, weights, restock = f.level, self.rhythm.weights, self.restock_days
        left = s.stock - s.sold
        need = needed = 0.0
        cover = 0.0 if left <= 0 else None
        start = max(closed + 1, day)
        for i in range(HORIZON):
            d = start + i
            e = level * weights[weekday(d)] - s.units(d)
            if e <= 0.0:
                continue
            if cover is None and need + e > left:
                cover = i + (left - need) / e
            if i < restock:
                needed += e * min(1.0, restock - i)
            need += e
        return cover, needed

    def _check_stock(self, key: str, s: Series, day: int, ts: float, user_id: str,
                     event_id: str | None) -> None:
        if s.stock is None or s.stock_alerted == s.stock_ts:
            return
        if s.forecaster.last_day is None or self.closed_through is None:
            return  # nothing learned yet: no forecast to run out on
        if s.stock - s.sold >= HORIZON * s.forecaster.level:
            return  # lasts the week: the weekday weights of any 7 days sum to 7, and days without a sale only lower the level
        cover, needed = self.days_of_cover(s, day)
        if cover is None or cover >= self.restock_days:
            return
        s.stock_alerted = s.stock_ts
        if self.journal is not None:
            self.journal.stock_alerted[key] = s.stock_ts
        left = s.stock - s.sold
        reading = datetime.fromtimestamp(s.stock_ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        reasons = [Reason("item", key.partition(":")[2]),
                   Reason("stock_left", float(left), float(s.stock)),
                   Reason("sold_since_reading", float(s.sold)),
                   Reason("days_of_cover", round(cover, 4), self.restock_days),
                   Reason("expected_units", round(needed, 4), float(left)),
                   Reason("reading_ts", s.stock_ts)]
        self.alerts.append(Alert("stock_risk", user_id, event_id, ts, round(cover, 4), self.restock_days,
                                 reasons, key=f"{key}:{reading}"))

    def take_alerts(self) -> list[Alert]:
        out, self.alerts = self.alerts, []
        return out

    # -- day close ----------------------------------------------------------------

    def close(self, watermark: float, forecast: bool) -> list[Forecast]:
        """Close every day that ended ``close_after_s`` before ``watermark``; the forecasts of the
        series that sold on them when ``forecast`` (a live worker publishes
        them; replay scores its own)."""
        today = self.closing_day(watermark)
        if today is None:
            return []
        if self.closed_through is None:
            if not self.totals:
                return []
            self.closed_through = min(self.totals) - 1
        if today - 1 <= self.closed_through and not self.left_over:
            return []
        j = self.journal
        closed = self.closed_through
        sold: dict[str, int] = {}
        rhythm, totals = self.rhythm, self.totals
        due = self.due(today)
        left_over = self.left_over
        if left_over:  # days closed for the shop that some series have yet to learn
            for key, s in due:
                for day in sorted(d for d in s.open if d <= closed):
                    self.learn_day(day, [(key, s)], rhythm, sold)
            self.left_over = False
        # Each series learns a day with the rhythm as that day left it: after a
        # partial load, one day closes, and none while series may be left over.
        if self.partial_close:
            days = range(closed + 1, closed + 1 if left_over else min(today, closed + 2))
        else:
            days = range(closed + 1, today)
        # Day by day, the shop's rhythm first: what a series learns does not
        # depend on how many days one close covers (how events fell into batches).
        for day in days:
            roots = totals.pop(day, 0)
            if self.rhythm_in_units:
                self._rescale_rhythm(roots, day)
            rhythm.learn_one(float(roots), day)
            if j is not None:
                j.totals_closed.append(day)
            self.learn_day(day, due, rhythm, sold)
        if days:
            self.closed_through = days[-1]
            if j is not None:
                j.shop = True
        out = []
        for key, s in self.settle(due, sold):
            if s.stock is not None:  # the forecast moved: the stock may no longer last
                self._check_stock(key, s, today, watermark, "", None)
            if forecast:
                f = s.forecaster
                units = sold[key] if f.last_day == today - 1 else 0
                if f.last_day != today - 1:  # a copy: the state must not depend on publishing
                    f = DemandForecaster.from_list(f.to_list())
                    self._catch_up(f, today - 1)
                views, carts = self.signals.get(today - 1, {}).get(key, (0, 0))
                out.append(Forecast(key, today - 1, units, f.forecast(HORIZON, self.rhythm), views, carts))
        if days:  # no close reads them again (Redis: demand_redis drops them at the commit)
            for day in [d for d in self.signals if d < self.closed_through]:
                del self.signals[day]
        return out

    def _rescale_rhythm(self, roots: int, day: int) -> None:
        """A rhythm saved when it learnt the shop's units, brought to root units
        once: its sums scaled so that the closing day's weekday holds what the
        day brought. (A day open across the upgrade counted some purchases in
        units: the scale is rough for that day, and the weights, ratios of
        the sums, are what the forecasts use.)"""
        rhythm, d = self.rhythm, weekday(day)
        if roots > 0 and rhythm.totals[d] > 0 and rhythm.days[d] > 0:
            factor = roots / (rhythm.totals[d] / rhythm.days[d])
            rhythm.totals = [t * factor for t in rhythm.totals]
        self.rhythm_in_units = False

    def trending(self, kind: str = "item", n: int = 20, level: float = TRENDING_LEVEL) -> tuple[int | None, list[dict]]:
        """The shop's latest open day, and the series of ``kind`` (``item``, ``category``) selling
        above the ``level`` quantile of that day's forecast so far, the least likely first
        (``p_at_least``: the forecast's probability of selling that many or more). Series
        without a forecast yet (nothing learned) are not listed: nothing to be above."""
        if not self.totals:
            return None, []
        day = max(self.totals)
        weights, prefix = self.rhythm.weights, kind + ":"
        found = []
        for key, s in self.series.items():
            sales = s.open.get(day)
            units = sales[UNITS] if sales is not None else 0
            f = s.forecaster
            if not units or f.last_day is None or not key.startswith(prefix):
                continue
            expected = f.level * weights[weekday(day)]
            phi = f.dispersion()
            below = nb_cdf(units - 1, expected, phi)
            if below < level:
                continue
            first = sales[FIRST_SALE]  # not known (inf) for a day stored before first sales were
            found.append((1.0 - below, -units, key, units, expected, first if math.isfinite(first) else None))
        found.sort()
        return day, [{kind: key[len(prefix):], "units_today": units, "expected": round(expected, 4),
                      "p_at_least": float(f"{p:.4g}"), "since": since}
                     for p, _, key, units, expected, since in found[:n]]

    def closing_day(self, watermark: float) -> int | None:
        """The first day not to close at this watermark (days close
        ``close_after_s`` after they end, for purchases still on their way)."""
        if not math.isfinite(watermark) or watermark <= 0:
            return None
        return self.day_of(watermark - self.close_after_s)

    def _catch_up(self, f: DemandForecaster, day: int) -> None:
        if f.last_day is not None and f.last_day < day:
            f.learn_one(0.0, day, self.rhythm)

    def forecast(self, key: str) -> Forecast | None:
        """A series' next days as of the last closed day (for the web views)."""
        s = self.series.get(key)
        if s is None or s.forecaster.last_day is None or self.closed_through is None:
            return None
        f = DemandForecaster.from_list(s.forecaster.to_list())
        self._catch_up(f, self.closed_through)
        return Forecast(key, self.closed_through, None, f.forecast(HORIZON, self.rhythm))
