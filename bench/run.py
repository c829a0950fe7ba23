"""The benchmark behind ``scripts/bench.py``: shopstream against its ceilings,
measured in one run so that every figure can be read as a ratio.

On fresh topics preloaded with the same synthetic events it measures, one
after the other (so that no phase steals the other's cores):

1. the raw client ceiling: aiokafka ``getmany`` over the preloaded input;
2. bare Faust: ``bench.bare_faust``, an agent that only iterates and acks;
3. the offline replay of the same events (all models on, in memory, in a
   process of its own);
4. shopstream's real worker;
5. two worker processes;
6. the real worker again, then the latency of recommendations at a fixed
   offered rate against it, the latency floor (the same load through
   :mod:`bench.floor`, which only forwards events), and bare Faust
   again;
7. that two workers' results equal those of a reference run
   (:mod:`bench.identity`);

and the peak RSS of every worker and the Redis memory of the run's keys.
Bare Faust and the single worker count as the mean of their two runs, which
lie around what they are compared with: the machine's speed drifts within
minutes, and a drift that goes one way through the run cancels out.

A rate is taken over the time in which every process of a phase is busy
(``bench.workers.busy_rate``): the intervals between polls in which each of
them is between two batches less than 3 s (or three times its usual gap)
apart, so start-up, the pauses of a group forming and the tail after the
first ran out of work count against no one.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, TypeVar

import redis

from bench.redis_cpu import Cost, CostMeter, client_for
from bench.workers import (
    BenchError,
    Busy,
    bench_settings,
    busy_rate,
    clean_workdir,
    drop_keys,
    new_tag,
    preload,
    redis_memory_mb,
    running_workers,
)
from devstack.workers import ROOT, Worker, settings_env
from shop.planted import PlantedShop
from stream.config import Settings
from stream.topics import create_topics

if TYPE_CHECKING:
    from bench.latency import Latency

@dataclass
class BenchConfig:
    events: int = 200_000
    rate: float = 2000.0  # offered events/s of the latency phase
    latency_s: float = 60.0
    latency_warmup_s: float = 10.0  # at the same rate, before the measured latency_s
    seed: int = 42
    workdir: Path = ROOT / ".dev" / "bench"
    settings: Settings = field(default_factory=Settings.from_env)
    say: Callable[[str], None] = print
    broker: str = "the broker at SHOPSTREAM_BROKER"  # what it is, for the table
    broker_pid: int | None = None  # a broker on this machine: its CPU per event is measured


@dataclass
class Measure:
    """One line of the table."""

    name: str
    value: float | None
    unit: str
    note: str = ""

    def to_dict(self) -> dict:
        return {"name": self.name, "value": self.value, "unit": self.unit, "note": self.note}


def phase_settings(settings: Settings, name: str) -> Settings:
    """A phase's own consumer group, key prefix and output topics, on the run's
    inputs. Its own ``features`` topic above all: a new group's learn agent
    reads it from the start, and would learn an earlier phase's rows again."""
    inputs = settings.topics.inputs
    outputs = {name_: f"{topic}-{name}" for name_, topic in vars(settings.topics).items()
               if topic not in inputs}
    return replace(settings, app_id=f"{settings.app_id}-{name}", prefix=f"{settings.prefix}{name}:",
                   topics=replace(settings.topics, **outputs))


def write_events(path: Path, count: int, seed: int) -> dict[str, int]:
    """The synthetic shop's events (produce.py's defaults) as JSONL; counts per type."""
    counts: dict[str, int] = {}
    with open(path, "wb") as f:
        for event in PlantedShop(seed).events(count):
            counts[event.type] = counts.get(event.type, 0) + 1
            f.write(event.to_json() + b"\n")
    return counts


# -- raw client -------------------------------------------------------------------


