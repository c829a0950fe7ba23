"""The live stream's event-time watermark: how far event time has surely come.

Kafka orders nothing across topics or partitions. A worker catching up on a
backlog may read the purchases topic days ahead of the views topic; judging
silence by the newest event it read would find every user whose views are
still queued "silent". So a worker's watermark is the *oldest* latest event
time among the input partitions it consumes, leaving out partitions that have
delivered nothing for ``idle_after_s`` (wall time): those are caught up (a
partition in backlog delivers in every fetch round), or empty, and must not
stop the clock for everyone.

Replay needs none of this: it reads one stream in event-time order, so the
latest event time of a batch is its watermark.

>>> clock = EventClock(idle_after_s=30.0, now=lambda: 0.0)
>>> clock.assign([("views", 0), ("purchases", 0)])
>>> clock.observe(("purchases", 0), 5000.0)
>>> clock.watermark() is None  # views/0 has not said where it is yet
True
>>> clock.observe(("views", 0), 1000.0)
>>> clock.watermark()
1000.0
"""

from __future__ import annotations

import time
from typing import Callable, Iterable

TopicPartition = tuple[str, int]


class EventClock:
    def __init__(self, idle_after_s: float = 30.0, now: Callable[[], float] = time.monotonic) -> None:
        self.idle_after_s = idle_after_s
        self._now = now
        self.latest: dict[TopicPartition, float] = {}
        self.heard: dict[TopicPartition, float] = {}  # wall time of the last message

    def assign(self, partitions: Iterable[TopicPartition]) -> None:
        """The partitions this worker consumes now (after a rebalance)."""
        now = self._now()
        current = set(partitions)
        for tp in list(self.heard):
            if tp not in current:
                del self.heard[tp]
                self.latest.pop(tp, None)
        for tp in current:
            self.heard.setdefault(tp, now)  # a new partition gets time to speak

    def observe(self, tp: TopicPartition, ts: float) -> None:
        self.heard[tp] = self._now()
        if ts > self.latest.get(tp, float("-inf")):
            self.latest[tp] = ts

    def watermark(self) -> float | None:
        """The oldest latest event time of the partitions still delivering;
        None while one of them has not delivered anything yet."""
        cutoff = self._now() - self.idle_after_s
        active = [tp for tp, heard in self.heard.items() if heard >= cutoff]
        if any(tp not in self.latest for tp in active):
            return None
        times = [self.latest[tp] for tp in active]
        if times:
            return min(times)
        return max(self.latest.values(), default=None)  # everything is caught up
