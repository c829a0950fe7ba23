#!/usr/bin/env python3
"""Benchmark shopstream against its ceilings in one run: the raw Kafka client,
a bare Faust agent, the offline replay, one and two real workers, the latency
of recommendations at a fixed rate and the latency floor (the same load
through a process that only forwards events), memory, and a check that the
workers' results equal the reference replay's. Bare Faust and one worker run
twice and count as the mean.

Starts the local broker and Redis when none answers (as the demo does), and
stops at the end what it started.

    python scripts/bench.py                 # 200k events, latency 60 s at 2,000 events/s
    python scripts/bench.py --events 50000 --json bench.json
    python scripts/bench.py --soak 30        # 30 minutes at steady load: memory over time
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import orjson  # noqa: E402

from scripts.cli import Parser  # noqa: E402
from stream.config import ConfigError, Settings  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = Parser(prog="bench.py", description=__doc__.split("\n\n")[0],
               formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=200_000, help="events to preload (default 200,000)")
    p.add_argument("--rate", type=float, default=2000.0,
                   help="offered events/s of the latency phase (default 2,000)")
    p.add_argument("--latency-s", type=float, default=60.0, help="length of the latency phase (default 60)")
    p.add_argument("--latency-warmup-s", type=float, default=10.0,
                   help="seconds of events sent at --rate first and not measured (default 10)")
    p.add_argument("--seed", type=int, default=42, help="seed of the synthetic shop (default 42)")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the results as JSON")
    p.add_argument("--soak", type=float, metavar="MINUTES",
                   help="instead: a soak run of this many minutes at --rate with ever-new users")
    p.add_argument("--out", type=Path, default=Path("out/soak"),
                   help="with --soak: where the samples and the plot go (default out/soak)")
    args = p.parse_args(argv)
    if args.events < 1000:
        p.error("--events must be >= 1000")
    if args.rate <= 0 or args.latency_s <= 0:
        p.error("--rate and --latency-s must be > 0")
    if args.latency_warmup_s < 0:
        p.error("--latency-warmup-s must be >= 0")
    if args.soak is not None and args.soak <= 0:
        p.error("--soak must be > 0 minutes")
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        p.error(str(exc))
    if args.json:  # now, not after a run of several minutes
        try:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.touch()
        except OSError as exc:
            p.error(f"cannot write --json {args.json}: {exc.strerror}")

    from devstack import stack
    from devstack.workers import ROOT

    run_dir = ROOT / ".dev"
    try:
        port = stack.local_broker_port(settings.broker)
        before = stack.status(run_dir, port, settings.redis_url)
        after = stack.up(run_dir, broker_port=port, redis_url=settings.redis_url,
                         say=lambda line: print(f"bench.py: {line}", file=sys.stderr, flush=True))
    except stack.DevStackError as exc:
        print(f"bench.py: {exc}", file=sys.stderr)
        return 1
    # What this run started, it stops: the broker keeps every message it was
    # sent (a bench leaves gigabytes) and slows with them.
    started = [now.name for was, now in ((before.broker, after.broker), (before.redis, after.redis))
               if now.owned and not was.owned]
    broker = after.broker
    if broker.owned:
        what = f"{stack.BROKERS.get(broker.kind, broker.kind)} at {broker.url}, started by the bench"
    else:
        what = f"the broker already running at {broker.url} (not started by the bench)"
    print(f"bench.py: measuring {what}", file=sys.stderr, flush=True)
    try:
        return bench(args, settings, what, broker.pid if broker.owned else None)
    finally:
        for line in stack.down(run_dir, started):
            print(f"bench.py: {line}", file=sys.stderr)


def bench(args: argparse.Namespace, settings: Settings, broker: str, broker_pid: int | None = None) -> int:
    from aiokafka.errors import KafkaError as AIOKafkaError
    from kafka.errors import KafkaError
    from redis.exceptions import RedisError

    from bench.run import BenchConfig, BenchError, run_bench
    from devstack.workers import ROOT, WorkerError

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    try:
        if args.soak is not None:
            from bench.soak import SoakConfig, run_soak

            summary = run_soak(SoakConfig(minutes=args.soak, rate=args.rate, out=args.out,
                                          settings=settings, say=say, broker=broker))
            print(summary)
            return 0
        result = run_bench(BenchConfig(events=args.events, rate=args.rate, latency_s=args.latency_s,
                                       latency_warmup_s=args.latency_warmup_s, seed=args.seed,
                                       settings=settings, say=say, broker=broker,
                                       broker_pid=broker_pid))
    except BenchError as exc:
        print(f"bench.py: {exc}", file=sys.stderr)
        return 1
    except WorkerError as exc:  # its message goes on with the worker's log
        logs = args.out / "worker" if args.soak is not None else ROOT / ".dev" / "bench"
        print(f"bench.py: {str(exc).splitlines()[0]} (worker logs under {logs})", file=sys.stderr)
        return 1
    except (OSError, RedisError, KafkaError, AIOKafkaError) as exc:
        print(f"bench.py: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench.py: interrupted", file=sys.stderr)
        return 130
    print(result.table())
    if args.json:
        args.json.write_bytes(orjson.dumps(result.to_dict(), option=orjson.OPT_INDENT_2))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
