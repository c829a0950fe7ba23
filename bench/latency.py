"""Latency of recommendations under a fixed offered load: the time from
sending an event to reading the ``recommendations`` message it caused.

Events come from the synthetic shop under user and event ids of their own,
stamped with the wall-clock time they are sent (as a live shop's are), and
are sent at ``rate`` per second. A user gets at most one recommendation per
``SHOPSTREAM_REC_THROTTLE_S`` of event time, for their last event in a
batch, so the latencies are those of the events that caused a message.

The first ``warmup`` events are sent at the same rate but not measured: the
worker meets live event time then (its clock jumps from the preloaded events'
past to now, which closes every earlier session at once), as a worker does
once when it goes live, not in its steady state.
"""

from __future__ import annotations

import asyncio
import gc
import time
from dataclasses import dataclass

import numpy as np
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from stream.config import Settings
from shop.planted import PlantedShop

TICK_S = 0.005
DRAIN_S = 5.0  # how long to wait for the last recommendations after sending


@dataclass
class Latency:
    sent: int
    matched: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float | None

    @classmethod
    def of(cls, sent: int, latencies_s: list[float]) -> "Latency":
        if not latencies_s:
            return cls(sent, 0, None, None, None, None)
        ms = np.asarray(latencies_s) * 1000.0
        p50, p95, p99 = (float(v) for v in np.percentile(ms, [50, 95, 99]))
        return cls(sent, len(ms), p50, p95, p99, float(ms.max()))


def live_events(seed: int, count: int, users: int, tag: str) -> list[dict]:
    """Synthetic events under ids of their own (``tag``), times left to the sender."""
    out = []
    for event in PlantedShop(seed, users=users).events(count):
        d = event.to_dict()
        d["event_id"] = f"{tag}-{d['event_id']}"
        d["user_id"] = f"{tag}-{d['user_id']}"
        if "session_id" in d:
            d["session_id"] = f"{tag}-{d['session_id']}"
        out.append(d)
    return out


async def measure(settings: Settings, events: list[dict], rate: float,
                  progress=None, warmup: int = 0) -> Latency:  # type: ignore[no-untyped-def]
    """Send ``events`` at ``rate``/s and match recommendations by ``event_id``
    (of those after the first ``warmup``)."""
    options = settings.aiokafka_options()
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers, enable_auto_commit=False,
                                fetch_max_wait_ms=10, **options)
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, linger_ms=1, **options)
    await consumer.start()
    await producer.start()
    # What the bench built before stays out of the collections made while
    # measuring: they would pause the reader, and count as the worker's latency.
    gc.collect()
    gc.freeze()
    sent_at: dict[str, float] = {}
    latencies: list[float] = []
    sending = True

    async def read() -> None:
        topic = settings.topics.recommendations
        partitions = [TopicPartition(topic, p) for p in sorted(await producer.partitions_for(topic))]
        consumer.assign(partitions)
        await consumer.seek_to_end(*partitions)
        quiet_since = None
        while sending or (quiet_since is None or time.monotonic() - quiet_since < DRAIN_S):
            batches = await consumer.getmany(timeout_ms=50)
            now = time.time()
            if not sending and quiet_since is None:
                quiet_since = time.monotonic()
            for messages in batches.values():
                for m in messages:
                    t = sent_at.pop(orjson.loads(m.value).get("event_id"), None)
                    if t is not None:
                        latencies.append(now - t)

    reader = asyncio.create_task(read())
    try:
        await asyncio.sleep(1.0)  # let the reader find the end of the topic
        start = time.monotonic()
        n = 0
        while n < len(events):
            due = min(len(events), int((time.monotonic() - start) * rate) + 1)
            while n < due:
                event = events[n]
                now = time.time()
                event["ts"] = now
                if n >= warmup:
                    sent_at[event["event_id"]] = now
                await producer.send(settings.topics.for_event_type(event["type"]),
                                    orjson.dumps(event), key=event["user_id"].encode())
                n += 1
            if progress is not None:
                progress(n)
            await asyncio.sleep(TICK_S)
        await producer.flush()
        sending = False
        await reader
    finally:
        sending = False
        reader.cancel()
        await producer.stop()
        await consumer.stop()
        gc.unfreeze()
    return Latency.of(len(events) - min(warmup, len(events)), latencies)
