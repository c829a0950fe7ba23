"""Test services: a real broker and a real Redis.

By default the session starts its own broker (Apache Kafka where Java 17+ and
Maven are there, else Tansu; ``SHOPSTREAM_LOCAL_BROKER=kafka|tansu`` forces
one) and redis-server on free loopback ports, and stops them at the end. Set
``SHOPSTREAM_TEST_BROKER`` / ``SHOPSTREAM_TEST_REDIS_URL`` to run against ones
already running instead.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest

from devstack.services import (
    BROKERS,
    DevStackError,
    broker_kind,
    free_port,
    start_broker,
    start_redis,
    wait_ready,
)
from tests.support import Services


def pytest_report_header() -> str:
    if os.environ.get("SHOPSTREAM_TEST_BROKER"):
        return f"broker: {os.environ['SHOPSTREAM_TEST_BROKER']} (SHOPSTREAM_TEST_BROKER)"
    try:
        kind, why = broker_kind()
    except DevStackError as exc:
        return f"broker: none ({exc})"
    return f"broker: {BROKERS[kind]}, started by the session ({why})"


@pytest.fixture(scope="session")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    run_dir: Path = tmp_path_factory.mktemp("services")
    started = []
    broker = os.environ.get("SHOPSTREAM_TEST_BROKER")
    redis_url = os.environ.get("SHOPSTREAM_TEST_REDIS_URL")
    try:
        if not broker:
            proc = start_broker(run_dir, free_port())
            started.append(proc)
            wait_ready(proc)
            broker = proc.url
        if not redis_url:
            proc = start_redis(run_dir, free_port())
            started.append(proc)
            wait_ready(proc)
            redis_url = proc.url
        yield Services(broker=broker, redis_url=redis_url)
    finally:
        for proc in started:
            proc.stop()


@pytest.fixture
def redis_client(services: Services):
    import redis

    client = redis.Redis.from_url(services.redis_url)
    yield client
    client.close()
