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
