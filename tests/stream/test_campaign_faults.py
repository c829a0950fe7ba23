"""A worker SIGKILLed mid-campaign: the decisions and the outcomes joined to
them end as in a reference run that was never disturbed (real broker, real
Redis, a real worker process)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import orjson
import pytest
import redis

from backtest.reference import compare_with_reference, read_topic
from models.profile import SESSION_GAP_S
from stream.topics import create_topics
from tests.support import (
    Services,
    Worker,
    isolated_settings,
    push,
    total_events,
    wait_for_events,
    write_single_topic_events,
)

pytestmark = [pytest.mark.services, pytest.mark.slow, pytest.mark.fault]

EVENTS = 6000


def wait_for_quiet_sessions_closed(client: redis.Redis, prefix: str, before: float,
                                   timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        keys = list(client.scan_iter(match=f"{prefix}*open-sessions*"))  # on a cluster: {u<n>}:open-sessions
        if keys and not any(client.zcount(k, "-inf", f"({before!r}") for k in keys):
            return
        time.sleep(0.5)
    raise AssertionError(f"sessions quiet before {before} still open after {timeout:.0f} s")


def test_sigkill_mid_campaign_keeps_decisions_and_joined_outcomes(
    services: Services, redis_client: redis.Redis, tmp_path: Path
) -> None:
    events = tmp_path / "events.jsonl"
    n = write_single_topic_events(events, EVENTS)
    times = [orjson.loads(line)["ts"] for line in events.read_bytes().splitlines()]
    start, end = min(times), max(times)
    campaigns = tmp_path / "campaigns.json"
    # The campaign opens a little after the stream does: users decided then
    # have their outcomes joined for the rest of it, across the kill.
    campaigns.write_text(json.dumps([{"campaign": "spring", "start": start + (end - start) / 10,
                                      "end": end + 1, "cost": 1.0}]))
    settings = isolated_settings(services, max_neighbours=100_000, batch_max=200, catch_up_batch_max=200,
                                 campaigns=str(campaigns), holdout_share=0.3, offer_window_days=2.0)
    create_topics(settings)
    worker = Worker(settings, tmp_path / "worker").start()
    try:
        worker.wait_ready()
        pusher = push(settings, events, rate=1500)
        worker.wait_received(n // 2)
        worker.kill()
        killed_at = total_events(redis_client, settings.prefix)
        assert 0 < killed_at < n
        worker.start()
        assert pusher.wait(timeout=120) == 0, pusher.stderr.read() if pusher.stderr else ""
        wait_for_events(redis_client, settings.prefix, n, worker)
        time.sleep(1.0)
        assert total_events(redis_client, settings.prefix) == n
        # Decisions come as sessions close: once the stream is idle, the
        # worker's sweep closes those the reference's last batch closed.
        wait_for_quiet_sessions_closed(redis_client, settings.prefix, end - SESSION_GAP_S)
        status, served = worker.get("/campaigns", timeout=10.0)
    finally:
        worker.stop()
    comparison = compare_with_reference(settings, events, redis_client)
    assert not comparison.problems, comparison.problems
    outcomes = comparison.live["campaign-outcomes"]
    decided = sum(v for k, v in outcomes.items() if k.startswith("offer\tspring") and k.endswith("\tn"))
    visits = sum(v for k, v in outcomes.items() if k.startswith("offer\tspring") and k.endswith("\tvisits"))
    assert decided > 50 and visits > 0
    # /campaigns serves the totals as the report (every decision, both groups).
    assert status == 200 and served["window_days"] == 2.0
    [row] = [r for r in served["campaigns"] if r["campaign"] == "spring" and r["segment"] == "all"]
    assert row["treated"]["n"] + row["held_out"]["n"] == decided
    assert row["treated"]["visits"] + row["held_out"]["visits"] == visits
    assert row["cost"] == row["treated"]["n"] * 1.0
    emitted = {a.get("action_id") for a in read_topic(settings, settings.topics.actions, timeout=10)}
    assert comparison.reference.action_ids and comparison.reference.action_ids <= emitted
