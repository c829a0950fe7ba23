"""The Faust app: the ingest agent, the learn agent and the timers (the web
views are in :mod:`stream.web`).

Start it the Faust way::

    faust -A stream.app worker -l info

The ingest agent is thin: it takes each fetch of input messages whole (see
:mod:`stream.kafka_transport`), hands batches of them to the
:class:`~stream.processor.Processor`, publishes what comes back and acks.
Everything replay also needs lives in the Processor.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

import faust
from aiokafka import AIOKafkaClient
from faust.types import TP
from aiokafka.errors import KafkaError
from redis.exceptions import RedisError

from models.cooccurrence import COMPILED
from stream import task_dump
from stream.batching import batch_limit
from stream.clock import EventClock
from stream.config import Settings
from stream.events import InvalidEvent, decode_label
from stream.gc_pause import collect, full_passes_on_schedule, gc_paused
from stream.health import Dependency, Health
from stream.kafka_transport import Transport as KafkaTransport
from stream.learner import Learner, ModelRow, encode_rows
from stream.lost_topics import restart_partitions_past_their_end
from stream.outputs import DeadLetter, Message
from stream.partition_watch import PartitionWatch, consumer_view
from stream.processor import BatchResult, Processor
from stream.redis_cluster import open_state, with_cluster_detected
from stream.snapshots import NEWER_THERE, SAVED, BackgroundSave, SnapshotStore
from stream.startup import wait_for_broker
from stream.topics import create_topics

log = logging.getLogger("shopstream")
FETCHES_BUFFERED = 4  # fetches read ahead of the batch in work
BROKER_CALL_TIMEOUT_S = 10.0  # a batch waits no longer on the broker's end offsets
LEARN_SLICE_S, LEARN_STEP = 0.005, 16  # learning between two looks at the event loop

settings = with_cluster_detected(Settings.from_env())  # the URL may name a Redis Cluster

app = faust.App(
    settings.app_id,
    broker=settings.broker,
    broker_credentials=settings.faust_credentials(),
    store="memory://",
    topic_partitions=settings.partitions,
    topic_allow_declare=True,
    consumer_auto_offset_reset="earliest",
    broker_session_timeout=settings.group_session_timeout,
    broker_heartbeat_interval=settings.group_heartbeat_interval,
    broker_rebalance_timeout=settings.group_rebalance_timeout,
    web_bind=settings.web_host,
    web_host=settings.web_host,
    web_port=settings.web_port,
    web_in_thread=False,
)
inputs = app.topic(
    *settings.topics.inputs,
    *settings.topics.texts,  # reviews and messages: same agent, outside the event-time clock
    settings.topics.inventory,  # stock readings, likewise (stream/inventory.py)
    key_serializer="raw",
    value_serializer="raw",
    partitions=settings.partitions,
)
app.topics.add(inputs)  # subscribed and acked as Faust does; read through `fetched`
# The input messages of each fetch, as one list (see stream/kafka_transport.py).
fetched = app.channel(maxsize=FETCHES_BUFFERED)
app.transport = KafkaTransport(app.conf.broker_consumer, app,
                               fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
                               fetch_min_bytes=settings.kafka_fetch_min_bytes,
                               batches={topic: fetched for topic in (*settings.topics.inputs,
                                                                      *settings.topics.texts,
                                                                      settings.topics.inventory)})
dead_letters_topic = app.topic(
    settings.topics.dead_letters,
    key_serializer="raw",
    value_serializer="raw",
    partitions=settings.partitions,
)


# One partition each: exactly one worker of the group runs the learn agent
# (Faust assigns the same partition number of both topics to one worker).
features_topic = app.topic(
    settings.topics.features, key_serializer="raw", value_serializer="raw", partitions=1
)
learning_topics = app.topic(
    settings.topics.features, settings.topics.labels, key_serializer="raw",
    value_serializer="raw", partitions=1,
)

state = open_state(settings)  # one Redis, or a Redis Cluster (SHOPSTREAM_REDIS_CLUSTER=1)
snapshots = SnapshotStore(settings, state.client)
clock = EventClock(idle_after_s=settings.idle_after_s)
processor = Processor(state, settings, clock=clock)
health = Health(
    broker=Dependency("broker", settings.broker),
    redis=Dependency("redis", settings.redis_url),
)

RETRY_MAX_S = 10.0


@dataclass
class TextModelsSaved:
    """How far this worker's text models had learnt when last saved or loaded."""

    learnt: int = 0


