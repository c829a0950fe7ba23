"""The planted shop: churners stop, fraud of every kind, outcomes for every purchase."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import orjson
import pytest

from shop.planted import CHURN_TYPES, FRAUD_KINDS, PlantedShop
from shop.synthetic import Shop
from tests.support import ROOT


@pytest.fixture(scope="module")
def shop_and_events() -> tuple[PlantedShop, list]:
    shop = PlantedShop(11, users=200, churn_share=0.3, fraud_share=0.3)
    return shop, list(shop.events(30_000))


def test_planting_nothing_leaves_the_shop_as_it_was() -> None:
    plain = [e.to_dict() for e in Shop(5, users=50).events(3000)]
    planted = [e.to_dict() for e in PlantedShop(5, users=50, churn_share=0, fraud_share=0,
                                                      new_customer_share=0).events(3000)]
    for event in planted:  # every purchase gains a device risk score, nothing else changes
        assert ("attrs" in event) == (event["type"] == "purchase")
        event.pop("attrs", None)
    assert planted == plain


def test_churners_are_frequent_shoppers_who_never_start_a_session_again(shop_and_events) -> None:
    shop, events = shop_and_events
    churners = {u.user_id: u for u in shop.users if u.churned_at is not None}
    assert len(churners) >= 10
    assert {u.type for u in churners.values()} <= set(CHURN_TYPES)
    for event in events:
        user = churners.get(event.user_id)
        if user is not None and event.ts > user.churned_at:
            # only the end of the session under way when they stopped
            assert event.session_id == last_session_before(events, user.user_id, user.churned_at)
    truth = {row["user_id"]: row for row in shop.truth()}
    assert all(truth[u]["churned_at"] == round(churners[u].churned_at, 3) for u in churners)


def last_session_before(events: list, user_id: str, ts: float) -> str | None:
    sessions = [e.session_id for e in events if e.user_id == user_id and e.ts <= ts]
    return sessions[-1] if sessions else None


def test_fraud_of_every_kind_hidden_among_ordinary_purchases(shop_and_events) -> None:
    shop, events = shop_and_events
    purchases = [e for e in events if e.type == "purchase"]
    fraud = [e for e in purchases if e.event_id in shop.fraud_events]
    kinds = Counter(shop.fraud_events[e.event_id] for e in fraud)
    assert set(kinds) == set(FRAUD_KINDS), kinds
    assert 0.01 < len(fraud) / len(purchases) < 0.2
    # Ids, topics and fields look like everyone else's: the truth is only in the shop.
    assert all(e.event_id.startswith(f"e{shop.seed}-{e.user_id}-") for e in fraud)
    risky = [e.attrs["device_risk"] for e in fraud if shop.fraud_events[e.event_id] == "device_risk"]
    usual = [e.attrs["device_risk"] for e in purchases if e.event_id not in shop.fraud_events]
    assert min(risky) > sorted(usual)[len(usual) // 2]
    bursts = [e for e in fraud if shop.fraud_events[e.event_id] == "stolen_card_burst"]
    assert len({e.order_id for e in bursts}) == len(bursts)  # one order each
    ts = [e.ts for e in events]
    assert ts == sorted(ts)


def test_every_purchase_gets_one_outcome_a_delay_later(shop_and_events) -> None:
    shop, events = shop_and_events
    labels = shop.labels(events, delay_s=3600.0)
    purchases = {e.event_id: e for e in events if e.type == "purchase"}
    assert sorted(label["event_id"] for label in labels) == sorted(purchases)
    assert [label["ts"] for label in labels] == sorted(label["ts"] for label in labels)
    for label in labels:
        assert label["ts"] == round(purchases[label["event_id"]].ts + 3600.0, 3)
        assert label["fraud"] == (label["event_id"] in shop.fraud_events)


def test_produce_writes_events_truth_and_outcomes(tmp_path: Path) -> None:
    out, truth, labels = tmp_path / "ev.jsonl", tmp_path / "truth.jsonl", tmp_path / "labels.jsonl"
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "produce.py"), "--count", "4000", "--seed", "3", "--users", "30",
         "--fraud-share", "0.5", "--out", str(out), "--truth", str(truth), "--labels", str(labels),
         "--label-delay-h", "2"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    events = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    outcomes = [orjson.loads(line) for line in labels.read_bytes().splitlines()]
    purchases = {e["event_id"]: e for e in events if e["type"] == "purchase"}
    assert len(events) == 4000 and sorted(o["event_id"] for o in outcomes) == sorted(purchases)
    assert any(o["fraud"] for o in outcomes) and not all(o["fraud"] for o in outcomes)
    assert all(o["ts"] == pytest.approx(purchases[o["event_id"]]["ts"] + 7200) for o in outcomes)
    assert all("churned_at" in row for row in map(orjson.loads, truth.read_bytes().splitlines()))


@pytest.mark.parametrize("args, message", [
    (["--fraud-share", "2"], "--fraud-share must be between 0 and 1"),
    (["--label-delay-h", "-1"], "--label-delay-h must be >= 0"),
    (["--from", "x.jsonl", "--labels", "y.jsonl"], "apply to synthetic traffic"),
])
def test_produce_misuse_is_one_line(args: list[str], message: str) -> None:
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "produce.py"), *args],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
