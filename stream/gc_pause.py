"""The worker's cyclic garbage collector: paused for bulk work, full passes on a schedule.

Loading a file of events or unpickling a model snapshot creates ~10^5 small
objects at once; each allocation burst makes the collector walk the new
objects again and again, which doubles to triples the time of the load.

A batch does the same for longer: its events, profiles and model rows live
for millions of allocations, so young-generation passes promote them to the
oldest generation, where they die. Python starts a full pass over the whole
heap whenever that generation has grown by a quarter, which a worker's
batches made happen about twice a second (80 ms each, 13 % of a worker's
time on the dev machine). Almost all of it is freed by reference counting
anyway; the collector is only needed for cycles. So a worker pauses the
collector while a batch runs, and makes the full passes itself, every
``gc_full_every_s``.
"""

from __future__ import annotations

import gc
import time
from contextlib import contextmanager
from typing import Iterator

# A threshold the oldest generation's count (one per middle-generation pass) never reaches.
NEVER = 2**31 - 1

_paused = 0  # blocks inside gc_paused() right now (async tasks interleave them)
_resume = False  # whether the collector was on when the first of them began


@contextmanager
def gc_paused() -> Iterator[None]:
    """No collection until the last of the blocks open at once has ended;
    then the collector is as the first of them found it.

    >>> with gc_paused():
    ...     gc.isenabled()
    False
    >>> gc.isenabled()
    True
    """
    global _paused, _resume
    if _paused == 0:
        _resume = gc.isenabled()
        gc.disable()
    _paused += 1
    try:
        yield
    finally:
        _paused -= 1
        if _paused == 0 and _resume:
            gc.enable()


def full_passes_on_schedule() -> None:
    """Young passes as before; full passes only when :func:`collect` runs."""
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, NEVER)


def collect() -> float:
    """A full pass now; its duration in seconds."""
    started = time.perf_counter()
    gc.collect()
    return time.perf_counter() - started
