"""Redis CPU per event: sampled from a real Redis's INFO around a real replay
into it; smaller batches cost Redis more per event; the bench's table rows."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
import redis

from bench.redis_cpu import Cost, CostMeter, replay_cost
from bench.run import BenchResult, add_costs, write_events
from stream.config import Settings
from tests.support import ROOT, Services



def test_a_replay_into_redis_costs_redis_cpu_and_small_batches_cost_more(
    services: Services, redis_client: redis.Redis, tmp_path: Path
) -> None:
    events = tmp_path / "events.jsonl"
    write_events(events, 3000, seed=5)
    settings = replace(Settings(), redis_url=services.redis_url)
    costs = {}
    for size in (1000, 20):
        run = replace(settings, prefix=f"cost-{uuid.uuid4().hex[:8]}:")
        costs[size] = replay_cost(events, run, size, redis_client)
    assert costs[1000].events == costs[20].events == 3000
    assert 0 < costs[1000].redis_us < costs[20].redis_us
    assert costs[20].worker_s and costs[20].worker_s > 0
    assert costs[20].one_core_saturates_at == 1e6 / costs[20].redis_us


def test_an_idle_phase_costs_redis_next_to_nothing(redis_client: redis.Redis) -> None:
    meter = CostMeter(redis_client, os.getpid()).start()
    cost = meter.stop(1000)
    assert len(cost.redis_s) == 1 and cost.redis_us < 50  # two INFO calls over 1,000 "events"
    assert cost.worker_s is not None and cost.broker_s is None


def test_the_bench_table_gets_redis_cpu_at_catch_up_and_at_the_latency_rate() -> None:
    result = BenchResult()
    add_costs(result, Cost(1000, [0.01], 0.1, 0.02), Cost(1000, [0.014], 0.1, 0.02),
              Cost(500, [0.015], 0.08, None), rate=2000)
    assert result.value("Redis CPU per event, catch-up") == pytest.approx(12.0)
    assert result.value("one Redis core saturates at, catch-up") == pytest.approx(1e6 / 12.0)
    assert result.value("Redis CPU per event, at 2,000 events/s") == pytest.approx(30.0)
    assert result.value("worker CPU per event, catch-up") == pytest.approx(100.0)
    assert result.value("broker CPU per event, catch-up") == pytest.approx(20.0)
    assert result.value("broker CPU per event, at 2,000 events/s") is None


def test_redis_cost_script_prints_a_row_per_batch_size() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "redis_cost.py"), "--events", "500", "--batch", "100"],
        capture_output=True, text=True, timeout=120, env=dict(os.environ),
    )
    assert done.returncode == 0, done.stderr
    rows = done.stdout.strip().splitlines()
    assert len(rows) == 2 and rows[1].split()[0] == "100"


def test_redis_cost_script_measures_every_master_of_a_cluster() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "redis_cost.py"), "--events", "500", "--batch", "100",
         "--redis-cluster"],
        capture_output=True, text=True, timeout=120, env=dict(os.environ),
    )
    assert done.returncode == 0, done.stderr
    size, total, busiest, *_ = done.stdout.strip().splitlines()[1].split()
    assert size == "100" and 0 < float(busiest) < float(total)  # spread over several masters


def test_redis_cost_script_misuse_is_one_line() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "redis_cost.py"), "--batch", "0"],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 2 and "--batch >= 1" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_a_real_worker_draining_preloaded_events_costs_redis_and_itself_per_event(
    services: Services, tmp_path: Path
) -> None:
    """The bench's measurement around a phase, on a real worker and broker:
    the events it received, and Redis and worker CPU per event."""
    from bench.redis_cpu import client_for
    from bench.run import measure_cost
    from bench.workers import bench_settings, new_tag, preload, running_workers, wait_received
    from stream.topics import create_topics

    settings = bench_settings(replace(Settings(), broker=services.broker, redis_url=services.redis_url,
                                      redis_cluster=services.redis_cluster), new_tag())
    create_topics(settings)
    events = tmp_path / "events.jsonl"
    write_events(events, 3000, seed=8)
    preload(settings, events)
    client = client_for(settings.redis_url, settings.redis_cluster)
    with running_workers(settings, tmp_path / "work", 1) as workers:
        _, cost = measure_cost(workers, client, None,
                               lambda: wait_received(workers, "/metrics", 3000, timeout=120))
    assert 0 < cost.events <= 3000
    assert cost.redis_us > 0 and cost.worker_s and cost.per_event_us(cost.worker_s) > cost.redis_us
    assert cost.broker_s is None
