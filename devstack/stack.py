"""The long-lived local dev stack (``scripts/dev_stack.py up|down|status``):
a broker (Apache Kafka, or Tansu without Java; see :mod:`devstack.services`)
and Redis on loopback for the demo and the benchmark. Kafka's log is
``run_dir/kafka-<port>``: it outlives ``down`` and the next ``up`` has it all.

Redis is whatever already answers on the configured URL, else a
``redis-server`` from PATH that we start ourselves (no persistence). The pid
files and logs live in ``run_dir`` (the repo's git-ignored ``.dev/``);
processes started by ``up`` outlive the caller, and ``down`` stops only those.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from devstack.services import (
    BROKERS,
    DEFAULT_REDIS_URL,
    DevStackError,
    ServiceProcess,
    is_loopback,
    parse_redis_url,
    broker_kind,
    cluster_ok,
    create_cluster,
    start_broker,
    start_redis,
    start_redis_cluster_node,
    wait_ready,
)
from stream.probes import LOOPBACK, broker_ready, port_open, redis_ready


@dataclass(frozen=True)
class ServiceStatus:
    """One service of the stack as seen now."""

    name: str
    running: bool
    url: str
    owned: bool  # started by us (pid file in run_dir), so `down` stops it
    pid: int | None = None
    log: Path | None = None
    kind: str = ""

    def line(self) -> str:
        state = "up" if self.running else "down"
        what = f"{BROKERS[self.kind]}, " if self.kind in BROKERS else ""
        who = f"ours, {what}pid {self.pid}" if self.owned else "not ours"
        extra = f", log {self.log}" if self.log else ""
        if not self.running:
            return f"{self.name:<6} {state:<4} {self.url}"
        return f"{self.name:<6} {state:<4} {self.url} ({who}{extra})"


@dataclass(frozen=True)
class StackStatus:
    """Broker and Redis as seen now; ``up`` when both answer."""

    broker: ServiceStatus
    redis: ServiceStatus

    @property
    def up(self) -> bool:
        return self.broker.running and self.redis.running

    def lines(self) -> list[str]:
        return [self.broker.line(), self.redis.line()]


def local_broker_port(broker: str) -> int:
    """The port of the first broker of a ``SHOPSTREAM_BROKER`` value, which must
    be on this machine (the dev stack runs on loopback)."""
    first = broker.split(";")[0].split(",")[0].split("://", 1)[-1]
    host, _, port = first.rpartition(":")
    if not port.isdigit():
        raise DevStackError(f"SHOPSTREAM_BROKER={broker!r} has no port")
    if host and not is_loopback(host):
        raise DevStackError(
            f"SHOPSTREAM_BROKER={broker!r} is not on this machine; "
            "the dev stack runs on 127.0.0.1 (pass --broker-port)"
        )
    return int(port)


def _pid_file(run_dir: Path, name: str) -> Path:
    return Path(run_dir) / f"{name}.pid"


def _write_record(run_dir: Path, proc: ServiceProcess) -> None:
    record = {"pid": proc.pid, "url": proc.url, "log": str(proc.log), "exe": proc.exe,
              "kind": proc.kind}
    _pid_file(run_dir, proc.name).write_text(json.dumps(record) + "\n")


def _read_record(run_dir: Path, name: str) -> ServiceProcess | None:
    """The process recorded in ``<name>.pid``, or None if absent or garbled."""
    try:
        rec = json.loads(_pid_file(run_dir, name).read_text())
        return ServiceProcess(name, int(rec["pid"]), rec["url"], Path(rec["log"]), rec["exe"],
                              rec.get("kind", ""))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _same_address(a: str, b: str) -> bool:
    """Whether two broker or redis URLs point at the same host:port."""
    def addr(url: str) -> str:
        return url.split("://", 1)[-1].split("/", 1)[0].replace("localhost", LOOPBACK)
    return addr(a) == addr(b)


def _owned(run_dir: Path, name: str) -> ServiceProcess | None:
    proc = _read_record(run_dir, name)
    return proc if proc is not None and proc.alive() else None


CLUSTER_PORTS = (7000, 7001, 7002)


def cluster_url(ports: Sequence[int]) -> str:
    return f"redis://{LOOPBACK}:{ports[0]}/0"


def _cluster_name(port: int) -> str:
    return f"redis-cluster-{port}"


def _cluster_status(run_dir: Path, ports: Sequence[int]) -> ServiceStatus:
    """The cluster as one service: running when its first node sees it ok;
    ours when every node is a process we recorded."""
    url = cluster_url(ports)
    ours = [_owned(run_dir, _cluster_name(p)) for p in ports]
    running = cluster_ok(url)
    owned = running and all(p is not None for p in ours)
    first = ours[0]
    return ServiceStatus("redis", running, f"{url} (Redis Cluster, {len(ports)} masters)", owned,
                         first.pid if owned and first else None,
                         first.log if owned and first else None)


def _up_redis_cluster(run_dir: Path, ports: Sequence[int], timeout: float,
                      say: Callable[[str], None]) -> None:
    """Ensure a Redis Cluster answers on ``ports`` (ours or someone else's)."""
    if cluster_ok(cluster_url(ports)):
        return
    for port in ports:
        if port_open(LOOPBACK, port) or port_open(LOOPBACK, port + 10000):
            raise DevStackError(f"port {port} or its cluster bus port {port + 10000} is taken "
                                "by something that is not an ok Redis Cluster")
    say(f"starting a Redis Cluster of {len(ports)} masters on ports {', '.join(map(str, ports))}")
    nodes = []
    try:
        for port in ports:
            node = start_redis_cluster_node(run_dir, port, detach=True)
            node.name = _cluster_name(port)
            nodes.append(node)
            _write_record(run_dir, node)
        create_cluster(nodes, timeout)
    except BaseException:
        for node in nodes:
            node.stop()
            _pid_file(run_dir, node.name).unlink(missing_ok=True)
        raise


def status(
    run_dir: Path, broker_port: int = 9092, redis_url: str = DEFAULT_REDIS_URL,
    redis_cluster: Sequence[int] = (),
) -> StackStatus:
    """What runs now: our processes per pid file, else whatever answers.
    ``redis_cluster``: the ports of a cluster's masters, instead of ``redis_url``."""
    run_dir = Path(run_dir)
    services = []
    for name, url in (
        ("broker", f"kafka://{LOOPBACK}:{broker_port}"),
        ("redis", redis_url),
    ):
        proc = _owned(run_dir, name)
        if proc is not None and _same_address(proc.url, url):
            services.append(ServiceStatus(name, True, proc.url, True, proc.pid, proc.log, proc.kind))
            continue
        if name == "broker":
            running = broker_ready(f"{LOOPBACK}:{broker_port}", timeout=2.0)
        else:
            running = redis_ready(url, timeout=1.0)
        services.append(ServiceStatus(name, running, url, False))
    if redis_cluster:
        services[1] = _cluster_status(run_dir, redis_cluster)
    return StackStatus(*services)


def _up_broker(run_dir: Path, port: int, timeout: float,
               say: Callable[[str], None]) -> ServiceProcess | None:
    """Ensure a broker answers on ``port``; the process if we started one."""
    url = f"kafka://{LOOPBACK}:{port}"
    ours = _owned(run_dir, "broker")
    if ours is not None:
        if not _same_address(ours.url, url):
            raise DevStackError(
                f"dev broker already runs at {ours.url} (pid {ours.pid}); run `down` first"
            )
        return None
    if port_open(LOOPBACK, port):
        if broker_ready(f"{LOOPBACK}:{port}", timeout=3.0):
            return None  # someone else's broker: use it
        raise DevStackError(
            f"port {port} is taken by something that is not a Kafka broker"
        )
    kind, why = broker_kind()
    say(f"starting {BROKERS[kind]} on {url} ({why})")
    # Kafka's own group delay: the bench's workers, started together, join together.
    proc = start_broker(run_dir, port, kind=kind, detach=True, say=say, rebalance_delay_ms=3000)
    return _own(run_dir, proc, timeout)


def _own(run_dir: Path, proc: ServiceProcess, timeout: float) -> ServiceProcess:
    """Record a process we started and wait until it serves; forget it if it fails."""
    _write_record(run_dir, proc)
    try:
        wait_ready(proc, timeout)
    except DevStackError:
        _pid_file(run_dir, proc.name).unlink(missing_ok=True)
        raise
    return proc


def _up_redis(run_dir: Path, url: str, timeout: float) -> None:
    host, port = parse_redis_url(url)
    ours = _owned(run_dir, "redis")
    if ours is not None:
        if not _same_address(ours.url, url):
            raise DevStackError(
                f"dev redis already runs at {ours.url} (pid {ours.pid}); run `down` first"
            )
        return
    if redis_ready(url, timeout=1.0):
        return  # someone else's Redis: use it
    if not is_loopback(host):
        raise DevStackError(
            f"no Redis answers at {url}; the dev stack only starts one on loopback"
        )
    if port_open(host, port):
        raise DevStackError(f"{host}:{port} is taken but does not answer Redis PING")
    proc = start_redis(run_dir, port, host=host, log=run_dir / "redis.log", detach=True)
    _own(run_dir, proc, timeout)


def up(
    run_dir: Path,
    broker_port: int = 9092,
    redis_url: str = DEFAULT_REDIS_URL,
    timeout: float = 60.0,
    say: Callable[[str], None] = print,
    redis_cluster: Sequence[int] = (),
) -> StackStatus:
    """Bring the stack up (idempotent) and wait until both services answer;
    ``say`` hears which broker it starts and why. ``redis_cluster``: the
    ports of a Redis Cluster's masters (at least 3) to start instead of a
    single Redis at ``redis_url``."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if redis_cluster and len(redis_cluster) < 3:
        raise DevStackError("a Redis Cluster needs at least 3 masters")
    started = _up_broker(run_dir, broker_port, timeout, say)
    try:
        if redis_cluster:
            _up_redis_cluster(run_dir, redis_cluster, timeout, say)
        else:
            _up_redis(run_dir, redis_url, timeout)
    except BaseException:
        if started is not None:  # all or nothing: undo this call's broker
            started.stop()
            _pid_file(run_dir, "broker").unlink(missing_ok=True)
        raise
    return status(run_dir, broker_port, redis_url, redis_cluster)


def down(run_dir: Path, names: Sequence[str] | None = None) -> list[str]:
    """Stop what ``up`` started (per pid files), of these services (default:
    all, the nodes of a Redis Cluster included); one line per action taken."""
    run_dir = Path(run_dir)
    done = []
    if names is None:
        names = ["broker", "redis"] + sorted(p.stem for p in run_dir.glob("redis-cluster-*.pid"))
    for name in names:
        pid_file = _pid_file(run_dir, name)
        if not pid_file.exists():
            continue
        proc = _read_record(run_dir, name)
        if proc is not None and proc.stop():
            done.append(f"stopped {name} (pid {proc.pid})")
        else:
            done.append(f"removed stale {pid_file.name}")
        pid_file.unlink(missing_ok=True)
    return done
