#!/usr/bin/env python
"""Print the messages of an output topic for a person to read.

    python scripts/tail.py recommendations --count 10
    python scripts/tail.py events-dlq --timeout 5
    python scripts/tail.py alerts --latest --json
    python scripts/tail.py service --latest

Recommendations, dead letters, alerts and service records get one readable line each, anything
else is printed as indented JSON; ``--json`` prints the raw values, one per
line. Reads from the beginning of the topic unless ``--latest``; stops after
``--count`` messages or ``--timeout`` seconds without one, else on Ctrl-C.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import orjson
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from scripts.cli import Parser  # noqa: E402
from stream.config import ConfigError, Settings  # noqa: E402

BOOTSTRAP_TIMEOUT_MS = 10_000
TOP_ITEMS = 3
ORIGINAL_CHARS = 120



def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = Parser(prog="tail.py", description=__doc__.split("\n\n")[0])
    p.add_argument("topic")
    p.add_argument("--count", type=int, help="stop after N messages")
    p.add_argument("--timeout", type=float, help="stop after S seconds without a message")
    p.add_argument("--json", action="store_true", help="print raw JSON values, one per line")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--from-beginning", action="store_true", help="read the whole topic (the default)")
    where.add_argument("--latest", action="store_true", help="only messages that arrive from now on")
    p.add_argument("--broker", help="broker URL (default: SHOPSTREAM_BROKER)")
    args = p.parse_args(argv)
    if args.count is not None and args.count < 1:
        p.error("--count must be >= 1")
    if args.timeout is not None and args.timeout <= 0:
        p.error("--timeout must be > 0")
    return args


# -- formatting (pure) ----------------------------------------------------------


def when(ts: object) -> str:
    """Event time for people: epoch seconds or ISO-8601 to ``YYYY-MM-DD HH:MM:SS``."""
    try:
        if isinstance(ts, (int, float)) and not isinstance(ts, bool):
            moment = datetime.fromtimestamp(ts, timezone.utc)
        else:
            moment = datetime.fromisoformat(str(ts).replace("Z", "+00:00"))
        return moment.strftime("%Y-%m-%d %H:%M:%S")
    except (ValueError, OverflowError, OSError):
        return "?" if ts is None else str(ts)


def _compact(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        if {"feature", "value"} <= value.keys() or {"name", "value"} <= value.keys():
            return f"{value.get('feature', value.get('name'))}={_compact(value['value'])}"
        if "item_id" in value:
            return str(value["item_id"])
        return ", ".join(f"{k}={_compact(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(_compact(v) for v in value)
    return orjson.dumps(value).decode()


def format_recommendation(d: dict) -> str:
    parts = []
    items = d.get("items") or []
    for rank, item in enumerate(items[:TOP_ITEMS], start=1):
        score = item.get("score")
        text = f"{rank}. {item.get('item_id')}" + (f" {_compact(score)}" if score is not None else "")
        if item.get("because"):
            text += f" (because {_compact(item['because'])})"
        parts.append(text)
    if len(items) > TOP_ITEMS:
        parts.append(f"+{len(items) - TOP_ITEMS} more")
    fallback = "  (popular items, no history yet)" if d.get("fallback") else ""
    return f"{when(d.get('ts'))}  {d.get('user_id')}  after {d.get('event_id')}:  " + (
        "   ".join(parts) or "no items"
    ) + fallback


def format_dead_letter(d: dict) -> str:
    original = str(d.get("original", ""))
    size = d.get("original_bytes")
    shown = repr(original[:ORIGINAL_CHARS])
    if len(original) > ORIGINAL_CHARS or (isinstance(size, int) and size > len(original.encode())):
        shown += f"... ({size or len(original)} bytes)"
    source = f"{d.get('topic')}[{d.get('partition')}]@{d.get('offset')}"
    return f"DEAD LETTER  {d.get('reason')}  from {source}  original: {shown}"


# Reasons whose value is a time (epoch seconds): shown as one.
TIME_REASONS = {"since", "reading_ts"}


def _reason(r: object) -> str:
    if isinstance(r, dict) and "name" in r:
        value = r.get("value")
        shown = when(value) if r["name"] in TIME_REASONS and isinstance(value, (int, float)) else _compact(value)
        text = f"{r['name']}={shown}"
        if r.get("normal") is not None:
            text += f" (normal {_compact(r['normal'])})"
        return text
    return _compact(r)


def format_alert(d: dict) -> str:
    score, threshold = d.get("score"), d.get("threshold")
    reasons = "; ".join(_reason(r) for r in d.get("reasons") or []) or "no reasons given"
    limit = f" (threshold {_compact(threshold)})" if threshold is not None else ""
    segment = d.get("segment_name") or d.get("segment")
    where = f"  segment {segment}" if segment is not None else ""
    after = f"  after {d['event_id']}" if d.get("event_id") else ""
    return (
        f"{when(d.get('ts'))}  ALERT {d.get('kind')}  {d.get('user_id')}{after}  "
        f"score {_compact(score)}{limit}{where}  because {reasons}"
    )


def format_service(d: dict) -> str:
    """A triaged customer-service message: priority, intent, customer, suggestion."""
    c = d.get("customer") or {}
    who = (f"revenue {_compact(c.get('revenue'))}, {c.get('orders', 0)} orders, churn risk "
           f"{_compact(c.get('churn_risk'))}" if c.get("known") else "unknown customer")
    s = d.get("suggestion") or {}
    sentiment = d.get("sentiment")
    text = str(d.get("text", ""))[:ORIGINAL_CHARS]
    return (
        f"{when(d.get('ts'))}  SERVICE {str(d.get('priority', '')).upper()} "
        f"({_compact(d.get('priority_score'))})  {d.get('user_id')} via {d.get('channel')}  "
        f"intent {d.get('intent')} ({_compact(d.get('confidence'))})  sentiment "
        f"{'not enough seen yet' if sentiment is None else _compact(sentiment)}  [{who}]  "
        f"{text!r}  -> {s.get('answer')}"
    )


def format_value(value: bytes | None) -> str:
    """One message value as text for a person."""
    if value is None:
        return "(no value)"
    try:
        d = orjson.loads(value)
    except orjson.JSONDecodeError:
        return f"(not JSON) {value[:ORIGINAL_CHARS]!r}"
    if isinstance(d, dict):
        if isinstance(d.get("items"), list) and "user_id" in d:
            return format_recommendation(d)
        if "reason" in d and "original" in d:
            return format_dead_letter(d)
        if {"kind", "score", "reasons"} <= d.keys():
            return format_alert(d)
        if "service_id" in d:
            return format_service(d)
    return orjson.dumps(d, option=orjson.OPT_INDENT_2).decode()


# -- consuming ------------------------------------------------------------------


def open_topic(settings: Settings, topic: str, latest: bool) -> KafkaConsumer:
    """A consumer assigned to every partition of ``topic``, without a group."""
    consumer = KafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS,
        group_id=None,
        enable_auto_commit=False,
        allow_auto_create_topics=False,
        **settings.kafka_options(),
    )
    known = consumer.topics()
    if topic not in known:
        consumer.close()
        raise LookupError(f"unknown topic {topic!r} (topics: {', '.join(sorted(known)) or 'none'})")
    partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
    consumer.assign(partitions)
    (consumer.seek_to_end if latest else consumer.seek_to_beginning)(*partitions)
    return consumer


def follow(
    consumer: KafkaConsumer, count: int | None, timeout: float | None, raw: bool, since_ms: float = 0
) -> int:
    """Print messages until ``count`` or ``timeout`` seconds of silence; how many printed.

    Messages stamped before ``since_ms`` are skipped: some brokers (Tansu 0.6)
    report the end of a partition as the start of its last batch, so
    ``seek_to_end`` alone would replay that batch.
    """
    printed = 0
    last = time.monotonic()
    while count is None or printed < count:
        batch = consumer.poll(timeout_ms=200)
        if not batch:
            if timeout is not None and time.monotonic() - last >= timeout:
                break
            continue
        last = time.monotonic()
        records = sorted(
            (r for rs in batch.values() for r in rs if r.timestamp >= since_ms), key=lambda r: r.timestamp
        )
        for record in records[: None if count is None else count - printed]:
            if raw:
                print((record.value or b"").decode("utf-8", "replace"), flush=True)
            else:
                print(format_value(record.value), flush=True)
            printed += 1
    return printed


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    consumer = None
    since_ms = time.time() * 1000 if args.latest else 0
    try:
        settings = Settings.from_env()
        if args.broker:
            settings = dataclasses.replace(settings, broker=args.broker)
        consumer = open_topic(settings, args.topic, args.latest)
        follow(consumer, args.count, args.timeout, args.json, since_ms)
    except (ConfigError, LookupError) as exc:
        print(f"tail.py: {exc}", file=sys.stderr)
        return 1
    except KafkaError as exc:
        print(f"tail.py: broker {settings.bootstrap_servers}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:  # piped into head and the like
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    finally:
        if consumer is not None:
            consumer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
