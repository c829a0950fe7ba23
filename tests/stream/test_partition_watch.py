"""The worker's partition watch (stream/partition_watch.py) on a real worker:
a transactional producer ends each partition with a commit marker, an offset
no batch ever finishes, which looks like a partition stalled one message
short of its end. The watch reads each such partition again once, from the
state's offset, and nothing is applied twice."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest
import redis

from stream.topics import create_topics
from tests.support import (
    Services,
    Worker,
    isolated_settings,
    total_events,
    write_single_topic_events,
)

pytestmark = [pytest.mark.services, pytest.mark.slow]

STALL_S = 3.0


def test_a_partition_ending_in_a_transaction_marker_is_read_again_once(
    services: Services, redis_client: redis.Redis, tmp_path: Path
) -> None:
    from kafka import KafkaProducer

    from devstack.services import broker_kind

    if broker_kind()[0] != "kafka":
        pytest.skip("transactions need Apache Kafka")
    settings = isolated_settings(services, partition_stall_s=STALL_S)
    create_topics(settings)
    events = tmp_path / "events.jsonl"
    n = write_single_topic_events(events, 400)
    worker = Worker(settings, tmp_path / "worker").start()
    try:
        worker.wait_ready()
        producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers,
                                 transactional_id=f"{settings.prefix}watch", **settings.kafka_options())
        producer.init_transactions()
        producer.begin_transaction()
        for line in events.read_bytes().splitlines():
            event = orjson.loads(line)
            producer.send(settings.topics.clicks, key=event["user_id"].encode(), value=line)
        producer.commit_transaction()
        producer.close()

        assert worker.wait_received(n)["processed"] == n
        deadline = time.monotonic() + 10 * STALL_S + 20
        while time.monotonic() < deadline and worker.metrics()["partitions_read_again"] < settings.partitions:
            time.sleep(0.5)
        metrics = worker.metrics()
        # Every partition got events (400 users' clicks over 4), so every one ends in a marker.
        assert metrics["partitions_read_again"] == settings.partitions, metrics
        assert b"reading it again from offset" in worker.log_path.read_bytes()

        time.sleep(4 * STALL_S)  # the same offset is not read again
        metrics = worker.metrics()
        assert metrics["partitions_read_again"] == settings.partitions, metrics
        assert metrics["processed"] == n and metrics["already_applied"] == 0, metrics
        assert total_events(redis_client, settings.prefix) == n
        worker.check_alive()
    finally:
        worker.stop()
