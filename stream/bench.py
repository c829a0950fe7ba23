"""The benchmark behind ``scripts/bench.py``: shopstream against its ceilings,
measured in one run so that every figure can be read as a ratio.

On fresh topics preloaded with the same synthetic events it measures, one
after the other (so that no phase steals the other's cores):

1. the raw client ceiling: aiokafka ``getmany`` over the preloaded input;
2. bare Faust: ``stream.bare_faust``, an agent that only iterates and acks;
3. the offline replay of the same events (all models on, in memory);
4. shopstream's real worker, then the latency of recommendations at a fixed
   offered rate against that worker, then two worker processes;
5. peak RSS of every worker and the Redis memory the run's keys use;
6. that the workers' results equal those of a reference run (see
   :mod:`stream.bench_identity`).

A rate is taken over the window in which every process of a phase is busy:
from the first poll that shows all of them moving to the poll that shows the
expected count (or one of them done), so start-up and group joins do not
count against anyone.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import orjson
import redis

from stream.config import Settings, Topics
from stream.devstack import free_port
from stream.planted import PlantedShop
from stream.startup import create_topics
from stream.worker_process import ROOT, Worker, settings_env

POLL_S = 0.1
MIN_WINDOW_S = 3.0  # a shorter busy window is no measurement


class BenchError(RuntimeError):
    """A phase that could not be measured (one-line message)."""


@dataclass
class BenchConfig:
    events: int = 200_000
    rate: float = 2000.0  # offered events/s of the latency phase
    latency_s: float = 60.0
    seed: int = 42
    workdir: Path = ROOT / ".dev" / "bench"
    settings: Settings = field(default_factory=Settings.from_env)
    say: Callable[[str], None] = print


@dataclass
class Measure:
    """One line of the table."""

    name: str
    value: float | None
    unit: str
    note: str = ""

    def to_dict(self) -> dict:
        return {"name": self.name, "value": self.value, "unit": self.unit, "note": self.note}


def bench_settings(base: Settings, tag: str) -> Settings:
    """Topics, consumer group and key prefix of this run's own."""
    topics = Topics(**{name: f"bench-{tag}-{value}" for name, value in vars(base.topics).items()})
    return replace(base, topics=topics, app_id=f"bench-{tag}", prefix=f"bench-{tag}:",
                   web_port=free_port())


def write_events(path: Path, count: int, seed: int) -> dict[str, int]:
    """The synthetic shop's events (produce.py's defaults) as JSONL; counts per type."""
    counts: dict[str, int] = {}
    with open(path, "wb") as f:
        for event in PlantedShop(seed).events(count):
            counts[event.type] = counts.get(event.type, 0) + 1
            f.write(event.to_json() + b"\n")
    return counts


def preload(settings: Settings, path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "produce.py"), "--from", str(path)],
        env={**os.environ, **settings_env(settings)}, capture_output=True, text=True,
    )
    if done.returncode != 0:
        raise BenchError(f"preloading the input topics failed: {done.stderr.strip()[-300:]}")


# -- raw client -------------------------------------------------------------------


