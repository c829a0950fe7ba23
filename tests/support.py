"""Real parts for tests: worker processes, producing and reading topics, and
the state an undisturbed run leaves to compare disturbed runs with."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path

import orjson
import redis
from kafka import KafkaConsumer, TopicPartition

from stream.config import Settings, Topics
from stream.devstack import free_port
from stream.replay import ReplayConfig, run

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "yoochoose-100k"


@dataclass
class Services:
    broker: str  # kafka://host:port
    redis_url: str

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
    )
    values: dict = dict(
        broker=services.broker,
        redis_url=services.redis_url,
        app_id=f"shopstream-{tag}",
        prefix=f"test-{tag}:",
        partitions=partitions,
        topics=topics,
        idle_after_s=3.0,
    )
    values.update(overrides)
    return Settings(**values)


def settings_env(settings: Settings) -> dict[str, str]:
    env = {
        "SHOPSTREAM_BROKER": settings.broker,
        "SHOPSTREAM_REDIS_URL": settings.redis_url,
        "SHOPSTREAM_APP_ID": settings.app_id,
        "SHOPSTREAM_PREFIX": settings.prefix,
        "SHOPSTREAM_PARTITIONS": str(settings.partitions),
        "SHOPSTREAM_TOPIC_CLICKS": settings.topics.clicks,
        "SHOPSTREAM_TOPIC_VIEWS": settings.topics.views,
        "SHOPSTREAM_TOPIC_PURCHASES": settings.topics.purchases,
        "SHOPSTREAM_TOPIC_RECOMMENDATIONS": settings.topics.recommendations,
        "SHOPSTREAM_TOPIC_DLQ": settings.topics.dead_letters,
        "SHOPSTREAM_TOPIC_FEATURES": settings.topics.features,
        "SHOPSTREAM_TOPIC_SEGMENTS": settings.topics.segments,
        "SHOPSTREAM_TOPIC_ALERTS": settings.topics.alerts,
        "SHOPSTREAM_TOPIC_LABELS": settings.topics.labels,
        "SHOPSTREAM_SNAPSHOT_EVERY": str(settings.snapshot_every),
        "SHOPSTREAM_SNAPSHOT_INTERVAL_S": str(settings.snapshot_interval_s),
        "SHOPSTREAM_MAX_NEIGHBOURS": str(settings.max_neighbours),
        "SHOPSTREAM_REC_THROTTLE_S": str(settings.rec_throttle_s),
        "SHOPSTREAM_BATCH_MAX": str(settings.batch_max),
        "SHOPSTREAM_IDLE_AFTER_S": str(settings.idle_after_s),
        "SHOPSTREAM_ENABLE_FORGET": "1" if settings.enable_forget else "0",
    }
    return env


@dataclass
class Worker:
    """A real ``faust -A stream.app worker`` process."""

    settings: Settings
    workdir: Path
    web_port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None
    log_path: Path | None = None

    def start(self) -> "Worker":
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.update(settings_env(self.settings))
        env["SHOPSTREAM_WEB_PORT"] = str(self.web_port)
        env["PYTHONPATH"] = str(ROOT)
        n = len(list(self.workdir.glob("worker-*.log")))
        self.log_path = self.workdir / f"worker-{n}.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "faust", "-A", "stream.app", "worker", "-l", "info"],
                cwd=self.workdir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def get(self, path: str, timeout: float = 2.0, method: str = "GET") -> tuple[int, dict]:
        url = f"http://127.0.0.1:{self.web_port}{path}"
        try:
            request = urllib.request.Request(url, method=method)
            with urllib.request.urlopen(request, timeout=timeout) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as err:
            body = err.read()
            try:
                return err.code, json.loads(body or b"{}")
            except ValueError:  # e.g. the web server's own 405 page
                return err.code, {"body": body.decode("utf-8", "replace")}

    def metrics(self) -> dict:
        return self.get("/metrics")[1]

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Until the worker has joined its group and its dependencies answer."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                status, body = self.get("/health")
                if status == 200 and b"Worker]: Ready" in self.log_path.read_bytes():
                    return
            except (OSError, ValueError):
                pass
            time.sleep(0.3)
        raise AssertionError(f"worker not ready after {timeout}s:\n{self.log_tail()}")

    def wait_received(self, count: int, timeout: float = 90.0) -> dict:
        deadline = time.monotonic() + timeout
        metrics: dict = {}
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                metrics = self.metrics()
                if metrics["received"] >= count:
                    return metrics
            except (OSError, ValueError):
                pass
            time.sleep(0.3)
        raise AssertionError(f"worker got {metrics} < {count} after {timeout}s:\n{self.log_tail()}")

    def _check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"worker exited with {self.proc.returncode}:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


def _decoded(value: bytes) -> dict:
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return {"undecodable": value}


def read_topic(settings: Settings, topic: str, expect: int | None = None, timeout: float = 30.0) -> list[dict]:
    """All messages of ``topic`` from the beginning, as decoded JSON; stops at
    ``expect`` messages or after ``timeout`` seconds."""
    consumer = KafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=int(timeout * 1000),
    )
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        consumer.assign([TopicPartition(topic, p) for p in sorted(parts)])
        consumer.seek_to_beginning()
        out: list[dict] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=500)
            for records in batch.values():
                out.extend(_decoded(r.value) for r in records)
            if expect is not None and len(out) >= expect:
                break
            if expect is None and not batch and out:
                break
        return out
    finally:
        consumer.close()


# -- runs through real workers, and what an undisturbed run leaves ----------------


# What a profile keeps for the models: the scores depend on which snapshot of
# the global models a worker had loaded at the time, and ``closed_at`` on how
# far event time had advanced in the partitions a batch swept, not only on
# the user's own events.
MODEL_OUTPUTS = ("segment", "propensity", "closed_at")


def redis_state_snapshot(client: redis.Redis, prefix: str) -> dict:
    """The state that must be identical between runs: profiles and co-occurrence."""
    out = {}
    for key in client.scan_iter(match=f"{prefix}*"):
        name = key.decode()[len(prefix):]
        if name.startswith("user:"):
            profile = orjson.loads(client.get(key))
            out[name] = {k: v for k, v in profile.items() if k not in MODEL_OUTPUTS}
        elif name.endswith(":next"):
            out[name] = dict(client.zrange(key, 0, -1, withscores=True))
        elif name == "item-occurrences":
            out[name] = client.hgetall(key)
    return out


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
    total = 0
    for key in client.scan_iter(match=f"{prefix}user:*"):
        features = orjson.loads(client.get(key))["features"]
        total += sum(features[k] for k in ("views", "clicks", "carts", "purchases"))
    return total


def wait_for_events(client: redis.Redis, prefix: str, expected: int, worker: Worker,
                    timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    seen = -1
    while time.monotonic() < deadline:
        seen = total_events(client, prefix)
        if seen >= expected:
            return
        worker._check_alive()
        time.sleep(0.5)
    raise AssertionError(f"state holds {seen} of {expected} events:\n{worker.log_tail()}")


def first_difference(live: dict, expected: dict) -> str:
    for key in sorted(live.keys() | expected.keys()):
        a, b = live.get(key), expected.get(key)
        if a != b:
            if isinstance(a, dict) and isinstance(b, dict):
                fields = {f: (a.get(f), b.get(f)) for f in a.keys() | b.keys() if a.get(f) != b.get(f)}
                return f"{key}: {fields}"
            return f"{key}: {a!r} != {b!r}"
    return ""


def single_topic_stream(settings: Settings, path: Path, count: int) -> int:
    """Synthetic clicks and carts only: they share one input topic, so each
    user's events reach the worker in one partition's order (Kafka orders
    nothing across topics), and a reference run can expect the same state."""
    produce(settings, "--count", str(count * 3), "--seed", "11", "--out", str(path))
    lines = [
        line for line in path.read_bytes().splitlines()
        if orjson.loads(line)["type"] in ("click", "cart")
    ][:count]
    path.write_bytes(b"\n".join(lines) + b"\n")
    return len(lines)


def push(settings: Settings, events: Path, rate: int = 0) -> subprocess.Popen:
    args = [sys.executable, str(ROOT / "scripts" / "produce.py"), "--from", str(events)]
    if rate:
        args += ["--rate", str(rate)]
    return subprocess.Popen(args, env={**os.environ, **settings_env(settings)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def assert_same_as_undisturbed(settings: Settings, services: Services, client: redis.Redis,
                               events: Path) -> None:
    reference = replace(settings, prefix="reference-" + settings.prefix)
    result = asyncio.run(run(ReplayConfig(inputs=[events], redis_url=services.redis_url,
                                          progress=False, settings=reference)))
    live = redis_state_snapshot(client, settings.prefix)
    expected = redis_state_snapshot(client, reference.prefix)
    assert len(live) == len(expected) > 100
    assert live == expected, first_difference(live, expected)
    # Every churn alert of the reference run was emitted (duplicates allowed).
    expected_ids = {a["alert_id"] for a in result.alerts if a["kind"] == "churn_risk"}
    emitted = {a.get("alert_id") for a in read_topic(settings, settings.topics.alerts, timeout=10)}
    assert expected_ids <= emitted, sorted(expected_ids - emitted)[:5]
