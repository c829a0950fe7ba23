"""The benchmark's last phase: results do not depend on how fast they came.

Two workers with the benchmark's settings run a stream of their own and are
compared with the offline replay of the same events: the same profiles,
co-occurrence rows and item counts, every churn alert the replay raised, and
recommendations for every user it knows.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import redis

from bench.workers import (
    bench_settings,
    drop_keys,
    new_tag,
    preload,
    running_workers,
    wait_received,
)
from stream.config import Settings
from stream.topics import create_topics
from backtest.reference import compare_with_reference
from shop.planted import write_single_topic_events

IDENTITY_EVENTS = 6000
# Trimming neighbour lists to their best MAX_NEIGHBOURS depends on how
# increments fall into batches; with room for every neighbour, nothing else
# may differ. Recommendations are not compared for the same reason: each is
# ranked as of its batch.
UNTRIMMED = 100_000


def identity_check(settings: Settings, work: Path, client: redis.Redis) -> dict:
    """Two workers against the reference replay. The events share one input
    topic, so that each user's events arrive in one order in both runs (Kafka
    orders nothing across topics)."""
    checked = replace(bench_settings(settings, new_tag()), max_neighbours=UNTRIMMED, idle_after_s=3.0)
    events = work / "single-topic.jsonl"
    n = write_single_topic_events(events, IDENTITY_EVENTS)
    create_topics(checked)
    preload(checked, events)
    with running_workers(checked, work / "identity", 2) as workers:
        wait_received(workers, "/metrics", n)
        time.sleep(checked.idle_after_s + 6.0)  # the idle sweep raises the last churn checks
    comparison = compare_with_reference(checked, events, client)
    drop_keys(client, checked.prefix)
    drop_keys(client, "reference-" + checked.prefix)
    return {"identical": not comparison.problems, "events": n,
            "keys_compared": len(comparison.reference.state),
            "churn_alerts": len(comparison.reference.churn_alert_ids),
            "users_served": len(comparison.reference.users), "problems": comparison.problems}
