"""The synthetic shop: determinism, contract validity, time order, planted behaviour."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict

import numpy as np
import pytest

from stream.config import Topics
from stream.events import Event, InvalidEvent, decode
from shop.synthetic import (
    CATEGORIES,
    MALFORMED_KINDS,
    PROFILES,
    START_TS,
    Shop,
    malformed,
    messages,
    role_of,
)

TOPICS = Topics()


@pytest.fixture(scope="module")
def population() -> tuple[Shop, list[Event], dict[str, dict]]:
    """A stream long enough (~9 days) for every type's signature to show."""
    shop = Shop(seed=3, users=200)
    events = list(shop.events(40_000))
    return shop, events, {row["user_id"]: row for row in shop.truth()}


def _json(events) -> list[bytes]:
    return [e.to_json() for e in events]


def test_same_seed_same_traffic_and_truth():
    a, b = Shop(seed=11, users=40), Shop(seed=11, users=40)
    assert _json(a.events(3000)) == _json(b.events(3000))
    assert a.truth() == b.truth()


def test_different_seed_different_traffic():
    assert _json(Shop(seed=1, users=40).events(200)) != _json(Shop(seed=2, users=40).events(200))


def test_each_call_restarts_and_shorter_runs_are_prefixes():
    shop = Shop(seed=5, users=30)
    assert _json(shop.events(100)) == _json(shop.events(1000))[:100]


def test_every_event_meets_the_contract(population):
    _, events, _ = population
    for event in events:
        topic = TOPICS.for_event_type(event.type)
        assert decode(event.to_json(), role_of(topic, TOPICS)) == event
    assert len({e.event_id for e in events}) == len(events)


def test_purchases_carry_price_quantity_and_order(population):
    _, events, _ = population
    purchases = [e for e in events if e.type == "purchase"]
    assert purchases
    assert all(e.price is not None and e.price > 0 and e.quantity >= 1 and e.order_id for e in purchases)
    assert {e.quantity for e in purchases} > {1}


def test_events_are_in_time_order_from_the_start_time(population):
    _, events, _ = population
    times = [e.ts for e in events]
    assert times == sorted(times)
    assert START_TS <= times[0] < START_TS + 86400
    later = START_TS + 10 * 86400
    assert next(Shop(seed=1, users=5, start_ts=later).events(1)).ts >= later


def test_until_stops_at_an_event_time():
    shop = Shop(seed=2, users=50)
    cut = START_TS + 3600
    events = list(shop.events(until=cut))
    assert events and all(e.ts < cut for e in events)
    assert _json(events) == _json(shop.events(len(events)))


def test_truth_describes_every_user():
    shop = Shop(seed=4, users=12)
    truth = shop.truth()
    assert [row["user_id"] for row in truth] == [u.user_id for u in shop.users]
    assert {row["type"] for row in truth} == set(PROFILES)  # all present even in a small shop
    for row in truth:
        assert set(row["tastes"]) == {name for name, _ in CATEGORIES}
        assert sum(row["tastes"].values()) == pytest.approx(1.0, abs=1e-3)
        assert (row["rhythm_s"] is None) == (row["type"] == "new_visitor")


def _per_type(events, truth):
    stats: dict[str, Counter] = defaultdict(Counter)
    sessions: dict[str, set] = defaultdict(set)
    users: dict[str, set] = defaultdict(set)
    prices: dict[str, list] = defaultdict(list)
    for e in events:
        kind = truth[e.user_id]["type"]
        stats[kind][e.type] += 1
        sessions[kind].add(e.session_id)
        users[kind].add(e.user_id)
        if e.type == "purchase":
            prices[kind].append(e.price)
    return stats, sessions, users, prices


