"""Redis state that outlived its input topics.

The state records, per input partition, the last offset it applied, and a
batch skips every message at or below it (``already_applied``). When the
topics are emptied under the state (the embedded broker restarted, which
keeps nothing; a topic deleted and created again) the new messages start at
offset 0 again, and every one of them would be skipped, silently.

A stored offset at or past a partition's end offset names messages that
partition never had. Kafka's own consumer treats such an offset as out of
range and starts the partition again; :func:`restart_partitions_past_their_end`
does the same for the state's offsets, with a warning: at worker start-up,
and (:func:`restart_partitions_past_their_end_async`) when a running worker's
batch finds messages applied already, which is how a broker restarted under
it shows.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import redis
import redis.asyncio as aioredis

from stream.config import Settings
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


def end_offsets(settings: Settings) -> dict[tuple[str, int], int]:
    """Each input partition's end offset (the offset its next message gets)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers, enable_auto_commit=False,
                             **settings.kafka_options())
    try:
        partitions = [TopicPartition(topic, p) for topic in settings.topics.inputs
                      for p in sorted(consumer.partitions_for_topic(topic) or ())]
        ends = consumer.end_offsets(partitions) if partitions else {}
    finally:
        consumer.close()
    return {(tp.topic, tp.partition): end for tp, end in ends.items()}


def _past_end(
    ends: dict[tuple[str, int], int], names: list[str], stored: list[bytes | None]
) -> list[tuple[str, bytes, RestartedPartition]]:
    """(offset key, stored value, partition) of each partition whose end is at or before its offset."""
    return [(name, raw, RestartedPartition(tp[0], tp[1], int(raw), end))
            for (tp, end), name, raw in zip(ends.items(), names, stored)
            if raw is not None and int(raw) >= end]


def restart_partitions_past_their_end(
    client: redis.Redis, prefix: str, ends: dict[tuple[str, int], int]
) -> list[RestartedPartition]:
    """Remove the stored offset of every partition whose end is at or before
    it, so that its messages are applied from the start; return those."""
    names = [RedisKeys(prefix).offset(tp) for tp in ends]
    if not names:
        return []
    remove = client.register_script(_REMOVE_IF_UNCHANGED)
    return [partition for name, raw, partition in _past_end(ends, names, client.mget(names))
            if remove(keys=[name], args=[raw])]


async def restart_partitions_past_their_end_async(
    client: aioredis.Redis, prefix: str, ends: dict[tuple[str, int], int]
) -> list[RestartedPartition]:
    """:func:`restart_partitions_past_their_end` with the worker's asyncio client."""
    names = [RedisKeys(prefix).offset(tp) for tp in ends]
    if not names:
        return []
    remove = client.register_script(_REMOVE_IF_UNCHANGED)
    return [partition for name, raw, partition in _past_end(ends, names, await client.mget(names))
            if await remove(keys=[name], args=[raw])]


def warn_restarted(prefix: str, restarted: list[RestartedPartition]) -> None:
    if restarted:
        log.warning(
            "the state under prefix %r is past the end of %d input partition(s): its topics were "
            "emptied or created again (a restarted embedded broker keeps nothing). Their messages "
            "are applied from the start; what the state learnt before stays. %s",
            prefix, len(restarted), "; ".join(r.line() for r in restarted[:3])
            + ("; ..." if len(restarted) > 3 else ""),
        )


def check_state_against_topics(settings: Settings) -> list[RestartedPartition]:
    """At start-up: warn about, and restart, partitions the state is past the end of."""
    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2.0, socket_timeout=10.0)
    try:
        restarted = restart_partitions_past_their_end(client, settings.prefix, end_offsets(settings))
    except Exception as exc:  # the worker's own retries deal with an unreachable Redis
        log.warning("could not compare the state's offsets with the input topics (%s)", exc)
        return []
    finally:
        client.close()
    warn_restarted(settings.prefix, restarted)
    return restarted
