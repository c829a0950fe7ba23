"""The ceiling the benchmark measures shopstream against: a Faust agent with
Faust's default settings that only iterates over the input topics and acks.

Run it the Faust way (``faust -A bench.bare_faust worker``) with the same
``SHOPSTREAM_*`` topic and app-id variables as the real worker; ``GET /count``
on its web port says how many events it has seen.
"""

from __future__ import annotations

import faust

from stream.config import Settings

settings = Settings.from_env()

app = faust.App(
    settings.app_id,
    broker=settings.broker,
    store="memory://",
    topic_partitions=settings.partitions,
    consumer_auto_offset_reset="earliest",
    web_bind=settings.web_host,
    web_host=settings.web_host,
    web_port=settings.web_port,
)

inputs = app.topic(*settings.topics.inputs, key_serializer="raw", value_serializer="raw")
seen = 0


@app.agent(inputs)
async def iterate(stream: faust.StreamT) -> None:
    global seen
    async for _ in stream:
        seen += 1


@app.page("/count")
async def count_view(web, request):  # type: ignore[no-untyped-def]
    return web.json({"received": seen})