text_models_saved = TextModelsSaved()


@app.on_worker_init.connect
def _wait_for_broker(app: faust.App, **kwargs: object) -> None:
    if not COMPILED:
        log.warning("ranking in pure Python: models/cooccurrence_rank.pyx was not built "
                    "(install with a C compiler for several times the speed)")
    wait_for_broker(settings)
    create_topics(settings)
    _load_text_models()
    # What is loaded by now (Faust, river, scikit-learn: ~10^5 objects) lives as long
    # as the worker: keep it out of the cyclic collector's full passes, which
    # from now on run only on the worker's schedule (collect_garbage).
    gc.freeze()
    full_passes_on_schedule()


def _load_text_models() -> None:
    """The text models the last saver left (stream/text_store.py), before any
    text is read; without Redis, or unreadable, they start afresh."""
    import redis

    from stream import text_store

    if settings.redis_cluster:
        from redis.cluster import RedisCluster

        client: Any = RedisCluster.from_url(settings.redis_url, socket_timeout=5)
    else:
        client = redis.Redis.from_url(settings.redis_url, socket_timeout=5)
    try:
        models = text_store.loads(client.get(f"{settings.prefix}{text_store.KEY}"))
    except Exception as exc:  # Redis away, or a blob of another version
        log.warning("text models start afresh: could not load the saved ones (%s)", exc)
        return
    finally:
        client.close()
    if models is not None:
        processor.voice.models = models
        text_models_saved.learnt = models.learnt
        log.info("text models loaded (%d texts learnt)", models.learnt)


async def publish(result: BatchResult) -> None:
    """Send a batch's outputs and wait until the broker has them all.

    Straight to Faust's producer: ``Topic.send`` wraps each message in a
    future message with callbacks, which cost more than the send itself."""
    send = app.producer.send
    topics = settings.topics
    outputs = [(topics.recommendations, r.user_id.encode(), r.to_json()) for r in result.recommendations]
    outputs += [(topics.dead_letters, d.message.key, d.to_json()) for d in result.dead_letters]
    outputs += [(topics.segments, c.user_id.encode(), c.to_json()) for c in result.segment_changes]
    outputs += [(topics.alerts, a.user_id.encode(), a.to_json()) for a in result.alerts]
    outputs += [(topics.actions, a.user_id.encode(), a.to_json()) for a in result.actions]
    outputs += [(topics.campaign_results, r["result_id"].encode(), orjson.dumps(r))
                for r in result.campaign_results]
    outputs += [(topics.demand, f.series.encode(), f.to_json()) for f in result.demand]
    outputs += [(topics.service, r.user_id.encode(), r.to_json()) for r in result.service]
    if result.model_rows:
        # One fixed key: every row reaches the same partition, hence one learner,
        # even if the topic was created with more partitions than asked for.
        outputs += [(topics.features, b"learner", rows) for rows in encode_rows(result.model_rows)]
    pending = [await send(topic, key, value, None, None, None) for topic, key, value in outputs]
    if pending:
        await asyncio.gather(*pending)


def assigned_inputs() -> list[tuple[str, int]]:
    inputs_topics = set(settings.topics.inputs)
    return sorted((tp.topic, tp.partition) for tp in app.consumer.assignment()
                  if tp.topic in inputs_topics)


async def handle(messages: list[Message]) -> BatchResult:
    """Process one batch, waiting out Redis and broker outages with backoff."""
    delay = 0.2
    while True:
        try:
            result = await processor.handle(messages, publish)
        except (RedisError, OSError, KafkaError) as exc:
            # Outputs undelivered or state unwritten: the batch is done again.
            (health.broker if isinstance(exc, KafkaError) else health.redis).down(exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_S)
            continue
        health.redis.up()
        return result


@app.agent(fetched)
async def ingest(stream: faust.StreamT) -> None:
    """Each fetch's input messages, in batches of at most ``batch_limit``; the
    fetches that came in while a batch was processed make one batch together
    (a batch costs a few Redis and broker round trips whatever its size)."""
    waiting = stream.channel.queue
    async for messages in stream:
        limit = batch_limit(settings, messages[0].timestamp, time.time())
        while len(messages) < limit and not waiting.empty():
            messages = messages + waiting.get_nowait()
        for start in range(0, len(messages), limit):
            await ingest_batch(messages[start:start + limit])


