"""Daily demand forecasts for intermittent retail demand with a weekly rhythm.

Two learners, river's verbs, no I/O:

- :class:`WeeklyRhythm`, shared by every series of a shop: how a day's units
  split over the weekdays, learned from the shop's daily totals (a shop that
  never trades on Saturdays learns a Saturday weight of 0). Pooled because a
  single item sells on too few days to learn seven weights of its own. The
  stream teaches it the day's :func:`root_units` (the square roots of each
  purchase's units, summed), so that a few wholesale orders do not set the
  weekday weights of every item.
- :class:`DemandForecaster`, one per item or category: a level (units per
  average day) as order lines per day times units per order line, each the
  ratio of two exponentially weighted sums: order lines over the rhythm's
  weights of their days (quick to follow: how often the item is bought), and
  units over order lines (slow: how much a buyer takes, which a few
  wholesale orders would otherwise swing; a day's units count in full only
  up to ``LUMP_CAP`` times the units per line learned so far), so a day the
  rhythm expects nothing on (a Saturday) teaches nothing; and a variance-to-mean ratio of
  the daily units for a negative binomial forecast distribution: expected
  value, median and the 80 % interval (quantiles .1 and .9) per day ahead.

A series learns one day at a time (``learn_one(units, day, rhythm, lines)``,
days as integers, e.g. days since 1970 in the shop's time zone, ``lines``
the purchase events that bought them); days it skipped are learned as days
without a sale, so a worker only touches the series that sold. Its state is
seven numbers (``to_list``/``from_list``), about 150 bytes as JSON.

>>> rhythm = WeeklyRhythm()
>>> f = DemandForecaster()
>>> for day in range(70):        # day 0 is a Thursday (1970-01-01 was one)
...     units = 0 if day % 7 == 2 else 10   # nothing on Saturdays
...     rhythm.learn_one(units, day)
...     f.learn_one(units, day, rhythm)
>>> [round(w, 2) for w in rhythm.weights]   # Monday first
[1.17, 1.17, 1.17, 1.17, 1.17, 0.0, 1.17]
>>> [round(d.expected, 1) for d in f.forecast(7, rhythm)]   # from day 70, a Thursday
[10.0, 10.0, 0.0, 10.0, 10.0, 10.0, 10.0]
>>> d = f.forecast(1, rhythm)[0]   # a Poisson at least: 10 a day is not certain
>>> (d.day, d.low, d.median, d.high)
(70, 6.72, 10, 13.3)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# The ufuncs' scalar kernels without their dispatch (a quarter of the time, same
# results), for the reference nb_cdf_python (the compiled nb_cdf calls their C).
from scipy.special.cython_special import betainc, gammaincc

WEEKDAYS = 7
# Tuned on the 64 origins before the online-retail protocol's (backtest/demand_eval.py):
# the half lives of order lines per day and of units per line by RMSSE (7, 10, 14, 21 by 42,
# 63, 84 tried), and the nominal mass of the quantile levels that made the interval cover
# 80 % of days there (0.6, 0.65, 0.7, 0.8 tried). The daily errors that give the interval
# its width are weighed over ERROR_HALF_LIFE_DAYS.
HALF_LIFE_DAYS = 10.0
UNITS_PER_LINE_HALF_LIFE_DAYS = 63.0
ERROR_HALF_LIFE_DAYS = 21.0
INTERVAL_MASS = 0.7
# A day's units count towards units per line in full up to LUMP_CAP times what its order
# lines would buy at the units per line learned so far, and LUMP_KEEP of the units above
# that: one wholesale order swings a slow mean for months. Tuned on the same origins by
# RMSSE, with the rhythm then learned from each purchase's root units (no cap .8204; caps
# 4, 6, 8, 10 at LUMP_KEEP 0: .8199, .8197, .8197, .8198; at cap 6, LUMP_KEEP 0, .25, .5:
# .81966, .81966, .8198, .25 taken for its smaller bias, -14.5 % against -17.0 %).
LUMP_CAP = 6.0
LUMP_KEEP = 0.25
THURSDAY = 3  # 1970-01-01, day 0, was a Thursday (Monday = 0)
# What the rhythm learns of a day: each purchase's units as their square root, in
# thousandths (whole numbers: the same sum in any order), summed over the day as they
# come, so that a few wholesale orders do not set every item's weekdays. Tuned on the
# same origins by RMSSE: the rhythm learned from units .8212, from order lines .8213,
# from root units of each purchase .8204 (of each item's day .8203, which only a close
# holding every series that sold on the day could sum).
ROOT_SCALE = 1000
ROOTS = tuple(round(ROOT_SCALE * math.sqrt(q)) for q in range(1024))


def root_units(quantity: int) -> int:
    """A purchase's share of the day total that teaches the shop's rhythm:
    ``ROOT_SCALE`` x the square root of its units, rounded.

    >>> root_units(1), root_units(4), root_units(2), root_units(5000)
    (1000, 2000, 1414, 70711)
    """
    if 0 <= quantity < 1024:
        return ROOTS[quantity]
    return round(ROOT_SCALE * math.sqrt(max(quantity, 0)))


def weekday(day: int) -> int:
    """Monday = 0 for a day counted from 1970-01-01."""
    return (day + THURSDAY) % WEEKDAYS


@dataclass(frozen=True, slots=True)
class DayForecast:
    """One day ahead: expected units, the median and the 80 % interval (q .1 .. q .9)."""

    day: int
    expected: float
    low: float
    median: int
    high: float

    def to_dict(self) -> dict:
        return {"day": self.day, "expected": round(self.expected, 4), "q10": self.low,
                "q50": self.median, "q90": self.high}


class WeeklyRhythm:
    """Weekday weights (mean 1 over the week) from exponentially weighted
    daily totals; before a full week is seen every weekday weighs 1."""

    def __init__(self, half_life_days: float = 182.0) -> None:
        self.decay = 0.5 ** (1.0 / half_life_days)
        self.totals = [0.0] * WEEKDAYS
        self.days = [0.0] * WEEKDAYS
        self.weights = [1.0] * WEEKDAYS

    def learn_one(self, units: float, day: int) -> None:
        d = weekday(day)
        # Each weekday decays once a week, so the half life is in days.
        week = self.decay ** WEEKDAYS
        self.totals[d] = self.totals[d] * week + units
        self.days[d] = self.days[d] * week + 1.0
        if all(self.days):
            means = [t / n for t, n in zip(self.totals, self.days)]
            total = sum(means)
            if total > 0:
                self.weights = [WEEKDAYS * m / total for m in means]

    def to_list(self) -> list[float]:
        return [*self.totals, *self.days]

    @classmethod
    def from_list(cls, values: list[float], half_life_days: float = 182.0) -> "WeeklyRhythm":
        r = cls(half_life_days)
        r.totals, r.days = list(values[:WEEKDAYS]), list(values[WEEKDAYS:2 * WEEKDAYS])
        if all(r.days):
            means = [t / n for t, n in zip(r.totals, r.days)]
            total = sum(means)
            if total > 0:
                r.weights = [WEEKDAYS * m / total for m in means]
        return r


def zero_days_python(demand: float, total: float, squares: float, expected: float, decay: float,
                     errors: float, weights: list[float], first: int, days: int) -> tuple[float, float, float]:
    """``days`` days without a sale from weekday ``first`` on (Monday = 0): the
    forecaster's weight ``total`` and its decayed squared errors and expected
    values, the day's expected units being ``demand`` (decaying) / ``total`` x
    the weekday's weight. The reference for :mod:`models.demand_days`.

    >>> zero_days_python(2.0, 1.0, 0.0, 0.0, 0.5, 1.0, [1.0] * 7, 0, 2)
    (1.75, 4.444444444444445, 2.6666666666666665)
    """
    d = first
    for _ in range(days):
        w = weights[d]
        if total > 0:
            mean = demand / total * w
            squares = squares * errors + mean * mean
            expected = expected * errors + mean
        demand *= decay
        total = total * decay + w
        d = d + 1 if d < WEEKDAYS - 1 else 0
    return total, squares, expected


class DayLearnerPython:
    """What a series' forecaster keeps (seven numbers and its settings) and how a
    day moves them: the reference for :class:`models.demand_days.DayLearner`,
    which does the same in C (a day close learns a day of every series that sold)."""

    __slots__ = ("half_life_days", "units_half_life_days", "spread", "levels", "lump_cap", "lump_keep",
                 "lines", "weight", "units", "unit_lines", "squares", "expected", "last_day", "_decay", "_slow",
                 "_errors")

    def __init__(self, half_life_days: float, spread: float, mass: float, units_half_life_days: float,
                 lump_cap: float, lump_keep: float, error_half_life_days: float) -> None:
        self.half_life_days = half_life_days
        self.lump_cap = lump_cap
        self.lump_keep = lump_keep
        self.units_half_life_days = units_half_life_days
        self.spread = spread
        self.levels = (0.5 - mass / 2, 0.5 + mass / 2)
        self._decay = 0.5 ** (1.0 / half_life_days)
        self._slow = 0.5 ** (1.0 / units_half_life_days)
        self._errors = 0.5 ** (1.0 / error_half_life_days)
        self.lines = 0.0       # decayed order lines
        self.weight = 0.0      # decayed weekday weights of the same days
        self.units = 0.0       # decayed units, slowly
        self.unit_lines = 0.0  # decayed order lines, as slowly (units per line: their ratio)
        self.squares = 0.0     # decayed squared errors of the one-day-ahead expected value
        self.expected = 0.0    # decayed one-day-ahead expected values (the squares' scale)
        self.last_day: int | None = None

    @property
    def level(self) -> float:
        if self.weight <= 0 or self.unit_lines <= 0:
            return 0.0
        return self.lines / self.weight * self.units / self.unit_lines

    def dispersion(self) -> float:
        """Variance over mean of a day's units (1 = Poisson), times ``spread``."""
        if self.expected <= 0:
            return 1.0
        return max(1.0, self.spread * self.squares / self.expected)

    def learn_one(self, units: float, day: int, rhythm: WeeklyRhythm, lines: float | None = None) -> None:
        """Learn ``units`` sold on ``day`` in ``lines`` order lines (purchase
        events; one when not given and something sold, and then no lump cap:
        the count is a guess); days since the last one learned count as 0."""
        last, weights = self.last_day, rhythm.weights
        if last is not None:
            if day <= last:
                raise ValueError(f"day {day} is not after the last day learned ({last})")
            if day > last + 1:
                self._learn_zeros(last + 1, min(day, last + 366), weights)
        counted = lines is not None
        if lines is None:
            lines = 1.0 if units > 0 else 0.0
        weight = weights[(day + THURSDAY) % WEEKDAYS]
        decay, slow, total, unit_lines = self._decay, self._slow, self.weight, self.unit_lines
        if total > 0:
            mean = self.lines / total * self.units / unit_lines * weight if unit_lines > 0 else 0.0
            errors = self._errors
            self.squares = self.squares * errors + (units - mean) ** 2
            self.expected = self.expected * errors + mean
        self.lines = self.lines * decay + lines
        self.weight = total * decay + weight
        if counted and unit_lines > 0 and units > 0:  # a lump: lump_keep of what passes lump_cap x the usual
            cap = self.lump_cap * self.units / unit_lines * lines
            if units > cap:
                units = cap + self.lump_keep * (units - cap)
        self.units = self.units * slow + units
        self.unit_lines = unit_lines * slow + lines
        self.last_day = day

    def _learn_zeros(self, start: int, end: int, weights: list[float]) -> None:
        """The days start..end-1 (end > start) learned as days without a sale, on
        local floats: most days of most series are days without a sale."""
        decay, errors = self._decay, self._errors
        total, squares, expected, unit_lines = self.weight, self.squares, self.expected, self.unit_lines
        # Units per line do not move on a day without a sale: the loop follows
        # lines x units per line, decayed like lines.
        demand = self.lines * (self.units / unit_lines if unit_lines > 0 else 0.0)
        days = end - start
        total, squares, expected = zero_days(demand, total, squares, expected, decay, errors, weights,
                                             (start + THURSDAY) % WEEKDAYS, days)
        self.lines *= decay ** days
        self.weight, self.squares, self.expected = total, squares, expected
        slow = self._slow ** days
        self.units *= slow
        self.unit_lines = unit_lines * slow


