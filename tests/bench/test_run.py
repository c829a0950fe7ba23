"""scripts/bench.py: misuse is refused in one line before anything starts; the
latency floor forwards what a worker would answer, through a real broker."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest

from bench.floor import running
from bench.latency import live_events, measure
from stream.topics import create_topics
from tests.support import ROOT, Services, isolated_settings, settings_env


@pytest.mark.parametrize("args, env, message", [
    (["--events", "10"], {}, "--events must be >= 1000"),
    (["--rate", "0"], {}, "--rate and --latency-s must be > 0"),
    (["--latency-warmup-s", "-1"], {}, "--latency-warmup-s must be >= 0"),
    (["--soak", "-5"], {}, "--soak must be > 0 minutes"),
    (["--events", "many"], {}, "invalid int value"),
    (["--bogus"], {}, "unrecognized arguments"),
    ([], {"SHOPSTREAM_PARTITIONS": "four"}, "SHOPSTREAM_PARTITIONS='four' is not a valid int"),
    ([], {"SHOPSTREAM_BROKER": "kafka://kafka.example.com:9092"}, "is not on this machine"),
])
def test_cli_misuse_is_one_line_and_nonzero(args: list[str], env: dict[str, str], message: str) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench.py"), *args],
        capture_output=True, text=True, timeout=120, env={**os.environ, **env},
    )
    assert done.returncode != 0
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "Traceback" not in done.stderr


def test_the_latency_floor_forwards_each_users_first_event_within_the_throttle(services: Services) -> None:
    settings = isolated_settings(services, partitions=2, rec_throttle_s=60.0)
    create_topics(settings)
    events = live_events(seed=7, count=300, users=25, tag="floor")
    users = {e["user_id"] for e in events}
    env = {**os.environ, **settings_env(settings), "PYTHONPATH": str(ROOT)}
    with running(env, settings.topics.recommendations):
        latency = asyncio.run(measure(settings, events, rate=300.0, warmup=0))
    # One message per user: the first of their events; the rest fall in the throttle.
    assert latency.sent == 300 and latency.matched == len(users) < 300
    assert 0 < latency.p50_ms <= latency.p95_ms <= latency.p99_ms <= latency.max_ms


def test_a_latency_floor_that_cannot_start_says_why_in_one_line(services: Services) -> None:
    settings = isolated_settings(services)
    env = {**os.environ, **settings_env(settings), "SHOPSTREAM_GC_FULL_EVERY_S": "0"}
    with pytest.raises(RuntimeError, match="did not start: SHOPSTREAM_GC_FULL_EVERY_S") as raised:
        with running(env, settings.topics.recommendations):
            pass
    assert "\n" not in str(raised.value)
