"""Bulk work without the cyclic garbage collector's passes.

Loading a file of events or unpickling a model snapshot creates ~10^5 small
objects at once; each allocation burst makes the collector walk the new
objects again and again, which doubles to triples the time of the load.
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def gc_paused() -> Iterator[None]:
    """No collection inside the block (the collector's state is restored after).

    >>> with gc_paused():
    ...     gc.isenabled()
    False
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