def nb_cdf_python(k: int, mean: float, phi: float) -> float:
    """P(units <= k) under the negative binomial of :func:`nb_quantiles`: the
    reference for ``models.demand_days.nb_cdf``, the same in C (``nb_cdf``
    is the compiled one where it is built).

    >>> round(nb_cdf_python(2, 2.0, 1.0), 4), round(nb_cdf_python(0, 2.0, 5.0), 4)
    (0.6767, 0.4472)
    """
    if k < 0:
        return 0.0
    if mean <= 1e-9:
        return 1.0
    if phi <= 1.0 + 1e-6:
        return gammaincc(k + 1, mean)
    q = 1.0 / phi
    return betainc(mean * q / (1.0 - q), k + 1, q)


try:  # built by the install (setup.py); without a C compiler the references serve, slower
    from models.demand_days import DayLearner, nb_cdf, zero_days
except ImportError:
    DayLearner, nb_cdf, zero_days = DayLearnerPython, nb_cdf_python, zero_days_python
COMPILED = DayLearner is not DayLearnerPython


class DemandForecaster(DayLearner):  # type: ignore[misc, valid-type]
    """(Order lines per day x units per line) x weekday weight, with a
    negative binomial around it.

    ``half_life_days``: how fast order lines per day follow demand;
    ``units_half_life_days``: how fast units per line do; ``spread``: a
    factor on the learned variance-to-mean ratio; ``mass``: the nominal mass
    between the quantile levels given as the 80 % interval (``low`` and
    ``high``). A discrete, mostly-zero distribution's nominal 80 % covers
    more than 80 % of days, so ``INTERVAL_MASS`` is the mass that covered
    80 % on origins before the online-retail protocol's
    (``backtest/demand_eval.py``).

    >>> f, flat = DemandForecaster(), WeeklyRhythm()
    >>> for day in range(28):   # two orders of 5 a day, then one of 20
    ...     f.learn_one(10 if day < 21 else 20, day, flat, lines=2 if day < 21 else 1)
    >>> round(f.level, 2)   # fewer orders show within days, their size only slowly
    11.54
    >>> g = DemandForecaster()
    >>> for day in range(30):   # one order of 2 a day, then a wholesale order of 200
    ...     g.learn_one(2 if day < 29 else 200, day, flat, lines=1)
    >>> round(g.units / g.unit_lines, 2)   # 200 counts as 12 + (200 - 12) / 4 (uncapped: 9.71)
    4.22
    """

    __slots__ = ()

    def __init__(self, half_life_days: float = HALF_LIFE_DAYS, spread: float = 1.0,
                 mass: float = INTERVAL_MASS,
                 units_half_life_days: float = UNITS_PER_LINE_HALF_LIFE_DAYS,
                 lump_cap: float = LUMP_CAP, lump_keep: float = LUMP_KEEP) -> None:
        super().__init__(half_life_days, spread, mass, units_half_life_days, lump_cap, lump_keep,
                         ERROR_HALF_LIFE_DAYS)

    def forecast(self, horizon: int, rhythm: WeeklyRhythm) -> list[DayForecast]:
        """The ``horizon`` days after the last day learned."""
        start = (self.last_day if self.last_day is not None else -1) + 1
        level, phi = self.level, self.dispersion()
        out = []
        for day in range(start, start + horizon):
            mean = level * rhythm.weights[weekday(day)]
            low, median, high = nb_quantiles(mean, phi, *self.levels)
            out.append(DayForecast(day, mean, low, median, high))
        return out

    def to_list(self) -> list[float]:
        return [self.lines, self.weight, self.units, self.unit_lines, self.squares, self.expected,
                -1 if self.last_day is None else self.last_day]

    @classmethod
    def from_list(cls, values: list[float], half_life_days: float = HALF_LIFE_DAYS, spread: float = 1.0,
                  mass: float = INTERVAL_MASS,
                  units_half_life_days: float = UNITS_PER_LINE_HALF_LIFE_DAYS) -> "DemandForecaster":
        """What ``to_list`` gave; a state of the model before order lines (units,
        weight, squares, expected, last day) keeps its level, as one unit a line."""
        f = cls(half_life_days, spread, mass, units_half_life_days)
        if len(values) == 5:
            units, weight, squares, expected, last = (float(v) for v in values)
            values = [units, weight, units, units, squares, expected, last]
        f.lines, f.weight, f.units, f.unit_lines, f.squares, f.expected = (float(v) for v in values[:6])
        f.last_day = None if values[6] < 0 else int(values[6])
        return f


