"""Demand on the stream: a planted weekly series through the Processor, a surge alert."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import numpy as np
import orjson
import pytest

from models.demand import weekday
from stream.config import Settings
from stream.demand import DayClock, DemandBook, day_iso
from stream.events import Event
from stream.outputs import Message
from stream.processor import Processor
from stream.state import MemoryState

MONDAY = 1_704_067_200.0  # 2024-01-01 00:00 UTC, a Monday
DAY = 86400.0
SURGE_DAY = 63  # a Monday, ten weeks in


def planted(weeks: int = 10, seed: int = 1) -> list[Message]:
    """Item "mug" sells Poisson(6) on weekdays, 2 on Sundays, never on Saturdays;
    on SURGE_DAY it sells 60 by noon. Other items sell now and then."""
    rng = np.random.default_rng(seed)
    out: list[Message] = []
    n = 0

    def buy(item: str, ts: float, units: int) -> None:
        nonlocal n
        event = {"event_id": f"e{n}", "type": "purchase", "user_id": f"u{n % 13}", "item_id": item,
                 "ts": ts, "price": 4.0, "quantity": units, "category": "kitchen"}
        out.append(Message(orjson.dumps(event), "purchases", 0, n))
        n += 1

    for d in range(weeks * 7 + 1):
        wd = d % 7
        rate = 0 if wd == 5 else (2 if wd == 6 else 6)
        sales = 12 if d == SURGE_DAY else int(rng.poisson(rate))
        for k in range(sales):
            buy("mug", MONDAY + d * DAY + 9 * 3600 + k * 600, 5 if d == SURGE_DAY else 1)
        if wd != 5 and rng.random() < 0.3:
            buy("plate", MONDAY + d * DAY + 15 * 3600, 1)
    return out


def run(processor: Processor, messages: list[Message], size: int = 50) -> list:
    async def go() -> list:
        return [await processor.handle(messages[i:i + size]) for i in range(0, len(messages), size)]
    return asyncio.run(go())


def test_a_planted_weekly_series_is_forecast_and_its_surge_alerts_once_with_reasons():
    settings = replace(Settings(), surge_min_units=20, surge_level=0.99)
    state = MemoryState(settings)
    results = run(Processor(state, settings), planted())
    alerts = [a for r in results for a in r.alerts if a.kind == "demand_surge"]
    mug = [a for a in alerts if a.alert_id.startswith("demand_surge:item:mug")]
    assert len(mug) == 1, [a.alert_id for a in alerts]
    a = mug[0].to_dict()
    day = day_iso(int(MONDAY // DAY) + SURGE_DAY)
    assert a["alert_id"] == f"demand_surge:item:mug:{day}"
    reasons = {r["name"]: r for r in a["reasons"]}
    assert reasons["item"]["value"] == "mug"
    assert reasons["units_today"]["value"] > reasons["forecast_q99"]["value"] == a["threshold"]
    assert 3 < reasons["units_today"]["normal"] < 10  # the day's expected units
    assert reasons["since"]["value"] == MONDAY + SURGE_DAY * DAY + 9 * 3600
    # The category holds the mug too: it surges the same day, once.
    assert [x.alert_id for x in alerts if "category" in x.alert_id] == [f"demand_surge:category:kitchen:{day}"]
    # Day closes publish the next seven days, Saturdays at 0.
    closed = [f for r in results for f in r.demand if f.series == "item:mug"]
    assert closed and all(f.days[0].day == f.closed_day + 1 for f in closed)
    before = [f for f in closed if f.closed_day == int(MONDAY // DAY) + SURGE_DAY - 1]
    assert len(before) == 1 and before[0].units > 0  # a Sunday
    for d in before[0].days:
        if weekday(d.day) == 5:
            assert d.expected == 0.0
        elif weekday(d.day) < 5:
            assert 3.0 < d.expected < 12.0
    # After the surge the level has risen: the next week expects more.
    week = state.demand.forecast("item:mug")
    assert week is not None
    doc = week.to_dict()
    assert doc["item"] == "mug" and len(doc["forecast"]) == 7
    assert doc["forecast"][0]["expected"] > before[0].days[0].expected


def test_replay_and_live_keep_the_same_state():
    """Publishing forecasts (live) must not change what is learned (replay)."""
    books = []
    for live in (True, False):
        state = MemoryState()
        run(Processor(state, publish_recommendations=live), planted(weeks=4))
        books.append({k: s.to_list() for k, s in state.demand.series.items()})
    assert books[0] == books[1]


def test_late_purchases_are_counted_not_learned():
    book = DemandBook()
    book.add(Event("a", "purchase", "u", "i", MONDAY + 3600, price=1.0, quantity=2))
    book.close(MONDAY + 2 * DAY, forecast=False)
    assert book.add(Event("b", "purchase", "u", "i", MONDAY + 7200, price=1.0, quantity=3)) == []
    assert book.late_units == 3
    assert book.series["item:i"].forecaster.last_day == int(MONDAY // DAY)


def test_days_follow_the_shops_time_zone():
    london, utc = DayClock("Europe/London"), DayClock("UTC")
    summer_2330_utc = 1_719_876_600.0  # 2024-07-01 23:30 UTC = 2 July 00:30 in London
    assert london(summer_2330_utc) == utc(summer_2330_utc) + 1
    assert london(summer_2330_utc - 3600) == utc(summer_2330_utc)


@pytest.mark.services
def test_redis_keeps_the_demand_state_memory_keeps(services, redis_client):
    from stream.redis_state import RedisState
    from tests.support import isolated_settings

    messages = planted(weeks=5)
    memory = MemoryState()
    mem_results = run(Processor(memory, publish_recommendations=False), messages)
    for size in (1, 50, 400):
        settings = isolated_settings(services)

        async def go() -> tuple:
            state = RedisState(settings)
            processor = Processor(state, settings, publish_recommendations=False)
            out = [await processor.handle(messages[i:i + size]) for i in range(0, len(messages), size)]
            forecast = await state.demand_forecast("item:mug")
            await state.close()
            return out, forecast

        results, got = asyncio.run(go())
        redis_surges = [a.alert_id for r in results for a in r.alerts if a.kind == "demand_surge"]
        assert redis_surges == [a.alert_id for r in mem_results for a in r.alerts if a.kind == "demand_surge"]
        for key, series in memory.demand.series.items():
            raw = redis_client.get(f"{settings.prefix}demand:{key}")
            assert orjson.loads(raw)[0] == series.forecaster.to_list(), (size, key)
        assert got is not None and got.to_dict() == memory.demand.forecast("item:mug").to_dict()