async def ingest_batch(fetched_messages: list[faust.types.Message]) -> None:
    """Process a batch, then ack it: Faust commits the offsets of acked messages."""
    consumer, generation = app.consumer, app.consumer_generation_id
    # Messages read before a rebalance are read again after it, from the
    # committed offsets, by whichever worker then owns their partition.
    batch = [m for m in fetched_messages if m.generation_id == generation]
    if batch:
        consumer.track_batch(batch)  # a rebalance waits until they are acked
        clock.assign(assigned_inputs())
        messages = [Message(m.value, m.topic, m.partition, m.offset, m.key) for m in batch]
        # What a batch allocates dies with it, by reference counting, before
        # the collector runs again: it need not look at any of it (see
        # stream/gc_pause.py). Hence no name outlives the block for the result.
        health.counters.batch_started = time.monotonic()
        try:
            with gc_paused():
                count_batch(await handle_new_topics_too(messages), len(messages))
        finally:
            health.counters.batch_started = None
        for m in batch:
            consumer.ack(m)
            tp = (m.topic, m.partition)
            if m.offset > finished.get(tp, -1):
                finished[tp] = m.offset


async def handle_new_topics_too(messages: list[Message]) -> BatchResult:
    """``handle``; if the batch found messages applied already because the broker
    lost their topics (restarted under this worker or before it started), those
    messages again: they are new."""
    result = await handle(messages)
    if result.already_applied and await restart_partitions_lost({TP(m.topic, m.partition)
                                                                  for m in messages}):
        result = await handle(messages)
    return result


async def restart_partitions_lost(partitions: set[TP]) -> bool:
    """Restart the partitions the state is past the end of (stream/lost_topics.py)."""
    try:
        ends = await asyncio.wait_for(app.consumer.highwaters(*partitions), BROKER_CALL_TIMEOUT_S)
        restarted = await restart_partitions_past_their_end(
            state.client, settings.prefix, {(tp.topic, tp.partition): end for tp, end in ends.items()},
            state.keys,
        )
    except (RedisError, OSError, KafkaError, asyncio.TimeoutError) as exc:
        log.warning("could not compare the state's offsets with the input topics (%r)", exc)
        return False
    health.counters.partitions_restarted += len(restarted)
    return bool(restarted)


def count_batch(result: BatchResult, received: int) -> None:
    """A batch on /metrics."""
    counters = health.counters
    counters.batches += 1
    counters.received += received
    counters.processed += result.processed
    counters.dead_lettered += len(result.dead_letters)
    counters.already_applied += result.already_applied
    counters.duplicates += result.duplicates
    counters.recommendations += len(result.recommendations)
    counters.alerts += len(result.alerts)
    counters.last_batch = time.monotonic()


# The last offset each input partition's batches finished, for the watch below.
finished: dict[tuple[str, int], int] = {}
partition_watch = PartitionWatch(stall_s=settings.partition_stall_s)


@app.timer(interval=min(5.0, settings.partition_stall_s / 2))
async def watch_partitions() -> None:
    """Read again an input partition the consumer stopped delivering
    (stream/partition_watch.py)."""
    if partition_watch.generation != app.consumer_generation_id:  # a rebalance: all start again
        partition_watch.reset(app.consumer_generation_id)
        finished.clear()
        return
    partitions = assigned_inputs()
    if app.rebalancing or not health.ok or not partitions:
        partition_watch.reset()
        return
    try:
        ends = await asyncio.wait_for(app.consumer.highwaters(*(TP(t, p) for t, p in partitions)),
                                      BROKER_CALL_TIMEOUT_S)
    except (KafkaError, OSError, asyncio.TimeoutError) as exc:
        log.warning("could not read the input partitions' end offsets (%r)", exc)
        return
    committed = app.consumer._committed_offset  # the next offset, as of the last commit or seek
    done = {(t, p): max(finished.get((t, p), -1), (committed.get(TP(t, p)) or 0) - 1) for t, p in partitions}
    stalled = partition_watch.stalled(time.monotonic(), done, {
        (tp.topic, tp.partition): end for tp, end in ends.items() if end is not None})
    if not stalled:
        return
    started = health.counters.batch_started
    if started is not None and time.monotonic() - started >= settings.partition_stall_s:
        # The agent is inside one batch all this while: it waits on
        # something, and reading again would not help. Say where it waits.
        log.warning("a batch has run for %.0f s with messages waiting in %s", time.monotonic() - started,
                    ", ".join(f"{t}[{p}]" for t, p in stalled))
        task_dump.log_tasks()
        return
    for topic, partition in stalled:
        await read_again(TP(topic, partition), ends[TP(topic, partition)])


