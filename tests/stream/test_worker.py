"""End to end through a real worker process, a real broker and a real Redis."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import orjson
import pytest
import redis

from stream.topics import create_topics
from tests.support import (
    ROOT,
    Services,
    Worker,
    isolated_settings,
    produce,
    read_topic,
    settings_env,
)

pytestmark = [pytest.mark.services, pytest.mark.slow]


def test_traffic_in_recommendations_and_dead_letters_out(
    services: Services, redis_client: redis.Redis, tmp_path: Path
) -> None:
    settings = isolated_settings(services, gc_full_every_s=1.0)
    create_topics(settings)
    worker = Worker(settings, tmp_path / "worker").start()
    try:
        worker.wait_ready()
        summary = produce(settings, "--count", "3000", "--bad-fraction", "0.1", "--seed", "5")
        metrics = worker.wait_received(3000)
        # Everything in is processed or dead-lettered, nothing else.
        assert metrics["processed"] + metrics["dead_lettered"] == 3000, metrics
        assert 200 <= metrics["dead_lettered"] <= 400, (metrics, summary)

        letters = read_topic(settings, settings.topics.dead_letters, expect=metrics["dead_lettered"])
        assert len(letters) == metrics["dead_lettered"]
        for letter in letters:
            assert letter["reason"] and letter["topic"] in settings.topics.inputs
            assert letter["offset"] >= 0 and "original_b64" in letter

        recs = read_topic(settings, settings.topics.recommendations, expect=metrics["recommendations"])
        users_with_history = {
            key.decode().rsplit(":", 1)[1]
            for key in redis_client.scan_iter(match=f"{settings.prefix}user:*")
        }
        assert users_with_history
        # Everyone with history gets recommendations, but for a user whose every
        # item is one they bought while the worker knew no other (the first
        # batch may hold only purchases: Kafka orders nothing across topics).
        with_recs = {r["user_id"] for r in recs}
        assert with_recs <= users_with_history
        assert len(with_recs) >= 0.98 * len(users_with_history)
        assert all(r["items"] and r["rec_id"] == f"rec:{r['event_id']}" for r in recs)

        user = sorted(users_with_history)[0]
        status, served = worker.get(f"/recommendations/{user}")
        assert status == 200 and served["user_id"] == user and served["items"]
        status, profile = worker.get(f"/users/{user}")
        assert status == 200 and profile["user_id"] == user
        assert worker.get("/recommendations/nobody")[0] == 404
        status, health = worker.get("/health")
        assert status == 200 and health["status"] == "ok"
        # Batches start no full garbage-collection pass: the worker's timer does.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and worker.metrics()["gc_full_passes"] < 2:
            time.sleep(0.2)
        assert worker.metrics()["gc_full_passes"] >= 2, worker.metrics()
    finally:
        worker.stop()


def test_a_worker_behind_its_input_catches_up_in_bigger_batches(
    services: Services, tmp_path: Path
) -> None:
    """Events written well before the worker reads them are late already:
    they go in batches of up to catch_up_batch_max, not batch_max."""
    settings = isolated_settings(services, batch_max=100, catch_up_batch_max=3000, catch_up_after_s=1.0)
    create_topics(settings)
    produce(settings, "--count", "3000", "--seed", "6")
    time.sleep(2.0)
    worker = Worker(settings, tmp_path / "worker").start()
    try:
        worker.wait_ready()
        metrics = worker.wait_received(3000)
        assert metrics["processed"] == 3000, metrics
        assert metrics["batches"] < 3000 / settings.batch_max, metrics
    finally:
        worker.stop()


def test_a_worker_started_before_its_broker_and_redis_waits_and_says_why(
    services: Services, tmp_path: Path
) -> None:
    from devstack.services import free_port, start_broker, start_redis, wait_ready

    broker_port, redis_port = free_port(), free_port()
    settings = isolated_settings(
        Services(f"kafka://127.0.0.1:{broker_port}", f"redis://127.0.0.1:{redis_port}/0")
    )
    worker = Worker(settings, tmp_path / "worker").start()
    broker = redis_server = None
    try:
        deadline = time.monotonic() + 30
        status, health = 0, {}
        while time.monotonic() < deadline and status != 503:
            try:
                status, health = worker.get("/health")
            except OSError:
                time.sleep(0.3)
        assert status == 503 and health["missing"] == ["broker", "redis"], health
        assert "broker unavailable" in worker.log_tail()

        broker = start_broker(tmp_path, broker_port)
        wait_ready(broker)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                status, health = worker.get("/health")
                if status == 503 and health["missing"] == ["redis"] and health.get("counters"):
                    break
            except OSError:
                pass
            time.sleep(0.3)
        assert health["missing"] == ["redis"] and health.get("counters"), health

        redis_server = start_redis(tmp_path, redis_port)
        wait_ready(redis_server)
        worker.wait_ready()
        create_topics(settings)
        produce(settings, "--count", "200", "--seed", "3")
        metrics = worker.wait_received(200)
        assert metrics["processed"] == 200
    finally:
        worker.stop()
        for proc in (broker, redis_server):
            if proc is not None:
                proc.stop()


def test_state_that_outlived_its_broker_applies_the_new_topics_from_their_start(
    services: Services, tmp_path: Path
) -> None:
    """A broker that kept nothing (Tansu restarted, Kafka on a new log, topics
    created again) under a state that Redis kept: the same topic names start
    at offset 0 again, under offsets the state has applied already. Without
    the check every new event was skipped."""
    from devstack.services import free_port, start_broker, wait_ready

    settings = isolated_settings(services)
    create_topics(settings)
    worker = Worker(settings, tmp_path / "before").start()
    try:
        worker.wait_ready()
        produce(settings, "--count", "3000", "--seed", "3")
        assert worker.wait_received(3000)["processed"] == 3000
        assert worker.metrics()["partitions_restarted"] == 0
    finally:
        worker.stop()

    with start_broker(tmp_path, free_port()) as restarted:  # empty, as after a restart
        wait_ready(restarted)
        after = replace(settings, broker=restarted.url)
        create_topics(after)
        produce(after, "--count", "600", "--seed", "4")
        worker = Worker(after, tmp_path / "after").start()
        try:
            worker.wait_ready()
            metrics = worker.wait_received(600)
            assert metrics["processed"] == 600 and metrics["already_applied"] == 0, metrics
            # Every input partition had more messages before than after.
            assert metrics["partitions_restarted"] == 3 * settings.partitions, metrics
            assert "past the end of" in worker.log_tail(200)
        finally:
            worker.stop()


@pytest.mark.parametrize("restart", ["emptied", "on its log"])
def test_a_broker_restarted_under_a_running_worker_loses_none_of_the_new_events(
    restart: str, services: Services, tmp_path: Path
) -> None:
    """Emptied (Tansu's restart; for Kafka a new log): the worker's consumer
    starts the topics from offset 0; its batches find those offsets applied
    already, notice the partitions' ends are below the state's offsets,
    restart them and apply the batch. On its log (Apache Kafka's restart):
    the state's offsets stay below the ends, so the lost-topics check must
    not fire, and the worker goes on from where it was."""
    from devstack.services import broker_kind, free_port, start_broker, wait_ready

    emptied = restart == "emptied"
    if broker_kind()[0] != ("tansu" if emptied else "kafka"):
        pytest.skip("Tansu keeps nothing across a restart, Kafka keeps its log: "
                    "each broker has one of the two cases")
    port = free_port()
    broker = start_broker(tmp_path / "first", port)
    worker = None
    try:
        wait_ready(broker)
        settings = isolated_settings(Services(broker.url, services.redis_url))
        create_topics(settings)
        worker = Worker(settings, tmp_path / "worker").start()
        worker.wait_ready()
        produce(settings, "--count", "3000", "--seed", "3")
        assert worker.wait_received(3000)["processed"] == 3000

        broker.stop()
        broker = start_broker(tmp_path / ("second" if emptied else "first"), port)
        wait_ready(broker)
        create_topics(settings)
        produce(settings, "--count", "600", "--seed", "4")
        # Messages read again after a restart count as received, not processed.
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and worker.wait_received(3600)["processed"] < 3600:
            time.sleep(0.3)
        metrics = worker.metrics()
        assert metrics["processed"] == 3600, metrics
        if emptied:
            assert metrics["already_applied"] == 0 and metrics["partitions_restarted"] >= 1, metrics
            assert "past the end of" in worker.log_tail(200)
        else:
            assert metrics["partitions_restarted"] == 0, metrics
            assert "past the end of" not in worker.log_tail(500)
    finally:
        if worker is not None:
            worker.stop()
        broker.stop()


def wait_for_version(worker: Worker, version: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and worker.metrics()["models_version"] < version:
        time.sleep(0.5)
    assert worker.metrics()["models_version"] >= version, worker.log_tail()


def test_ingest_scores_with_the_snapshot_the_learn_agent_publishes(
    services: Services, redis_client: redis.Redis, tmp_path: Path
) -> None:
    settings = isolated_settings(services, snapshot_every=200, snapshot_interval_s=1.0)
    create_topics(settings)
    worker = Worker(settings, tmp_path / "worker").start()
    try:
        worker.wait_ready()
        assert worker.metrics()["models_version"] == 0
        produce(settings, "--count", "6000", "--seed", "8")
        worker.wait_received(6000)
        # The learn agent publishes to Redis; ingest loads it on its timer.
        wait_for_version(worker, 1)
        assert int(redis_client.get(f"{settings.prefix}models:version")) >= 1
        deadline = time.monotonic() + 60  # segments exist once K-means has its first points
        while time.monotonic() < deadline and not worker.get("/segments")[1]["segments"]:
            time.sleep(0.5)
        status, segments = worker.get("/segments")
        assert status == 200 and len(segments["segments"]) == 5
        assert all(s["name"] and s["description"] for s in segments["segments"])
        # More traffic, more learning: a newer snapshot replaces the first.
        produce(settings, "--count", "20000", "--seed", "9")
        worker.wait_received(26000)
        wait_for_version(worker, 2)
        # Labels resolve a day of event time after scoring: prequential metrics follow.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not worker.metrics()["propensity"].get("n"):
            time.sleep(0.5)
        assert worker.metrics()["propensity"]["n"] > 0, worker.metrics()
        changes = read_topic(settings, settings.topics.segments, timeout=10)
        assert changes and all(c["change_id"] == f"seg:{c['event_id']}" for c in changes)
        last = changes[-1]  # a user's changes share one partition: this is their latest
        stored = orjson.loads(redis_client.get(f"{settings.prefix}user:{last['user_id']}"))
        assert stored["segment"] == last["segment"]
        status, user = worker.get(f"/users/{last['user_id']}")
        assert status == 200 and user["segment"]["name"] and user["segment"]["description"]
        assert 0.0 <= user["propensity"] <= 1.0 and user["features"]["events"] >= 1
    finally:
        worker.stop()


def test_replay_to_kafka_pushes_recorded_events_in_time_order(
    services: Services, tmp_path: Path
) -> None:
    settings = isolated_settings(services)
    create_topics(settings)
    events = tmp_path / "events.jsonl"
    lines = [orjson.dumps({"event_id": f"e{i}", "type": ("view", "click", "purchase")[i % 3],
                           "user_id": f"u{i % 4}", "item_id": f"i{i}", "ts": 1.7e9 + (50 - i),
                           "price": 1.0}) for i in range(50)]
    events.write_bytes(b"\n".join(lines + [b"{not json"]) + b"\n")
    env = {**os.environ, **settings_env(settings)}
    started = time.monotonic()
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "replay.py"), "--quiet",
                           "--input", str(events), "--to-kafka", "--speed", "10"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started >= 4.0  # 49 s of event time at 10x
    views = read_topic(settings, settings.topics.views, expect=17)
    clicks = read_topic(settings, settings.topics.clicks, expect=18)
    purchases = read_topic(settings, settings.topics.purchases, expect=16)
    assert len(views) == 17 and len(purchases) == 16
    assert len(clicks) == 18  # 17 clicks and the undecodable line, for the worker to dead-letter
    assert sum("undecodable" in e for e in clicks) == 1
    for topic in (views, clicks, purchases):  # in time order per user (one partition each)
        for user in {e["user_id"] for e in topic if "user_id" in e}:
            ts = [e["ts"] for e in topic if e.get("user_id") == user]
            assert ts == sorted(ts)


def alert_story(path: Path) -> tuple[int, list[str]]:
    """Ten steady shoppers for 30 days; one regular who stops after a week; one
    account whose card is stolen on day 15 (six big orders in two minutes).
    Returns the event count and the stolen purchases' event ids."""
    t0, day = 1_700_000_000.0, 86400.0
    events, stolen = [], []

    def add(user: str, ts: float, kind: str, item: str, **extra: object) -> str:
        event_id = f"{user}-{len(events)}"
        events.append({"event_id": event_id, "type": kind, "user_id": user, "item_id": item,
                       "ts": ts, "session_id": f"{user}-{int(ts // 3600)}", **extra})
        return event_id

    for u in range(10):
        for half_day in range(60):
            ts = t0 + half_day * day / 2 + u * 300
            add(f"steady{u}", ts, "view", f"i{(u + half_day) % 9}")
            if half_day % 4 == 0:
                add(f"steady{u}", ts + 60, "purchase", f"i{(u + half_day) % 9}", price=25.0 + u,
                    order_id=f"o-{u}-{half_day}", attrs={"device_risk": 0.1})
    for d in range(7):
        add("regular", t0 + d * day + 1000, "view", f"i{d}")
    for k in range(6):
        stolen.append(add("steady3", t0 + 15 * day + 7000 + 20 * k, "purchase", f"x{k}",
                          price=1500.0, order_id=f"stolen-{k}", attrs={"device_risk": 0.1}))
    events.sort(key=lambda e: e["ts"])
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    return len(events), stolen


def test_a_stolen_card_burst_and_a_silent_regular_raise_alerts_with_reasons(
    services: Services, tmp_path: Path
) -> None:
    from kafka import KafkaProducer

    settings = isolated_settings(services, enable_forget=True)
    create_topics(settings)
    events = tmp_path / "story.jsonl"
    n, stolen = alert_story(events)
    worker = Worker(settings, tmp_path / "worker").start()
    try:
        worker.wait_ready()
        produce(settings, "--from", str(events))
        # Confirmed outcomes arrive on the labels topic (one malformed).
        producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers)
        for event_id in stolen:
            producer.send(settings.topics.labels, orjson.dumps(
                {"event_id": event_id, "fraud": True, "ts": 1_700_000_000 + 16 * 86400}))
        producer.send(settings.topics.labels, b'{"event_id": "x", "fraud": "maybe"}')
        producer.flush()
        producer.close()
        metrics = worker.wait_received(n)
        assert metrics["processed"] == n
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and worker.metrics()["labels"] < len(stolen):
            time.sleep(0.5)
        assert worker.metrics()["labels"] == len(stolen), worker.metrics()

        # The regular's silence is noticed once the idle worker's clock moves on.
        deadline = time.monotonic() + 60
        alerts: list[dict] = []
        while time.monotonic() < deadline and not any(a["kind"] == "churn_risk" for a in alerts):
            time.sleep(1.0)
            alerts = read_topic(settings, settings.topics.alerts, timeout=5)
        time.sleep(2 * settings.idle_after_s)  # further sweeps must not raise it again
        alerts = read_topic(settings, settings.topics.alerts, expect=worker.metrics()["alerts"])
        assert len(alerts) == worker.metrics()["alerts"]
        churn = [a for a in alerts if a["kind"] == "churn_risk"]
        assert [a["user_id"] for a in churn] == ["regular"], churn
        assert churn[0]["alert_id"] == f"churn_risk:regular:{1_700_000_000.0 + 6 * 86400 + 1000!r}"
        silence = next(r for r in churn[0]["reasons"] if r["name"] == "silence_days")
        assert silence["value"] > silence["normal"] > 0  # longer than this user's rhythm
        status, user = worker.get("/users/regular")
        assert status == 200 and user["churn_risk"] > 0.8 and user["churn_episode_open"]
        status, user = worker.get("/users/steady1")
        assert status == 200 and user["churn_risk"] < 0.5 and not user["churn_episode_open"]

        # The outcomes the learner joined show in the next models' metrics.
        deadline = time.monotonic() + 60
        joined = lambda: worker.metrics()["fraud"].get("labels", {}).get("joined")  # noqa: E731
        while time.monotonic() < deadline and joined() != len(stolen):
            time.sleep(0.5)
        assert worker.metrics()["fraud"]["labels"]["joined"] == len(stolen), worker.metrics()
        fraud = {a["event_id"]: a for a in alerts if a["kind"] == "fraud"}
        flagged = [fraud[e] for e in stolen if e in fraud]
        assert len(flagged) >= 4, sorted(fraud)
        for alert in flagged:
            assert alert["alert_id"] == f"fraud:{alert['event_id']}" and alert["user_id"] == "steady3"
            names = {r["name"] for r in alert["reasons"]}
            assert "rule:amount_far_above_usual" in names, alert
        amount = next(r for a in flagged for r in a["reasons"] if r["name"] == "rule:amount_far_above_usual")
        assert amount["value"] >= 30
        assert any("rule:rapid_orders" in {r["name"] for r in a["reasons"]} for a in flagged)

        letters = read_topic(settings, settings.topics.dead_letters, expect=1)
        assert [d["topic"] for d in letters] == [settings.topics.labels]
        assert "true or false" in letters[0]["reason"]

        # Erasure on request: everything about the user goes; reads are 404 after.
        status, body = worker.get("/forget/regular", timeout=15.0, method="POST")
        assert status == 200 and body["erased"]["profile"] == 1, body
        assert worker.get("/users/regular")[0] == 404
        assert worker.get("/forget/regular")[0] == 405  # never by a GET
    finally:
        worker.stop()


FETCH_PROBE = """
import asyncio
from stream.app import app

async def main():
    consumer = app.consumer._thread._create_worker_consumer(app.transport)
    await consumer.start()
    try:
        print(consumer._fetcher._fetch_max_wait_ms, consumer._fetcher._fetch_min_bytes)
    finally:
        await consumer.stop()

asyncio.run(main())
"""


def test_the_worker_consumer_fetches_with_the_configured_wait_and_size(services: Services) -> None:
    """Faust fixes the wait at 1500 ms and the size at 1 byte; the settings
    must reach the fetcher aiokafka builds on start."""
    settings = isolated_settings(services, kafka_fetch_max_wait_ms=37, kafka_fetch_min_bytes=999)
    done = subprocess.run(
        [sys.executable, "-c", FETCH_PROBE], cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={**os.environ, **settings_env(settings), "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-2:] == ["37", "999"]