QUANTILES = (0.1, 0.5, 0.9)
_EXACT_UP_TO = 60.0  # above this mean, quantiles by bisection on the CDF


def nb_upper(mean: float, phi: float, level: float, at_most: int | None = None) -> int:
    """The smallest whole k with P(units <= k) >= ``level`` (by bisection: a
    far quantile of a lumpy series lies hundreds of units out); ``at_most``: a
    k known to have P(units <= k) >= ``level`` already, where the search may start.

    >>> nb_upper(2.0, 1.0, 0.9), nb_upper(2.0, 5.0, 0.99), nb_upper(2.0, 5.0, 0.99, at_most=40)
    (4, 15, 15)
    """
    if mean <= 1e-9:
        return 0
    if at_most is not None:
        high = at_most
    else:
        high = max(1, int(mean))
        while nb_cdf(high, mean, phi) < level:
            high *= 2
    low = -1  # cdf(low) < level <= cdf(high)
    while high - low > 1:
        mid = (low + high) // 2
        if nb_cdf(mid, mean, phi) >= level:
            high = mid
        else:
            low = mid
    return high


def _mid_bin(mean: float, phi: float, level: float) -> float:
    k = nb_upper(mean, phi, level)
    below = nb_cdf(k - 1, mean, phi)
    mass = nb_cdf(k, mean, phi) - below
    return round(max(0.0, k - 0.5 + (level - below) / mass), 2) if mass > 0 else float(k)