async def raw_client_rate(settings: Settings, expected: int) -> float:
    """Messages/s of one aiokafka consumer reading every input partition with getmany."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers, enable_auto_commit=False,
                                **settings.aiokafka_options())
    await consumer.start()
    try:
        partitions = [TopicPartition(t, p) for t in settings.topics.inputs
                      for p in sorted(consumer.partitions_for_topic(t) or [])]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        got, started = 0, time.perf_counter()
        deadline = started + 300
        while got < expected and time.perf_counter() < deadline:
            batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            got += sum(len(b) for b in batches.values())
        if got < expected:
            raise BenchError(f"the raw consumer read {got} of {expected} messages")
        return got / (time.perf_counter() - started)
    finally:
        await consumer.stop()


# -- worker processes ----------------------------------------------------------------


@dataclass
class Busy:
    """Events/s of worker processes while all of them were busy."""

    rate: float
    window_s: float
    events: int


def received(worker: Worker, path: str) -> int:
    try:
        status, body = worker.get(path, timeout=2.0)
    except (OSError, ValueError):
        return -1
    return int(body.get("received", 0)) if status == 200 else -1


def busy_rate(workers: list[Worker], path: str, expected: int, timeout: float = 600.0,
              progress: Callable[[int], None] | None = None) -> Busy:
    """Poll ``path`` (a JSON ``received`` count) of every worker until they
    have ``expected`` together; the rate over the window all were moving."""
    last = [0] * len(workers)
    start: tuple[float, int] | None = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = time.monotonic()
        counts = [max(received(w, path), 0) for w in workers]
        total = sum(counts)
        moving = all(c > p for c, p in zip(counts, last))
        if start is None and moving:
            start = (now, total)
        if progress is not None:
            progress(total)
        done = total >= expected or (start is not None and len(workers) > 1 and not moving)
        if start is not None and done:
            window = now - start[0]
            if window < MIN_WINDOW_S:
                raise BenchError(f"all {len(workers)} workers were busy together for only {window:.1f} s: "
                                 "too few events to measure (raise --events)")
            return Busy((total - start[1]) / window, window, total - start[1])
        for w in workers:
            w._check_alive()
        last = counts
        time.sleep(POLL_S)
    raise BenchError(f"workers received {sum(last)} of {expected} events in {timeout:.0f} s")


def peak_rss_mb(worker: Worker) -> float | None:
    """The worker process's peak resident memory (VmHWM), in MB."""
    if worker.proc is None:
        return None
    try:
        for line in Path(f"/proc/{worker.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def redis_memory_mb(client: redis.Redis, prefix: str) -> tuple[float, int]:
    """Memory of the keys under ``prefix`` (MEMORY USAGE summed) and their count."""
    total = keys = 0
    for key in client.scan_iter(match=f"{prefix}*", count=1000):
        total += client.memory_usage(key, samples=0) or 0
        keys += 1
    return total / 2**20, keys


def start_workers(settings: Settings, workdir: Path, n: int, app: str = "stream.app",
                  env: dict[str, str] | None = None) -> list[Worker]:
    workers = [Worker(settings, workdir / f"{app.split('.')[-1]}-{i}", app=app, env=dict(env or {}))
               for i in range(n)]
    for w in workers:
        w.start()
    return workers


def stop_all(workers: list[Worker]) -> None:
    for w in workers:
        w.stop()


def new_tag() -> str:
    return uuid.uuid4().hex[:8]


def clean_workdir(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, exist_ok=True)
    return path


async def read_all(settings: Settings, topic: str, quiet_s: float = 2.0) -> list[dict]:
    """Every message of ``topic`` from the beginning, until none came for ``quiet_s``."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

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


# -- the run -------------------------------------------------------------------------

RATIO_TARGETS = {"shopstream / bare Faust": 1.0, "2 workers / 1 worker": 1.7}
REPLAY_TARGET = 50_000.0  # events/s
LATENCY_P99_TARGET_MS = 100.0
IDENTITY_EVENTS = 6000
UNTRIMMED = 100_000


@dataclass
class BenchResult:
    measures: list[Measure] = field(default_factory=list)
    ratios: dict[str, float | None] = field(default_factory=dict)
    identity: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)

    def add(self, name: str, value: float | None, unit: str, note: str = "") -> None:
        self.measures.append(Measure(name, value, unit, note))

    def value(self, name: str) -> float | None:
        return next((m.value for m in self.measures if m.name == name), None)

    def targets(self) -> list[tuple[str, str, bool | None]]:
        """(what, bar, met) for every target of the issue."""
        out = []
        for name, bar in RATIO_TARGETS.items():
            value = self.ratios.get(name)
            out.append((name, f">= {bar:g}", None if value is None else value >= bar))
        replay = self.value("offline replay")
        out.append(("offline replay", f">= {REPLAY_TARGET:,.0f}/s",
                    None if replay is None else replay >= REPLAY_TARGET))
        p99 = self.value("latency p99")
        out.append(("latency p99", f"<= {LATENCY_P99_TARGET_MS:g} ms",
                    None if p99 is None else p99 <= LATENCY_P99_TARGET_MS))
        out.append(("outputs identical to the reference run", "yes", self.identity.get("identical")))
        return out

    def to_dict(self) -> dict:
        return {
            "config": self.config,
            "measures": [m.to_dict() for m in self.measures],
            "ratios": self.ratios,
            "identity": self.identity,
            "targets": [{"what": w, "bar": b, "met": ok} for w, b, ok in self.targets()],
        }

    def table(self) -> str:
        lines = [f"{'measure':<44}{'value':>14}  unit", "-" * 70]
        for m in self.measures:
            value = "n/a" if m.value is None else f"{m.value:,.1f}" if m.value < 100 else f"{m.value:,.0f}"
            lines.append(f"{m.name:<44}{value:>14}  {m.unit}{'  (' + m.note + ')' if m.note else ''}")
        lines += ["", f"{'ratio':<44}{'value':>14}", "-" * 70]
        for name, value in self.ratios.items():
            lines.append(f"{name:<44}{'n/a' if value is None else f'{value:.2f}':>14}")
        lines += ["", f"{'target':<44}{'bar':>14}  met", "-" * 70]
        for what, bar, ok in self.targets():
            lines.append(f"{what:<44}{bar:>14}  {'n/a' if ok is None else 'yes' if ok else 'NO'}")
        return "\n".join(lines)


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


def run_bench(config: BenchConfig) -> BenchResult:
    """Every phase in turn; the table's numbers come from this one run."""
    say = config.say
    result = BenchResult(config={"events": config.events, "rate": config.rate,
                                 "latency_s": config.latency_s, "seed": config.seed,
                                 "partitions": config.settings.partitions,
                                 "batch_max": config.settings.batch_max})
    work = clean_workdir(config.workdir)
    settings = bench_settings(config.settings, new_tag())
    events = work / "events.jsonl"
    say(f"generating {config.events:,} synthetic events (seed {config.seed})")
    write_events(events, config.events, config.seed)
    create_topics(settings)
    say("preloading the input topics")
    started = time.perf_counter()
    preload(settings, events)
    result.add("preload (kafka-python producer)", config.events / (time.perf_counter() - started), "msg/s")
    client = redis.Redis.from_url(settings.redis_url)

    say("1/6 raw client: aiokafka getmany")
    result.add("raw client (aiokafka getmany)", asyncio.run(raw_client_rate(settings, config.events)), "msg/s")

    say("2/6 bare Faust: an agent that iterates and acks")
    bare = start_workers(replace(settings, app_id=settings.app_id + "-bare"), work, 1, "stream.bare_faust")
    try:
        busy = busy_rate(bare, "/count", config.events, progress=_bar(say, config.events))
    finally:
        stop_all(bare)
    result.add("bare Faust", busy.rate, "events/s", f"{busy.events:,} events in {busy.window_s:.1f} s")

    say("3/6 offline replay of the same events, all models on, every event predicted for")
    from stream.replay import ReplayConfig, run

    replayed = asyncio.run(run(ReplayConfig(inputs=[events], progress=False, settings=settings)))
    throughput = replayed.metrics["throughput"]
    result.add("offline replay", throughput["events_per_s"], "events/s",
               f"{throughput['predictions_per_s'] or 0:,.0f} predictions/s")

    say("4/6 shopstream, 1 worker; then latency at a fixed rate")
    one_settings = replace(settings, app_id=settings.app_id + "-one", prefix=settings.prefix + "one:")
    one = start_workers(one_settings, work, 1)
    try:
        busy = busy_rate(one, "/metrics", config.events, progress=_bar(say, config.events))
        result.add("shopstream, 1 worker", busy.rate, "events/s",
                   f"{busy.events:,} events in {busy.window_s:.1f} s")
        result.add("peak RSS, 1 worker", peak_rss_mb(one[0]), "MB")
        from stream.bench_latency import live_events, measure

        count = int(config.rate * config.latency_s)
        say(f"   latency: {count:,} events at {config.rate:,.0f}/s")
        latency = asyncio.run(measure(one_settings, live_events(config.seed + 1, count, 5000, "lat"),
                                    config.rate, _bar(say, count)))
        note = f"{latency.matched:,} of {latency.sent:,} events caused a recommendation"
        result.add("latency p50", latency.p50_ms, "ms", note)
        result.add("latency p95", latency.p95_ms, "ms")
        result.add("latency p99", latency.p99_ms, "ms")
        result.add("peak RSS, 1 worker after latency", peak_rss_mb(one[0]), "MB")
    finally:
        stop_all(one)
    memory, keys = redis_memory_mb(client, one_settings.prefix)
    result.add("Redis memory of the run's keys", memory, "MB", f"{keys:,} keys")

    say("5/6 shopstream, 2 workers")
    two_settings = replace(settings, app_id=settings.app_id + "-two", prefix=settings.prefix + "two:")
    two = start_workers(two_settings, work, 2)
    try:
        try:
            busy2 = busy_rate(two, "/metrics", config.events, progress=_bar(say, config.events))
            result.add("shopstream, 2 workers", busy2.rate, "events/s",
                       f"{busy2.events:,} events in {busy2.window_s:.1f} s, both busy")
        except BenchError as exc:
            result.add("shopstream, 2 workers", None, "events/s", str(exc))
        for i, w in enumerate(two):
            result.add(f"peak RSS, worker {i + 1} of 2", peak_rss_mb(w), "MB")
    finally:
        stop_all(two)

    say("6/6 identical results: 2 workers against the reference replay")
    result.identity = identity_check(settings, work, client)

    one_rate, bare_rate = result.value("shopstream, 1 worker"), result.value("bare Faust")
    result.ratios = {
        "shopstream / bare Faust": _ratio(one_rate, bare_rate),
        "shopstream / raw client": _ratio(one_rate, result.value("raw client (aiokafka getmany)")),
        "2 workers / 1 worker": _ratio(result.value("shopstream, 2 workers"), one_rate),
        "offline replay / bare Faust": _ratio(result.value("offline replay"), bare_rate),
    }
    _drop_keys(client, settings.prefix)
    return result


def identity_check(settings: Settings, work: Path, client: redis.Redis) -> dict:
    """Two workers with the benchmark's settings against the offline replay of
    the same events: the same profiles, co-occurrence and item counts, and
    every churn alert. The events share one input topic, so that each user's
    events arrive in one order in both runs (Kafka orders nothing across topics)."""
    from stream.state_compare import (
        differences,
        redis_state_snapshot,
        reference_run,
        write_single_topic_events,
    )

    # Trimming neighbour lists to their best MAX_NEIGHBOURS depends on how
    # increments fall into batches; with room for every neighbour, nothing
    # else may differ.
    checked = replace(bench_settings(settings, new_tag()), max_neighbours=UNTRIMMED, idle_after_s=3.0)
    events = work / "single-topic.jsonl"
    n = write_single_topic_events(events, IDENTITY_EVENTS)
    create_topics(checked)
    preload(checked, events)
    workers = start_workers(checked, work / "identity", 2)
    try:
        busy_rate(workers, "/metrics", n)
        time.sleep(checked.idle_after_s + 6.0)  # the idle sweep raises the last churn checks
    finally:
        stop_all(workers)
    reference = asyncio.run(reference_run(checked, events, client))
    live = redis_state_snapshot(client, checked.prefix)
    emitted = {a.get("alert_id") for a in asyncio.run(read_all(checked, checked.topics.alerts))}
    problems = differences(live, reference, emitted)
    _drop_keys(client, checked.prefix)
    _drop_keys(client, "reference-" + checked.prefix)
    return {"identical": not problems, "events": n, "keys_compared": len(reference.state),
            "churn_alerts": len(reference.churn_alert_ids), "problems": problems}


def _drop_keys(client: redis.Redis, prefix: str) -> None:
    for key in client.scan_iter(match=f"{prefix}*", count=1000):
        client.delete(key)


def _bar(say: Callable[[str], None], total: int) -> Callable[[int], None]:
    """A progress line every few seconds: count and rate."""
    state = {"at": time.monotonic(), "n": 0, "start": time.monotonic()}

    def update(n: int) -> None:
        now = time.monotonic()
        if now - state["at"] >= 3.0:
            rate = (n - state["n"]) / (now - state["at"])
            say(f"   {n:,}/{total:,} ({rate:,.0f}/s)")
            state.update(at=now, n=n)

    return update
