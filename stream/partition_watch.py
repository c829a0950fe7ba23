"""Input partitions the worker owns, has messages waiting in, and has stopped
reading: a consumer that fetches nothing more from a partition after a
rebalance, without an error. Kafka's group still lists the partition as
ours, so no other worker takes it; the state would fall behind for good.

The worker's timer gives ``PartitionWatch`` each partition's end offset and
the last offset its batches finished (applied, skipped as applied already,
or dead-lettered). A partition with messages waiting whose finished offset
has not moved for ``stall_s`` is stalled: unless one batch has been running
all that while (then the worker logs where its tasks wait), it logs what
Faust and aiokafka hold about the partition and reads it again from the
state's applied offset (stream/app.py ``watch_partitions``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

TopicPartition = tuple[str, int]


@dataclass
class PartitionWatch:
    """Which partitions stopped moving with messages waiting.

    >>> watch = PartitionWatch(stall_s=20)
    >>> tp = ("clicks", 2)
    >>> watch.stalled(now=0, finished={tp: 99}, ends={tp: 900})
    []
    >>> watch.stalled(now=15, finished={tp: 99}, ends={tp: 900})
    []
    >>> watch.stalled(now=21, finished={tp: 99}, ends={tp: 900})
    [('clicks', 2)]

    Read again once, it is not read again until it moves (a transactional
    producer's last marker is an offset no batch ever finishes):

    >>> watch.stalled(now=42, finished={tp: 99}, ends={tp: 900})
    []

    Moving, or read to its end, a partition is not stalled:

    >>> watch.stalled(now=50, finished={tp: 300}, ends={tp: 900})
    []
    >>> watch.stalled(now=90, finished={tp: 899}, ends={tp: 900})
    []
    >>> watch.stalled(now=200, finished={tp: 899}, ends={tp: 900})
    []

    A partition nothing was finished in yet counts from the first look:

    >>> other = ("clicks", 3)
    >>> watch.stalled(now=300, finished={}, ends={other: 5})
    []
    >>> watch.stalled(now=321, finished={}, ends={other: 5})
    [('clicks', 3)]
    """

    stall_s: float = 20.0
    generation: int = -1  # the consumer group's generation the offsets belong to
    # Per partition: the finished offset last seen and since when it stands.
    _standing: dict[TopicPartition, tuple[int, float]] = field(default_factory=dict)
    # Per partition: the finished offset it was last found stalled at.
    _stalled_at: dict[TopicPartition, int] = field(default_factory=dict)

    def stalled(self, now: float, finished: dict[TopicPartition, int],
                ends: dict[TopicPartition, int]) -> list[TopicPartition]:
        """The partitions in ``ends`` (next offset of each) whose finished
        offset has stood still for ``stall_s`` with messages after it."""
        out = []
        for tp, end in sorted(ends.items()):
            done = finished.get(tp, -1)
            if end <= done + 1:
                self._standing.pop(tp, None)
                continue
            seen = self._standing.get(tp)
            if seen is None or seen[0] != done:
                self._standing[tp] = (done, now)
            elif now - seen[1] >= self.stall_s and self._stalled_at.get(tp) != done:
                out.append(tp)
                self._stalled_at[tp] = done
        for tp in set(self._standing) - set(ends):
            del self._standing[tp]
        return out

    def reset(self, generation: int | None = None) -> None:
        """Forget every partition (a rebalance, given its generation, or a
        dependency down: each starts counting again)."""
        if generation is not None:
            self.generation = generation
        self._standing.clear()
        self._stalled_at.clear()


def consumer_view(consumer: Any, tp: Any) -> str:
    """What Faust's consumer and aiokafka's beneath it hold about a partition,
    for the worker's warning when it reads a partition again. These are
    other libraries' internals: whatever is not where expected is said so."""
    parts = [f"delivered up to {consumer._read_offset.get(tp)}",
             "active" if tp in (consumer._active_partitions or ()) else "not active",
             "paused" if tp in consumer._paused_partitions else "not paused"]
    try:
        subscription = consumer._thread._ensure_consumer()._subscription.subscription
        fetch = subscription.assignment.state_value(tp)
        parts.append(f"fetch position {fetch._position}, awaiting reset {fetch.awaiting_reset}, "
                     f"fetch paused {fetch.paused}")
    except Exception as exc:  # internals of another library: say so, do not fail
        parts.append(f"fetch state unknown ({type(exc).__name__})")
    return "; ".join(parts)
