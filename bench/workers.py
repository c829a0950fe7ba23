"""Worker processes of a benchmark phase: their own topics and keys, the
preloaded input, and the events/s they reach while all of them are busy.

Shared by the benchmark (:mod:`bench.run`), its identity check
(:mod:`bench.identity`) and the soak run (:mod:`bench.soak`).
"""

from __future__ import annotations

import bisect
import os
import shutil
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator

import redis

from devstack.services import free_port
from devstack.workers import ROOT, Worker, settings_env
from stream.config import Settings, Topics

POLL_S = 0.1
MIN_WINDOW_S = 3.0  # less time busy together is no measurement
STALL_S = 3.0  # a worker whose count has not moved this long is paused or out of work
PAUSE_FACTOR = 3.0  # ... or this many times its median gap between batches, if longer



class BenchError(RuntimeError):
    """A phase that could not be measured (one-line message)."""


def bench_settings(base: Settings, tag: str) -> Settings:
    """Topics, consumer group and key prefix of this run's own."""
    topics = Topics(**{name: f"bench-{tag}-{value}" for name, value in vars(base.topics).items()})
    return replace(base, topics=topics, app_id=f"bench-{tag}", prefix=f"bench-{tag}:",
                   web_port=free_port())


def preload(settings: Settings, path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "produce.py"), "--from", str(path)],
        env={**os.environ, **settings_env(settings)}, capture_output=True, text=True,
    )
    if done.returncode != 0:
        raise BenchError(f"preloading the input topics failed: {done.stderr.strip()[-300:]}")



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
    have ``expected`` together; the events/s over the time all of them were
    busy. A count moves once per batch: a worker is busy between two moves
    less than ``STALL_S`` apart (or ``PAUSE_FACTOR`` times its usual gap, when
    its batches take that long), and a longer gap is a pause (a rebalance as
    the group forms) or the end of its share. The rate sums the events and
    the seconds of the polls' intervals in which every worker was busy, so
    neither a pause nor the tail after the first worker ran out counts."""
    n = len(workers)
    polls: list[tuple[float, int]] = []  # (time, total) of every answered poll
    moves: list[list[float]] = [[] for _ in range(n)]
    last = [0] * n
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = [received(w, path) for w in workers]
        now = time.monotonic()  # after the polls: a slow answer must not shorten an interval
        for w in workers:
            w.check_alive()
        if min(counts) < 0:  # a busy worker's web view can miss a poll: decide nothing on it
            time.sleep(POLL_S)
            continue
        for i, (c, p) in enumerate(zip(counts, last)):
            if c != p:
                moves[i].append(now)
        last = counts
        polls.append((now, sum(counts)))
        if progress is not None:
            progress(sum(counts))
        if sum(counts) >= expected:
            return together(polls, moves)
        time.sleep(POLL_S)
    raise BenchError(f"workers received {sum(last)} of {expected} events in {timeout:.0f} s")


def together(polls: list[tuple[float, int]], moves: list[list[float]]) -> Busy:
    """Events and seconds of the intervals between polls in which every
    worker was busy (see :func:`busy_rate`)."""
    def pause(times: list[float]) -> float:
        gaps = sorted(b - a for a, b in zip(times, times[1:]))
        return max(STALL_S, PAUSE_FACTOR * gaps[len(gaps) // 2]) if gaps else STALL_S

    def busy(times: list[float], limit: float, start: float, end: float) -> bool:
        before = bisect.bisect_right(times, start) - 1
        after = bisect.bisect_left(times, end)
        return before >= 0 and after < len(times) and times[after] - times[before] < limit

    limits = [pause(times) for times in moves]
    seconds = 0.0
    events = 0
    for (t0, n0), (t1, n1) in zip(polls, polls[1:]):
        if all(busy(times, limit, t0, t1) for times, limit in zip(moves, limits)):
            seconds += t1 - t0
            events += n1 - n0
    if seconds < MIN_WINDOW_S:
        raise BenchError(f"all {len(moves)} workers were busy together for only {seconds:.1f} s: "
                         "too few events to measure (raise --events)")
    return Busy(events / seconds, seconds, events)


def wait_received(workers: list[Worker], path: str, expected: int, timeout: float = 300.0) -> None:
    """Until the workers have received ``expected`` events together."""
    deadline = time.monotonic() + timeout
    total = 0
    while time.monotonic() < deadline:
        counts = [received(w, path) for w in workers]
        total = sum(max(c, 0) for c in counts)
        if min(counts) >= 0 and total >= expected:
            return
        for w in workers:
            w.check_alive()
        time.sleep(POLL_S)
    raise BenchError(f"workers received {total} of {expected} events in {timeout:.0f} s")


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


@contextmanager
def running_workers(settings: Settings, workdir: Path, n: int,
                    app: str = "stream.app") -> Iterator[list[Worker]]:
    """``start_workers``, stopped again when the block ends."""
    workers = start_workers(settings, workdir, n, app)
    try:
        yield workers
    finally:
        stop_all(workers)


def new_tag() -> str:
    return uuid.uuid4().hex[:8]


def clean_workdir(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, exist_ok=True)
    return path


def drop_keys(client: redis.Redis, prefix: str) -> None:
    for key in client.scan_iter(match=f"{prefix}*", count=1000):
        client.delete(key)