def nb_quantiles(mean: float, phi: float, lower: float = 0.1, upper: float = 0.9) -> tuple[float, int, float]:
    """Quantile ``lower``, the median and quantile ``upper`` of a negative
    binomial with this mean and variance ``phi * mean`` (Poisson when
    ``phi`` is 1).

    The median is a whole number of units. The interval's ends are quantiles
    of k units spread evenly over [k - 1/2, k + 1/2): an interval of whole
    units holds at least 80 % of the mass, often far more on slow sellers
    (all of a mostly-zero day's), so it would cover too many days; this one
    covers 80 % on average (``[0.4, 3.2]`` holds 1, 2 and 3 units).

    >>> nb_quantiles(0.0, 3.0)
    (0.0, 0, 0.0)
    >>> nb_quantiles(2.0, 1.0)
    (0.24, 2, 3.98)
    >>> nb_quantiles(0.3, 4.0)   # a slow seller: mostly days without a sale
    (0.0, 0, 0.95)
    """
    if mean <= 1e-9:
        return 0.0, 0, 0.0
    if mean > _EXACT_UP_TO:  # a long walk through the mass: bisect on the CDF instead
        return (_mid_bin(mean, phi, lower), nb_upper(mean, phi, 0.5 - 1e-12), _mid_bin(mean, phi, upper))
    if phi <= 1.0 + 1e-6:
        p = math.exp(-mean)
        size, fail = 0.0, 0.0
    else:
        q = 1.0 / phi                # success probability
        size = mean * q / (1.0 - q)
        fail = 1.0 - q
        p = q ** size
    below, k = 0.0, 0               # F(k - 1) and k
    low = median = high = None
    while k <= 100_000:
        cdf = below + p
        if low is None and cdf >= lower:
            low = max(0.0, k - 0.5 + (lower - below) / p)
        if median is None and cdf >= 0.5 - 1e-12:
            median = k
        if cdf >= upper:
            high = k - 0.5 + (upper - below) / p
            break
        below = cdf
        p *= mean / (k + 1) if fail == 0.0 else (k + size) / (k + 1) * fail
        k += 1
        if p <= 0.0:
            break
    low = float(k) if low is None else low
    high = float(k) if high is None else high
    return round(low, 2), k if median is None else median, round(high, 2)
