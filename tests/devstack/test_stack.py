"""The dev stack's own processes: started by ``up``, stopped by ``down``."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack import stack as devstack
from devstack.services import free_port
from stream.probes import LOOPBACK, port_open, redis_ready

pytestmark = [pytest.mark.services]


def test_down_stops_only_the_services_named(tmp_path: Path) -> None:
    """What the bench started it stops, and nothing else (``scripts/bench.py``)."""
    broker_port, redis_port = free_port(), free_port()
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    stack = devstack.up(tmp_path, broker_port, redis_url)
    try:
        assert stack.broker.owned and stack.redis.owned, stack.lines()

        assert devstack.down(tmp_path, ["broker"]) == [f"stopped broker (pid {stack.broker.pid})"]
        after = devstack.status(tmp_path, broker_port, redis_url)
        assert not after.broker.running and after.redis.running and after.redis.owned, after.lines()
        assert not port_open(LOOPBACK, broker_port)
    finally:
        done = devstack.down(tmp_path)
    assert done == [f"stopped redis (pid {stack.redis.pid})"]
    assert not redis_ready(redis_url, timeout=0.5)


def test_a_redis_cluster_is_started_joined_and_stopped_by_down(tmp_path: Path) -> None:
    """``up --redis-cluster``'s Redis part: three masters in cluster mode on
    loopback, joined into one ok cluster that serves every slot; ``down``
    stops each node."""
    from redis.cluster import RedisCluster

    from devstack.services import free_cluster_port

    ports: list[int] = []
    while len(ports) < 3:
        port = free_cluster_port()
        if port not in ports:
            ports.append(port)
    devstack._up_redis_cluster(tmp_path, ports, 60.0, say=lambda line: None)
    try:
        st = devstack.status(tmp_path, free_port(), redis_cluster=ports)
        assert st.redis.running and st.redis.owned, st.lines()
        client = RedisCluster.from_url(devstack.cluster_url(ports))
        try:
            assert len(client.get_primaries()) == 3
            for key in ("a", "b", "c", "{user}x", "{item}y"):  # keys on several masters
                client.set(key, key)
            assert client.get("{item}y") == b"{item}y"
            assert int(client.cluster_info()["cluster_slots_assigned"]) == 16384
        finally:
            client.close()
        devstack._up_redis_cluster(tmp_path, ports, 60.0, say=lambda line: None)  # idempotent
    finally:
        done = devstack.down(tmp_path)
    assert sorted(line.split(" (pid")[0] for line in done) == sorted(
        f"stopped redis-cluster-{p}" for p in ports), done
    for port in ports:
        assert not redis_ready(f"redis://127.0.0.1:{port}/0", timeout=0.5)
