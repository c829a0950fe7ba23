"""The compiled learning of days (models/demand_days.pyx) gives the Python
references' results bit for bit: days without a sale, a series's days
with and without sales, lumps and gaps, and the forecast's CDF."""

from __future__ import annotations

import struct

from hypothesis import example, given, settings
from hypothesis import strategies as st

import models.demand as demand
from models.demand import (COMPILED, ERROR_HALF_LIFE_DAYS, HALF_LIFE_DAYS, INTERVAL_MASS, LUMP_CAP, LUMP_KEEP,
                           UNITS_PER_LINE_HALF_LIFE_DAYS, DayLearner, DayLearnerPython, DemandForecaster,
                           WeeklyRhythm, nb_cdf, nb_cdf_python, zero_days, zero_days_python)

weight = st.floats(0.0, 3.0)
state = st.floats(0.0, 1e4)


def test_the_compiled_days_are_built() -> None:
    assert COMPILED and DemandForecaster.__mro__[1] is DayLearner, "models/demand_days.pyx is not built: run `bash scripts/bootstrap.sh` (needs a C compiler)"


@settings(max_examples=500, deadline=None)
@given(demand_=state, total=st.one_of(st.just(0.0), state), squares=state, expected=state,
       decay=st.floats(0.5, 0.999), errors=st.floats(0.5, 1.0), weights=st.lists(weight, min_size=7, max_size=7),
       first=st.integers(0, 6), days=st.integers(1, 366))
@example(demand_=1.0, total=0.0, squares=0.0, expected=0.0, decay=0.5, errors=1.0,
         weights=[0.0, 0.0, 2.225073858507e-311, 0.0, 0.0, 0.0, 0.0], first=0, days=4)  # both NaN
def test_the_compiled_days_are_the_reference(demand_, total, squares, expected, decay, errors, weights,
                                             first, days) -> None:
    args = (demand_, total, squares, expected, decay, errors, weights, first, days)
    assert bits(zero_days(*args)) == bits(zero_days_python(*args))


def bits(values: tuple[float, ...]) -> list[bytes]:
    """Each double's eight bytes: equal to the bit, NaN included (subnormal weights
    can overflow both loops to the same NaN, which == would call different)."""
    return [struct.pack("<d", v) for v in values]


SETTINGS = (HALF_LIFE_DAYS, 1.0, INTERVAL_MASS, UNITS_PER_LINE_HALF_LIFE_DAYS, LUMP_CAP, LUMP_KEEP,
            ERROR_HALF_LIFE_DAYS)
STATE = ("lines", "weight", "units", "unit_lines", "squares", "expected")


def test_a_forecaster_learns_what_the_pure_python_fallback_learns(monkeypatch) -> None:
    """Without a C compiler neither extension is built: the reference learner with
    the reference loop for days without a sale."""
    rhythm = WeeklyRhythm()
    rhythm.weights = [1.2, 1.1, 1.0, 0.9, 1.3, 0.0, 1.5]
    sales = [(3, 4.0, 2), (4, 1.0, 1), (19, 40.0, 3), (20, 2.0, 1), (90, 7.0, 2), (400, 1.0, 1)]
    compiled = DemandForecaster()
    monkeypatch.setattr(demand, "zero_days", zero_days_python)
    fallback = DayLearnerPython(*SETTINGS)
    for day, units, lines in sales:
        compiled.learn_one(units, day, rhythm, lines=lines)
        fallback.learn_one(units, day, rhythm, lines=lines)
    assert bits(tuple(getattr(compiled, n) for n in STATE)) == bits(tuple(getattr(fallback, n) for n in STATE))
    assert bits((compiled.dispersion(),)) == bits((fallback.dispersion(),))
    assert compiled.squares > 0 and compiled.expected > 0  # the days without a sale were learnt


# A series's days: (days since the last one learned, units, order lines or None for "not counted").
# A weekday the shop does not trade on weighs 0; a subnormal weight would overflow Python's
# square (OverflowError) where C's is inf, and no rhythm learns one.
rhythm_weight = st.one_of(st.just(0.0), st.floats(1e-6, 3.0))
days_learned = st.lists(st.tuples(st.integers(1, 400), st.integers(0, 5000), st.one_of(st.none(), st.integers(1, 40))),
                        min_size=1, max_size=40)


@settings(max_examples=300, deadline=None)
@given(days=days_learned, first=st.integers(-30, 20_000), weights=st.lists(rhythm_weight, min_size=7, max_size=7))
@example(days=[(1, 0, None), (6, 97, None), (174, 1, None), (400, 5, None)], first=-3,
         weights=[1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])  # a square where libm's pow is not x * x to the last bit
def test_a_compiled_series_learns_the_references_state(days, first, weights) -> None:
    rhythm = WeeklyRhythm()
    rhythm.weights = weights
    compiled, reference = DayLearner(*SETTINGS), DayLearnerPython(*SETTINGS)
    day = first
    for gap, units, lines in days:
        day += gap
        compiled.learn_one(units, day, rhythm, lines)
        reference.learn_one(units, day, rhythm, lines)
        assert bits(tuple(getattr(compiled, n) for n in STATE)) == bits(tuple(getattr(reference, n) for n in STATE))
        assert compiled.last_day == reference.last_day == day
        assert bits((compiled.level, compiled.dispersion())) == bits((reference.level, reference.dispersion()))


@settings(max_examples=500, deadline=None)
@given(k=st.integers(-2, 20_000), mean=st.one_of(st.just(0.0), st.just(1e-9), st.floats(1e-12, 1e5)),
       phi=st.one_of(st.just(1.0), st.just(1.0 + 1e-6), st.floats(1.0, 200.0)))
def test_the_compiled_cdf_is_the_reference(k, mean, phi) -> None:
    """The surge check's CDF (stream/demand_sales.pyx calls it in C): Poisson, negative
    binomial, and the edges between them."""
    assert nb_cdf is not nb_cdf_python
    assert bits((nb_cdf(k, mean, phi),)) == bits((nb_cdf_python(k, mean, phi),))


def test_both_refuse_a_day_not_after_the_last() -> None:
    rhythm = WeeklyRhythm()
    for learner in (DayLearner(*SETTINGS), DayLearnerPython(*SETTINGS)):
        assert learner.last_day is None and learner.level == 0.0
        learner.learn_one(3, 10, rhythm, 1)
        try:
            learner.learn_one(1, 10, rhythm, 1)
        except ValueError as e:
            assert str(e) == "day 10 is not after the last day learned (10)"
        else:
            raise AssertionError(f"{type(learner).__name__} learned day 10 twice")
