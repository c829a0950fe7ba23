"""CPU per event of the parts a shop scales: Redis (from ``INFO cpu``), a
worker and the broker (from ``/proc``), and the events/s at which one Redis
core would be saturated.

Redis runs commands on one thread, so its ceiling is that thread's CPU:
``used_cpu_sys_main_thread + used_cpu_user_main_thread`` where the server
reports them (Redis 6.2+), else the whole process's ``used_cpu_sys +
used_cpu_user``. On a cluster every master is sampled; the busiest one is
the ceiling.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import redis

MAIN_THREAD = ("used_cpu_sys_main_thread", "used_cpu_user_main_thread")
PROCESS = ("used_cpu_sys", "used_cpu_user")


def cpu_seconds(info: dict) -> float:
    """Seconds of CPU of Redis's command thread, from an ``INFO cpu`` reply.

    >>> cpu_seconds({"used_cpu_sys": 1.5, "used_cpu_user": 2.0})
    3.5
    >>> cpu_seconds({"used_cpu_sys": 9, "used_cpu_user": 9,
    ...              "used_cpu_sys_main_thread": 1.0, "used_cpu_user_main_thread": 0.25})
    1.25
    """
    fields = MAIN_THREAD if all(f in info for f in MAIN_THREAD) else PROCESS
    return sum(float(info[f]) for f in fields)


def client_for(url: str, cluster: bool) -> redis.Redis:
    """A client of one Redis, or of a Redis Cluster (any node's URL)."""
    if cluster:
        from redis.cluster import RedisCluster

        return RedisCluster.from_url(url)  # type: ignore[return-value]
    return redis.Redis.from_url(url)


def masters(client: redis.Redis) -> list[redis.Redis]:
    """One client per Redis that runs commands: the server itself, or every
    master of a cluster (``client`` is a ``redis.cluster.RedisCluster``)."""
    get_primaries = getattr(client, "get_primaries", None)
    if get_primaries is None:
        return [client]
    return [client.get_redis_connection(node) for node in get_primaries()]


@dataclass
class RedisCpu:
    """CPU seconds of each Redis master at one moment."""

    seconds: list[float]

    @classmethod
    def sample(cls, servers: Iterable[redis.Redis]) -> "RedisCpu":
        return cls([cpu_seconds(s.info("cpu")) for s in servers])

    def since(self, earlier: "RedisCpu") -> list[float]:
        return [a - b for a, b in zip(self.seconds, earlier.seconds)]


def process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a process and its reaped children (Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    # After the command name: state is field 3, utime..cstime are fields 14-17.
    return sum(int(f) for f in fields[11:15]) / ticks


@dataclass
class Cost:
    """What ``events`` events cost Redis (each master) and, where sampled,
    a worker and the broker."""

    events: int
    redis_s: list[float]
    worker_s: float | None = None
    broker_s: float | None = None

    @property
    def redis_us(self) -> float:
        """Redis CPU per event, all masters together (µs)."""
        return sum(self.redis_s) / self.events * 1e6

    @property
    def busiest_master_us(self) -> float:
        return max(self.redis_s) / self.events * 1e6

    @property
    def one_core_saturates_at(self) -> float:
        """Events/s at which the busiest Redis thread would be at 100 %.

        >>> round(Cost(1000, [0.012]).one_core_saturates_at)
        83333
        """
        return 1e6 / self.busiest_master_us if self.busiest_master_us > 0 else float("inf")

    def per_event_us(self, seconds: float | None) -> float | None:
        return None if seconds is None else seconds / self.events * 1e6


class CostMeter:
    """Samples Redis, a worker and the broker before and after a phase."""

    def __init__(self, client: redis.Redis, worker_pid: int | None = None,
                 broker_pid: int | None = None) -> None:
        self.servers = masters(client)
        self.pids = (worker_pid, broker_pid)
        self._start: tuple[RedisCpu, list[float | None]] | None = None

    def _procs(self) -> list[float | None]:
        return [None if pid is None else process_cpu_s(pid) for pid in self.pids]

    def start(self) -> "CostMeter":
        self._start = (RedisCpu.sample(self.servers), self._procs())
        return self

    def stop(self, events: int) -> Cost:
        assert self._start is not None, "start() first"
        redis_before, procs_before = self._start
        procs_after = self._procs()
        spent = [None if a is None or b is None else a - b for a, b in zip(procs_after, procs_before)]
        return Cost(max(events, 1), RedisCpu.sample(self.servers).since(redis_before), *spent)


def replay_cost(events: Path, settings, batch_size: int, client: redis.Redis) -> Cost:  # type: ignore[no-untyped-def]
    """Replay ``events`` into the Redis of ``settings`` (its own key prefix)
    in batches of ``batch_size``: the same load and commit per batch as a
    worker's, without a broker. Worker CPU here is the replay process's."""
    import asyncio

    from backtest.replay import ReplayConfig, run

    meter = CostMeter(client, os.getpid()).start()
    result = asyncio.run(run(ReplayConfig(inputs=[events], redis_url=settings.redis_url, progress=False,
                                          batch_size=batch_size, settings=settings)))
    return meter.stop(result.metrics["events"]["processed"])