def test_each_behaviour_type_shows_its_signature(population):
    _, events, truth = population
    stats, sessions, users, prices = _per_type(events, truth)
    assert set(stats) == set(PROFILES)

    def buy_rate(kind):  # purchases per view
        return stats[kind]["purchase"] / stats[kind]["view"]

    def sessions_per_user(kind):
        return len(sessions[kind]) / len(users[kind])

    def views_per_session(kind):
        return stats[kind]["view"] / len(sessions[kind])

    big, bargain, window, occasional, new = (
        "frequent_big_spender", "bargain_hunter", "window_shopper", "occasional_buyer", "new_visitor"
    )
    assert buy_rate(window) < 0.05 * buy_rate(big)
    assert stats[window]["cart"] / stats[window]["view"] < 0.02
    assert buy_rate(bargain) < 0.5 * buy_rate(big)
    assert statistics.median(prices[bargain]) < 0.5 * statistics.median(prices[big])
    assert sessions_per_user(occasional) < 0.4 * sessions_per_user(big)
    assert buy_rate(occasional) > buy_rate(big)
    assert sessions_per_user(new) == 1
    assert views_per_session(new) < 0.4 * views_per_session(window)
    assert buy_rate(new) < 0.1 * buy_rate(occasional)


def test_sessions_stay_in_favourite_categories(population):
    _, events, truth = population
    in_favourites = total = 0
    for e in events:
        if e.type == "view":
            tastes = truth[e.user_id]["tastes"]
            top3 = sorted(tastes, key=tastes.get, reverse=True)[:3]
            in_favourites += e.category in top3
            total += 1
    assert in_favourites / total > 0.75


def test_event_times_follow_sessions_and_rhythm(population):
    _, events, truth = population
    by_user: dict[str, list[Event]] = defaultdict(list)
    for e in events:
        by_user[e.user_id].append(e)
    within, ratios = [], []
    for user, evs in by_user.items():
        starts = {}
        for prev, cur in zip(evs, evs[1:]):
            if cur.session_id == prev.session_id:
                within.append(cur.ts - prev.ts)
            else:
                starts[cur.session_id] = cur.ts - prev.ts
        rhythm = truth[user]["rhythm_s"]
        if rhythm and len(starts) >= 3:
            ratios.append(statistics.median(starts.values()) / rhythm)
    assert 1 <= statistics.median(within) <= 120  # seconds to minutes
    assert max(within) < 3 * 3600
    assert 0.4 < statistics.median(ratios) < 2.0  # gaps follow each user's own rhythm


@pytest.mark.parametrize("kind", MALFORMED_KINDS)
def test_every_malformed_kind_is_rejected(kind):
    rng = np.random.default_rng(0)
    goods = {}
    for e in Shop(seed=8, users=30).events(3000):
        goods.setdefault(e.type, e)
    assert set(goods) == {"view", "click", "cart", "purchase"}
    for good in goods.values():
        topic, raw, got = malformed(rng, good, TOPICS, kind)
        assert got == kind and topic in TOPICS.inputs
        assert b"\n" not in raw
        with pytest.raises(InvalidEvent) as rejected:
            decode(raw, role_of(topic, TOPICS))
        assert rejected.value.reason


def test_random_malformed_kinds_are_seeded_and_cover_all_kinds():
    good = next(Shop(seed=1, users=5).events(1))

    def draw(seed: int) -> list[tuple[str, bytes, str]]:
        rng = np.random.default_rng(seed)
        return [malformed(rng, good, TOPICS) for _ in range(400)]

    assert draw(7) == draw(7)
    assert {kind for _, _, kind in draw(7)} == set(MALFORMED_KINDS)


def test_messages_replace_a_seeded_share_with_bad_ones():
    topics = Topics(clicks="c", views="v", purchases="p")
    events = list(Shop(seed=9, users=50).events(4000))
    out = list(messages(events, topics, bad_fraction=0.1, seed=9))
    assert out == list(messages(events, topics, bad_fraction=0.1, seed=9))
    bad = [m for m in out if m.bad]
    assert 300 < len(bad) < 500
    for message, event in zip(out, events):
        assert message.key == event.user_id.encode()
        role = role_of(message.topic, topics)
        if message.bad:
            with pytest.raises(InvalidEvent):
                decode(message.value, role)
        else:
            assert decode(message.value, role) == event
    assert not any(m.bad for m in messages(events, topics))
