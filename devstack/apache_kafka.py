"""Apache Kafka for the local stack: one KRaft node (broker and controller) on
loopback, its log on disk, its jars from Maven Central.

``devstack/pom.xml`` pins the Kafka version. The first start fetches its jars
with Maven into a cache outside the repo (``SHOPSTREAM_KAFKA_CACHE``, by
default ``~/.cache/shopstream/kafka-<version>``), reused after. A node's log
lives in its own directory: starting again on the same directory keeps every
topic, message and committed offset, as a real broker's restart does.
"""

from __future__ import annotations

import base64
import fcntl
import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Callable

from stream.probes import LOOPBACK

POM = Path(__file__).resolve().parent / "pom.xml"
KAFKA_VERSION = re.search(r"<kafka\.version>([^<]+)<", POM.read_text()).group(1)  # type: ignore[union-attr]
JAVA_MIN = 17
JVM_OPTS = ("-Xms128m", "-Xmx512m", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true")


class KafkaUnavailable(RuntimeError):
    """Java or Maven is missing, or the jars could not be fetched (one line)."""


def java_missing() -> str | None:
    """Why Apache Kafka cannot run here (no Java >= 17, no Maven), or None."""
    java = shutil.which("java")
    if java is None:
        return "no java on PATH"
    out = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    found = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    major = int(found.group(1)) if found else 0
    if major == 1 and found and found.group(2):  # "1.8.0" is Java 8
        major = int(found.group(2))
    if major < JAVA_MIN:
        return f"java {major or '?'} found, Kafka needs {JAVA_MIN}+"
    if shutil.which("mvn") is None and not _jars_ready(cache_dir()):
        return "no mvn on PATH to fetch Kafka's jars"
    return None


def cache_dir() -> Path:
    env = os.environ.get("SHOPSTREAM_KAFKA_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "shopstream" / f"kafka-{KAFKA_VERSION}"


def _jars_ready(cache: Path) -> bool:
    return (cache / ".complete").exists() and any((cache / "lib").glob("kafka_2.13-*.jar"))


def kafka_jars(say: Callable[[str], None] = print) -> Path:
    """The directory of Kafka's jars, fetched with Maven the first time."""
    cache = cache_dir()
    lib = cache / "lib"
    if _jars_ready(cache):
        return lib
    cache.mkdir(parents=True, exist_ok=True)
    # Two processes starting at once (the test suite's two workers) fetch once.
    with open(cache / ".fetch.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _jars_ready(cache):
            _fetch(cache, lib, say)
    return lib


def _fetch(cache: Path, lib: Path, say: Callable[[str], None]) -> None:
    shutil.rmtree(lib, ignore_errors=True)  # what an interrupted fetch left
    say(f"fetching Apache Kafka {KAFKA_VERSION}'s jars with Maven into {lib} (once, ~50 MB)")
    done = subprocess.run(
        ["mvn", "-q", "-B", "-U", "-f", str(POM),  # -U: retry a failure Maven cached
         "dependency:copy-dependencies", f"-DoutputDirectory={lib}"],
        capture_output=True, text=True,
    )
    if done.returncode != 0:
        lines = re.sub(r"\x1b\[[0-9;]*m", "", done.stdout + done.stderr).splitlines()
        errors = [ln.strip() for ln in lines if ln.startswith("[ERROR]") and ln.strip() != "[ERROR]"]
        cause = errors[0] if errors else " | ".join(ln.strip() for ln in lines[-3:])
        raise KafkaUnavailable(f"Maven could not fetch Kafka {KAFKA_VERSION}: {cause[:300]}")
    (cache / ".complete").write_text(KAFKA_VERSION + "\n")


def _cluster_id() -> str:
    """A Kafka Uuid: 16 random bytes in unpadded base64url, not starting with '-'."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cid.startswith("-"):
            return cid


def _properties(log_dir: Path, port: int, controller_port: int, rebalance_delay_ms: int) -> str:
    props = {
        "node.id": 1,
        "process.roles": "broker,controller",
        "controller.quorum.voters": f"1@{LOOPBACK}:{controller_port}",
        "listeners": f"PLAINTEXT://{LOOPBACK}:{port},CONTROLLER://{LOOPBACK}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{LOOPBACK}:{port}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": log_dir / "data",
        "num.partitions": 1,
        "auto.create.topics.enable": "false",  # as in production: topics are created, with their counts
        "offsets.topic.replication.factor": 1,
        "offsets.topic.num.partitions": 4,  # 50 by default: a slow first group join
        "transaction.state.log.replication.factor": 1,
        "transaction.state.log.min.isr": 1,
        "transaction.state.log.num.partitions": 4,
        # Kafka's default, 3 s, lets workers started together join a new group
        # together; tests start one at a time and take 0.
        "group.initial.rebalance.delay.ms": rebalance_delay_ms,
        # A node restarted after SIGKILL is refused until its old registration
        # expires (9 s by default).
        "broker.session.timeout.ms": 3000,
        "broker.heartbeat.interval.ms": 500,
        "num.network.threads": 2,
        "num.io.threads": 4,
        "log.segment.bytes": 64 * 2**20,
        "log.index.size.max.bytes": 2**20,  # preallocated per segment: 10 MiB by default
        "log.retention.hours": 48,
        "log.retention.bytes": 512 * 2**20,  # per partition
    }
    return "".join(f"{k}={v}\n" for k, v in props.items())


def _log4j(log_dir: Path) -> str:
    return (
        "log4j.rootLogger=INFO, file\n"
        "log4j.appender.file=org.apache.log4j.RollingFileAppender\n"
        f"log4j.appender.file.File={log_dir / 'server.log'}\n"
        "log4j.appender.file.MaxFileSize=10MB\nlog4j.appender.file.MaxBackupIndex=2\n"
        "log4j.appender.file.layout=org.apache.log4j.PatternLayout\n"
        "log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n\n"
        "log4j.logger.kafka.request.logger=WARN\nlog4j.logger.state.change.logger=WARN\n"
        "log4j.logger.org.apache.kafka.raft=WARN\n"
    )


def prepare(log_dir: Path, port: int, controller_port: int,
            say: Callable[[str], None] = print, rebalance_delay_ms: int = 3000) -> list[str]:
    """Write the node's configuration, format its log the first time, and
    return the command that runs it."""
    lib = kafka_jars(say)
    log_dir = log_dir.resolve()
    log_dir.mkdir(parents=True, exist_ok=True)
    config = log_dir / "server.properties"
    config.write_text(_properties(log_dir, port, controller_port, rebalance_delay_ms))
    (log_dir / "log4j.properties").write_text(_log4j(log_dir))
    java = [shutil.which("java") or "java", *JVM_OPTS,
            f"-Dlog4j.configuration=file:{log_dir / 'log4j.properties'}", "-cp", f"{lib}/*"]
    if not (log_dir / "data" / "meta.properties").exists():
        done = subprocess.run([*java, "kafka.tools.StorageTool", "format", "-t", _cluster_id(),
                               "-c", str(config)], capture_output=True, text=True)
        if done.returncode != 0:
            raise KafkaUnavailable(f"formatting Kafka's log failed: {(done.stdout + done.stderr).strip()[-300:]}")
    return [*java, "kafka.Kafka", str(config)]
