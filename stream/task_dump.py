"""What a live worker is waiting on: ``kill -USR2 <pid>`` logs, for each of
its asyncio tasks that runs shopstream's code, the chain of calls it is
suspended in, down to the future it awaits. (mode's own SIGUSR1 dump shows
each task's outermost frame only, which for an agent is Faust's.)"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
PACKAGE = str(Path(__file__).resolve().parent)


def await_chain(awaitable: Any) -> list[str]:
    """``file:line function`` of each coroutine or generator in the chain,
    outermost first, then what the innermost awaits if it is no coroutine.

    >>> async def inner(): await asyncio.sleep(10)
    >>> async def outer(): await inner()
    >>> async def main():
    ...     task = asyncio.ensure_future(outer())
    ...     await asyncio.sleep(0)
    ...     chain = await_chain(task.get_coro())
    ...     task.cancel()
    ...     return [step.split()[-1] for step in chain[:3]]
    >>> asyncio.run(main())
    ['outer', 'inner', 'sleep']
    """
    chain = []
    while awaitable is not None:
        frame = _frame(awaitable)
        if frame is None:  # a wrapper (``__await__``, ``asend``): look inside it
            inner = next((o for o in gc.get_referents(awaitable) if _frame(o) is not None), None)
            if inner is None:
                chain.append(repr(awaitable)[:200])
                break
            awaitable, frame = inner, _frame(inner)
        chain.append(f"{frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}")
        awaitable = next((getattr(awaitable, a) for a in ("cr_await", "ag_await", "gi_yieldfrom")
                          if getattr(awaitable, a, None) is not None), None)
    return chain


def _frame(awaitable: Any) -> Any:
    return next((getattr(awaitable, a) for a in ("cr_frame", "ag_frame", "gi_frame")
                 if getattr(awaitable, a, None) is not None), None)


def log_tasks() -> None:
    """Log the await chain of every task that is in shopstream's code."""
    lines = []
    for task in asyncio.all_tasks():
        chain = await_chain(task.get_coro())
        if any(step.startswith(PACKAGE) for step in chain):
            lines.append(f"{task.get_name()}: " + " -> ".join(chain))
    log.warning("tasks in shopstream's code (%d):\n%s", len(lines), "\n".join(sorted(lines)))


def install() -> None:
    """Answer SIGUSR2 with ``log_tasks`` (call from within the running loop)."""
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR2, log_tasks)
