"""Versioned model snapshots in Redis: written by the learn agent, read by ingest.

The learn agent saves the global models every N updates or T seconds under
``models:snapshot`` with a version; ingest workers check the version key on a
timer (one small GET) and load the snapshot only when it is newer, so no event
ever waits on a model round trip.

Pickling the models and the learner takes ~100 ms of CPU (the fraud model's
trees), long enough to hold every event of a live worker back: a save runs
in a forked child (``save_in_background``), as Redis's own BGSAVE does, and
the worker goes on at once with the cost of the fork (~7 ms for 260 MB, ~15
for 500 MB). While the child lives, each page the worker writes is copied
first, so the child is kept short: the learner's own state (several MB, three
quarters of the pickling) goes with only some of the saves.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio as aioredis

from stream.config import Settings
from stream.gc_pause import gc_paused


SAVE_IF_NEWER = """\
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) <= current then return 0 end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('SET', KEYS[1], ARGV[1])
return 1
"""


SAVED, NEWER_THERE, FAILED = 0, 3, 1  # a background save's exit status


def _pickled(obj: Any) -> bytes:
    return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)


@dataclass
class BackgroundSave:
    """A save running in a child process."""

    pid: int
    version: int
    with_learner: bool = True

    def outcome(self) -> int | None:
        """SAVED, NEWER_THERE or FAILED once the child has exited; None while it runs."""
        pid, status = os.waitpid(self.pid, os.WNOHANG)
        if pid == 0:
            return None
        code = os.waitstatus_to_exitcode(status)
        return code if code in (SAVED, NEWER_THERE) else FAILED


class SnapshotStore:
    def __init__(self, settings: Settings, client: aioredis.Redis) -> None:
        self.url = settings.redis_url
        self.cluster = settings.redis_cluster
        self.client = client
        # On a Redis Cluster the three keys share a slot: saved by one script.
        models = f"{settings.prefix}{{models}}:" if settings.redis_cluster else f"{settings.prefix}models:"
        self.snapshot_key = f"{models}snapshot"
        self.version_key = f"{models}version"
        self.learner_key = f"{models}learner"
        self._save = client.register_script(SAVE_IF_NEWER)

    async def save(self, version: int, models: Any) -> bool:
        """Store ``models`` as ``version``, both keys at once, unless a version at
        least as new is there already (a learn agent that lost its partition in a
        rebalance may finish a save after its successor's); False then."""
        # Before the first await: ``models`` may share objects a learner goes on learning into.
        raw = _pickled((version, models))
        saved = await self._save(keys=[self.version_key, self.snapshot_key], args=[version, raw])
        return bool(saved)

    def save_in_background(self, version: int, models: Any, learner: Any | None) -> BackgroundSave:
        """``save`` then, unless ``learner`` is None, ``save_learner``, in a
        forked child that has the objects as they are now; the parent returns
        at once."""
        pid = os.fork()
        if pid:
            return BackgroundSave(pid, version, learner is not None)
        code = FAILED
        try:  # the child: its own connection, no event loop, no logging (locks)
            if self.cluster:
                from redis.cluster import RedisCluster

                client = RedisCluster.from_url(self.url)
            else:
                client = redis.Redis.from_url(self.url)
            code = NEWER_THERE
            if client.eval(SAVE_IF_NEWER, 2, self.version_key, self.snapshot_key, version,
                           _pickled((version, models))):
                if learner is not None:
                    client.set(self.learner_key, _pickled(learner))
                code = SAVED
        except BaseException:
            code = FAILED
        finally:
            os._exit(code)

    async def version(self) -> int:
        raw = await self.client.get(self.version_key)
        return int(raw) if raw is not None else 0

    async def load_newer(self, than: int) -> tuple[int, Any] | None:
        """The stored (version, models) if newer than ``than``, else None."""
        if await self.version() <= than:
            return None
        raw = await self.client.get(self.snapshot_key)
        if raw is None:
            return None
        with gc_paused():  # a snapshot is ~10^5 objects (the fraud model's trees)
            version, models = pickle.loads(raw)
        return (version, models) if version > than else None

    async def save_learner(self, learner: Any) -> None:
        """The learn agent's whole state (pending labels, metrics), for its restart."""
        await self.client.set(self.learner_key, _pickled(learner))

    async def load_learner(self) -> Any | None:
        raw = await self.client.get(self.learner_key)
        if raw is None:
            return None
        with gc_paused():
            return pickle.loads(raw)
