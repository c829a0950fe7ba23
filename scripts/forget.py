#!/usr/bin/env python
"""Erase users: their profile, recommendations and index entries in Redis, and
what the learn agent holds of them; print what was erased.

    python scripts/forget.py u00016 u00017

Takes the shop's own ids (pseudonymised with ``SHOPSTREAM_USER_KEY`` when set).
Co-occurrence and popularity are counts over everyone and keep no user.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import orjson
from redis.exceptions import RedisError

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from scripts.cli import Parser  # noqa: E402
from stream.config import ConfigError, Settings  # noqa: E402
from stream.health import redact  # noqa: E402
from stream.learner import ModelRow  # noqa: E402


async def erase(settings: Settings, users: list[str]) -> list[dict]:
    from stream.processor import Processor
    from stream.redis_cluster import open_state

    state = open_state(settings)
    try:
        processor = Processor(state, settings)
        out = []
        for user_id in users:
            erased, row = await processor.forget(user_id)
            out.append({"user_id": user_id, "erased": erased, "row": row})
        return out
    finally:
        await state.close()


def tell_learner(settings: Settings, rows: list[ModelRow]) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, bootstrap_timeout_ms=10_000,
                             **settings.kafka_options())
    try:
        producer.send(settings.topics.features, key=b"learner", value=orjson.dumps(rows)).get(timeout=30)
    finally:
        producer.close(timeout=5)


def main(argv: list[str] | None = None) -> int:
    p = Parser(prog="forget.py", description=__doc__.split("\n\n")[0])
    p.add_argument("users", nargs="+", metavar="USER_ID")
    p.add_argument("--no-learner", action="store_true", help="erase from Redis only")
    args = p.parse_args(argv)
    if any(len(u) > 256 or not u for u in args.users):
        p.error("user ids are 1..256 characters")
    try:
        settings = Settings.from_env()
        results = asyncio.run(erase(settings, args.users))
    except ConfigError as exc:
        print(f"forget.py: {exc}", file=sys.stderr)
        return 1
    except (RedisError, OSError) as exc:
        print(f"forget.py: Redis {redact(settings.redis_url)}: {exc}", file=sys.stderr)
        return 1
    for result in results:
        print(orjson.dumps({"user_id": result["user_id"], "erased": result["erased"]}).decode())
    if args.no_learner:
        return 0
    try:
        tell_learner(settings, [r["row"] for r in results])
    except Exception as exc:  # the learner's copy expires with the label window anyway
        print(f"forget.py: erased from Redis, but the learn agent was not told: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
