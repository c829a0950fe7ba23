"""How many events the ingest agent takes into one batch.

Near real time a batch is kept small: its events wait for the whole batch
before their recommendations go out. A worker that is behind (its oldest
waiting message was written more than ``catch_up_after_s`` ago: after a
restart, an outage or a burst) takes bigger batches: its events are late
already, and a user or item that recurs within a batch is read, written and
recommended for once, so the backlog clears sooner.

>>> from stream.config import Settings
>>> s = Settings(batch_max=1000, catch_up_batch_max=4000, catch_up_after_s=5.0)
>>> batch_limit(s, written_at=100.0, now=101.0), batch_limit(s, written_at=100.0, now=110.0)
(1000, 4000)
"""

from __future__ import annotations

from stream.config import Settings


def batch_limit(settings: Settings, written_at: float | None, now: float) -> int:
    """Most events in the next batch, by when its oldest message was written
    (the Kafka message timestamp, seconds; None if the broker gave none)."""
    if written_at is not None and now - written_at > settings.catch_up_after_s:
        return max(settings.batch_max, settings.catch_up_batch_max)
    return settings.batch_max
