"""Run the local dev stack: a broker (Apache Kafka, or Tansu) and Redis on loopback.

    python scripts/dev_stack.py up|down|status [--broker-port N] [--redis-url URL]
    python scripts/dev_stack.py up|status --redis-cluster [--cluster-ports 7000,7001,7002]

Defaults come from ``SHOPSTREAM_BROKER`` (its port; the host must be local)
and ``SHOPSTREAM_REDIS_URL``. The broker is Apache Kafka where Java 17+ and
Maven are installed, else Tansu; ``SHOPSTREAM_LOCAL_BROKER=kafka|tansu``
forces one. ``--redis-cluster`` starts a Redis Cluster of masters (no
replicas) on loopback instead of a single Redis; point workers at it with
``SHOPSTREAM_REDIS_URL=redis://127.0.0.1:7000/0 SHOPSTREAM_REDIS_CLUSTER=1``.
Pid files and logs go to ``<repo>/.dev/``.
Processes started by ``up`` keep running after this script exits.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devstack import stack  # noqa: E402

RUN_DIR = ROOT / ".dev"
DEFAULT_BROKER = "kafka://127.0.0.1:9092"


def broker_port_from_env() -> int:
    return stack.local_broker_port(os.environ.get("SHOPSTREAM_BROKER", DEFAULT_BROKER))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("command", choices=("up", "down", "status"))
    p.add_argument("--broker-port", type=int, help="default: port of $SHOPSTREAM_BROKER")
    p.add_argument(
        "--redis-url",
        default=os.environ.get("SHOPSTREAM_REDIS_URL", stack.DEFAULT_REDIS_URL),
        help="default: $SHOPSTREAM_REDIS_URL or %(default)s",
    )
    p.add_argument("--redis-cluster", action="store_true",
                   help="a Redis Cluster instead of a single Redis")
    p.add_argument("--cluster-ports", default=",".join(map(str, stack.CLUSTER_PORTS)),
                   help="ports of the cluster's masters, at least 3 (default %(default)s)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait in `up`")
    args = p.parse_args(argv)
    try:
        args.cluster_ports = [int(x) for x in args.cluster_ports.split(",") if x.strip()]
    except ValueError:
        p.error(f"--cluster-ports {args.cluster_ports!r}: give ports separated by commas")
    if args.redis_cluster and len(args.cluster_ports) < 3:
        p.error("--cluster-ports: a Redis Cluster needs at least 3 masters")
    return args


def run(args: argparse.Namespace) -> int:
    if args.command == "down":
        done = stack.down(RUN_DIR)
        print("\n".join(done) if done else "nothing of ours was running")
        return 0
    port = args.broker_port if args.broker_port is not None else broker_port_from_env()
    cluster = args.cluster_ports if args.redis_cluster else []
    if args.command == "up":
        st = stack.up(RUN_DIR, port, args.redis_url, timeout=args.timeout,
                      say=lambda line: print(f"dev_stack: {line}", flush=True), redis_cluster=cluster)
    else:
        st = stack.status(RUN_DIR, port, args.redis_url, cluster)
    print("\n".join(st.lines()))
    return 0 if st.up else 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except stack.DevStackError as e:
        print(f"dev_stack: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # anything else still gets one line, not a traceback
        print(f"dev_stack: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("dev_stack: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