async def raw_client_rate(settings: Settings, expected: int) -> float:
    """Messages/s of one aiokafka consumer reading every input partition with getmany."""
    from aiokafka import AIOKafkaConsumer

    # Subscribed without a group: every partition, from the start.
    consumer = AIOKafkaConsumer(*settings.topics.inputs, bootstrap_servers=settings.bootstrap_servers,
                                enable_auto_commit=False, auto_offset_reset="earliest",
                                **settings.aiokafka_options())
    await consumer.start()
    try:
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


# -- the run -------------------------------------------------------------------------

RATIO_TARGETS = {"shopstream / bare Faust": 1.0, "2 workers / 1 worker": 1.7}
REPLAY_TARGET = 50_000.0  # events/s
LATENCY_P99_TARGET_MS = 100.0


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
        lines = [f"broker: {self.config.get('broker', '?')}", "",
                 f"{'measure':<44}{'value':>14}  unit", "-" * 70]
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
    result = BenchResult(config={"broker": config.broker, "events": config.events, "rate": config.rate,
                                 "latency_s": config.latency_s,
                                 "latency_warmup_s": config.latency_warmup_s, "seed": config.seed,
                                 "partitions": config.settings.partitions,
                                 "batch_max": config.settings.batch_max})
    work = clean_workdir(config.workdir)
    from stream.redis_cluster import with_cluster_detected

    settings = bench_settings(with_cluster_detected(config.settings), new_tag())
    events = work / "events.jsonl"
    say(f"generating {config.events:,} synthetic events (seed {config.seed})")
    write_events(events, config.events, config.seed)
    create_topics(settings)
    say("preloading the input topics")
    started = time.perf_counter()
    preload(settings, events)
    result.add("preload (kafka-python producer)", config.events / (time.perf_counter() - started), "msg/s")
    client = client_for(settings.redis_url, settings.redis_cluster)  # every master's CPU, on a cluster

    say("1/7 raw client: aiokafka getmany")
    result.add("raw client (aiokafka getmany)", asyncio.run(raw_client_rate(settings, config.events)), "msg/s")

    # Bare Faust and one worker run twice, around what they are compared with
    # (see the module's docstring).
    bare_settings = replace(settings, app_id=settings.app_id + "-bare")
    say("2/7 bare Faust: an agent that iterates and acks (first of two runs)")
    with running_workers(bare_settings, work, 1, "bench.bare_faust") as bare:
        bare_a = drain_rate(config, bare, "/count")

    say("3/7 offline replay of the same events, all models on, every event predicted for")
    throughput = replay_throughput(events, settings)
    result.add("offline replay", throughput["events_per_s"], "events/s",
               f"{throughput['predictions_per_s'] or 0:,.0f} predictions/s, {throughput['ranking']} ranking")

    say("4/7 shopstream, 1 worker (first of two runs)")
    with running_workers(phase_settings(settings, "one"), work, 1) as one:
        one_a, cost_a = drain_with_cost(config, one, client)
        result.add("peak RSS, 1 worker", one[0].memory_mb(peak=True), "MB")

    say("5/7 shopstream, 2 workers")
    two_rate: float | None = None
    with running_workers(phase_settings(settings, "two"), work, 2) as two:
        try:
            busy = drain_rate(config, two)
            two_rate, two_note = busy.rate, f"{busy.events:,} events in {busy.window_s:.1f} s, both busy"
        except BenchError as exc:
            two_note = str(exc)
        for i, w in enumerate(two):
            result.add(f"peak RSS, worker {i + 1} of 2", w.memory_mb(peak=True), "MB")

    say("6/7 shopstream, 1 worker again, then latency at a fixed rate and its floor; bare Faust again")
    one_settings = phase_settings(settings, "one-again")
    with running_workers(one_settings, work, 1) as one:
        one_b, cost_b = drain_with_cost(config, one, client)
        meter = CostMeter(client, one[0].proc.pid if one[0].proc else None, config.broker_pid).start()
        latency = latency_at_rate(config, one_settings, "lat")
        cost_live = meter.stop(int(config.rate * config.latency_s) + int(config.rate * config.latency_warmup_s))
        result.add("peak RSS, 1 worker after latency", one[0].memory_mb(peak=True), "MB")
    note = f"{latency.matched:,} of {latency.sent:,} events caused a recommendation"
    result.add("latency p50", latency.p50_ms, "ms", note)
    result.add("latency p95", latency.p95_ms, "ms")
    result.add("latency p99", latency.p99_ms, "ms")
    memory, keys = redis_memory_mb(client, one_settings.prefix)
    result.add("Redis memory of the run's keys", memory, "MB", f"{keys:,} keys")
    say("   latency floor: the same load through a process that only forwards events")
    try:
        floor = latency_floor(config)
        note = f"{floor.matched:,} of {floor.sent:,} events forwarded (bench.floor)"
        result.add("latency floor p50", floor.p50_ms, "ms", note)
        result.add("latency floor p95", floor.p95_ms, "ms")
        result.add("latency floor p99", floor.p99_ms, "ms")
    except BenchError as exc:
        result.add("latency floor p99", None, "ms", str(exc))
    say("   bare Faust again")
    with running_workers(replace(bare_settings, app_id=bare_settings.app_id + "-again"), work, 1,
                         "bench.bare_faust") as bare:
        bare_b = drain_rate(config, bare, "/count")

    result.add("bare Faust", (bare_a.rate + bare_b.rate) / 2, "events/s",
               f"mean of {bare_a.rate:,.0f} (first) and {bare_b.rate:,.0f} (last)")
    result.add("shopstream, 1 worker", (one_a.rate + one_b.rate) / 2, "events/s",
               f"mean of {one_a.rate:,.0f} (before 2 workers) and {one_b.rate:,.0f} (after)")
    result.add("shopstream, 2 workers", two_rate, "events/s", two_note)
    add_costs(result, cost_a, cost_b, cost_live, config.rate)

    say("7/7 identical results: 2 workers against the reference replay")
    from bench.identity import identity_check

    try:
        result.identity = identity_check(settings, work, client)
    except BenchError as exc:
        result.identity = {"identical": False, "problems": [f"not checked: {exc}"]}

    one_rate, bare_rate = result.value("shopstream, 1 worker"), result.value("bare Faust")
    result.ratios = {
        "shopstream / bare Faust": _ratio(one_rate, bare_rate),
        "shopstream / raw client": _ratio(one_rate, result.value("raw client (aiokafka getmany)")),
        "2 workers / 1 worker": _ratio(result.value("shopstream, 2 workers"), one_rate),
        "offline replay / bare Faust": _ratio(result.value("offline replay"), bare_rate),
        "latency p99 / floor p99": _ratio(result.value("latency p99"), result.value("latency floor p99")),
    }
    drop_keys(client, settings.prefix)
    result.measures.sort(key=_row_rank)
    return result


