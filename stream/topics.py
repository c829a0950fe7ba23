"""The topics shopstream creates, each with the partition count it needs.

Faust would declare missing topics with the broker's default partition
count; a worker creates its own first, as do the scripts that produce input.
"""

from __future__ import annotations

import logging

from kafka import KafkaAdminClient
from kafka.errors import TopicAlreadyExistsError

from stream.config import Settings

log = logging.getLogger("shopstream")
BOOTSTRAP_TIMEOUT_MS = 10_000


def ensure_topics(admin: KafkaAdminClient, names: tuple[str, ...], partitions: int) -> None:
    """Create the topics that do not exist yet (broker-default replication)."""
    missing = sorted(set(names) - set(admin.list_topics()))
    for name in missing:
        try:
            admin.create_topics({name: {"num_partitions": partitions, "replication_factor": -1}})
        except TopicAlreadyExistsError:
            pass  # created meanwhile by someone else


def create_topics(settings: Settings) -> None:
    """Create shopstream's topics that do not exist yet: the input and output
    topics with ``SHOPSTREAM_PARTITIONS`` partitions, ``features`` and ``labels``
    with one (their single consumer is the learn agent)."""
    t = settings.topics
    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers,
                             bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS, **settings.kafka_options())
    try:
        ensure_topics(admin, (*t.inputs, t.recommendations, t.dead_letters, t.segments, t.alerts, t.actions,
                                t.campaign_results, t.demand, *t.texts, t.service, t.inventory),
                      settings.partitions)
        ensure_topics(admin, (t.features, t.labels), 1)
    except Exception as exc:  # Faust declares what is missing; this only gets counts right
        log.warning("could not create topics (%s); the broker's defaults apply", exc)
    finally:
        admin.close()
