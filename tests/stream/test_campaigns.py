"""stream/campaigns.py: outcomes joined to decisions on event time, and the campaign report."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import redis

from stream import campaigns
from stream.actions import held_out
from stream.config import Settings
from stream.outputs import Message
from stream.processor import Processor
from stream.redis_state import RedisState
from stream.state import MemoryState
from tests.support import Services, isolated_settings, redis_state_snapshot
from tests.stream.test_alerts import DAY, T0, message, run_batches

USERS = [f"u{i}" for i in range(60)]


def campaign_file(tmp_path: Path, **extra: object) -> str:
    path = tmp_path / "campaigns.json"
    path.write_text(json.dumps([{"campaign": "spring", "start": T0 + 2 * DAY, "end": T0 + 3 * DAY,
                                 "cost": 1.5, **extra}]))
    return str(path)


def shop(days: int = 12) -> list[Message]:
    """Everyone visits daily at their own second of the day; the treated of
    ``spring`` (share 0.3) also buy for 20.00 on day 4, everyone buys for 5.00
    on day 11 (after any window of 7 days from day 2)."""
    rows = []
    for d in range(days):
        for i, u in enumerate(USERS):
            ts = T0 + d * DAY + i
            rows.append((ts, u, "view", {"session": f"{u}-{d}"}))
            if d == 4 and not held_out(u, "spring", 0.3):
                rows.append((ts + 60, u, "purchase", {"session": f"{u}-{d}", "price": 10.0, "quantity": 2}))
            if d == 11:
                rows.append((ts + 60, u, "purchase", {"session": f"{u}-{d}", "price": 5.0}))
    rows.sort(key=lambda r: r[0])
    return [message(n, u, ts, kind, **extra) for n, (ts, u, kind, extra) in enumerate(rows)]


def run(settings: Settings, size: int) -> tuple[MemoryState, list]:
    state = MemoryState(settings)
    messages = shop()
    results = run_batches(Processor(state, settings),
                          [messages[i:i + size] for i in range(0, len(messages), size)])
    return state, results


def test_outcomes_are_joined_to_each_decision_within_its_window_once(tmp_path: Path) -> None:
    settings = Settings(campaigns=campaign_file(tmp_path), holdout_share=0.3)
    state, results = run(settings, 1000)
    actions = [a for r in results for a in r.actions]
    treated = [a.user_id for a in actions if a.treated]
    held = [a.user_id for a in actions if a.held_out]
    assert len(actions) == len(USERS) and 0 < len(held) < len(treated)
    rows = campaigns.report(asyncio.run(state.campaign_counts()), now=T0 + 20 * DAY, costs={"spring": 1.5})
    row = next(r for r in rows if r["segment"] == "all")
    assert row["kind"] == "offer" and row["campaign"] == "spring" and row["open"] == 0
    t, h = row["treated"], row["held_out"]
    # Decided as day 2's session went quiet (30 minutes after its last event):
    # days 3 to 9 are visits in the 7 days after, day 10's is not.
    assert t["n"] == len(treated) and h["n"] == len(held)
    assert all(a.ts == T0 + 2 * DAY + USERS.index(a.user_id) + 1800 for a in actions)
    assert t["visits"] == 7 * len(treated) and h["visits"] == 7 * len(held)
    assert t["visit_rate"] == h["visit_rate"] == 1.0
    # The day-4 purchase counts; day 11's is outside every window.
    assert (t["buyers"], t["purchases"], t["revenue"]) == (len(treated), len(treated), 20.0 * len(treated))
    assert (h["buyers"], h["revenue"]) == (0, 0.0)
    assert row["incremental_conversions"]["value"] == len(treated)
    assert row["incremental_revenue"]["value"] == 20.0 * len(treated)
    assert row["cost"] == 1.5 * len(treated)
    assert row["incremental_revenue_after_cost"]["value"] == 18.5 * len(treated)
    # Windows that ended leave the profile.
    assert all(not p.exposures for p in state.profiles.values())


def test_joined_outcomes_do_not_depend_on_batching(tmp_path: Path) -> None:
    settings = Settings(campaigns=campaign_file(tmp_path), holdout_share=0.3)
    runs = [run(settings, size)[0] for size in (1, 13, 5000)]
    counts = [asyncio.run(s.campaign_counts()) for s in runs]
    assert counts[0] and counts[0] == counts[1] == counts[2]


def test_a_window_still_open_is_reported_as_open(tmp_path: Path) -> None:
    settings = Settings(campaigns=campaign_file(tmp_path), holdout_share=0.3)
    state, _ = run(settings, 500)
    counts = asyncio.run(state.campaign_counts())
    [row] = [r for r in campaigns.report(counts, now=T0 + 5 * DAY) if r["segment"] == "all"]
    assert row["open"] == len(USERS)


def test_each_day_close_publishes_one_summary(tmp_path: Path) -> None:
    settings = Settings(campaigns=campaign_file(tmp_path), holdout_share=0.3)
    _, results = run(settings, 37)
    summaries = [s for r in results for s in r.campaign_results]
    days = [s["day"] for s in summaries]
    assert days == sorted(set(days))  # once each, in order
    first_day, last_day = campaigns.day_of(T0), campaigns.day_of(T0 + 11 * DAY)
    # From the first day closed with decisions in the state (day 2's users are
    # decided by the batch that also closes day 2: nobody comes in between).
    assert days == list(range(campaigns.day_of(T0 + 3 * DAY), last_day))
    assert first_day < days[0]
    final = summaries[-1]
    assert final["result_id"] == f"campaign-results:{final['day']}"
    assert [c["campaign"] for c in final["campaigns"]] == ["spring"]


def test_an_interval_has_the_estimate_inside_and_narrows_with_more_customers() -> None:
    def interval(n: int) -> dict:
        counts: dict[str, int] = {}
        for group, rate in (("treated", 0.3), ("held_out", 0.2)):
            campaigns.add(counts, ("offer", "c", None, 1, group, "n"), n)
            campaigns.add(counts, ("offer", "c", None, 1, group, "buyers"), int(rate * n))
        return campaigns.report(counts)[0]["uplift_points"]
    small, large = interval(1000), interval(100_000)
    assert small["low"] < small["value"] < small["high"] and small["value"] == pytest.approx(10.0)
    assert large["high"] - large["low"] < (small["high"] - small["low"]) / 5


@pytest.mark.services
def test_redis_keeps_the_same_outcomes_as_memory_whatever_the_batches(
    services: Services, redis_client: redis.Redis, tmp_path: Path
) -> None:
    path = campaign_file(tmp_path)
    memory, _ = run(Settings(campaigns=path, holdout_share=0.3), 100)
    expected = asyncio.run(memory.campaign_counts())
    snapshots = []
    for size in (7, 400):
        settings = isolated_settings(services, campaigns=path, holdout_share=0.3)
        messages = shop()
        state = RedisState(settings)
        run_batches(Processor(state, settings), [messages[i:i + size] for i in range(0, len(messages), size)])
        assert asyncio.run(RedisState(settings).campaign_counts()) == expected
        snapshots.append(redis_state_snapshot(redis_client, settings.prefix))
        for user_id, profile in memory.profiles.items():
            assert snapshots[-1][f"user:{user_id}"]["offers"] == profile.offers
    assert snapshots[0]["campaign-outcomes"] and snapshots[0] == snapshots[1]
