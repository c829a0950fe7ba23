"""Sending messages to the input topics (or to a file), paced or flat out.

Shared by ``scripts/produce.py`` (synthetic traffic, recorded files) and
``scripts/replay.py --to-kafka`` (recorded files at a speed relative to
event time).
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from kafka import KafkaAdminClient, KafkaProducer
from tqdm import tqdm

from stream.config import Settings
from stream.topics import BOOTSTRAP_TIMEOUT_MS, ensure_topics
from backtest.sources import Message, Record, merge_records, to_messages

FLUSH_TIMEOUT_S = 60.0


class Failure(Exception):
    """Stop with a one-line message and a non-zero exit code."""


class FileSink:
    """Messages as JSONL lines (bad ones as their raw bytes)."""

    def __init__(self, path: Path) -> None:
        self.where = str(path)
        self.failed = 0
        try:
            self._f: BinaryIO = sys.stdout.buffer if str(path) == "-" else open(path, "wb")
        except OSError as exc:
            raise Failure(f"cannot write {path}: {exc.strerror or exc}") from None

    def send(self, message: Message) -> None:
        self._f.write(message.value + b"\n")

    def close(self) -> None:
        self._f.flush()
        if self._f is not sys.stdout.buffer:
            self._f.close()


class KafkaSink:
    """A kafka-python producer; creates missing input and labels topics first."""

    def __init__(self, settings: Settings) -> None:
        self.where = settings.bootstrap_servers
        self.failed = 0
        admin = KafkaAdminClient(bootstrap_servers=self.where, bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS,
                                 **settings.kafka_options())
        try:
            ensure_topics(admin, settings.topics.inputs, settings.partitions)
            ensure_topics(admin, (settings.topics.labels,), 1)  # read by the one learn agent
        finally:
            admin.close()
        self._producer = KafkaProducer(
            bootstrap_servers=self.where,
            bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS,
            linger_ms=10,
            batch_size=256 * 1024,
            **settings.kafka_options(),
        )

    def _on_error(self, _exc: BaseException) -> None:
        self.failed += 1

    def send(self, message: Message) -> None:
        future = self._producer.send(message.topic, key=message.key, value=message.value)
        future.add_errback(self._on_error)

    def close(self) -> None:
        try:
            self._producer.flush(timeout=FLUSH_TIMEOUT_S)
        finally:
            self._producer.close(timeout=5)


def pump(stream: Iterator[Message], sink: FileSink | KafkaSink, rate: float, total: int | None,
         counts: Counter) -> None:
    """Send every message, paced to ``rate`` per second when > 0, counting by topic and 'bad'."""
    start = time.perf_counter()
    with tqdm(total=total, unit="msg", file=sys.stderr, delay=1.0, disable=None) as bar:
        for n, message in enumerate(stream):
            if rate > 0:
                ahead = start + n / rate - time.perf_counter()
                if ahead > 0.001:
                    time.sleep(ahead)
            sink.send(message)
            counts[message.topic] += 1
            counts["bad"] += message.bad is not None
            bar.update()



def by_event_time(records: Iterable[Record], speed: float) -> Iterator[Record]:
    """The records, each held back until its event time, ``speed`` times
    faster than real time, has come (0: no pacing)."""
    start = first = None
    for record in records:
        if speed > 0 and record.event is not None:
            if first is None:
                start, first = time.perf_counter(), record.event.ts
            ahead = start + (record.event.ts - first) / speed - time.perf_counter()
            if ahead > 0.001:
                time.sleep(ahead)
        yield record


def push_files(paths: list[Path], settings: Settings, speed: float = 0.0, progress: bool = True) -> str:
    """Send recorded files to the input topics in event-time order; a summary line."""
    records = list(merge_records(paths))
    sink = KafkaSink(settings)
    counts: Counter = Counter()
    started = time.perf_counter()
    try:
        pump(to_messages(by_event_time(records, speed), settings.topics), sink, 0.0,
             len(records) if progress else None, counts)
    finally:
        sink.close()
    elapsed = time.perf_counter() - started
    sent = sum(n for topic, n in counts.items() if topic != "bad")
    line = f"pushed {sent} messages ({counts['bad']} undecodable) to {sink.where} in {elapsed:.2f} s"
    if sink.failed:
        raise Failure(line + f"; {sink.failed} NOT DELIVERED")
    return line


def push_texts(reviews: list, messages: list, settings: Settings) -> str:
    """Send reviews and messages (``backtest/voice_sources.py``) to their topics
    in time order, keyed by user; a summary line."""
    from stream.text_events import Review, to_json

    sink = KafkaSink(settings)
    topics = settings.topics
    started = time.perf_counter()
    try:
        admin = KafkaAdminClient(bootstrap_servers=sink.where, bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS,
                                 **settings.kafka_options())
        try:
            ensure_topics(admin, topics.texts, settings.partitions)
        finally:
            admin.close()
        texts = sorted([*reviews, *messages], key=lambda t: t.ts)
        for text in texts:
            topic = topics.reviews if isinstance(text, Review) else topics.messages
            sink.send(Message(topic, text.user_id.encode(), to_json(text)))
    finally:
        sink.close()
    line = (f"pushed {len(reviews)} reviews and {len(messages)} messages to {sink.where} "
            f"in {time.perf_counter() - started:.2f} s")
    if sink.failed:
        raise Failure(line + f"; {sink.failed} NOT DELIVERED")
    return line
