"""Whether the broker and Redis answer: the checks a worker waits on at start
and the dev stack waits on after starting them."""

from __future__ import annotations

import socket
import time

LOOPBACK = "127.0.0.1"


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _host_port(bootstrap: str) -> tuple[str, int]:
    first = bootstrap.split(",")[0].split("://", 1)[-1]
    host, _, port = first.rpartition(":")
    return host or LOOPBACK, int(port)


def broker_ready(bootstrap: str, timeout: float = 10.0, options: dict | None = None) -> bool:
    """Whether a Kafka broker at ``bootstrap`` answers a metadata request.

    Retries until ``timeout`` seconds have passed; a paused (SIGSTOPped)
    broker accepts TCP connections but answers nothing, so this is False.
    """
    from kafka import KafkaAdminClient  # heavy import, only when needed

    host, port = _host_port(bootstrap)
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        # A plain TCP check first keeps kafka-python from logging connection
        # errors while the broker is still starting.
        if port_open(host, port, timeout=min(left, 0.5)):
            ms = max(int(min(left, 5.0) * 1000), 100)
            try:
                admin = KafkaAdminClient(
                    bootstrap_servers=f"{host}:{port}",
                    client_id="shopstream-devstack",
                    **_admin_timeouts(ms),
                    **(options or {}),
                )
                try:
                    admin.list_topics()  # a metadata request
                    return True
                finally:
                    admin.close()
            except Exception:  # any client failure just means "not ready yet"
                pass
        time.sleep(min(0.1, max(deadline - time.monotonic(), 0)))


def _admin_timeouts(ms: int) -> dict[str, int]:
    """Timeouts for a KafkaAdminClient, as far as the installed version knows them."""
    from kafka import KafkaAdminClient

    wanted = ("request_timeout_ms", "bootstrap_timeout_ms", "api_version_auto_timeout_ms")
    return {k: ms for k in wanted if k in KafkaAdminClient.DEFAULT_CONFIG}


def redis_ready(url: str, timeout: float = 5.0) -> bool:
    """Whether Redis at ``url`` answers PING within ``timeout`` seconds."""
    import redis

    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        per_try = min(left, 1.0)
        client = redis.Redis.from_url(
            url, socket_timeout=per_try, socket_connect_timeout=per_try
        )
        try:
            if client.ping():
                return True
        except Exception:  # connection refused, timeout, loading, auth...
            pass
        finally:
            client.close()
        time.sleep(min(0.1, max(deadline - time.monotonic(), 0)))