ROW_ORDER = ("preload", "raw client", "bare Faust", "offline replay", "shopstream, 1 worker",
             "shopstream, 2 workers", "latency p", "latency floor", "Redis CPU", "one Redis core",
             "worker CPU", "broker CPU", "peak RSS", "Redis memory")


def add_costs(result: BenchResult, drain_a: Cost, drain_b: Cost, live: Cost, rate: float) -> None:
    """Redis, worker and broker CPU per event, while one worker catches up (the
    two drains together) and at the latency phase's rate (live-sized batches),
    and the rate at which one Redis core would be saturated at each."""
    drains = Cost(drain_a.events + drain_b.events,
                  [a + b for a, b in zip(drain_a.redis_s, drain_b.redis_s)],
                  _sum(drain_a.worker_s, drain_b.worker_s), _sum(drain_a.broker_s, drain_b.broker_s))
    for what, cost in (("catch-up", drains), (f"at {rate:,.0f} events/s", live)):
        result.add(f"Redis CPU per event, {what}", cost.redis_us, "µs",
                   f"INFO cpu over {cost.events:,} events")
        result.add(f"one Redis core saturates at, {what}", cost.one_core_saturates_at, "events/s")
        result.add(f"worker CPU per event, {what}", cost.per_event_us(cost.worker_s), "µs")
        if cost.broker_s is not None:
            result.add(f"broker CPU per event, {what}", cost.per_event_us(cost.broker_s), "µs")


