"""Liveness of the worker's dependencies and its running counts.

The ingest agent and a health timer report here; ``/health`` and ``/metrics``
read it. A dependency is healthy until a call to it fails and healthy again
after the next call succeeds.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field


log = logging.getLogger("shopstream")


def redact(url: str) -> str:
    """A URL without its password, fit for logs and /health.

    >>> redact("redis://:s3cret@cache:6379/0")
    'redis://:***@cache:6379/0'
    """
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)


@dataclass
class Dependency:
    name: str
    url: str
    ok: bool | None = None  # None: not checked yet
    error: str | None = None
    since: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        self.url = redact(self.url)

    def up(self) -> None:
        """A call to it succeeded; logs one line when that is news."""
        if self.ok is not True:
            log.info("%s available at %s", self.name, self.url)
            self.ok, self.error, self.since = True, None, time.time()

    def down(self, exc: BaseException) -> None:
        """A call to it failed; logs one line when that is news."""
        error = redact(f"{type(exc).__name__}: {exc}")
        if self.ok is not False:
            log.warning("%s unavailable at %s (%s); retrying", self.name, self.url, error)
            self.since = time.time()
        self.ok, self.error = False, error

    def to_dict(self) -> dict:
        return {
            "ok": self.ok,
            "url": self.url,
            "error": self.error,
            "since": round(self.since, 3),
        }


@dataclass
class Counters:
    received: int = 0
    processed: int = 0
    dead_lettered: int = 0
    already_applied: int = 0
    duplicates: int = 0
    recommendations: int = 0
    alerts: int = 0
    labels: int = 0
    batches: int = 0
    partitions_restarted: int = 0  # the state was past their end (stream/lost_topics.py)
    partitions_read_again: int = 0  # stalled with messages waiting (stream/partition_watch.py)
    gc_full_passes: int = 0
    gc_full_ms: float = 0.0  # the latest pass
    started: float = field(default_factory=time.time)
    last_batch: float = 0.0  # monotonic time the latest batch ended
    batch_started: float | None = None  # monotonic time the batch in work began

    def to_dict(self) -> dict:
        elapsed = max(time.time() - self.started, 1e-9)
        d = {k: v for k, v in self.__dict__.items() if k not in ("started", "last_batch", "batch_started")}
        d["uptime_s"] = round(elapsed, 1)
        d["events_per_s"] = round(self.received / elapsed, 1)
        return d


@dataclass
class Health:
    broker: Dependency
    redis: Dependency
    counters: Counters = field(default_factory=Counters)

    @property
    def ok(self) -> bool:
        return bool(self.broker.ok) and bool(self.redis.ok)

    def to_dict(self) -> dict:
        missing = [d.name for d in (self.broker, self.redis) if not d.ok]
        return {
            "status": "ok" if self.ok else "unhealthy",
            "missing": missing,
            "broker": self.broker.to_dict(),
            "redis": self.redis.to_dict(),
            "counters": self.counters.to_dict(),
        }
