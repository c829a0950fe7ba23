"""Run the local dev stack: a broker (Apache Kafka, or Tansu) and Redis on loopback.

    python scripts/dev_stack.py up|down|status [--broker-port N] [--redis-url URL]

Defaults come from ``SHOPSTREAM_BROKER`` (its port; the host must be local)
and ``SHOPSTREAM_REDIS_URL``. The broker is Apache Kafka where Java 17+ and
Maven are installed, else Tansu; ``SHOPSTREAM_LOCAL_BROKER=kafka|tansu``
forces one. Pid files and logs go to ``<repo>/.dev/``.
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
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait in `up`")
    return p.parse_args(argv)


def run(args: argparse.Namespace) -> int:
    if args.command == "down":
        done = stack.down(RUN_DIR)
        print("\n".join(done) if done else "nothing of ours was running")
        return 0
    port = args.broker_port if args.broker_port is not None else broker_port_from_env()
    if args.command == "up":
        st = stack.up(RUN_DIR, port, args.redis_url, timeout=args.timeout,
                      say=lambda line: print(f"dev_stack: {line}", flush=True))
    else:
        st = stack.status(RUN_DIR, port, args.redis_url)
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