async def read_again(tp: TP, end: int) -> None:
    """Seek a stalled partition to the offset after the state's applied one."""
    try:
        raw = await state.client.get(state.keys.offset((tp.topic, tp.partition)))
    except (RedisError, OSError) as exc:
        log.warning("could not read the applied offset of %s[%d] (%s)", tp.topic, tp.partition, exc)
        return
    offset = int(raw) + 1 if raw is not None else 0
    log.warning(
        "input partition %s[%d]: messages up to offset %d wait and none was delivered for %.0f s "
        "(%s); reading it again from offset %d, after the state's last applied",
        tp.topic, tp.partition, end - 1, settings.partition_stall_s, consumer_view(app.consumer, tp), offset)
    await app.consumer.seek(tp, offset)
    app.consumer.resume_partitions({tp})
    finished[tp.topic, tp.partition] = max(finished.get((tp.topic, tp.partition), -1), offset - 1)
    health.counters.partitions_read_again += 1


@app.task
async def dump_tasks_on_sigusr2() -> None:
    """``kill -USR2 <pid>`` logs what the worker's tasks wait on (stream/task_dump.py)."""
    task_dump.install()


@app.timer(interval=min(5.0, settings.idle_after_s))
async def sweep_when_idle() -> None:
    """Without traffic no batch sweeps: quiet sessions and churn checks would
    wait for the next event. The clock moves on once every partition is idle."""
    if time.monotonic() - health.counters.last_batch < settings.idle_after_s:
        return
    partitions = assigned_inputs()
    if not partitions:
        return
    clock.assign(partitions)
    try:
        result = await processor.sweep(partitions, publish)
    except (RedisError, OSError, KafkaError) as exc:
        log.warning("idle sweep failed (%s); trying again later", exc)
        return
    health.counters.alerts += len(result.alerts)


@dataclass
class Publisher:
    """The learn agent's models, when they were last published, and the save
    under way in the background."""

    learner: Learner | None = None
    at: float = 0.0
    updates: int = 0
    learner_at: float = float("-inf")  # when a save last took the learner's own state along
    saving: BackgroundSave | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def publish_if_due(self) -> None:
        """A snapshot every N updates (at most one per ``snapshot_min_interval_s``)
        or T seconds, if anything was learnt; one save at a time."""
        learner = self.learner
        if learner is None or self.lock.locked():
            return
        async with self.lock:
            if self.saving is not None:
                outcome = self.saving.outcome()
                if outcome is None:
                    return
                await self._saved(learner, self.saving.version, outcome)
                if outcome != SAVED and self.saving.with_learner:
                    self.learner_at = float("-inf")  # the next save takes it along
                self.saving = None
            since, fresh = time.monotonic() - self.at, learner.updates - self.updates
            due = fresh > 0 and (since >= settings.snapshot_interval_s or (
                fresh >= settings.snapshot_every and since >= settings.snapshot_min_interval_s))
            if not due:
                return
            models = learner.snapshot(shared=True)
            now = time.monotonic()
            with_learner = now - self.learner_at >= settings.learner_save_interval_s
            self.saving = snapshots.save_in_background(models.version, models,
                                                       learner if with_learner else None)
            self.at, self.updates = now, learner.updates
            if with_learner:
                self.learner_at = now
            # This worker scores with what it learns, as replay does, instead
            # of loading its own snapshot back.
            processor.models = models

    async def _saved(self, learner: Learner, version: int, outcome: int) -> None:
        if outcome == SAVED:
            log.info("published user models v%d", version)
        elif outcome == NEWER_THERE:
            # A learner that held this partition before a rebalance, or a save
            # of ours whose learner state was lost: number ours after it.
            try:
                learner.version = max(learner.version, await snapshots.version())
            except (RedisError, OSError):
                pass
            log.warning("user models v%d were already published; next as v%d",
                        version, learner.version + 1)
        else:  # keep learning; everything is published with the next save
            self.updates = 0
            log.warning("could not publish user models v%d (see Redis on /health)", version)


