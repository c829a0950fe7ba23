"""Daily demand forecasts for intermittent retail demand with a weekly rhythm.

Two learners, river's verbs, no I/O:

- :class:`WeeklyRhythm`, shared by every series of a shop: how a day's units
  split over the weekdays, learned from the shop's daily totals (a shop that
  never trades on Saturdays learns a Saturday weight of 0). Pooled because a
  single item sells on too few days to learn seven weights of its own.
- :class:`DemandForecaster`, one per item or category: a level (units per
  average day) as the ratio of two exponentially weighted sums, of units sold
  and of the rhythm's weights of the days they were sold on, so a day the
  rhythm expects nothing on (a Saturday) teaches nothing, and a
  variance-to-mean ratio of the daily units for a negative binomial
  forecast distribution: expected value, median and the 80 % interval
  (quantiles .1 and .9) per day ahead.

A series learns one day at a time (``learn_one(units, day)``, days as
integers, e.g. days since 1970 in the shop's time zone); days it skipped are
learned as days without a sale, so a worker only touches the series that
sold. Its state is six numbers (``to_list``/``from_list``), about 100 bytes
as JSON.

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
(70, 6, 10, 14)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

WEEKDAYS = 7
THURSDAY = 3  # 1970-01-01, day 0, was a Thursday (Monday = 0)


def weekday(day: int) -> int:
    """Monday = 0 for a day counted from 1970-01-01."""
    return (day + THURSDAY) % WEEKDAYS


@dataclass(frozen=True, slots=True)
class DayForecast:
    """One day ahead: expected units, the median and the 80 % interval (q .1 .. q .9)."""

    day: int
    expected: float
    low: int
    median: int
    high: int

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
        r.totals, r.days = list(values[:WEEKDAYS]), list(values[WEEKDAYS:])
        if all(r.days):
            means = [t / n for t, n in zip(r.totals, r.days)]
            total = sum(means)
            if total > 0:
                r.weights = [WEEKDAYS * m / total for m in means]
        return r


class DemandForecaster:
    """Level x weekday weight, with a negative binomial around it.

    ``half_life_days``: how fast the level follows demand; ``spread``: a
    factor on the learned variance-to-mean ratio (the interval's width),
    both tuned on origins before the online-retail protocol's
    (``backtest/demand_eval.py``).
    """

    __slots__ = ("half_life_days", "spread", "units", "weight", "squares", "expected", "last_day", "_decay")

    def __init__(self, half_life_days: float = 14.0, spread: float = 1.0) -> None:
        self.half_life_days = half_life_days
        self.spread = spread
        self._decay = 0.5 ** (1.0 / half_life_days)
        self.units = 0.0     # decayed units sold
        self.weight = 0.0    # decayed weekday weights of the same days
        self.squares = 0.0   # decayed squared errors of the one-day-ahead expected value
        self.expected = 0.0  # decayed one-day-ahead expected values (the squares' scale)
        self.last_day: int | None = None

    @property
    def level(self) -> float:
        return self.units / self.weight if self.weight > 0 else 0.0

    def learn_one(self, units: float, day: int, rhythm: WeeklyRhythm) -> None:
        """Learn ``units`` sold on ``day``; days since the last one learned count as 0."""
        if self.last_day is not None:
            if day <= self.last_day:
                raise ValueError(f"day {day} is not after the last day learned ({self.last_day})")
            for skipped in range(self.last_day + 1, min(day, self.last_day + 366)):
                self._learn(0.0, rhythm.weights[weekday(skipped)])
        self._learn(float(units), rhythm.weights[weekday(day)])
        self.last_day = day

    def _learn(self, units: float, weight: float) -> None:
        decay = self._decay
        if self.weight > 0:
            mean = self.units / self.weight * weight
            self.squares = self.squares * decay + (units - mean) ** 2
            self.expected = self.expected * decay + mean
        self.units = self.units * decay + units
        self.weight = self.weight * decay + weight

    def dispersion(self) -> float:
        """Variance over mean of a day's units (1 = Poisson), times ``spread``."""
        if self.expected <= 0:
            return 1.0
        return max(1.0, self.spread * self.squares / self.expected)

    def forecast(self, horizon: int, rhythm: WeeklyRhythm) -> list[DayForecast]:
        """The ``horizon`` days after the last day learned."""
        start = (self.last_day if self.last_day is not None else -1) + 1
        level, phi = self.level, self.dispersion()
        out = []
        for day in range(start, start + horizon):
            mean = level * rhythm.weights[weekday(day)]
            low, median, high = nb_quantiles(mean, phi)
            out.append(DayForecast(day, mean, low, median, high))
        return out

    def to_list(self) -> list[float]:
        return [self.units, self.weight, self.squares, self.expected,
                -1 if self.last_day is None else self.last_day]

    @classmethod
    def from_list(cls, values: list[float], half_life_days: float = 14.0, spread: float = 1.0) -> "DemandForecaster":
        f = cls(half_life_days, spread)
        f.units, f.weight, f.squares, f.expected = (float(v) for v in values[:4])
        f.last_day = None if values[4] < 0 else int(values[4])
        return f


QUANTILES = (0.1, 0.5, 0.9)
_EXACT_UP_TO = 60.0  # above this mean the normal approximation is used


def nb_quantiles(mean: float, phi: float) -> tuple[int, int, int]:
    """Quantiles .1, .5 and .9 of a negative binomial with this mean and
    variance ``phi * mean`` (Poisson when ``phi`` is 1).

    >>> nb_quantiles(0.0, 3.0)
    (0, 0, 0)
    >>> nb_quantiles(2.0, 1.0)
    (0, 2, 4)
    >>> nb_quantiles(2.0, 5.0)
    (0, 1, 6)
    """
    if mean <= 1e-9:
        return 0, 0, 0
    if mean > _EXACT_UP_TO:
        sd = math.sqrt(phi * mean)
        return (max(0, round(mean - 1.2816 * sd)), max(0, round(mean)), max(0, round(mean + 1.2816 * sd)))
    if phi <= 1.0 + 1e-6:
        p = math.exp(-mean)
        ratio = None
    else:
        q = 1.0 / phi            # success probability
        r = mean * q / (1.0 - q)  # size
        p = q ** r
        ratio = (r, 1.0 - q)
    cdf, k = p, 0
    found: list[int] = []
    targets = iter(QUANTILES)
    target = next(targets)
    while True:
        while cdf >= target - 1e-12:
            found.append(k)
            target = next(targets, 2.0)
            if target > 1.0:
                return found[0], found[1], found[2]
        if ratio is None:
            p *= mean / (k + 1)
        else:
            p *= (k + ratio[0]) / (k + 1) * ratio[1]
        k += 1
        cdf += p
        if k > 100_000:  # a numerically vanishing tail: stop where we are
            while len(found) < 3:
                found.append(k)
            return found[0], found[1], found[2]
