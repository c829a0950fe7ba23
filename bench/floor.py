"""The latency floor the benchmark measures shopstream against: a process that
forwards input events to an output topic through the same broker, fetch wait
and size and acks as the worker, with no work in between.

Whatever it takes from an event's send to the forwarded message's arrival is
what the broker and its clients take (a fetch's wait, producing with acks, the
reader's fetch); shopstream's latency above it is shopstream's own. Like
shopstream's recommendations, a user's events are forwarded at most once per
``SHOPSTREAM_REC_THROTTLE_S``, so that the broker and the reader carry about
as many messages as in shopstream's latency phase.

    python -m bench.floor OUTPUT_TOPIC

reads the ``SHOPSTREAM_*`` variables like the worker, starts at the end of
the input topics, prints ``ready`` once it is there, and runs until stopped.
"""

from __future__ import annotations

import asyncio
import os
import select
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from typing import Iterator

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from stream.config import ConfigError, Settings

READY = "ready"


class Throttle:
    """At most one pass per key per ``every_s`` seconds.

    >>> throttle = Throttle(every_s=30.0)
    >>> [throttle.passes(key, now) for key, now in [(b"u1", 0.0), (b"u1", 10.0), (b"u2", 10.0), (b"u1", 31.0)]]
    [True, False, True, True]
    """

    def __init__(self, every_s: float) -> None:
        self.every_s = every_s
        self.last: dict[bytes | None, float] = {}

    def passes(self, key: bytes | None, now: float) -> bool:
        last = self.last.get(key)
        if last is not None and now - last < self.every_s:
            return False
        self.last[key] = now
        return True


async def forward(settings: Settings, output: str) -> None:
    options = settings.aiokafka_options()
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers, enable_auto_commit=False,
                                fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
                                fetch_min_bytes=settings.kafka_fetch_min_bytes, **options)
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all", **options)
    await consumer.start()
    await producer.start()
    throttle = Throttle(settings.rec_throttle_s)
    try:
        # The producer asks the broker for a topic's metadata; Kafka's answer
        # to the consumer's start names no topic.
        partitions = [TopicPartition(t, p) for t in settings.topics.inputs
                      for p in sorted(await producer.partitions_for(t))]
        consumer.assign(partitions)
        await consumer.seek_to_end(*partitions)
        for tp in partitions:
            await consumer.position(tp)
        print(READY, flush=True)
        while True:
            fetched = await consumer.getmany(timeout_ms=1000)
            now = time.monotonic()
            # As the worker publishes a batch: send them all, then wait for every ack.
            pending = [await producer.send(output, m.value, key=m.key)
                       for messages in fetched.values() for m in messages if throttle.passes(m.key, now)]
            if pending:
                await asyncio.gather(*pending)
    finally:
        await producer.stop()
        await consumer.stop()


@contextmanager
def running(env: dict[str, str], output: str, timeout: float = 60.0) -> Iterator[subprocess.Popen]:
    """The forwarder as a process of its own (so that it has a core as the
    worker has), from the moment it is at the end of its inputs."""
    proc = subprocess.Popen([sys.executable, "-m", "bench.floor", output], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        assert proc.stdout is not None and proc.stderr is not None
        ready, _, _ = select.select([proc.stdout], [], [], timeout)
        line = proc.stdout.readline().strip() if ready else ""
        if line != READY:
            proc.kill()
            error = proc.stderr.read().strip().splitlines()
            raise RuntimeError(f"the latency floor's forwarder did not start: {(error or ['no output'])[-1]}")
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: python -m bench.floor OUTPUT_TOPIC")
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        sys.exit(str(exc))
    try:
        asyncio.run(forward(settings, sys.argv[1]))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