def _sum(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a + b


def drain_with_cost(config: BenchConfig, workers: list[Worker], client: redis.Redis) -> tuple[Busy, Cost]:
    """``drain_rate``, and what it cost (see ``measure_cost``)."""
    return measure_cost(workers, client, config.broker_pid, lambda: drain_rate(config, workers))


T = TypeVar("T")


def measure_cost(workers: list[Worker], client: redis.Redis, broker_pid: int | None,
                 work: Callable[[], T]) -> tuple[T, Cost]:
    """``work()``, and what the events the workers received meanwhile cost
    Redis, the worker (when there is one) and the broker, from the workers'
    first answer on: a worker's start-up is not an event's cost."""
    from bench.workers import received

    deadline = time.monotonic() + 60
    while min(received(w, "/metrics") for w in workers) < 0 and time.monotonic() < deadline:
        for w in workers:
            w.check_alive()
        time.sleep(0.05)
    first = sum(max(received(w, "/metrics"), 0) for w in workers)
    pid = workers[0].proc.pid if len(workers) == 1 and workers[0].proc else None
    meter = CostMeter(client, pid, broker_pid).start()
    done = work()
    return done, meter.stop(sum(max(received(w, "/metrics"), 0) for w in workers) - first)


def _row_rank(m: Measure) -> int:
    """Where a row goes in the table (phases run in another order)."""
    return next((i for i, start in enumerate(ROW_ORDER) if m.name.startswith(start)), len(ROW_ORDER))


def drain_rate(config: BenchConfig, workers: list[Worker], path: str = "/metrics") -> Busy:
    """The workers' busy rate through the preloaded events, with progress."""
    return busy_rate(workers, path, config.events, progress=_bar(config.say, config.events))


def replay_throughput(events: Path, settings: Settings) -> dict:
    """The offline replay's throughput, measured in a process of its own: its
    hundreds of MB of results would otherwise stay in the bench's heap, whose
    collections then delay the latency phase's reader (p99 ~+30 ms)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_replay_throughput, events, settings).result()


def _replay_throughput(events: Path, settings: Settings) -> dict:
    from backtest.replay import ReplayConfig, run

    return asyncio.run(run(ReplayConfig(inputs=[events], progress=False, settings=settings))).metrics["throughput"]


def latency_at_rate(config: BenchConfig, settings: Settings, tag: str) -> Latency:
    """The latency phase against whatever reads ``settings``' inputs: its own
    synthetic events (ids under ``tag``), the warm-up, then the measured ones."""
    from bench.latency import live_events, measure

    count = int(config.rate * config.latency_s)
    warmup = int(config.rate * config.latency_warmup_s)
    config.say(f"   latency: {count:,} events at {config.rate:,.0f}/s, after {warmup:,} not measured")
    events = live_events(config.seed + 1, warmup + count, 5000, tag)
    return asyncio.run(measure(settings, events, config.rate, _bar(config.say, warmup + count), warmup))


def latency_floor(config: BenchConfig) -> Latency:
    """The latency phase, on input topics of its own, through
    :mod:`bench.floor` instead of a worker: what the broker and the
    clients take without any of shopstream's work."""
    from bench.floor import running

    settings = bench_settings(config.settings, new_tag())
    create_topics(settings)
    env = {**os.environ, **settings_env(settings), "PYTHONPATH": str(ROOT)}
    try:
        with running(env, settings.topics.recommendations):
            return latency_at_rate(config, settings, "floor")
    except RuntimeError as exc:
        raise BenchError(str(exc)) from None


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
