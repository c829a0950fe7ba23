"""Faults through real workers, a real broker and a real Redis: the final state
equals that of a reference run over the same events that was never disturbed.

Each test streams clicks and carts only (one input topic, so each user's
events reach a worker in one partition's order and a reference run can
expect the same state), disturbs the run, and compares the final Redis state
(profiles, co-occurrence rows, occurrences) and the churn alerts emitted with
an in-process replay of the same file. The worker crashes and the Redis
outage run on one Redis and on a local Redis Cluster (the ``store``
fixture): on the cluster a SIGKILL can also fall between a batch's journal
and its application to the slots (stream/redis_cluster.py).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import redis
from redis.cluster import RedisCluster

from stream.topics import create_topics
from tests.support import (
    Services,
    Worker,
    assert_same_as_undisturbed,
    isolated_settings,
    produce,
    push,
    read_topic,
    total_events,
    wait_for_events,
    write_single_topic_events,
)

pytestmark = [pytest.mark.services, pytest.mark.slow, pytest.mark.fault]

EVENTS = 6000
STORES = ["single Redis", "Redis Cluster"]


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, services: Services) -> Services:
    """The session's broker with one Redis, or with a local Redis Cluster."""
    if request.param == "single Redis":
        return services
    cluster = request.getfixturevalue("redis_cluster")
    return Services(services.broker, cluster.url, redis_cluster=True)


@pytest.fixture
def store_client(store: Services):
    client = (RedisCluster.from_url(store.redis_url) if store.redis_cluster
              else redis.Redis.from_url(store.redis_url))
    yield client
    client.close()


