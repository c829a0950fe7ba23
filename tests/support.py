"""Real parts for tests: worker processes, producing and reading topics, and
the state an undisturbed run leaves to compare disturbed runs with."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import orjson
import redis

from backtest.reference import (  # noqa: F401 (the tests' vocabulary)
    MODEL_OUTPUTS,
    compare_with_reference,
    read_topic,
    redis_state_snapshot,
)
from devstack.workers import ROOT, Worker, settings_env  # noqa: F401 (the tests' vocabulary)
from shop.planted import write_single_topic_events  # noqa: F401 (the tests' vocabulary)
from stream.config import Settings, Topics

DATA = ROOT.parent / "shared" / "data" / "yoochoose-100k"


@dataclass
class Services:
    broker: str  # kafka://host:port
    redis_url: str
    redis_cluster: bool = False  # redis_url is a node of a Redis Cluster

    @property
    def bootstrap(self) -> str:
        return self.broker.split("://", 1)[-1]


def isolated_settings(services: Services, partitions: int = 4, **overrides: object) -> Settings:
    """Settings with topic names, app id and key prefix of their own, so tests
    sharing one broker and Redis never see each other's data."""
    tag = uuid.uuid4().hex[:8]
    topics = Topics(
        clicks=f"clicks-{tag}",
        views=f"views-{tag}",
        purchases=f"purchases-{tag}",
        recommendations=f"recommendations-{tag}",
        dead_letters=f"events-dlq-{tag}",
        features=f"features-{tag}",
        segments=f"segments-{tag}",
        alerts=f"alerts-{tag}",
        labels=f"labels-{tag}",
        actions=f"actions-{tag}",
        campaign_results=f"campaign-results-{tag}",
        demand=f"demand-{tag}",
        reviews=f"reviews-{tag}",
        messages=f"messages-{tag}",
        service=f"service-{tag}",
        inventory=f"inventory-{tag}",
    )
    values: dict = dict(
        broker=services.broker,
        redis_url=services.redis_url,
        redis_cluster=services.redis_cluster,
        app_id=f"shopstream-{tag}",
        prefix=f"test-{tag}:",
        partitions=partitions,
        topics=topics,
        idle_after_s=3.0,
        demand=not services.redis_cluster,  # not on a cluster yet (stream/redis_cluster.py)
    )
    values.update(overrides)
    return Settings(**values)


# -- runs through real workers, and what an undisturbed run leaves ----------------


def produce(settings: Settings, *args: str) -> str:
    env = dict(os.environ)
    env.update(settings_env(settings))
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "produce.py"), *args],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def total_events(client: redis.Redis, prefix: str) -> int:
    """Events in the profiles under ``prefix`` (one Redis or a Redis Cluster,
    whose user keys carry a hash tag before ``user:``)."""
    from stream.redis_cluster import plain_name

    total = 0
    for key in client.scan_iter(match=f"{prefix}*user:*", count=1000):
        if not plain_name(key.decode()[len(prefix):]).startswith("user:"):
            continue
        features = orjson.loads(client.get(key))["features"]
        total += sum(features[k] for k in ("views", "clicks", "carts", "purchases"))
    return total


def wait_for_events(client: redis.Redis, prefix: str, expected: int, worker: Worker | list[Worker],
                    timeout: float = 120.0) -> None:
    """Until the state holds ``expected`` events; else an assertion that says
    where each partition's applied offset stands and what the workers counted."""
    workers = worker if isinstance(worker, list) else [worker]
    deadline = time.monotonic() + timeout
    seen = -1
    while time.monotonic() < deadline:
        seen = total_events(client, prefix)
        if seen >= expected:
            return
        for w in workers:
            w.check_alive()
        time.sleep(0.5)
    raise AssertionError(f"state holds {seen} of {expected} events; {applied_offsets(client, prefix)}\n"
                         + "\n".join(f"{w.workdir.name}: {_counters(w)}\n{w.log_tail()}\n"
                                      f"{w.workdir.name}'s tasks:\n{w.stacks()}" for w in workers))


def applied_offsets(client: redis.Redis, prefix: str) -> str:
    """The last input offset applied per partition, as the state records it."""
    from stream.redis_cluster import plain_name

    offsets = {}
    for key in client.scan_iter(match=f"{prefix}*offset:*", count=1000):
        name = plain_name(key.decode()[len(prefix):])
        if name.startswith("offset:"):
            offsets[name[len("offset:"):]] = int(client.get(key))
    return "applied offsets " + ", ".join(f"{k}={v}" for k, v in sorted(offsets.items()))


def _counters(worker: Worker) -> dict:
    try:
        metrics = worker.metrics()
    except (OSError, ValueError) as exc:
        return {"metrics": f"unavailable ({exc})"}
    names = ("received", "processed", "already_applied", "duplicates", "dead_lettered", "batches")
    return {k: metrics.get(k) for k in names}


def push(settings: Settings, events: Path, rate: int = 0) -> subprocess.Popen:
    args = [sys.executable, str(ROOT / "scripts" / "produce.py"), "--from", str(events)]
    if rate:
        args += ["--rate", str(rate)]
    return subprocess.Popen(args, env={**os.environ, **settings_env(settings)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def assert_same_as_undisturbed(settings: Settings, client: redis.Redis, events: Path) -> None:
    comparison = compare_with_reference(settings, events, client)
    assert len(comparison.live) > 100 and len(comparison.reference.users) > 50
    assert not comparison.problems, comparison.problems
