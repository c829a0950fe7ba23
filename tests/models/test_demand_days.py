"""The compiled days without a sale (models/demand_days.pyx) give the Python
reference's results bit for bit, and a forecaster learns the same either way."""

from __future__ import annotations

import struct

from hypothesis import example, given, settings
from hypothesis import strategies as st

import models.demand as demand
from models.demand import COMPILED, DemandForecaster, WeeklyRhythm, zero_days, zero_days_python

weight = st.floats(0.0, 3.0)
state = st.floats(0.0, 1e4)


def test_the_compiled_days_are_built() -> None:
    assert COMPILED, "models/demand_days.pyx is not built: run `bash scripts/bootstrap.sh` (needs a C compiler)"


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


def test_a_forecaster_learns_the_same_with_either(monkeypatch) -> None:
    rhythm = WeeklyRhythm()
    rhythm.weights = [1.2, 1.1, 1.0, 0.9, 1.3, 0.0, 1.5]
    sales = [(3, 4.0, 2), (4, 1.0, 1), (19, 40.0, 3), (20, 2.0, 1), (90, 7.0, 2), (400, 1.0, 1)]
    states = []
    for kernel in (zero_days, zero_days_python):
        monkeypatch.setattr(demand, "zero_days", kernel)
        f = DemandForecaster()
        for day, units, lines in sales:
            f.learn_one(units, day, rhythm, lines=lines)
        states.append(f.to_list())
    assert states[0] == states[1]
    assert states[0][4] > 0 and states[0][5] > 0  # the days without a sale were learnt