def test_sigkill_mid_stream_leaves_the_state_of_an_undisturbed_run(
    store: Services, store_client: redis.Redis, tmp_path: Path
) -> None:
    redis_client = store_client
    # No trimming inside the test: trimming is the one order-sensitive step.
    settings = isolated_settings(store, max_neighbours=100_000, batch_max=200, catch_up_batch_max=200)
    create_topics(settings)
    events = tmp_path / "events.jsonl"
    n = write_single_topic_events(events, EVENTS)
    worker = Worker(settings, tmp_path / "worker").start()
    try:
        worker.wait_ready()
        pusher = push(settings, events, rate=1500)
        worker.wait_received(n // 3)
        worker.kill()
        killed_at = total_events(redis_client, settings.prefix)
        assert 0 < killed_at < n
        worker.start()
        assert pusher.wait(timeout=120) == 0, pusher.stderr.read() if pusher.stderr else ""
        wait_for_events(redis_client, settings.prefix, n, worker)
        time.sleep(1.0)  # anything still in flight would overshoot the count
        assert total_events(redis_client, settings.prefix) == n
    finally:
        worker.stop()
    assert_same_as_undisturbed(settings, redis_client, events)


def test_three_workers_one_killed_mid_stream(
    store: Services, store_client: redis.Redis, tmp_path: Path
) -> None:
    redis_client = store_client
    settings = isolated_settings(store, max_neighbours=100_000, batch_max=200, catch_up_batch_max=200)
    create_topics(settings)
    events = tmp_path / "events.jsonl"
    n = write_single_topic_events(events, EVENTS)
    workers = [Worker(settings, tmp_path / f"worker{i}").start() for i in range(3)]
    try:
        for worker in workers:
            worker.wait_ready()
        pusher = push(settings, events, rate=1500)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and total_events(redis_client, settings.prefix) < n // 3:
            time.sleep(0.2)
        victim = max(workers, key=lambda w: w.metrics()["received"])  # one that has partitions
        assert victim.metrics()["received"] > 0
        victim.kill()
        assert pusher.wait(timeout=120) == 0, pusher.stderr.read() if pusher.stderr else ""
        survivors = [w for w in workers if w is not victim]
        wait_for_events(redis_client, settings.prefix, n, survivors, timeout=120)
        time.sleep(1.0)
        assert total_events(redis_client, settings.prefix) == n
    finally:
        for worker in workers:
            worker.stop()
    assert_same_as_undisturbed(settings, redis_client, events)


@pytest.mark.parametrize("kind", STORES)
def test_redis_paused_mid_stream_is_reported_and_survived(
    kind: str, services: Services, tmp_path: Path
) -> None:
    """Redis frozen (SIGSTOP) for 20 s mid-stream: one Redis, or one master
    of a Redis Cluster (the cluster marks it failed and stops serving)."""
    from devstack.services import free_port, start_redis, start_redis_cluster, wait_ready

    cluster = kind == "Redis Cluster"
    if cluster:
        own = start_redis_cluster(tmp_path / "cluster")
        own_redis = own.masters[1]  # not the seed node the worker connects through
        url = own.url
        client: redis.Redis = RedisCluster.from_url(url)
    else:
        own = own_redis = start_redis(tmp_path / "redis", free_port())
        wait_ready(own_redis)
        url = own_redis.url
        client = redis.Redis.from_url(url)
    settings = isolated_settings(Services(services.broker, url, redis_cluster=cluster),
                                 max_neighbours=100_000, batch_max=200, catch_up_batch_max=200)
    create_topics(settings)
    events = tmp_path / "events.jsonl"
    n = write_single_topic_events(events, EVENTS)
    worker = Worker(settings, tmp_path / "worker").start()
    try:
        worker.wait_ready()
        pusher = push(settings, events, rate=1500)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and total_events(client, settings.prefix) < n // 3:
            time.sleep(0.2)
        own_redis.pause()
        try:
            assert pusher.poll() is None, "the stream ended before the pause"
            paused_at = time.monotonic()
            seen_down = False
            while time.monotonic() - paused_at < 20:
                try:
                    status, health = worker.get("/health", timeout=3.0)
                    seen_down |= status == 503 and "redis" in health.get("missing", [])
                except OSError:
                    pass
                time.sleep(0.5)
            assert seen_down, "/health never reported the Redis outage"
        finally:
            own_redis.resume()
        assert pusher.wait(timeout=120) == 0, pusher.stderr.read() if pusher.stderr else ""
        wait_for_events(client, settings.prefix, n, worker, timeout=120)
        time.sleep(1.0)
        assert total_events(client, settings.prefix) == n
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and worker.get("/health")[0] != 200:
            time.sleep(0.5)
        assert worker.get("/health")[0] == 200
    finally:
        worker.stop()
    try:
        assert_same_as_undisturbed(settings, client, events)
    finally:
        client.close()
        own.stop()


@pytest.mark.parametrize("disturbance", ["paused for 30 s", "SIGKILLed, then restarted on its log"])
def test_broker_disturbed_mid_stream(disturbance: str, services: Services, tmp_path: Path,
                                     redis_client: redis.Redis) -> None:
    """The broker frozen (SIGSTOP) for 30 s, or killed and started again on
    its log, which only a broker that keeps one allows: the worker rides
    through; nothing is lost or applied twice, and nothing good is
    dead-lettered."""
    from devstack.services import broker_kind, free_port, start_broker, wait_ready

    killed = disturbance.startswith("SIGKILL")
    if killed and broker_kind()[0] != "kafka":
        pytest.skip("Tansu keeps nothing across a restart: needs Apache Kafka (Java 17+, Maven)")
    port = free_port()
    own_broker = start_broker(tmp_path / "broker", port)
    wait_ready(own_broker)
    settings = isolated_settings(Services(own_broker.url, services.redis_url, services.redis_cluster),
                                 max_neighbours=100_000,
                                 batch_max=200, catch_up_batch_max=200)
    create_topics(settings)
    events = tmp_path / "events.jsonl"
    n = write_single_topic_events(events, EVENTS)
    # The first half is in the broker before the worker starts and the second
    # half only after the disturbance, so it falls mid-stream however fast
    # the worker is; it may catch a batch in flight or an idle worker.
    lines = events.read_bytes().splitlines(keepends=True)
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    first.write_bytes(b"".join(lines[: n // 2]))
    second.write_bytes(b"".join(lines[n // 2:]))
    assert push(settings, first).wait(timeout=120) == 0
    worker = Worker(settings, tmp_path / "worker").start()
    try:
        worker.wait_ready()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and total_events(redis_client, settings.prefix) < n // 4:
            time.sleep(0.05)
        if killed:
            own_broker.kill()
            time.sleep(3)  # the worker's fetches and sends fail meanwhile
            own_broker = start_broker(tmp_path / "broker", port)
            wait_ready(own_broker)
        else:
            own_broker.pause()
            try:
                time.sleep(30)
            finally:
                own_broker.resume()
        assert total_events(redis_client, settings.prefix) < n
        assert push(settings, second).wait(timeout=120) == 0
        wait_for_events(redis_client, settings.prefix, n, worker, timeout=180)
        time.sleep(1.0)
        assert total_events(redis_client, settings.prefix) == n
        metrics = worker.metrics()
        assert metrics["dead_lettered"] == 0 and metrics["partitions_restarted"] == 0, metrics
    finally:
        worker.stop()
    try:
        assert_same_as_undisturbed(settings, redis_client, events)
        assert read_topic(settings, settings.topics.dead_letters, timeout=3.0) == []
    finally:
        own_broker.stop()


def test_a_worker_killed_again_and_again_at_random_moments(
    store: Services, store_client: redis.Redis, tmp_path: Path
) -> None:
    """SIGKILL lands before, during or after a batch's Redis transaction or
    its offset commit (on a cluster: its journal, the application of it to
    the slots), wherever the moment falls; four times in one run."""
    import random

    redis_client = store_client
    rng = random.Random(20261122)
    settings = isolated_settings(store, max_neighbours=100_000, batch_max=100, catch_up_batch_max=100)
    create_topics(settings)
    events = tmp_path / "events.jsonl"
    n = write_single_topic_events(events, EVENTS)
    worker = Worker(settings, tmp_path / "worker").start()
    kills = 0
    try:
        worker.wait_ready()
        pusher = push(settings, events, rate=100)  # a minute of traffic, through four crashes
        for _ in range(4):
            worker.wait_ready()
            before = total_events(redis_client, settings.prefix)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and total_events(redis_client, settings.prefix) == before:
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.3))  # somewhere in a batch cycle
            if total_events(redis_client, settings.prefix) >= n:
                break
            worker.kill()
            kills += 1
            worker.start()
        assert pusher.wait(timeout=180) == 0, pusher.stderr.read() if pusher.stderr else ""
        wait_for_events(redis_client, settings.prefix, n, worker, timeout=120)
        time.sleep(1.0)
        assert total_events(redis_client, settings.prefix) == n
    finally:
        worker.stop()
    assert kills == 4
    assert_same_as_undisturbed(settings, redis_client, events)


def test_rebalance_while_the_learn_agent_writes_snapshots(
    services: Services, redis_client: redis.Redis, tmp_path: Path
) -> None:
    """A snapshot every 20 updates: a second worker joining, then the first
    one dying, move the learn agent while it writes. Ingest state still equals
    the undisturbed run's, model versions only go up, and the learner resumes."""
    from stream.snapshots import SnapshotStore

    settings = isolated_settings(services, max_neighbours=100_000, batch_max=200, catch_up_batch_max=200,
                                 snapshot_every=20, snapshot_interval_s=0.2)
    create_topics(settings)
    events = tmp_path / "events.jsonl"
    n = write_single_topic_events(events, EVENTS)
    first = Worker(settings, tmp_path / "first").start()
    second = Worker(settings, tmp_path / "second")
    models = "{models}" if settings.redis_cluster else "models"  # as stream/snapshots.py names it
    version_key = f"{settings.prefix}{models}:version"
    versions: list[int] = []
    try:
        first.wait_ready()
        pusher = push(settings, events, rate=300)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and int(redis_client.get(version_key) or 0) < 3:
            time.sleep(0.1)
        second.start()  # rebalance while snapshots are being written
        second.wait_ready()
        for _ in range(40):
            versions.append(int(redis_client.get(version_key) or 0))
            time.sleep(0.1)
        first.kill()  # the learn agent moves (again, if it had not)
        for _ in range(100):
            versions.append(int(redis_client.get(version_key) or 0))
            time.sleep(0.1)
        assert pusher.wait(timeout=120) == 0, pusher.stderr.read() if pusher.stderr else ""
        wait_for_events(redis_client, settings.prefix, n, second, timeout=120)
        time.sleep(1.0)
        assert total_events(redis_client, settings.prefix) == n
        assert second.metrics()["models_version"] >= versions[0]
        second.stop()  # its learn agent may still be learning: no snapshot after this one
        final = int(redis_client.get(version_key))
        assert versions == sorted(versions) and final > versions[0], versions
    finally:
        first.stop()
        second.stop()

    async def learner_state() -> object:
        from stream.redis_state import connect

        client = connect(settings.redis_url)
        try:
            return await SnapshotStore(settings, client).load_learner()
        finally:
            await client.aclose()

    learner = asyncio.run(learner_state())
    assert learner is not None and learner.updates > 0 and learner.version <= final
    assert_same_as_undisturbed(settings, redis_client, events)


def test_a_burst_of_hostile_messages_amid_normal_traffic(
    services: Services, redis_client: redis.Redis, tmp_path: Path
) -> None:
    """10,000 malformed messages of every kind between two stretches of normal
    traffic: every message is processed or dead-lettered with a reason, and
    the normal traffic after the burst is processed like the one before."""
    settings = isolated_settings(services)
    create_topics(settings)
    worker = Worker(settings, tmp_path / "worker").start()
    try:
        worker.wait_ready()
        produce(settings, "--count", "3000", "--seed", "21", "--no-labels")
        before = worker.wait_received(3000)
        produce(settings, "--count", "10000", "--seed", "22", "--bad-fraction", "1", "--no-labels")
        produce(settings, "--count", "3000", "--seed", "23", "--no-labels")
        metrics = worker.wait_received(16_000, timeout=180)
        assert metrics["received"] == 16_000
        assert metrics["dead_lettered"] == 10_000
        assert metrics["processed"] + metrics["duplicates"] == 6_000
        assert before["processed"] + before["duplicates"] == 3_000
        letters = read_topic(settings, settings.topics.dead_letters, expect=10_000, timeout=60)
        assert len(letters) == 10_000 and all(letter["reason"] for letter in letters)
        assert worker.get("/health")[0] == 200
    finally:
        worker.stop()
