"""Test services: a real broker and a real Redis.

By default the session starts its own broker (Apache Kafka where Java 17+ and
Maven are there, else Tansu; ``SHOPSTREAM_LOCAL_BROKER=kafka|tansu`` forces
one) and redis-server on free loopback ports, and stops them at the end. Set
``SHOPSTREAM_TEST_BROKER`` / ``SHOPSTREAM_TEST_REDIS_URL`` to run against ones
already running instead. ``pytest --redis-cluster`` (or
``SHOPSTREAM_TEST_REDIS_CLUSTER=1``) makes that Redis a local Redis Cluster of
three masters, and the tests' settings use it as one (meant for ``-m fault``:
tests that build a single-Redis store themselves do not follow it); the
``redis_cluster`` fixture starts a cluster for the tests that need one
whatever the option.
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
    RedisClusterProcesses,
    free_port,
    start_broker,
    start_redis,
    start_redis_cluster,
    wait_ready,
)
from tests.support import Services


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--redis-cluster", action="store_true",
                     help="run the tests' Redis as a local Redis Cluster of 3 masters")


def on_cluster(config: pytest.Config) -> bool:
    return bool(config.getoption("--redis-cluster")) or os.environ.get(
        "SHOPSTREAM_TEST_REDIS_CLUSTER", "") not in ("", "0")


def pytest_report_header(config: pytest.Config) -> str:
    redis = "Redis: a local Redis Cluster of 3 masters" if on_cluster(config) else "Redis: single"
    if os.environ.get("SHOPSTREAM_TEST_BROKER"):
        return f"broker: {os.environ['SHOPSTREAM_TEST_BROKER']} (SHOPSTREAM_TEST_BROKER); {redis}"
    try:
        kind, why = broker_kind()
    except DevStackError as exc:
        return f"broker: none ({exc}); {redis}"
    return f"broker: {BROKERS[kind]}, started by the session ({why}); {redis}"


@pytest.fixture(scope="session")
def services(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    run_dir: Path = tmp_path_factory.mktemp("services")
    started: list = []
    broker = os.environ.get("SHOPSTREAM_TEST_BROKER")
    redis_url = os.environ.get("SHOPSTREAM_TEST_REDIS_URL")
    cluster = on_cluster(request.config)
    try:
        if not broker:
            proc = start_broker(run_dir, free_port())
            started.append(proc)
            wait_ready(proc)
            broker = proc.url
        if not redis_url and cluster:
            nodes = start_redis_cluster(run_dir / "cluster")
            started.append(nodes)
            redis_url = nodes.url
        if not redis_url:
            proc = start_redis(run_dir, free_port())
            started.append(proc)
            wait_ready(proc)
            redis_url = proc.url
        yield Services(broker=broker, redis_url=redis_url, redis_cluster=cluster)
    finally:
        for proc in started:
            proc.stop()


@pytest.fixture
def redis_client(services: Services):
    """A client of the tests' Redis: a cluster client when it is a cluster."""
    import redis
    from redis.cluster import RedisCluster

    client = (RedisCluster.from_url(services.redis_url) if services.redis_cluster
              else redis.Redis.from_url(services.redis_url))
    yield client
    client.close()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterProcesses]:
    """A local Redis Cluster of three masters for this session."""
    nodes = start_redis_cluster(tmp_path_factory.mktemp("redis-cluster"))
    try:
        yield nodes
    finally:
        nodes.stop()
