"""A worker's text models in Redis, so that a restarted worker does not start afresh.

``models:text`` (under ``SHOPSTREAM_PREFIX``) holds the pickled
:class:`~stream.voice.TextModels` of the worker that saved last. A worker
saves its own every ``SHOPSTREAM_TEXT_MODELS_SAVE_S`` when it has learnt
something since, and loads the saved ones when it starts. With several
workers the last save wins: each worker learns from its own partitions'
texts, and a worker that starts takes over what the last saver knew.
"""

from __future__ import annotations

import pickle

import redis.asyncio as aioredis

from stream.voice import TextModels

KEY = "models:text"


async def save(client: aioredis.Redis, prefix: str, models: TextModels) -> int:
    """Store the models; the bytes written."""
    blob = pickle.dumps(models, protocol=pickle.HIGHEST_PROTOCOL)
    await client.set(f"{prefix}{KEY}", blob)
    return len(blob)


def loads(blob: bytes | None) -> TextModels | None:
    """What ``save`` stored (None: nothing, or not text models).

    >>> loads(pickle.dumps(TextModels())).learnt, loads(None)
    (0, None)
    """
    if blob is None:
        return None
    models = pickle.loads(blob)
    return models if isinstance(models, TextModels) else None
