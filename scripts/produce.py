#!/usr/bin/env python
"""Push shop traffic to the input topics: seeded synthetic users, or recorded files.

    python scripts/produce.py --count 100000 --rate 2000 --bad-fraction 0.01
    python scripts/produce.py --from events.jsonl --from more.tsv
    python scripts/produce.py --count 5000 --out events.jsonl --truth truth.jsonl --labels labels.jsonl
    python scripts/produce.py --scenario cards --count 100000 --out cards.jsonl --labels cards-labels.jsonl

Messages are keyed by user id and go to the input topic of their event type
(``SHOPSTREAM_TOPIC_*``); missing input topics are created with
``SHOPSTREAM_PARTITIONS`` partitions. Recorded JSONL lines are sent as their
original bytes; lines that do not decode go to the clicks topic unchanged,
for the worker to dead-letter.

Synthetic traffic is the planted shop (``--scenario shop``, ``shop.planted``:
churners and fraud among returning users) or card transactions
(``--scenario cards``, ``shop.cards``: every card seen once, 0.2 % fraud
visible only in numeric ``attrs``). The confirmed outcome of every purchase
follows it ``--label-delay-h`` hours later (24 for the shop, 6 for cards) on
the ``labels`` topic (unless ``--no-labels``), and ``--labels FILE`` writes
the outcomes too (the truth to judge fraud alerts by).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import heapq
import itertools

import orjson
from kafka.errors import KafkaError

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from scripts.cli import Parser  # noqa: E402
from stream.config import ConfigError, Settings  # noqa: E402
from shop.publish import Failure, FileSink, KafkaSink, pump  # noqa: E402
from backtest.sources import Message, SourceError, merge_records, to_messages  # noqa: E402
from stream.events import Event  # noqa: E402
from shop.cards import CardShop  # noqa: E402
from shop.planted import PlantedShop  # noqa: E402
from shop.synthetic import DEFAULT_USERS, messages  # noqa: E402

DEFAULT_COUNT = 10_000
# Per scenario: fraud share (of returning users / of purchases), outcome delay (hours).
FRAUD_SHARE = {"shop": 0.08, "cards": 0.002}
LABEL_DELAY_H = {"shop": 24.0, "cards": 6.0}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = Parser(prog="produce.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--count", type=int,
                   help=f"messages to send (default {DEFAULT_COUNT}; with --from: every line)")
    p.add_argument("--rate", type=float, default=0.0,
                   help="messages per second (default 0: as fast as possible)")
    p.add_argument("--scenario", choices=("shop", "cards"), default="shop",
                   help="synthetic traffic: the planted shop (default) or card transactions, "
                        "each card seen once, fraud only in numeric attrs")
    p.add_argument("--seed", type=int, default=42, help="seed of the synthetic shop (default 42)")
    p.add_argument("--users", type=int, help=f"users in the synthetic shop (default {DEFAULT_USERS})")
    p.add_argument("--bad-fraction", type=float, default=0.0,
                   help="share of messages replaced by malformed ones (seeded)")
    p.add_argument("--from", dest="sources", action="append", type=Path, metavar="FILE",
                   help="a JSONL or yoochoose TSV file to send instead (repeatable; merged by event time)")
    p.add_argument("--out", type=Path, metavar="FILE.jsonl",
                   help="write the messages to a file ('-': stdout) instead of Kafka")
    p.add_argument("--truth", type=Path, metavar="FILE.jsonl", help="write the synthetic users' hidden truth")
    p.add_argument("--churn-share", type=float,
                   help="share of frequent shoppers who stop for good (default 0.1)")
    p.add_argument("--fraud-share", type=float,
                   help="shop: share of returning users who suffer a fraud incident (default 0.08); "
                        "cards: share of purchases that are fraud (default 0.002)")
    p.add_argument("--new-customer-share", type=float, default=0.0,
                   help="new customers added, as a share of --users: most shop once, a quarter "
                        "come back weeks later (default 0: none, e.g. 0.2)")
    p.add_argument("--labels", type=Path, metavar="FILE.jsonl",
                   help="write every purchase's confirmed outcome (fraud or not)")
    p.add_argument("--label-delay-h", type=float,
                   help="hours of event time between a purchase and its outcome (default 24; cards: 6)")
    p.add_argument("--no-labels", action="store_true", help="do not send outcomes to the labels topic")
    p.add_argument("--broker", help="broker URL (default: SHOPSTREAM_BROKER)")
    args = p.parse_args(argv)
    if args.fraud_share is None:
        args.fraud_share = FRAUD_SHARE[args.scenario]
    if args.label_delay_h is None:
        args.label_delay_h = LABEL_DELAY_H[args.scenario]
    if args.churn_share is None and args.scenario == "shop":
        args.churn_share = 0.1
    if args.count is not None and args.count < 0:
        p.error("--count must be >= 0")
    if args.rate < 0:
        p.error("--rate must be >= 0")
    if not 0.0 <= args.bad_fraction <= 1.0:
        p.error("--bad-fraction must be between 0 and 1")
    if args.users is not None and args.users < 1:
        p.error("--users must be >= 1")
    for name in ("churn_share", "fraud_share"):
        if getattr(args, name) is not None and not 0.0 <= getattr(args, name) <= 1.0:
            p.error(f"--{name.replace('_', '-')} must be between 0 and 1")
    if args.new_customer_share < 0:
        p.error("--new-customer-share must be >= 0")
    if args.label_delay_h < 0:
        p.error("--label-delay-h must be >= 0")
    if args.sources and (args.users is not None or args.truth or args.bad_fraction or args.labels):
        p.error("--users, --truth, --labels and --bad-fraction apply to synthetic traffic, not --from")
    if args.scenario == "cards" and (args.users is not None or args.truth or args.new_customer_share
                                     or args.churn_share is not None):
        p.error("--users, --truth, --churn-share and --new-customer-share apply to --scenario shop "
                "(every card is seen once)")
    return args


def traffic(args: argparse.Namespace, settings: Settings) -> tuple[Iterator[Message], int | None]:
    """The messages to send and how many there will be (None: unknown)."""
    if args.sources:
        records = list(merge_records(args.sources))
        total = len(records) if args.count is None else min(args.count, len(records))
        return to_messages(records[:total], settings.topics), total
    count = DEFAULT_COUNT if args.count is None else args.count
    shop: PlantedShop | CardShop
    if args.scenario == "cards":
        shop = CardShop(args.seed, fraud_share=args.fraud_share)
    else:
        shop = PlantedShop(args.seed, users=args.users, churn_share=args.churn_share,
                           fraud_share=args.fraud_share, new_customer_share=args.new_customer_share)
    if args.truth:
        _write_lines(args.truth, (orjson.dumps(row) for row in shop.truth()))
    send_labels = not args.out and not args.no_labels
    if not (send_labels or args.labels):
        return messages(shop.events(count), settings.topics, args.bad_fraction, args.seed), count
    return with_labels(shop, count, args, settings, send_labels), count


def with_labels(shop: PlantedShop | CardShop, count: int, args: argparse.Namespace, settings: Settings,
                send: bool) -> Iterator[Message]:
    """The events, with each purchase's outcome on the labels topic once the
    stream reaches its time (written to ``--labels`` as well, if asked)."""
    delay = args.label_delay_h * 3600.0
    due: list[tuple[float, int, dict]] = []
    order = itertools.count()
    now = float("-inf")
    written: list[dict] = []

    def watched(events: Iterator[Event]) -> Iterator[Event]:
        nonlocal now
        for event in events:
            now = event.ts
            if event.type == "purchase":
                label = shop.label(event, delay)
                heapq.heappush(due, (label["ts"], next(order), label))
            yield event

    def outcomes(until: float) -> Iterator[Message]:
        while due and due[0][0] <= until:
            label = heapq.heappop(due)[2]
            written.append(label)
            if send:  # the truth's ``kind`` stays out of the topic
                value = {k: v for k, v in label.items() if k != "kind"}
                yield Message(settings.topics.labels, label["event_id"].encode(), orjson.dumps(value))

    for message in messages(watched(shop.events(count)), settings.topics, args.bad_fraction, args.seed):
        yield from outcomes(now)
        yield message
    yield from outcomes(float("inf"))
    if args.labels:
        _write_lines(args.labels, (orjson.dumps(row) for row in written))


def _write_lines(path: Path, lines: Iterator[bytes]) -> None:
    try:
        with open(path, "wb") as f:
            for line in lines:
                f.write(line + b"\n")
    except OSError as exc:
        raise Failure(f"cannot write {path}: {exc.strerror or exc}") from None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    try:
        settings = Settings.from_env()
        if args.broker:
            settings = dataclasses.replace(settings, broker=args.broker)
        stream, total = traffic(args, settings)
        sink = FileSink(args.out) if args.out else KafkaSink(settings)
        counts: Counter = Counter()
        interrupted = False
        try:
            pump(stream, sink, args.rate, total, counts)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            sink.close()
    except (ConfigError, SourceError, Failure) as exc:
        print(f"produce.py: {exc}", file=sys.stderr)
        return 1
    except KafkaError as exc:  # unreachable broker, timeouts
        print(f"produce.py: broker {settings.bootstrap_servers}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("produce.py: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # --out - piped into head and the like
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    elapsed = time.perf_counter() - started
    sent = sum(n for topic, n in counts.items() if topic != "bad")
    per_topic = " ".join(f"{t}={n}" for t, n in sorted(counts.items()) if t != "bad") or "nothing"
    line = (
        f"produced {sent} messages ({counts['bad']} bad) to {sink.where} in {elapsed:.2f} s, "
        f"{sent / max(elapsed, 1e-9):.0f}/s: {per_topic}"
    )
    if sink.failed:
        line += f"; {sink.failed} NOT DELIVERED"
    if interrupted:
        line = "interrupted; " + line
    print(line, file=sys.stderr if str(args.out) == "-" else sys.stdout)
    return 1 if sink.failed else 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
