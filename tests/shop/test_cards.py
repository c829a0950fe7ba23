"""The card scenario: cards seen once, 0.2 % fraud visible only in attrs, outcomes 6 h late."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import orjson
import pytest
from sklearn.metrics import average_precision_score

from shop.cards import INFORMATIVE, CardShop
from tests.support import ROOT


@pytest.fixture(scope="module")
def shop_and_events() -> tuple[CardShop, list]:
    shop = CardShop(8)
    return shop, list(shop.events(50_000))


def test_same_seed_same_events_other_seed_others(shop_and_events) -> None:
    _, events = shop_and_events
    again = list(CardShop(8).events(50_000))
    assert [e.to_json() for e in events[::97]] == [e.to_json() for e in again[::97]]
    other = list(CardShop(9).events(1000))
    assert [e.attrs for e in other[:10]] != [e.attrs for e in events[:10]]


def test_every_card_buys_once_over_two_days(shop_and_events) -> None:
    _, events = shop_and_events
    assert {e.type for e in events} == {"purchase"}
    assert len({e.user_id for e in events}) == len(events)
    assert all(e.price and e.price > 0 and e.order_id and len(e.attrs) == 28 for e in events)
    ts = [e.ts for e in events]
    assert ts == sorted(ts) and 47.0 < (ts[-1] - ts[0]) / 3600 <= 48.0


def test_fraud_is_rare_and_shows_only_in_a_few_attrs(shop_and_events) -> None:
    shop, events = shop_and_events
    y = np.array([e.event_id in shop.fraud_events for e in events])
    assert y.sum() == 100  # 0.2 %, exactly
    names = [f"v{k}" for k in range(1, 29)]
    x = np.array([[e.attrs[n] for n in names] for e in events])
    shift = {n: abs(x[y, k].mean() - x[~y, k].mean()) / x[~y, k].std() for k, n in enumerate(names)}
    assert min(shift[n] for n in INFORMATIVE) > 1.0
    assert max(shift[n] for n in names if n not in INFORMATIVE) < 0.6
    # No single field gives fraud away, as in public card data (best ~.5-.6 AP).
    best = max(max(average_precision_score(y, x[:, k]), average_precision_score(y, -x[:, k]))
               for k in range(len(names)))
    assert 0.3 < best < 0.75


def test_outcomes_six_hours_late_through_produce(tmp_path: Path) -> None:
    out, labels = tmp_path / "cards.jsonl", tmp_path / "labels.jsonl"
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "produce.py"), "--scenario", "cards", "--count", "3000",
         "--seed", "4", "--out", str(out), "--labels", str(labels)],
        capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    events = {e["event_id"]: e for e in map(orjson.loads, out.read_bytes().splitlines())}
    outcomes = [orjson.loads(line) for line in labels.read_bytes().splitlines()]
    assert len(events) == len(outcomes) == 3000
    assert all(o["ts"] == pytest.approx(events[o["event_id"]]["ts"] + 6 * 3600, abs=1e-3) for o in outcomes)
    assert sum(o["fraud"] for o in outcomes) == 6
    assert {o["kind"] for o in outcomes if o["fraud"]} == {"card_fraud"}


@pytest.mark.parametrize(("args", "message"), [
    (["--truth", "t.jsonl"], "apply to --scenario shop"),
    (["--users", "10"], "apply to --scenario shop"),
    (["--fraud-share", "1.5"], "--fraud-share must be between 0 and 1"),
])
def test_bad_card_options_are_one_line_errors(args: list[str], message: str) -> None:
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "produce.py"), "--scenario", "cards",
                           "--out", "-", *args], capture_output=True, text=True)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr
