# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""Compiled counting of purchases and closing of their days:
:class:`stream.demand.SalesPython` in C, the same steps in the same order
(the base of ``stream.demand.DemandBook``).

Every purchase lands here, into its item's and category's open day, and
every series that sold learns its day here when the day closes; in Python,
their calls and lookups were most of what demand cost a stream of
purchases once a day's learning was compiled.
"""

from models.demand import ROOTS, DemandForecaster, root_units
from stream.events import DEMAND_SIGNALS
from models.demand_days cimport DayLearner, nb_cdf, weekday

cdef Py_ssize_t TABLED = len(ROOTS)
cdef tuple ROOT_TABLE = ROOTS
cdef list NO_ALERTS = []  # shared, never appended to
cdef Py_ssize_t KEYS_KEPT = 1 << 20  # series keys kept, of items and of categories each
cdef dict SIGNALS = DEMAND_SIGNALS


cdef class SeriesCounts:
    """A series's forecaster, open days, last surge and stock reading, as C fields
    (see :class:`stream.demand.SeriesCountsPython`)."""

    cdef public DayLearner forecaster
    cdef public object stock, sold
    cdef public dict open
    cdef public long surged
    cdef public double stock_ts, stock_alerted, limit, expected

    def __init__(self):
        self.forecaster = DemandForecaster()
        self.open = {}
        self.surged = -1
        self.stock = None
        self.stock_ts = -1.0
        self.sold = 0
        self.stock_alerted = -1.0
        self.limit = self.expected = 0.0


cdef inline void _count(dict counts, str key, Py_ssize_t which):
    """One more view (``which`` 0) or cart (1) of ``key`` in ``counts``: key -> [views, carts]."""
    cdef list views_carts = counts.get(key)
    if views_carts is None:
        views_carts = [0, 0]
        counts[key] = views_carts
    views_carts[which] = views_carts[which] + 1


cdef class Sales:
    """The counts a purchase moves, with the day of the clock's last answer
    kept in C (the event time's day changes once a day), and that day's root
    units in a C sum, added to ``totals`` when read or when another day's purchase comes."""

    cdef public object day_of, journal, closed_through, late_units, surge_min_units, rhythm
    cdef public dict series, pending, signals
    cdef public double surge_level
    cdef dict _totals, _item_keys, _category_keys
    cdef double _start, _end
    cdef object _day, _roots_day
    cdef long _day_number
    cdef long long _roots

    def __cinit__(self):
        self._start = self._end = 0.0
        self._totals, self._item_keys, self._category_keys = {}, {}, {}
        self._roots_day, self._roots = None, 0

    @property
    def totals(self):
        """The shop's root units per open day (``models.demand.root_units``, summed)."""
        self._add_roots()
        return self._totals

    @totals.setter
    def totals(self, dict value):
        self._roots_day, self._roots = None, 0
        self._totals = value

    cdef void _add_roots(self):
        day = self._roots_day
        if day is not None:
            self._totals[day] = self._totals.get(day, 0) + self._roots
            self._roots_day, self._roots = None, 0

    cdef str _key(self, dict keys, str kind, str name):
        """``kind + name``, the series key, one string per name in ``keys`` (a
        purchase's key is hashed once, not built and hashed each time)."""
        key = keys.get(name)
        if key is None:
            if len(keys) >= KEYS_KEPT:
                keys.clear()
            key = keys[name] = kind + name
        return key

    cdef object _day_of(self, double ts):
        """The day of ``ts`` (its number in ``_day_number`` too), the clock asked
        only when ``ts`` leaves the day of its last answer."""
        if not (self._start <= ts < self._end):
            clock = self.day_of
            day = clock(ts)
            self._start, self._end, self._day, self._day_number = clock.start, clock.end, day, day
        return self._day

    def add_signal(self, event):
        """Count a view or a cart toward its item's and category's day."""
        which_type = SIGNALS.get(event.type)
        if which_type is None:
            return
        cdef Py_ssize_t which = which_type
        day = self._day_of(event.ts)
        closed = self.closed_through
        if closed is not None and day <= closed:
            return
        by_series = self.signals.get(day)
        if by_series is None:
            by_series = self.signals[day] = {}
        j = self.journal
        journaled = None
        if j is not None:
            journaled = j.signals.get(day)
            if journaled is None:
                journaled = j.signals[day] = {}
        key = self._key(self._item_keys, "item:", event.item_id)
        _count(by_series, key, which)
        if journaled is not None:
            _count(journaled, key, which)
        category = event.category
        if category:
            key = self._key(self._category_keys, "category:", category)
            _count(by_series, key, which)
            if journaled is not None:
                _count(journaled, key, which)

    def add(self, event):
        """Count a purchase; the surge alerts it raises (its item's, its category's)."""
        cdef double ts = event.ts
        cdef object quantity = event.quantity
        cdef Py_ssize_t q
        cdef long long roots
        day = self._day_of(ts)
        cdef long d = self._day_number
        j = self.journal
        closed = self.closed_through
        if closed is not None and day <= closed:
            self.late_units += quantity
            if j is not None:
                j.late += quantity
            return []
        q = quantity
        roots = ROOT_TABLE[q] if 0 <= q < TABLED else root_units(quantity)
        if day is not self._roots_day:
            self._add_roots()
            self._roots_day = day
        self._roots += roots
        if j is not None:
            j.totals[day] = j.totals.get(day, 0) + roots
        alert = self._add_to(self._key(self._item_keys, "item:", event.item_id), day, d, ts, quantity, event)
        category = event.category
        if not category:
            return NO_ALERTS if alert is None else [alert]
        alerts = [] if alert is None else [alert]
        alert = self._add_to(self._key(self._category_keys, "category:", category), day, d, ts, quantity,
                             event)
        if alert is not None:
            alerts.append(alert)
        return alerts

    cdef object _add_to(self, str key, object day, long d, double ts, object quantity, object event):
        """``day``: the day, and ``d`` the same in C."""
        cdef dict open_days, pending
        cdef list sales
        cdef SeriesCounts s
        found = self.series.get(key)
        s = self._new_series(key) if found is None else found
        open_days = s.open
        sales = open_days.get(day)
        if sales is None:
            sales = open_days[day] = [quantity, 1, ts]
            pending = self.pending
            if pending.get(key, day) >= day:
                pending[key] = day
        else:
            sales[0] += quantity
            sales[1] += 1
            if ts < <double>sales[2]:
                sales[2] = ts
        j = self.journal
        if j is not None:
            j.units[key, day] = j.units.get((key, day), 0) + quantity
            j.lines[key, day] = j.lines.get((key, day), 0) + 1
            j.first_sales[key, day] = sales[2]
        if s.stock is not None and ts > s.stock_ts:
            self._sell(key, s, day, event)
        units = sales[0]
        if units < self.surge_min_units or s.surged == d or not self._above_forecast(s, d, units):
            return None
        return self._surge(key, s, day, units, event)

    cdef bint _above_forecast(self, SeriesCounts s, long day, long units) except -1:
        cdef DayLearner f = s.forecaster
        if not f.learned():
            return False  # nothing learned yet: no forecast to be above
        s.expected = f._level() * <double>self.rhythm.weights[weekday(day)]
        return nb_cdf(units - 1, s.expected, f._dispersion()) >= self.surge_level

    def due(self, object today):
        """The series with an open day before ``today``: [(key, series)]."""
        cdef dict series = self.series
        return [(key, series[key]) for key, first in self.pending.items() if first < today]

    def learn_day(self, object day, list due, object rhythm, dict sold):
        """Each of ``due`` that sold on ``day`` learns it, its open day closed;
        ``sold``: key -> the units learnt."""
        cdef dict open_days
        cdef list sales
        cdef list weights = rhythm.weights
        cdef SeriesCounts s
        j = self.journal
        for key, s in due:
            open_days = s.open
            sales = open_days.pop(day, None)
            if sales is None:
                continue
            units = sales[0]
            sold[key] = units
            s.forecaster._learn(units, day, weights, True, sales[1])
            if j is not None:
                j.days_closed.setdefault(key, []).append(day)

    def settle(self, list due, dict sold):
        """Those of ``due`` that learnt a day: their earliest open day now
        (none: not pending), their documents rewritten; [(key, series)]."""
        cdef dict pending = self.pending
        cdef dict open_days
        cdef list settled = []
        cdef SeriesCounts s
        j = self.journal
        for key, s in due:
            if key not in sold:  # due on a day this close left for the next
                continue
            open_days = s.open
            if open_days:
                pending[key] = min(open_days)
            else:
                del pending[key]
            if j is not None:
                j.docs.add(key)
            settled.append((key, s))
        return settled
