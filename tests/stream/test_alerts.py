"""Churn and fraud alerts: rhythm, episodes, event-time checks, label joins, thresholds."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import orjson
import pytest
from hypothesis import given, settings as hsettings, strategies as st

from models.churn import ChurnRisk
from models.alert_rate import AlertRate
from models.fraud import FraudRules
from models.outcomes import FraudLabels, PendingPurchase
from stream.config import Settings
from stream.events import InvalidEvent, Label, decode_label
from stream.learner import FRAUD, Learner, ModelRow
from stream.outputs import Message
from stream.processor import Processor
from stream.state import MemoryState

DAY = 86400.0
T0 = 1_700_000_000.0


# -- rhythm ---------------------------------------------------------------------


def test_a_regular_user_is_at_risk_sooner_than_an_irregular_one_with_the_same_returns() -> None:
    churn = ChurnRisk()
    # Ten returns over 10 days versus over 60 days: the first has a shorter rhythm.
    assert churn.due_after(10, 10 * DAY) < churn.due_after(10, 60 * DAY)
    assert churn.typical_gap_s(10, 10 * DAY) < churn.typical_gap_s(10, 60 * DAY)


def test_the_prior_dominates_little_history_and_fades_with_more() -> None:
    fast, slow = ChurnRisk(prior_gap_days=0.5), ChurnRisk(prior_gap_days=10.0)
    # One return a day ago: the prior moves the estimate a lot.
    assert slow.typical_gap_s(1, DAY) > 3 * fast.typical_gap_s(1, DAY)
    # Fifty daily returns: the user's own rhythm wins.
    assert slow.typical_gap_s(50, 50 * DAY) < 1.25 * fast.typical_gap_s(50, 50 * DAY)


@given(returns=st.integers(1, 200), span_days=st.floats(0, 400), silence=st.floats(0, 400))
@hsettings(max_examples=200, deadline=None)
def test_risk_is_a_probability_that_grows_with_silence(returns: int, span_days: float,
                                                      silence: float) -> None:
    churn = ChurnRisk()
    risk = churn.score_one(returns, span_days * DAY, silence * DAY)
    assert 0.0 <= risk <= 1.0
    assert churn.score_one(returns, span_days * DAY, (silence + 1) * DAY) >= risk
    due = churn.due_after(returns, span_days * DAY)
    assert due is not None and due >= 0
    assert churn.score_one(returns, span_days * DAY, due) == pytest.approx(churn.threshold, abs=1e-6)


def test_a_one_session_user_is_never_at_risk() -> None:
    assert ChurnRisk().score_one(0, 0.0, 365 * DAY) == 0.0
    assert ChurnRisk().due_after(0, 0.0) is None


# -- churn episodes through the Processor ---------------------------------------------


def message(offset: int, user: str, ts: float, kind: str = "view", item: str = "i1",
            session: str | None = None, **extra: object) -> Message:
    event = {"event_id": f"{user}-{offset}", "type": kind, "user_id": user, "item_id": item,
             "ts": ts, **extra}
    if session is not None:
        event["session_id"] = session
    topic = {"view": "views", "click": "clicks", "cart": "clicks", "purchase": "purchases"}[kind]
    return Message(orjson.dumps(event), topic, 0, offset, user.encode())


def run_batches(processor: Processor, batches: list[list[Message]]) -> list:
    async def go() -> list:
        return [await processor.handle(b) for b in batches]
    return asyncio.run(go())


def daily_visits(user: str, days: int, start: float = T0) -> list[tuple[str, float]]:
    return [(user, start + d * DAY) for d in range(days)]


def stream(visits: list[tuple[str, float]]) -> list[Message]:
    return [message(i, user, ts, session=f"{user}-{ts}") for i, (user, ts) in enumerate(sorted(visits, key=lambda v: v[1]))]


def alerts_of(results: list, kind: str) -> list:
    return [a for r in results for a in r.alerts if a.kind == kind]


def test_silence_is_noticed_on_event_time_from_other_users_and_alerted_once() -> None:
    # u1 visits daily for 10 days, then stops; u2 keeps the stream's clock going.
    visits = daily_visits("u1", 10) + [("u2", T0 + h * 3600.0) for h in range(0, 30 * 24, 6)]
    messages = stream(visits)
    processor = Processor(MemoryState())
    results = run_batches(processor, [messages[i:i + 7] for i in range(0, len(messages), 7)])
    churned = [a for a in alerts_of(results, "churn_risk") if a.user_id == "u1"]
    assert len(churned) == 1
    alert = churned[0]
    last = T0 + 9 * DAY
    due = processor.alerts.churn_risk_model.due_after(9, 9 * DAY)
    assert alert.ts == pytest.approx(last + due)
    assert alert.alert_id == f"churn_risk:u1:{last!r}"
    assert alert.score == pytest.approx(0.8, abs=1e-6) and alert.threshold == 0.8
    assert {r.name for r in alert.reasons} >= {"silence_days", "revenue", "purchases_per_week"}
    # u2 never went quiet for long: no alert for them.
    assert not [a for a in alerts_of(results, "churn_risk") if a.user_id == "u2"]


def test_without_time_passing_nothing_is_raised() -> None:
    messages = stream(daily_visits("u1", 10))
    results = run_batches(Processor(MemoryState()), [messages])
    assert alerts_of(results, "churn_risk") == []


def test_a_returning_user_ends_the_episode_and_can_start_another() -> None:
    visits = daily_visits("u1", 10)
    visits += [("u2", T0 + h * 3600.0) for h in range(0, 20 * 24, 6)]
    visits += [("u1", T0 + 20 * DAY)]  # back after 11 days
    visits += [("u2", T0 + 20 * DAY + h * 3600.0) for h in range(1, 40 * 24, 6)]
    messages = stream(visits)
    results = run_batches(Processor(MemoryState()), [messages[i:i + 50] for i in range(0, len(messages), 50)])
    kinds = [(a.kind, a.ts) for r in results for a in r.alerts if a.user_id == "u1"]
    assert [k for k, _ in kinds] == ["churn_risk", "churn_recovered", "churn_risk"]
    assert kinds[1][1] == T0 + 20 * DAY


def regulars_who_stop() -> list[tuple[str, float]]:
    rng = random.Random(5)
    visits = []
    for u in range(12):
        gap = rng.uniform(0.3, 2.0) * DAY
        stop = rng.uniform(5, 40) * DAY
        t = T0 + rng.uniform(0, DAY)
        while t < T0 + stop:
            visits.append((f"u{u}", t))
            t += rng.expovariate(1 / gap)
    return visits


def new_customers_some_back() -> list[tuple[str, float]]:
    rng = random.Random(9)
    visits = [(f"n{u}", T0 + rng.uniform(0, 10) * DAY) for u in range(15)]
    return visits + [(f"n{u}", T0 + rng.uniform(12, 30) * DAY) for u in range(0, 15, 3)]


@pytest.mark.parametrize("size", [1, 13, 10_000])
@pytest.mark.parametrize("visits, kind, at_least", [
    (regulars_who_stop, "churn_risk", 5), (new_customers_some_back, "no_second_visit", 10),
])
def test_churn_alerts_do_not_depend_on_batching(size: int, visits: Callable[[], list[tuple[str, float]]],
                                                kind: str, at_least: int) -> None:
    messages = stream(visits() + [("clock", T0 + 60 * DAY)])
    reference = run_batches(Processor(MemoryState()), [messages])
    results = run_batches(Processor(MemoryState()), [messages[i:i + size] for i in range(0, len(messages), size)])
    ids = sorted(a.alert_id for r in results for a in r.alerts)
    assert ids == sorted(a.alert_id for r in reference for a in r.alerts)
    assert len([i for i in ids if i.startswith(f"{kind}:")]) >= at_least


def test_valuable_users_get_a_retention_offer() -> None:
    settings = Settings(retention_min_revenue=50.0)
    visits = daily_visits("rich", 8) + daily_visits("poor", 8)
    messages = stream(visits)
    n = len(messages)
    messages += [message(n, "rich", T0 + 7 * DAY + 60, "purchase", price=80.0, session="rich-x"),
                 message(n + 1, "clock", T0 + 40 * DAY)]
    results = run_batches(Processor(MemoryState(settings), settings), [messages])
    offers = alerts_of(results, "retention_offer")
    assert [a.user_id for a in offers] == ["rich"]
    assert {a.user_id for a in alerts_of(results, "churn_risk")} == {"rich", "poor"}


def test_a_customer_seen_once_gets_no_second_visit_not_churn_risk() -> None:
    # "once" visits one day and never again; "regular" visits daily, then stops;
    # "clock" keeps event time moving for 60 days.
    settings = Settings(new_return_share=0.3, new_return_gap_days=7.0)
    visits = [("once", T0 + 3600.0)] + daily_visits("regular", 10)
    visits += [("clock", T0 + h * 3600.0) for h in range(2, 60 * 24, 12)]
    messages = stream(visits)
    processor = Processor(MemoryState(settings), settings)
    results = run_batches(processor, [messages[i:i + 9] for i in range(0, len(messages), 9)])
    new = alerts_of(results, "no_second_visit")
    assert [a.user_id for a in new] == ["once"]
    alert = new[0]
    due = processor.alerts.second_visit_model.due_after()
    assert alert.ts == pytest.approx(T0 + 3600.0 + due)
    assert alert.alert_id == f"no_second_visit:once:{T0 + 3600.0!r}"
    assert alert.score >= 0.8 and alert.threshold == 0.8
    reasons = {r.name: (r.value, r.normal) for r in alert.reasons}
    assert reasons["days_since_first_visit"] == (pytest.approx(due / DAY), 7.0)
    assert reasons["share_of_new_customers_who_return"][0] == 0.3
    assert 0.5 <= reasons["new_customers_returned_by_now"][0] < 1.0
    # Regulars keep their kind; new customers get no retention offer of a regular's.
    assert {a.user_id for a in alerts_of(results, "churn_risk")} == {"regular"}
    assert not [a for r in results for a in r.alerts
                if a.user_id == "once" and a.kind in ("churn_risk", "retention_offer")]
    # users.jsonl's churn risk of a customer seen once grows with their silence.
    profile = asyncio.run(processor.state.profile("once"))
    risks = [processor.alerts.churn_risk(profile, T0 + d * DAY) for d in (1, 7, 30)]
    assert risks == sorted(risks) and 0.7 <= risks[0] < 0.8 < risks[-1]


def test_a_new_customer_who_comes_back_ends_the_episode_and_is_then_a_regular() -> None:
    visits = [("new", T0)] + [("clock", T0 + h * 3600.0) for h in range(1, 40 * 24, 12)]
    visits += [("new", T0 + 20 * DAY)] + [("new", T0 + 21 * DAY)]
    messages = stream(visits)
    results = run_batches(Processor(MemoryState()), [messages[i:i + 5] for i in range(0, len(messages), 5)])
    kinds = [(a.kind, a.ts) for r in results for a in r.alerts if a.user_id == "new"]
    assert [k for k, _ in kinds][:2] == ["no_second_visit", "churn_recovered"]
    assert kinds[1][1] == T0 + 20 * DAY
    assert all(k != "no_second_visit" for k, _ in kinds[2:])


# -- fraud: labels, thresholds, rules -------------------------------------------------


def test_label_joins_late_duplicate_early_and_unknown() -> None:
    labels = FraudLabels(ttl_s=10 * DAY, max_waiting=2)
    for i in range(5):
        labels.add(PendingPurchase(f"e{i}", "o1" if i < 2 else None, T0 + i, {"amount": 1.0}, 0.1))
    assert [p.event_id for p in labels.label(True, T0 + DAY, order_id="o1")] == ["e0", "e1"]
    assert labels.label(True, T0 + DAY, event_id="e0") == []  # duplicate: joined via its order
    assert labels.label(True, T0 + DAY, order_id="o1") == []  # duplicate order label
    # Outcomes ahead of their purchase wait for it (a bounded number of them).
    assert labels.label(False, T0 + DAY, event_id="e7") == []
    assert labels.label(True, T0 + DAY, order_id="o9") == []
    assert labels.add(PendingPurchase("e7", None, T0 + 2, {}, 0.1)) is False
    assert labels.add(PendingPurchase("e8", "o9", T0 + 3, {}, 0.1)) is True
    assert labels.add(PendingPurchase("e9", "o9", T0 + 4, {}, 0.1)) is True  # same order
    for i in range(3):  # never matched: the oldest is given up as unknown
        labels.label(True, T0 + DAY, event_id=f"ghost{i}")
    labels.expire(now=T0 + 12 * DAY)
    assert labels.label(True, T0 + 12 * DAY, event_id="e3") == []  # too late: expired
    assert labels.counts() == {"pending": 0, "waiting": 0, "joined": 5, "duplicates": 2,
                               "unknown": 3, "expired": 1}


def test_labels_are_bounded() -> None:
    labels = FraudLabels(max_pending=100)
    for i in range(1000):
        labels.add(PendingPurchase(f"e{i}", None, T0 + i, {}, 0.0))
    assert labels.counts()["pending"] == 100
    assert labels.label(True, T0, event_id="e0") == [] and labels.counts()["expired"] == 1
    assert [p.event_id for p in labels.label(True, T0, event_id="e999")] == ["e999"]


def test_the_learner_trains_on_the_features_seen_at_purchase_time() -> None:
    learner = Learner()
    rng = random.Random(1)
    rows = []
    for i in range(400):
        fraud = i % 10 == 0
        x = {"amount": rng.uniform(500, 900) if fraud else rng.uniform(5, 50), "orders_1h": 0.0}
        rows.append(ModelRow(FRAUD, f"u{i}", f"e{i}", T0 + i, x, 0.5, None, 0.5))
    learner.learn(rows)
    assert learner.fraud.positives == 0
    labels = [Label(i % 10 == 0, T0 + DAY + i, event_id=f"e{i}") for i in range(400)]
    assert learner.learn_labels(labels + labels[:3]) == 400  # repeats join nothing
    # An outcome ahead of its purchase row is joined when the row comes.
    learner.learn_labels([Label(True, T0 + DAY, event_id="late")])
    learner.learn([ModelRow(FRAUD, "u", "late", T0 + 500, {"amount": 800.0, "orders_1h": 0.0},
                            0.5, None, 0.5)])
    assert learner.fraud.positives == 41 and learner.fraud_labels.duplicates == 3
    odd = learner.fraud.explain_one({"amount": 700.0, "orders_1h": 0.0})
    usual = learner.fraud.explain_one({"amount": 20.0, "orders_1h": 0.0})
    assert odd["probability"] > 0.5 > usual["probability"]
    assert odd["score"] > usual["score"]


def test_the_threshold_follows_the_scores_to_keep_the_alert_rate() -> None:
    rate = AlertRate(rate=0.05, window=1000, min_scores=200)
    rng = random.Random(3)
    for _ in range(1000):
        rate.update(rng.random() * 0.5)
    low = rate.threshold
    assert low == pytest.approx(0.475, abs=0.02)
    for _ in range(1000):  # scores drift up: the threshold moves with them
        rate.update(0.5 + rng.random() * 0.5)
    assert rate.threshold == pytest.approx(0.975, abs=0.02)
    fresh = [rng.random() for _ in range(2000)]
    for s in fresh[:1000]:
        rate.update(s)
    assert sum(s >= rate.threshold for s in fresh[1000:]) / 1000 == pytest.approx(0.05, abs=0.02)


def test_rules_are_named_with_their_values() -> None:
    rules = FraudRules()
    broken = rules.check({"orders_10m": 0.0, "items_1h": 12.0, "amount_vs_usual": 45.0,
                          "first_purchase": 0.0})
    assert [name for name, _, _ in broken] == ["many_items", "amount_far_above_usual"]
    # A first purchase has no usual amount to be far above.
    assert rules.check({"amount_vs_usual": 45.0, "first_purchase": 1.0}) == []


def test_a_fraud_burst_raises_alerts_with_reasons() -> None:
    processor = Processor(MemoryState())
    messages, n = [], 0
    for u in range(40):  # ordinary shoppers: one modest purchase a day
        for d in range(5):
            ts = T0 + d * DAY + u * 60
            messages.append(message(n, f"u{u}", ts, "cart", item=f"i{u % 7}", session=f"s{u}{d}"))
            messages.append(message(n + 1, f"u{u}", ts + 30, "purchase", item=f"i{u % 7}",
                                    session=f"s{u}{d}", price=20.0 + u % 5, order_id=f"o{u}{d}",
                                    attrs={"device_risk": 0.1}))
            n += 2
    messages.sort(key=lambda m: orjson.loads(m.value)["ts"])
    burst_start = T0 + 5 * DAY
    for k in range(6):
        messages.append(message(n + k, "u3", burst_start + 20 * k, "purchase", item=f"x{k}",
                                session="stolen", price=900.0, order_id=f"stolen{k}",
                                attrs={"device_risk": 0.1}))
    results = run_batches(processor, [messages])
    fraud = alerts_of(results, "fraud")
    burst = [a for a in fraud if a.event_id.startswith("u3-") and a.ts >= burst_start]
    assert len(burst) >= 4
    names = {r.name for a in burst for r in a.reasons}
    assert "rule:rapid_orders" in names and "rule:amount_far_above_usual" in names
    amount = next(r for a in burst for r in a.reasons if r.name == "rule:amount_far_above_usual")
    assert amount.value > 10


def test_labels_decode_or_say_why_not() -> None:
    assert decode_label(b'{"event_id":"e1","fraud":false,"ts":"2024-03-04T00:00:00Z"}').event_id == "e1"
    for raw, reason in [
        (b'{"fraud":true,"ts":1700000000}', "exactly one of"),
        (b'{"event_id":"e","order_id":"o","fraud":true,"ts":1700000000}', "exactly one of"),
        (b'{"event_id":"e","fraud":1,"ts":1700000000}', "true or false"),
        (b'{"event_id":"e","fraud":true}', "missing field 'ts'"),
        (b'[1]', "must be a JSON object"),
        (b'nope', "not valid JSON"),
    ]:
        with pytest.raises(InvalidEvent, match=reason):
            decode_label(raw)


def test_the_live_clock_waits_for_lagging_partitions_but_not_for_idle_ones() -> None:
    from stream.clock import EventClock

    wall = [0.0]
    clock = EventClock(idle_after_s=30.0, now=lambda: wall[0])
    clock.assign([("views", 0), ("purchases", 0), ("clicks", 0)])
    clock.observe(("purchases", 0), T0 + 30 * DAY)  # a backlog: purchases read ahead
    clock.observe(("views", 0), T0 + 6 * DAY)
    assert clock.watermark() is None  # clicks/0 has not delivered yet
    wall[0] = 31.0  # clicks/0 stayed silent: empty or caught up
    clock.observe(("purchases", 0), T0 + 30 * DAY)
    clock.observe(("views", 0), T0 + 7 * DAY)
    assert clock.watermark() == T0 + 7 * DAY  # views still catching up
    wall[0] = 70.0  # everything quiet: all caught up
    assert clock.watermark() == T0 + 30 * DAY
    clock.assign([("views", 0)])  # a rebalance took the others away
    assert clock.latest == {("views", 0): T0 + 7 * DAY}


def test_tail_prints_an_alert_on_one_readable_line() -> None:
    import importlib.util

    from stream.outputs import Alert, Reason
    from tests.support import ROOT

    spec = importlib.util.spec_from_file_location("tail", ROOT / "scripts" / "tail.py")
    tail = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tail)
    alert = Alert("fraud", "u7", "e981", 1_700_000_981.0, 0.93, 0.71,
                  [Reason("rule:rapid_orders", 5.0, 4.0), Reason("amount", 899.0, 31.5)],
                  2, "frequent big spenders")
    line = tail.format_value(alert.to_json())
    assert line == ("2023-11-14 22:29:41  ALERT fraud  u7  after e981  score 0.93 (threshold 0.71)  "
                    "segment frequent big spenders  because rule:rapid_orders=5 (normal 4); "
                    "amount=899 (normal 31.5)")
    surge = Alert("demand_surge", "u8", "e982", 1_700_000_982.0, 77.0, 76.0,
                  [Reason("item", "i3"), Reason("units_today", 77.0, 58.0), Reason("since", 1_699_980_000.0)])
    assert tail.format_value(surge.to_json()).endswith(
        "because item=i3; units_today=77 (normal 58); since=2023-11-14 16:40:00")  # a time, not 1.7e+09


def test_with_a_user_key_no_state_or_output_holds_a_shop_user_id() -> None:
    from stream.privacy import pseudonymiser

    settings = Settings(user_key="k3y")
    state = MemoryState(settings)
    processor = Processor(state, settings)
    visits = daily_visits("alice", 6) + [("bob", T0 + h * 3600.0) for h in range(0, 20 * 24, 12)]
    messages = stream(visits)
    messages.append(message(len(messages), "alice", T0 + 5 * DAY + 60, "purchase", price=9.0,
                            session="alice-p"))
    results = run_batches(processor, [messages[i:i + 25] for i in range(0, len(messages), 25)])
    alice = pseudonymiser("k3y")("alice")
    assert set(state.profiles) == {alice, pseudonymiser("k3y")("bob")}
    # (This test's event ids spell the user's name; a shop's need not.)
    outputs = [o.to_dict() for r in results for o in (*r.recommendations, *r.alerts)]
    assert {o["user_id"] for o in outputs} == set(state.profiles)
    churn = [o for o in outputs if o.get("kind") == "churn_risk"]
    assert churn and all(o["alert_id"].startswith(f"churn_risk:{alice}:") for o in churn)
    assert {row.user_id for r in results for row in r.model_rows} <= set(state.profiles)
