"""stream/actions.py: holdout decisions for offers, nudges and declared campaigns."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stream.actions import CampaignError, held_out, holdout_draw, load_campaigns
from stream.config import ConfigError, Settings
from stream.processor import Processor
from stream.state import MemoryState
from tests.stream.test_alerts import DAY, T0, daily_visits, message, run_batches, stream


@pytest.mark.parametrize("share", [0.1, 0.25])
def test_the_holdout_share_holds_within_a_point_over_10000_users(share: float) -> None:
    for campaign in ("retention_offer", "cart_nudge", "spring-coupon"):
        kept = sum(held_out(f"u{i}", campaign, share) for i in range(10_000))
        assert abs(kept / 10_000 - share) <= 0.01, (campaign, kept)


def test_same_user_same_campaign_same_decision_and_campaigns_draw_apart() -> None:
    users = [f"user-{i}" for i in range(2000)]
    a = [held_out(u, "spring", 0.5, key="k1") for u in users]
    assert a == [held_out(u, "spring", 0.5, key="k1") for u in users]
    # Another campaign or another key: another draw (about half the users change side).
    for other in ([held_out(u, "autumn", 0.5, key="k1") for u in users],
                  [held_out(u, "spring", 0.5, key="k2") for u in users]):
        changed = sum(x != y for x, y in zip(a, other)) / len(users)
        assert 0.4 < changed < 0.6
    # The groups of two campaigns are independent (a user held out of one is not of every one).
    both = sum(held_out(u, "spring", 0.1) and held_out(u, "autumn", 0.1) for u in users)
    assert both < 0.03 * len(users)
    assert 0.0 <= min(holdout_draw(u, "spring") for u in users)
    assert max(holdout_draw(u, "spring") for u in users) < 1.0


def offer_stream() -> list:
    settings_free = daily_visits("rich", 8) + daily_visits("poor", 8)
    messages = stream(settings_free)
    n = len(messages)
    return messages + [message(n, "rich", T0 + 7 * DAY + 60, "purchase", price=80.0, session="rich-x"),
                       message(n + 1, "clock", T0 + 40 * DAY)]


@pytest.mark.parametrize("share, expected", [(0.0, False), (0.999999, True)])
def test_a_retention_offer_is_decided_and_marked(share: float, expected: bool) -> None:
    settings = Settings(retention_min_revenue=50.0, holdout_share=share)
    results = run_batches(Processor(MemoryState(settings), settings), [offer_stream()])
    offers = [a for r in results for a in r.alerts if a.kind == "retention_offer"]
    actions = [a for r in results for a in r.actions]
    assert len(offers) == 1 and len(actions) == 1
    action, alert = actions[0], offers[0]
    assert action.kind == action.campaign == "retention_offer"
    assert action.held_out is expected and alert.held_out is expected
    assert alert.to_dict()["held_out"] is expected
    doc = action.to_dict()
    assert doc["action_id"] == f"action:{alert.alert_id}" and doc["reason_id"] == alert.alert_id
    assert doc["treated"] is (not expected) and doc["features"]["revenue"] == 80.0
    # Alerts that are not actions carry no decision.
    assert "held_out" not in next(a for r in results for a in r.alerts if a.kind == "churn_risk").to_dict()


def test_decisions_do_not_depend_on_batching() -> None:
    settings = Settings(retention_min_revenue=50.0, holdout_share=0.5)
    messages = offer_stream()
    whole = run_batches(Processor(MemoryState(settings), settings), [messages])
    small = run_batches(Processor(MemoryState(settings), settings),
                        [messages[i:i + 3] for i in range(0, len(messages), 3)])
    assert ([a.to_dict() for r in whole for a in r.actions]
            == [a.to_dict() for r in small for a in r.actions])


def write_campaigns(tmp_path: Path, campaigns: list) -> Path:
    path = tmp_path / "campaigns.json"
    path.write_text(json.dumps(campaigns))
    return path


def test_a_declared_campaign_decides_each_user_once_within_its_dates(tmp_path: Path) -> None:
    path = write_campaigns(tmp_path, [{"campaign": "spring", "start": T0 + 2 * DAY, "end": T0 + 5 * DAY,
                                       "cost": 2.5, "message": "10 % off"}])
    settings = Settings(campaigns=str(path), holdout_share=0.3)
    users = [f"u{i}" for i in range(40)]
    visits = [(u, T0 + d * DAY + i) for i, u in enumerate(users) for d in range(8)]
    messages = stream(visits)
    results = run_batches(Processor(MemoryState(settings), settings),
                          [messages[i:i + 25] for i in range(0, len(messages), 25)])
    offers = [a for r in results for a in r.actions]
    assert sorted(a.user_id for a in offers) == sorted(users)  # once each
    assert all(a.kind == "offer" and a.campaign == "spring" for a in offers)
    assert all(T0 + 2 * DAY <= a.ts < T0 + 5 * DAY for a in offers)
    assert all(a.held_out == held_out(a.user_id, "spring", 0.3) for a in offers)
    assert {a.action_id for a in offers} == {f"action:offer:spring:{u}" for u in users}
    assert offers[0].to_dict()["cost"] == 2.5 and offers[0].message == "10 % off"


@pytest.mark.parametrize("campaigns, message", [
    ({"campaign": "x"}, "JSON list"),
    ([{"start": 0, "end": 1}], "non-empty 'campaign'"),
    ([{"campaign": "x", "start": T0}], "needs 'end'"),
    ([{"campaign": "x", "start": T0, "end": T0 - 1}], "after 'start'"),
    ([{"campaign": "cart_nudge", "start": T0, "end": T0 + 1}], "taken"),
    ([{"campaign": "x", "start": T0, "end": T0 + 1, "segments": "2"}], "segment numbers"),
    ([{"campaign": "x", "start": T0, "end": T0 + 1, "cost": -1}], "'cost'"),
])
def test_bad_campaign_files_are_refused_in_one_line(tmp_path: Path, campaigns: object,
                                                    message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_campaigns(tmp_path, campaigns)  # type: ignore[arg-type]
    with pytest.raises(CampaignError, match=message):
        load_campaigns(path)
    monkeypatch.setenv("SHOPSTREAM_CAMPAIGNS", str(path))
    with pytest.raises(ConfigError, match=message):
        Settings.from_env()


def test_holdout_share_must_be_a_share(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOPSTREAM_HOLDOUT_SHARE", "10")
    with pytest.raises(ConfigError, match="HOLDOUT_SHARE"):
        Settings.from_env()
