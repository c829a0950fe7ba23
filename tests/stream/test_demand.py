"""Demand on the stream: a planted weekly series through the Processor, a surge alert."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import numpy as np
import orjson
import pytest

from models.demand import weekday
from stream.config import Settings
from stream import demand_redis
from stream.demand import SIGNAL_TTL_DAYS, DayClock, DemandBook, day_iso
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


def test_the_rhythm_learns_each_purchase_as_root_units_and_an_old_one_in_units_is_rescaled():
    """One wholesale order of 100 on Tuesdays and one unit of each of 4 items on
    the other weekdays: root units weigh the Tuesday as 10 + 0 (not 100)
    against 4; a rhythm saved in units keeps its weights through the change."""
    book = DemandBook()
    n = 0
    for d in range(28):
        for k, units in enumerate([100] if d % 7 == 1 else [1, 1, 1, 1]):
            book.add(Event(f"e{n}", "purchase", "u", f"i{k}", MONDAY + d * DAY + 3600, price=1.0, quantity=units))
            n += 1
        book.close(MONDAY + (d + 1) * DAY + 7200, forecast=False)
    weights = book.rhythm.weights
    assert weights[1] == pytest.approx(2.5 * weights[0])  # 10 against 4 (100 against 4 in units)
    old = DemandBook()
    old.rhythm.totals, old.rhythm.days = [16.0] * 7, [1.0] * 7  # 16 units every weekday, learnt in units
    old.rhythm_in_units = True
    for k in range(4):
        old.add(Event(f"o{k}", "purchase", "u", f"i{k}", MONDAY + 3600, price=1.0, quantity=4))
    old.close(MONDAY + DAY + 7200, forecast=False)  # 16 units, root units 4 x 2000: the old sums x 500
    assert old.rhythm.weights == pytest.approx([1.0] * 7, rel=0.02) and not old.rhythm_in_units


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


def test_a_close_capped_at_fewer_series_than_sold_leaves_the_rest_to_the_next_batch(
        services, redis_client, monkeypatch):
    """On Redis a batch closes at most CLOSE_PER_BATCH series (here 2 of the 3
    that sell: mug, plate and their category); those left learn their day in
    the next batches, as they would have in one close, and nothing is lost."""
    from stream import demand_redis
    from stream.clock import EventClock
    from stream.redis_state import RedisState
    from tests.support import isolated_settings

    monkeypatch.setattr(demand_redis, "CLOSE_PER_BATCH", 2)
    messages = planted(weeks=3)

    async def go(make_state, size: int) -> None:  # type: ignore[no-untyped-def]
        state = make_state()
        clock = EventClock(idle_after_s=3600)  # sweeps close days up to the last event's
        processor = Processor(state, state.settings, clock=clock, publish_recommendations=False)
        for i in range(0, len(messages), size):
            await processor.handle(messages[i:i + size])
        for _ in range(20):  # a partial close closes one day: the days left close as the stream idles
            await processor.sweep([("purchases", 0)])
        await state.close()

    memory = MemoryState()
    asyncio.run(go(lambda: memory, len(messages)))
    assert len(memory.demand.series) == 3
    settings = isolated_settings(services)
    asyncio.run(go(lambda: RedisState(settings), 10))
    for key, series in memory.demand.series.items():
        raw = redis_client.get(f"{settings.prefix}demand:{key}")
        assert orjson.loads(raw)[0] == series.forecaster.to_list(), key


def with_signals(days: int = 12) -> list[Message]:
    """Each day: 3 views and a cart of "mug" in the morning, then 2 purchases;
    "plate" is viewed on even days and never bought."""
    out: list[Message] = []

    def send(kind: str, item: str, ts: float) -> None:
        event = {"event_id": f"s{len(out)}", "type": kind, "user_id": f"u{len(out) % 5}", "item_id": item,
                 "ts": ts, "category": "kitchen"}
        if kind == "purchase":
            event.update(price=4.0, quantity=1)
        topic = {"view": "views", "cart": "clicks", "purchase": "purchases"}[kind]
        out.append(Message(orjson.dumps(event), topic, 0, len(out)))

    for d in range(days):
        at = MONDAY + d * DAY + 8 * 3600
        for k, kind in enumerate(["view", "view", "view", "cart", "purchase", "purchase"]):
            send(kind, "mug", at + 600 * k)
        if d % 2 == 0:
            send("view", "plate", at + 5000)
    return out


def test_views_and_carts_are_published_beside_the_units_sold_and_redis_counts_them_alike(
        services, redis_client):
    from stream.redis_state import RedisState
    from tests.support import isolated_settings

    messages = with_signals()

    async def go(make_state, size: int) -> list:  # type: ignore[no-untyped-def]
        state = make_state()
        processor = Processor(state, state.settings)
        out = [await processor.handle(messages[i:i + size]) for i in range(0, len(messages), size)]
        await state.close()
        return [f.to_dict() for r in out for f in r.demand]

    memory = asyncio.run(go(lambda: MemoryState(), 7))  # about a day per batch: a close a day
    mug = [f for f in memory if f.get("item") == "mug"]
    assert len(mug) >= 8
    assert all((f["units"], f["views"], f["carts"]) == (2, 3, 1) for f in mug)
    kitchen = [f for f in memory if f.get("category") == "kitchen"]
    assert len(kitchen) == len(mug)
    for f in kitchen:  # the plate's views count toward the category on even days
        d = next(d for d in range(12) if day_iso(int(MONDAY // DAY) + d) == f["day"])
        assert (f["units"], f["views"], f["carts"]) == (2, 3 + (d % 2 == 0), 1), f
    settings = isolated_settings(services)
    live = asyncio.run(go(lambda: RedisState(settings), 7))
    assert live == memory
    # Redis keeps the days a close may still read, the last closed and the open ones,
    # each with a time to live: 12 days of views in Redis, not 12 keys (memory per series).
    closed = demand_redis.closed_through(redis_client.get(f"{settings.prefix}demand-shop"))
    kept = sorted(int(k.rsplit(b":", 1)[1]) for k in redis_client.keys(f"{settings.prefix}demand-signals:*"))
    assert closed is not None and kept[0] == closed and len(kept) <= 2, (closed, kept)
    signals = redis_client.hgetall(f"{settings.prefix}demand-signals:{closed}")
    assert signals[b"v:item:mug"] == b"3" and signals[b"c:item:mug"] == b"1"
    assert all(0 < redis_client.ttl(f"{settings.prefix}demand-signals:{d}") <= SIGNAL_TTL_DAYS * 86400
               for d in kept)


def test_a_replay_on_redis_keeps_under_a_kilobyte_per_series_and_measures_it(services, tmp_path):
    """Four weeks of views, carts and purchases: the days of views and carts no close
    reads again are dropped (kept 35 days, they alone took over 1 KB per series here)."""
    from backtest.replay import ReplayConfig, replay
    from tests.support import isolated_settings

    settings = isolated_settings(services)
    if not settings.demand:
        pytest.skip("demand is off on Redis Cluster (stream/redis_cluster.py)")
    events = tmp_path / "shop.jsonl"
    events.write_bytes(b"\n".join(m.value for m in with_signals(days=28)) + b"\n")
    memory = replay(ReplayConfig(inputs=[events], redis_url=settings.redis_url, progress=False,
                                 settings=settings)).metrics["demand_redis"]
    assert memory["series"] == 2  # the mug and its category; the plate never sold
    assert set(memory["by_key"]) >= {"demand", "demand-days", "demand-signals", "demand-shop"}
    assert 0 < memory["bytes_per_series"] < 1024, memory


# -- stock_risk: the inventory topic ---------------------------------------------

READING_AT = MONDAY + 57 * DAY + 8 * 3600  # a Tuesday morning, after eight weeks of sales


def reading(item: str, units: object, ts: float, offset: int, topic: str = "inventory") -> Message:
    return Message(orjson.dumps({"item_id": item, "units": units, "ts": ts}), topic, 0, offset)


def buys(item: str, start: float, count: int, offset: int, topic: str = "purchases") -> list[Message]:
    """``count`` purchases of 2 units, a minute apart, by "buyer"."""
    return [Message(orjson.dumps({"event_id": f"b{offset + k}", "type": "purchase", "user_id": "buyer",
                                  "item_id": item, "ts": start + 60 * k, "price": 4.0, "quantity": 2,
                                  "category": "kitchen"}), topic, 0, offset + k)
            for k in range(count)]


def stock_alerts(results: list) -> list:
    return [a for r in results for a in r.alerts if a.kind == "stock_risk"]


def test_a_stock_forecast_to_run_out_alerts_once_with_reasons_and_ample_stock_does_not():
    """The mug sells about 29 units a week: 20 on hand run out within the week."""
    state = MemoryState()
    processor = Processor(state)
    assert not stock_alerts(run(processor, planted(weeks=8)))
    results = run(processor, [reading("mug", 20, READING_AT, 0), reading("plate", 1000, READING_AT, 1)])
    assert results[0].processed == 2 and not results[0].dead_letters
    [alert] = stock_alerts(results)
    a = alert.to_dict()
    assert a["alert_id"] == "stock_risk:item:mug:2024-02-27T08:00:00Z" and a["event_id"] == f"stock:mug:{READING_AT!r}"
    reasons = {r["name"]: r for r in a["reasons"]}
    assert reasons["item"]["value"] == "mug"
    assert reasons["stock_left"]["value"] == 20.0 and reasons["sold_since_reading"]["value"] == 0.0
    assert 2.0 < reasons["days_of_cover"]["value"] == a["score"] < 7.0 == a["threshold"]
    assert reasons["expected_units"]["value"] > 20.0 and reasons["reading_ts"]["value"] == READING_AT
    # More sales against the same reading, and day closes: no second alert.
    assert not stock_alerts(run(processor, buys("mug", READING_AT + 600, 5, 10_000) + buys("plate", READING_AT, 3, 20_000)))
    assert state.demand.series["item:mug"].sold == 10
    # A restock (a newer reading) re-arms the alert; an older reading changes nothing.
    assert not stock_alerts(run(processor, [reading("mug", 500, READING_AT + 3600, 2),
                                             reading("mug", 1, READING_AT + 1800, 3)]))
    mug = state.demand.series["item:mug"]
    assert (mug.stock, mug.sold, mug.stock_ts) == (500, 0, READING_AT + 3600)


def test_sales_after_the_reading_use_up_the_stock_and_the_buyer_who_crossed_the_line_is_named():
    state = MemoryState()
    processor = Processor(state)
    run(processor, planted(weeks=8))
    # 31 units last past the week; sales before the reading are in it already.
    assert not stock_alerts(run(processor, [reading("mug", 31, READING_AT, 0)]))
    assert not stock_alerts(run(processor, buys("mug", READING_AT - 3600, 5, 5_000)))
    assert state.demand.series["item:mug"].sold == 0
    alerts = stock_alerts(run(processor, buys("mug", READING_AT + 60, 8, 10_000), size=1))
    assert len(alerts) == 1 and alerts[0].user_id == "buyer"
    reasons = {r.name: r.value for r in alerts[0].reasons}
    assert reasons["stock_left"] < reasons["expected_units"] and reasons["days_of_cover"] < 7.0


def test_stock_readings_pass_through_pseudonymised_streams():
    settings = replace(Settings(), user_key="k3y")
    state = MemoryState(settings)
    [result] = run(Processor(state, settings), [reading("mug", 20, READING_AT, 0)])
    assert result.processed == 1 and not result.dead_letters
    assert state.demand.series["item:mug"].stock == 20


def test_bad_stock_readings_go_to_the_dead_letters_with_a_reason():
    processor = Processor(MemoryState())
    bad = [Message(b'{"item_id": "mug", "ts": 1704067200}', "inventory", 0, 0),
           reading("mug", -3, READING_AT, 1), reading("mug", 2.5, READING_AT, 2), reading("mug", "7", READING_AT, 3),
           Message(b'{"item_id": "mug", "units": 3}', "inventory", 0, 4), Message(b"not json", "inventory", 0, 5),
           reading("", 3, READING_AT, 6), reading("mug", 3, 12.0, 7)]
    [result] = run(processor, bad)
    assert result.processed == 0 and len(result.dead_letters) == len(bad)
    reasons = [d.reason for d in result.dead_letters]
    assert reasons[0] == "missing field 'units'" and "units" in reasons[1] and "units" in reasons[2]
    assert reasons[4] == "missing field 'ts'" and "JSON" in reasons[5] and "item_id" in reasons[6]
    assert "ts" in reasons[7]


@pytest.mark.services
def test_redis_keeps_the_stock_memory_keeps_and_alerts_alike(services, redis_client):
    from stream.redis_state import RedisState
    from tests.support import isolated_settings

    messages = (planted(weeks=8) + [reading("mug", 31, READING_AT, 0), reading("plate", 1000, READING_AT, 1)]
                + buys("mug", READING_AT + 60, 8, 10_000) + [reading("plate", 2, READING_AT + 7200, 2)])
    mem_alerts = [a.to_dict() for r in run(Processor(MemoryState(), publish_recommendations=False), messages)
                  for a in r.alerts if a.kind == "stock_risk"]
    assert [a["alert_id"].split(":")[2] for a in mem_alerts] == ["mug", "plate"]
    for size in (1, 7, 400):
        settings = isolated_settings(services)
        inventory = settings.topics.inventory
        batch = [replace(m, topic=inventory) if m.topic == "inventory" else m for m in messages]

        async def go() -> list:
            state = RedisState(settings)
            processor = Processor(state, settings, publish_recommendations=False)
            out = [await processor.handle(batch[i:i + size]) for i in range(0, len(batch), size)]
            await state.close()
            return out

        alerts = [a.to_dict() for a in stock_alerts(asyncio.run(go()))]
        assert [a["alert_id"] for a in alerts] == [a["alert_id"] for a in mem_alerts], size
        days = {k.decode(): v.decode() for k, v in redis_client.hgetall(f"{settings.prefix}demand-days:item:mug").items()}
        assert (days["stock"], days["sold"], float(days["stock_ts"])) == ("31", "16", READING_AT), size
        assert float(days["stock_alerted"]) == READING_AT


def test_trending_lists_what_sells_above_its_forecast_today():
    state = MemoryState()
    messages = planted(weeks=10)
    surge_starts = MONDAY + SURGE_DAY * DAY
    run(Processor(state), [m for m in messages if orjson.loads(m.value)["ts"] < surge_starts + 12 * 3600])
    day, items = state.demand.trending()
    assert day_iso(day) == day_iso(int(surge_starts // DAY))
    assert [i["item"] for i in items] == ["mug"]  # the plate sells as usual, if at all
    mug = items[0]
    assert mug["units_today"] == 60 and 3 < mug["expected"] < 10 and mug["p_at_least"] < 1e-6
    assert mug["since"] == surge_starts + 9 * 3600
    assert [c["category"] for c in state.demand.trending("category")[1]] == ["kitchen"]


@pytest.mark.services
@pytest.mark.slow
def test_stock_risk_and_trending_through_a_worker(services, redis_client, tmp_path):
    from kafka import KafkaProducer

    from stream.topics import create_topics
    from tests.support import Worker, isolated_settings, read_topic

    if services.redis_cluster:
        pytest.skip("demand is off on a Redis Cluster")
    settings = isolated_settings(services, partitions=1)
    create_topics(settings)
    t = settings.topics
    worker = Worker(settings, tmp_path / "worker").start()
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, **settings.kafka_options())

    def send(topic: str, messages: list[Message], key: str) -> None:
        for m in messages:
            producer.send(topic, key=orjson.loads(m.value)[key].encode(), value=m.value)
        producer.flush()

    try:
        worker.wait_ready()
        history = planted(weeks=8)
        send(t.purchases, history, "user_id")
        worker.wait_received(len(history))
        # The history's days close once the watermark passes them (the empty click and
        # view partitions stop holding it back when idle): then the mug has a forecast.
        deadline = time.monotonic() + 60
        while worker.get("/items/mug/demand")[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.5)
        readings = [reading("mug", 20, READING_AT, 0), reading("plate", 1000, READING_AT, 1)]
        send(t.inventory, readings, "item_id")
        producer.send(t.inventory, key=b"mug", value=b'{"item_id": "mug", "ts": 1709020800}')
        producer.flush()
        # Kafka orders nothing across topics: the purchases go once the readings are in.
        worker.wait_received(len(history) + 3)
        send(t.purchases, buys("mug", READING_AT + 600, 8, 10_000), "user_id")
        metrics = worker.wait_received(len(history) + 3 + 8)
        assert metrics["dead_lettered"] == 1, metrics

        [letter] = read_topic(settings, t.dead_letters, expect=1)
        assert letter["topic"] == t.inventory and letter["reason"] == "missing field 'units'"
        alerts = [a for a in read_topic(settings, t.alerts, timeout=10) if a["kind"] == "stock_risk"]
        assert [a["alert_id"] for a in alerts] == ["stock_risk:item:mug:2024-02-27T08:00:00Z"], alerts
        reasons = {r["name"]: r for r in alerts[0]["reasons"]}
        assert reasons["stock_left"]["value"] == 20.0 and reasons["days_of_cover"]["normal"] == 7.0, alerts
        assert reasons["days_of_cover"]["value"] < 7.0 and reasons["expected_units"]["value"] > 20.0
        days = redis_client.hgetall(f"{settings.prefix}demand-days:item:mug")
        assert (days[b"stock"], days[b"sold"]) == (b"20", b"16")

        status, body = worker.get("/trending")
        assert status == 200 and body["day"] == "2024-02-27", body
        assert [i["item"] for i in body["trending"]] == ["mug"] and body["trending"][0]["units_today"] == 16
        status, body = worker.get("/trending?kind=category&n=5")
        assert status == 200 and [c["category"] for c in body["trending"]] == ["kitchen"], body
        assert worker.get("/trending?kind=user")[0] == 400
    finally:
        producer.close()
        worker.stop()


def test_a_shorter_restock_is_no_risk_for_the_same_stock():
    """The same 20 mugs last about four days: with a two-day restock they are enough."""
    settings = replace(Settings(), restock_days=2.0)
    state = MemoryState(settings)
    processor = Processor(state, settings)
    run(processor, planted(weeks=8))
    assert not stock_alerts(run(processor, [reading("mug", 20, READING_AT, 0)]))
    mug = state.demand.series["item:mug"]
    cover, needed = state.demand.days_of_cover(mug, int(READING_AT // DAY))
    assert cover is not None and 2.0 < cover < 7.0 and 0 < needed < 20
    half = DemandBook(restock_days=1.5)
    half.series, half.rhythm, half.closed_through = state.demand.series, state.demand.rhythm, state.demand.closed_through
    assert half.days_of_cover(mug, int(READING_AT // DAY))[1] < needed  # a day and a half needs less
