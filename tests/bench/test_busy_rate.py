"""The bench's busy time over several workers: pauses, slow batches and the tail after the first is done."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from bench import workers as bench_workers
from bench.workers import BenchError, busy_rate


class ScriptedWorker:
    """Answers the bench's polls with a count that follows a script of time
    (seconds since it was made): the polling rule under test, no worker."""

    def __init__(self, count: Callable[[float], int]) -> None:
        self.count = count
        self.began = time.monotonic()

    def get(self, path: str, timeout: float = 2.0) -> tuple[int, dict]:
        return 200, {"received": self.count(time.monotonic() - self.began)}

    def check_alive(self) -> None:
        pass


def _paused(rate: float, begin: float, pause: tuple[float, float], cap: int) -> Callable[[float], int]:
    def count(t: float) -> int:
        busy = max(0.0, min(t, pause[0]) - begin) + max(0.0, t - pause[1])
        return min(cap, int(rate * busy))
    return count


@pytest.fixture(autouse=True)
def quick_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench_workers, "POLL_S", 0.02)
    monkeypatch.setattr(bench_workers, "STALL_S", 0.3)
    monkeypatch.setattr(bench_workers, "MIN_WINDOW_S", 1.0)


def test_a_rebalance_pause_as_the_group_forms_is_left_out() -> None:
    # both count from 0.1 s, stop for 0.6 s (longer than a stall) at 0.4 s, then drain 1,500 each
    script = _paused(1000.0, 0.1, (0.4, 1.0), 1500)
    busy = busy_rate([ScriptedWorker(script), ScriptedWorker(script)], "/x", 3000, timeout=10)
    assert busy.window_s >= 1.0
    assert 1500 < busy.rate < 2500  # two workers at 1,000 a second, measured after the pause


def test_the_time_after_the_first_worker_runs_out_does_not_count() -> None:
    steady = _paused(1000.0, 0.0, (99.0, 99.0), 3000)  # drains its share in 3 s
    short = _paused(1000.0, 0.0, (99.0, 99.0), 1800)  # out of work at 1.8 s
    busy = busy_rate([ScriptedWorker(steady), ScriptedWorker(short)], "/x", 4800, timeout=10)
    assert 1.5 <= busy.window_s <= 2.0 and 1700 < busy.rate < 2300


def test_a_pause_in_the_middle_is_left_out() -> None:
    # busy 0-1.5 s, paused 1.5-2.5 s (a rebalance), busy again until 2,000 each (3.0 s)
    script = _paused(1000.0, 0.0, (1.5, 2.5), 2000)
    busy = busy_rate([ScriptedWorker(script), ScriptedWorker(script)], "/x", 4000, timeout=10)
    assert 1.7 <= busy.window_s <= 2.1 and 1700 < busy.rate < 2300


def test_workers_never_busy_together_long_enough_say_so() -> None:
    script = _paused(1000.0, 0.1, (0.4, 1.0), 450)  # done before the pause ends
    with pytest.raises(BenchError, match="too few events"):
        busy_rate([ScriptedWorker(script), ScriptedWorker(script)], "/x", 900, timeout=10)


def test_a_worker_with_long_batches_is_busy_between_them() -> None:
    # one worker moves every 0.5 s (longer than a stall here) in steps of 500: a loaded machine
    def lumpy(t: float) -> int:
        return min(2000, 500 * int(t / 0.5))
    steady = _paused(1000.0, 0.0, (99.0, 99.0), 2000)
    busy = busy_rate([ScriptedWorker(lumpy), ScriptedWorker(steady)], "/x", 4000, timeout=10)
    assert busy.window_s >= 1.2 and 1500 < busy.rate < 2500