publisher = Publisher()


@app.agent(learning_topics)
async def learn(stream: faust.StreamT) -> None:
    """Train the global models on feature rows and confirmed fraud outcomes."""
    learner = publisher.learner = await _resume_learner()
    publisher.at, publisher.updates = time.monotonic(), learner.updates
    async for events in stream.take_events(100, within=1.0):
        for event in events:
            if event.message.topic == settings.topics.labels:
                await _learn_label(learner, event)
            else:
                await _learn_rows(learner, [ModelRow.from_dict(d) for d in orjson.loads(event.value)])
        await publisher.publish_if_due()


async def _learn_rows(learner: Learner, rows: list[ModelRow]) -> None:
    """Learn in slices of ``LEARN_SLICE_S``, letting the ingest agent run in
    between: a catch-up batch's message holds thousands of rows (seconds of
    learning), and events must not wait for models, which may lag."""
    done = 0
    while done < len(rows):
        deadline = time.perf_counter() + LEARN_SLICE_S
        with gc_paused():
            while done < len(rows) and time.perf_counter() < deadline:
                learner.learn(rows[done:done + LEARN_STEP])
                done += LEARN_STEP
        await asyncio.sleep(0)


@app.timer(interval=settings.gc_full_every_s)
async def collect_garbage() -> None:
    """The cyclic collector's full pass, which batches no longer trigger."""
    seconds = collect()
    health.counters.gc_full_passes += 1
    health.counters.gc_full_ms = round(seconds * 1000, 1)


@app.timer(interval=1.0)
async def publish_quiet_models() -> None:
    """What was learnt from the last rows before a lull gets published too."""
    await publisher.publish_if_due()


async def _learn_label(learner: Learner, event: faust.EventT) -> None:
    """One confirmed outcome; a malformed one goes to the dead-letter topic."""
    m = event.message
    try:
        label = decode_label(event.value, settings.max_message_bytes)
    except InvalidEvent as exc:
        letter = DeadLetter(Message(event.value, m.topic, m.partition, m.offset, event.key), exc.reason)
        await dead_letters_topic.send(key=event.key, value=letter.to_json())
        health.counters.dead_lettered += 1
        return
    learner.learn_labels([label])
    health.counters.labels += 1


async def _resume_learner() -> Learner:
    try:
        learner = await snapshots.load_learner()
    except (RedisError, OSError) as exc:
        log.warning("could not load the learner's state (%s); starting afresh", exc)
        return Learner.for_settings(settings)
    if learner is None:
        return Learner.for_settings(settings)
    learner.offers.configure(settings)
    return learner


@app.timer(interval=settings.text_models_save_s)
async def save_text_models() -> None:
    from stream import text_store

    models = processor.voice.models
    if models.learnt == text_models_saved.learnt:
        return
    try:
        size = await text_store.save(state.client, settings.prefix, models)
    except (RedisError, OSError) as exc:
        log.warning("could not save the text models (%s); trying again later", exc)
        return
    text_models_saved.learnt = models.learnt
    log.info("text models saved (%d texts learnt, %d bytes)", models.learnt, size)


@app.timer(interval=2.0)
async def load_newer_models() -> None:
    """Pick up the learn agent's latest snapshot (one GET when nothing changed)."""
    try:
        newer = await snapshots.load_newer(processor.models.version)
    except (RedisError, OSError):
        return  # the health timer reports Redis
    if newer is not None:
        processor.models = newer[1]
        log.info("scoring with user models v%d", newer[0])


@app.timer(interval=2.0)
async def check_dependencies() -> None:
    try:
        await asyncio.wait_for(state.ping(), timeout=2.0)
        health.redis.up()
    except (RedisError, OSError, asyncio.TimeoutError) as exc:
        health.redis.down(exc)
    client = AIOKafkaClient(bootstrap_servers=settings.bootstrap_servers, request_timeout_ms=2000,
                            **settings.aiokafka_options())
    try:
        await asyncio.wait_for(client.bootstrap(), timeout=3.0)
        health.broker.up()
    except Exception as exc:  # any failure to reach the broker means unhealthy
        health.broker.down(exc)
    finally:
        await client.close()


# The web views register on the app when their module loads.
from stream import web  # noqa: E402,F401


def main() -> None:
    app.main()


if __name__ == "__main__":
    main()
