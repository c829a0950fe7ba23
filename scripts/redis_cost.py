#!/usr/bin/env python3
"""Redis CPU per event by batch size: synthetic shop events replayed into
Redis through the worker's own load and commit, without a broker.

Starts a redis-server of its own on a free loopback port (stopped at the
end) unless --redis-url names one; --redis-cluster starts a local Redis
Cluster of 3 masters instead (or, with --redis-url, measures the cluster
there) and prints every master's CPU together and the busiest one's. Each
batch size runs on fresh keys.

    python scripts/redis_cost.py                          # 20,000 events, batches of 4,000, 1,000, 60
    python scripts/redis_cost.py --events 40000 --batch 4000 --batch 30
    python scripts/redis_cost.py --redis-cluster
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import uuid
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.cli import Parser  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = Parser(prog="redis_cost.py", description=__doc__.split("\n\n")[0],
               formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=20_000, help="synthetic events (default 20,000)")
    p.add_argument("--batch", type=int, action="append", metavar="N",
                   help="batch size, repeatable (default 4000, 1000 and 60)")
    p.add_argument("--seed", type=int, default=42, help="seed of the synthetic shop (default 42)")
    p.add_argument("--redis-url", help="a Redis to measure (default: start one of our own)")
    p.add_argument("--redis-cluster", action="store_true", help="state on a Redis Cluster")
    args = p.parse_args(argv)
    batches = args.batch or [4000, 1000, 60]
    if args.events < 100 or min(batches) < 1:
        p.error("--events must be >= 100 and --batch >= 1")

    import redis

    from bench.redis_cpu import client_for, replay_cost
    from bench.run import write_events
    from devstack.services import DevStackError, free_port, start_redis, start_redis_cluster, wait_ready
    from stream.config import ConfigError, Settings

    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        p.error(str(exc))
    with tempfile.TemporaryDirectory(prefix="redis-cost-") as tmp:
        work = Path(tmp)
        own = None
        url = args.redis_url
        try:
            if url is None and args.redis_cluster:
                own = start_redis_cluster(work / "cluster")
                url = own.url
            elif url is None:
                own = start_redis(work, free_port())
                wait_ready(own)
                url = own.url
            client = client_for(url, args.redis_cluster)
            events = work / "events.jsonl"
            write_events(events, args.events, args.seed)
            print(f"{'batch':>7}  {'Redis µs/event':>15}  {'busiest master':>15}  "
                  f"{'one core saturates at':>22}  {'replay CPU µs/event':>20}")
            for size in batches:
                run = replace(settings, redis_url=url, redis_cluster=args.redis_cluster,
                              prefix=f"cost-{uuid.uuid4().hex[:8]}:")
                cost = replay_cost(events, run, size, client)
                print(f"{size:>7,}  {cost.redis_us:>15.1f}  {cost.busiest_master_us:>15.1f}  "
                      f"{cost.one_core_saturates_at:>17,.0f} ev/s  "
                      f"{cost.per_event_us(cost.worker_s) or 0:>20.1f}", flush=True)
                for key in client.scan_iter(match=f"{run.prefix}*", count=1000):
                    client.delete(key)
        except DevStackError as exc:
            print(f"redis_cost.py: {exc}", file=sys.stderr)
            return 1
        except redis.RedisError as exc:
            print(f"redis_cost.py: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
        finally:
            if own is not None:
                own.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
