"""models/demand.py: weekly rhythm, level, intervals, state size."""

from __future__ import annotations

import orjson
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from models.demand import DemandForecaster, WeeklyRhythm, nb_quantiles, weekday

MONDAY = 4  # 1970-01-05


def _planted(days: int, seed: int = 3) -> list[int]:
    """Weekdays 8 a day on average, Sunday 3, Saturday closed."""
    rng = np.random.default_rng(seed)
    rate = {5: 0.0, 6: 3.0}
    return [int(rng.poisson(rate.get(weekday(d), 8.0))) for d in range(MONDAY, MONDAY + days)]


def test_it_learns_a_planted_weekly_pattern():
    rhythm, f = WeeklyRhythm(), DemandForecaster()
    for d, units in enumerate(_planted(140), start=MONDAY):
        rhythm.learn_one(units, d)
        f.learn_one(units, d, rhythm)
    week = f.forecast(7, rhythm)
    assert [weekday(x.day) for x in week] == [0, 1, 2, 3, 4, 5, 6]
    assert week[5].expected == 0.0 and week[5].high == 0.0
    assert 6.5 < week[0].expected < 9.5 and 2.0 < week[6].expected < 4.0
    for x in week[:5]:
        assert x.low < x.median < x.high


def test_days_without_a_sale_lower_the_level_and_the_interval_holds_the_mass():
    rhythm, f = WeeklyRhythm(), DemandForecaster()
    f.learn_one(10, MONDAY, rhythm)
    before = f.level
    f.learn_one(1, MONDAY + 30, rhythm)  # 29 days without a sale in between
    assert f.level < before / 2
    with pytest.raises(ValueError, match="not after"):
        f.learn_one(1, MONDAY + 30, rhythm)


def test_its_state_is_small_and_round_trips():
    rhythm, f = WeeklyRhythm(), DemandForecaster()
    for d, units in enumerate(_planted(60), start=MONDAY):
        rhythm.learn_one(units, d)
        f.learn_one(units, d, rhythm)
    blob = orjson.dumps(f.to_list())
    assert len(blob) < 200
    g = DemandForecaster.from_list(orjson.loads(blob))
    r = WeeklyRhythm.from_list(orjson.loads(orjson.dumps(rhythm.to_list())))
    assert g.forecast(7, r) == f.forecast(7, rhythm)


def test_a_state_from_before_order_lines_keeps_its_level():
    rhythm = WeeklyRhythm()
    old = DemandForecaster.from_list([30.0, 4.0, 12.0, 6.0, 100])  # units, weights, squares, expected, day
    assert old.level == 7.5 and old.last_day == 100 and old.dispersion() == 2.0
    old.learn_one(7.5, 101, rhythm)
    assert old.level == pytest.approx(7.5, rel=0.02)  # it learns on, a unit a line at first


def test_the_same_units_in_fewer_orders_forecast_less_once_orders_thin_out():
    rhythm = WeeklyRhythm()
    steady, thinning = DemandForecaster(), DemandForecaster()
    for d in range(MONDAY, MONDAY + 42):
        steady.learn_one(12, d, rhythm, lines=4)
        thinning.learn_one(12, d, rhythm, lines=4 if d < MONDAY + 35 else 1)
    assert steady.level == pytest.approx(12.0)
    assert thinning.level < steady.level  # one big order a day lately: less often bought


@settings(max_examples=200, deadline=None)
@given(st.floats(0.0, 500.0), st.floats(1.0, 20.0))
def test_quantiles_are_ordered(mean, phi):
    low, median, high = nb_quantiles(mean, phi)
    assert 0.0 <= low <= high
    assert low - 0.5 <= median <= high + 0.5


def test_negative_binomial_interval_covers_80_percent_of_draws():
    rng = np.random.default_rng(5)
    mean, phi = 4.0, 3.0
    p = 1 / phi
    draws = rng.negative_binomial(mean * p / (1 - p), p, 20000)
    low, median, high = nb_quantiles(mean, phi)
    assert median == int(np.median(draws))
    assert 0.75 < np.mean((draws >= low) & (draws <= high)) < 0.87


@pytest.mark.parametrize("mean,phi", [(0.3, 4.0), (2.0, 1.0), (5.0, 3.0), (40.0, 10.0)])
def test_cdf_and_far_quantile_match_draws(mean, phi):
    from models.demand import nb_cdf, nb_upper

    rng = np.random.default_rng(11)
    p = 1 / phi
    draws = rng.negative_binomial(mean * p / (1 - p), p, 100_000) if phi > 1 else rng.poisson(mean, 100_000)
    for k in (0, 1, 3, 10, 60):
        assert abs(nb_cdf(k, mean, phi) - np.mean(draws <= k)) < 0.01
    k = nb_upper(mean, phi, 0.99)
    assert nb_cdf(k, mean, phi) >= 0.99 > nb_cdf(k - 1, mean, phi)
