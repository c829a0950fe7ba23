"""Faust's Kafka transport, with the consumer's fetch wait as a setting.

Faust builds its aiokafka consumer with ``fetch_max_wait_ms=1500`` and no way
to change it. Apache Kafka answers a waiting fetch as soon as records arrive,
so there the wait only paces polls of an idle partition; the embedded broker
(Tansu) holds every fetch that found nothing for the whole wait, which added
about 400 ms (p50) to each event's latency at low rates.
"""

from __future__ import annotations

from typing import Any

import aiokafka
from faust.transport.drivers import aiokafka as faust_aiokafka

FAUST_FETCH_MAX_WAIT_MS = 1500


class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: faust_aiokafka.Transport) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        # aiokafka hands this to its fetcher in start(), which comes later.
        consumer._fetch_max_wait_ms = getattr(transport, "fetch_max_wait_ms", FAUST_FETCH_MAX_WAIT_MS)
        return consumer


class Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(faust_aiokafka.Transport):
    """Use as ``app.transport = Transport(app.conf.broker_consumer, app, fetch_max_wait_ms=...)``."""

    Consumer = Consumer

    def __init__(self, *args: Any, fetch_max_wait_ms: int = FAUST_FETCH_MAX_WAIT_MS, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fetch_max_wait_ms = fetch_max_wait_ms
