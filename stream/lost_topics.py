"""Redis state that outlived its input topics.

The state records, per input partition, the last offset it applied, and a
batch skips every message at or below it (``already_applied``). When the
topics are emptied under the state (the embedded broker restarted, which
keeps nothing; a topic deleted and created again) the new messages start at
offset 0 again, and every one of them would be skipped, silently.

A stored offset at or past a partition's end offset names messages that
partition never had. Kafka's own consumer treats such an offset as out of
range and starts the partition again; :func:`restart_partitions_past_their_end`
does the same for the state's offsets. The worker calls it when a batch finds
messages applied already (how emptied topics show, whether the worker was
running through the broker's restart or started after it), then runs the
batch again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import redis.asyncio as aioredis

from stream.redis_state import RedisKeys

log = logging.getLogger("shopstream")

# Removes the offset only if it is still the one compared with the partition's
# end: a worker that has applied new messages meanwhile keeps its offset.
_REMOVE_IF_UNCHANGED = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True)
class RestartedPartition:
    topic: str
    partition: int
    applied: int  # the last offset the state had applied
    end: int  # the partition's end offset now

    def line(self) -> str:
        return (f"{self.topic}[{self.partition}]: the state applied up to offset {self.applied:,} "
                f"but the partition ends at {self.end:,}")


async def restart_partitions_past_their_end(
    client: aioredis.Redis, prefix: str, ends: dict[tuple[str, int], int],
    keys: RedisKeys | None = None,
) -> list[RestartedPartition]:
    """Remove the stored offset of every partition whose end (the offset its
    next message gets) is at or before it, so that its messages are applied
    from the start; warn, and return those partitions."""
    names = [(keys or RedisKeys(prefix)).offset(tp) for tp in ends]
    if not names:
        return []
    remove = client.register_script(_REMOVE_IF_UNCHANGED)
    restarted = []
    for (tp, end), name, raw in zip(ends.items(), names, await client.mget(names)):
        if raw is not None and int(raw) >= end and await remove(keys=[name], args=[raw]):
            restarted.append(RestartedPartition(tp[0], tp[1], int(raw), end))
    if restarted:
        log.warning(
            "the state under prefix %r is past the end of %d input partition(s): its topics were "
            "emptied or created again (a restarted embedded broker keeps nothing). Their messages "
            "are applied from the start; what the state learnt before stays. %s",
            prefix, len(restarted), "; ".join(r.line() for r in restarted[:3])
            + ("; ..." if len(restarted) > 3 else ""),
        )
    return restarted
