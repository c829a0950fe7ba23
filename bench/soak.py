"""A soak run (``scripts/bench.py --soak MINUTES``): one real worker under a
steady load of ever-new users, its memory and Redis's sampled over time.

The traffic is a sequence of synthetic shops, each with users of its own,
each following the one before in event time, so that users keep arriving and
older ones fall silent: what must level off is the worker's resident memory
and the Redis memory of the run's keys, under the user TTL and the neighbour
trim. The user TTL is wall-clock time in Redis, so the soak sets it to a few
minutes (``user_ttl_s``) to show, within the run, what 30 days do in a shop.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator

import orjson
import redis

from bench.workers import (
    bench_settings, clean_workdir, drop_keys, new_tag, received, start_workers,
)
from stream.config import Settings, Topics
from shop.planted import PlantedShop
from shop.publish import KafkaSink, Message
from stream.topics import create_topics
from shop.synthetic import START_TS

DAY_S = 86400.0


@dataclass
class SoakConfig:
    minutes: float
    rate: float = 2000.0
    out: Path = Path("out/soak")
    settings: Settings = field(default_factory=Settings.from_env)
    say: Callable[[str], None] = print
    users_per_shop: int = 500
    shop_days: float = 1.0  # event time each shop's users are active
    user_ttl_s: float = 180.0
    sample_s: float = 10.0
    seed: int = 42


@dataclass
class Sample:
    t_s: float
    sent: int
    received: int
    rss_mb: float | None
    redis_used_mb: float
    run_keys: int


def ever_new_users(config: SoakConfig, topics: Topics) -> Iterator[Message]:
    """Shop after shop, each ``shop_days`` of event time with users of its own."""
    k = 0
    while True:
        start = START_TS + k * config.shop_days * DAY_S
        shop = PlantedShop(config.seed + k, users=config.users_per_shop, start_ts=start)
        for event in shop.events(until=start + config.shop_days * DAY_S):
            event.event_id = f"g{k}-{event.event_id}"
            event.user_id = f"g{k}-{event.user_id}"
            if event.session_id is not None:
                event.session_id = f"g{k}-{event.session_id}"
            yield Message(topics.for_event_type(event.type), event.user_id.encode(), event.to_json())
        k += 1


def _run_keys(client: redis.Redis, prefix: str) -> int:
    return sum(1 for _ in client.scan_iter(match=f"{prefix}*", count=5000))


def run_soak(config: SoakConfig) -> str:
    """Run, sample, write ``samples.jsonl`` and ``soak.png``; a summary to print."""
    out = config.out
    out.mkdir(parents=True, exist_ok=True)
    settings = replace(bench_settings(config.settings, new_tag()),
                       user_ttl_days=config.user_ttl_s / DAY_S)
    create_topics(settings)
    client = redis.Redis.from_url(settings.redis_url)
    workers = start_workers(settings, clean_workdir(out / "worker"), 1)
    worker = workers[0]
    sink = KafkaSink(settings)
    samples: list[Sample] = []
    try:
        worker.wait_ready()
        config.say(f"soak: {config.minutes:g} min at {config.rate:,.0f} events/s, "
                   f"user TTL {config.user_ttl_s:g} s, a sample every {config.sample_s:g} s")
        start = time.monotonic()
        end = start + config.minutes * 60.0
        next_sample = start
        sent = 0
        for message in ever_new_users(config, settings.topics):
            now = time.monotonic()
            if now >= end:
                break
            if now >= next_sample:
                samples.append(_sample(now - start, sent, worker, client, settings.prefix))
                s = samples[-1]
                config.say(f"   {s.t_s / 60:5.1f} min  sent {s.sent:,}  processed {s.received:,}  "
                           f"RSS {s.rss_mb or 0:,.0f} MB  Redis {s.redis_used_mb:,.1f} MB  "
                           f"keys {s.run_keys:,}")
                next_sample += config.sample_s
            ahead = start + sent / config.rate - time.monotonic()
            if ahead > 0.001:
                time.sleep(ahead)
            sink.send(message)
            sent += 1
        samples.append(_sample(time.monotonic() - start, sent, worker, client, settings.prefix))
        peak = worker.memory_mb(peak=True)
    finally:
        sink.close()
        worker.stop()
        drop_keys(client, settings.prefix)
    (out / "samples.jsonl").write_bytes(b"".join(orjson.dumps(vars(s)) + b"\n" for s in samples))
    plot(samples, out / "soak.png", config)
    return summary(samples, peak, out)


def _sample(t: float, sent: int, worker, client: redis.Redis, prefix: str) -> Sample:  # type: ignore[no-untyped-def]
    used = client.info("memory")["used_memory"] / 2**20
    return Sample(round(t, 1), sent, max(received(worker, "/metrics"), 0),
                  worker.memory_mb(), round(used, 2), _run_keys(client, prefix))


def summary(samples: list[Sample], peak_rss: float | None, out: Path) -> str:
    """Memory at each quarter of the run: levelling off shows as the last quarters agreeing."""
    lines = [f"{'time (min)':>10} {'sent':>10} {'processed':>10} {'RSS MB':>8} {'Redis MB':>9} {'keys':>8}"]
    n = len(samples)
    for i in sorted({0, n // 4, n // 2, 3 * n // 4, n - 1}):
        s = samples[i]
        lines.append(f"{s.t_s / 60:>10.1f} {s.sent:>10,} {s.received:>10,} {s.rss_mb or 0:>8.0f} "
                     f"{s.redis_used_mb:>9.1f} {s.run_keys:>8,}")
    lines.append(f"peak RSS {peak_rss or 0:.0f} MB; samples in {out / 'samples.jsonl'}, "
                 f"plot in {out / 'soak.png'}")
    return "\n".join(lines)


def plot(samples: list[Sample], path: Path, config: SoakConfig) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = [s.t_s / 60 for s in samples]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    top.plot(minutes, [s.rss_mb or 0 for s in samples], label="worker RSS (MB)")
    top.plot(minutes, [s.redis_used_mb for s in samples], label="Redis used memory (MB)")
    top.set_ylabel("MB")
    top.legend(loc="upper left")
    top.set_title(f"soak: {config.rate:,.0f} events/s, ever-new users, user TTL {config.user_ttl_s:g} s")
    bottom.plot(minutes, [s.run_keys for s in samples], label="the run's Redis keys", color="tab:green")
    bottom.set_ylabel("keys")
    bottom.set_xlabel("minutes")
    bottom.legend(loc="upper left")
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
