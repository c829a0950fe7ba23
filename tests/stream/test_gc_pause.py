"""The worker's garbage-collection policy (stream/gc_pause.py), in-process."""

from __future__ import annotations

import asyncio
import gc
from typing import Iterator

import pytest

from stream.gc_pause import collect, full_passes_on_schedule, gc_paused


@pytest.fixture
def collector() -> Iterator[list[int]]:
    """The generations of the passes made meanwhile; thresholds restored after."""
    passes: list[int] = []

    def seen(phase: str, info: dict) -> None:
        if phase == "stop":
            passes.append(info["generation"])

    thresholds = gc.get_threshold()
    gc.enable()
    gc.callbacks.append(seen)
    try:
        yield passes
    finally:
        gc.callbacks.remove(seen)
        gc.set_threshold(*thresholds)


def test_interleaved_batches_keep_the_collector_off_until_the_last_ends(collector: list[int]) -> None:
    states: list[tuple[str, bool]] = []

    async def batch(name: str, enter: asyncio.Event, leave: asyncio.Event) -> None:
        await enter.wait()
        with gc_paused():
            states.append((f"{name} in", gc.isenabled()))
            await leave.wait()
        states.append((f"{name} out", gc.isenabled()))

    async def main() -> None:
        a_in, b_in, a_out, b_out = (asyncio.Event() for _ in range(4))
        tasks = [asyncio.create_task(batch("a", a_in, a_out)),
                 asyncio.create_task(batch("b", b_in, b_out))]
        for step in (a_in, b_in, a_out, b_out):  # a starts, b starts, a ends, b ends
            step.set()
            await asyncio.sleep(0.01)
        await asyncio.gather(*tasks)

    asyncio.run(main())
    assert states == [("a in", False), ("b in", False), ("a out", False), ("b out", True)]


def test_a_paused_collector_makes_no_pass_however_much_is_allocated(collector: list[int]) -> None:
    with gc_paused():
        garbage = [[i] for i in range(200_000)]
        del garbage
    assert collector == []
    assert gc.isenabled()


def test_full_passes_run_only_when_asked(collector: list[int]) -> None:
    full_passes_on_schedule()
    kept = []
    for i in range(300_000):  # survivors of young passes: what used to start full ones
        kept.append([i])
    assert collector and 2 not in collector, sorted(set(collector))
    assert collect() >= 0.0
    assert collector[-1] == 2
