"""The benchmark's last phase: results do not depend on how fast they came.

Two workers with the benchmark's settings run a stream of their own and are
compared with the offline replay of the same events: the same profiles,
co-occurrence rows and item counts, and every churn alert the replay raised.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path

import orjson
import redis
from aiokafka import AIOKafkaConsumer, TopicPartition

from stream.bench import (
    bench_settings,
    drop_keys,
    new_tag,
    preload,
    start_workers,
    stop_all,
    wait_received,
)
from stream.config import Settings
from stream.startup import create_topics
from stream.state_compare import (
    differences,
    redis_state_snapshot,
    reference_run,
    write_single_topic_events,
)

IDENTITY_EVENTS = 6000
# Trimming neighbour lists to their best MAX_NEIGHBOURS depends on how
# increments fall into batches; with room for every neighbour, nothing else
# may differ. Recommendations are not compared for the same reason: each is
# ranked as of its batch.
UNTRIMMED = 100_000


async def read_all(settings: Settings, topic: str, quiet_s: float = 2.0) -> list[dict]:
    """Every message of ``topic`` from the beginning, until none came for ``quiet_s``."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers, enable_auto_commit=False,
                                **settings.aiokafka_options())
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        out: list[dict] = []
        last = time.monotonic()
        while time.monotonic() - last < quiet_s:
            batches = await consumer.getmany(timeout_ms=200)
            for messages in batches.values():
                out += [orjson.loads(m.value) for m in messages]
                last = time.monotonic()
        return out
    finally:
        await consumer.stop()


def identity_check(settings: Settings, work: Path, client: redis.Redis) -> dict:
    """Two workers against the reference replay. The events share one input
    topic, so that each user's events arrive in one order in both runs (Kafka
    orders nothing across topics)."""
    checked = replace(bench_settings(settings, new_tag()), max_neighbours=UNTRIMMED, idle_after_s=3.0)
    events = work / "single-topic.jsonl"
    n = write_single_topic_events(events, IDENTITY_EVENTS)
    create_topics(checked)
    preload(checked, events)
    workers = start_workers(checked, work / "identity", 2)
    try:
        wait_received(workers, "/metrics", n)
        time.sleep(checked.idle_after_s + 6.0)  # the idle sweep raises the last churn checks
    finally:
        stop_all(workers)
    reference = asyncio.run(reference_run(checked, events, client))
    live = redis_state_snapshot(client, checked.prefix)
    emitted = {a.get("alert_id") for a in asyncio.run(read_all(checked, checked.topics.alerts))}
    recommended = {r.get("user_id") for r in asyncio.run(read_all(checked, checked.topics.recommendations))}
    problems = differences(live, reference, emitted, recommended)
    drop_keys(client, checked.prefix)
    drop_keys(client, "reference-" + checked.prefix)
    return {"identical": not problems, "events": n, "keys_compared": len(reference.state),
            "churn_alerts": len(reference.churn_alert_ids), "problems": problems}
