"""Real worker processes (``faust -A <app> worker``) started from Python, for
the tests and the benchmark: environment from :class:`Settings`, readiness,
counters over HTTP, kill and stop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field, fields
from pathlib import Path

from stream.config import Settings
from devstack.services import free_port

ROOT = Path(__file__).resolve().parents[1]


class WorkerError(AssertionError):
    """A worker process that died or did not get ready (an assertion to the tests)."""


TOPIC_VARIABLES = {"dead_letters": "DLQ"}  # the one topic whose variable is not its field name


def settings_env(settings: Settings) -> dict[str, str]:
    """The ``SHOPSTREAM_*`` variables that give a process exactly these settings."""
    env = {}
    for f in fields(settings):
        value = getattr(settings, f.name)
        if f.name == "topics":
            for name, topic in vars(value).items():
                env[f"SHOPSTREAM_TOPIC_{TOPIC_VARIABLES.get(name, name.upper())}"] = topic
        elif isinstance(value, bool):
            env[f"SHOPSTREAM_{f.name.upper()}"] = "1" if value else "0"
        elif value is not None:
            env[f"SHOPSTREAM_{f.name.upper()}"] = str(value)
    return env


@dataclass
class Worker:
    """A real ``faust -A <app> worker`` process (shopstream's by default)."""

    settings: Settings
    workdir: Path
    web_port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None
    log_path: Path | None = None
    app: str = "stream.app"
    env: dict[str, str] = field(default_factory=dict)  # more variables for this worker only

    def start(self) -> "Worker":
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.update(settings_env(self.settings))
        env["SHOPSTREAM_WEB_PORT"] = str(self.web_port)
        env["PYTHONPATH"] = str(ROOT)
        env.update(self.env)
        n = len(list(self.workdir.glob("worker-*.log")))
        self.log_path = self.workdir / f"worker-{n}.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "faust", "-A", self.app, "worker", "-l", "info"],
                cwd=self.workdir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def get(self, path: str, timeout: float = 2.0, method: str = "GET") -> tuple[int, dict]:
        url = f"http://127.0.0.1:{self.web_port}{path}"
        try:
            request = urllib.request.Request(url, method=method)
            with urllib.request.urlopen(request, timeout=timeout) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as err:
            body = err.read()
            try:
                return err.code, json.loads(body or b"{}")
            except ValueError:  # e.g. the web server's own 405 page
                return err.code, {"body": body.decode("utf-8", "replace")}

    def metrics(self) -> dict:
        return self.get("/metrics")[1]

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Until the worker has joined its group and its dependencies answer."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                status, body = self.get("/health")
                if status == 200 and b"Worker]: Ready" in self.log_path.read_bytes():
                    return
            except (OSError, ValueError):
                pass
            time.sleep(0.3)
        raise WorkerError(f"worker not ready after {timeout}s:\n{self.log_tail()}")

    def wait_received(self, count: int, timeout: float = 90.0) -> dict:
        deadline = time.monotonic() + timeout
        metrics: dict = {}
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                metrics = self.metrics()
                if metrics["received"] >= count:
                    return metrics
            except (OSError, ValueError):
                pass
            time.sleep(0.3)
        raise WorkerError(f"worker got {metrics} < {count} after {timeout}s:\n{self.log_tail()}")

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise WorkerError(f"worker exited with {self.proc.returncode}:\n{self.log_tail()}")

    def memory_mb(self, peak: bool = False) -> float | None:
        """Resident memory now (VmRSS) or at its highest (VmHWM), in MB; None once gone."""
        if self.proc is None:
            return None
        field = "VmHWM:" if peak else "VmRSS:"
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith(field):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return None

    def log_tail(self, lines: int = 40) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stacks(self, wait: float = 2.0) -> str:
        """What the worker's tasks are waiting on now (stream/task_dump.py:
        its log's answer to SIGUSR2)."""
        if self.proc is None or self.proc.poll() is not None or self.log_path is None:
            return ""
        start = self.log_path.stat().st_size
        os.kill(self.proc.pid, signal.SIGUSR2)
        time.sleep(wait)
        with open(self.log_path, "rb") as log:
            log.seek(start)
            return log.read().decode(errors="replace")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


