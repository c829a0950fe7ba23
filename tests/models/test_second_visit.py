"""No second visit: a customer seen once, their silence, and the population's returns."""

from __future__ import annotations

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from models.churn import ChurnRisk
from models.second_visit import SecondVisit

DAY = 86400.0


def test_risk_starts_at_the_share_who_never_return_and_grows_with_silence() -> None:
    model = SecondVisit(return_share=0.2, gap_days=10.0)
    assert model.score_one(0.0) == pytest.approx(0.8)
    risks = [model.score_one(d * DAY) for d in (0, 5, 10, 30, 365)]
    assert risks == sorted(risks) and risks[-1] > 0.98
    # At the median gap half of those who will return have done so.
    assert model.returned_by(10 * DAY) == pytest.approx(0.5)


def test_silence_counts_against_how_soon_new_customers_usually_return() -> None:
    quick, slow = SecondVisit(gap_days=3.0), SecondVisit(gap_days=30.0)
    assert quick.score_one(10 * DAY) > slow.score_one(10 * DAY)
    assert quick.due_after() < slow.due_after()


def test_a_customer_seen_once_outranks_a_returning_regular_of_the_same_silence() -> None:
    # On a real purchase log they are the least likely to come back: BG/NBD gives them 0.
    # (A regular of two visits a day is surely gone after a month, and scores so.)
    once, regular = SecondVisit(), ChurnRisk()
    assert regular.score_one(0, 0.0, 30 * DAY) == 0.0
    for days in (1, 3, 7):
        assert once.score_one(days * DAY) > regular.score_one(10, 20 * DAY, days * DAY)


@given(share=st.floats(0.01, 0.99), gap=st.floats(0.1, 200), shape=st.floats(0.2, 5),
       threshold=st.floats(0.05, 0.99), silence=st.floats(0, 1000))
@hsettings(max_examples=200, deadline=None)
def test_risk_is_a_probability_and_the_alert_waits_for_threshold_and_median_gap(
    share: float, gap: float, shape: float, threshold: float, silence: float,
) -> None:
    model = SecondVisit(share, gap, shape, threshold)
    risk = model.score_one(silence * DAY)
    assert 0.0 <= risk <= 1.0
    assert model.score_one((silence + 1) * DAY) >= risk
    due = model.due_after()
    assert due >= gap * DAY * (1 - 1e-9)
    assert model.score_one(due) >= threshold - 1e-6
    if due > gap * DAY * (1 + 1e-9):  # the threshold, not the median gap, set it
        assert model.score_one(due) == pytest.approx(threshold, abs=1e-6)


@pytest.mark.parametrize("kwargs", [dict(return_share=0.0), dict(return_share=1.0),
                                    dict(gap_days=0.0), dict(shape=-1.0)])
def test_impossible_parameters_are_refused(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        SecondVisit(**kwargs)
