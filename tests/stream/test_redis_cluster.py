"""State on a real local Redis Cluster: the same state as one Redis key for
key, and exactly once through crashes between a batch's journal and its
application to the slots."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Iterator

import orjson
import pytest
import redis
from redis.cluster import RedisCluster

from backtest.reference import redis_state_snapshot
from backtest.replay import ReplayConfig
from backtest.replay import run as replay
from devstack.services import RedisClusterProcesses, ServiceProcess, free_port, start_redis, wait_ready
from shop.planted import write_single_topic_events
from stream.config import Settings
from stream.processor import Processor
from stream.redis_cluster import ClusterKeys, ClusterState, open_state, split_batch, tag_of
from stream.redis_state import RedisState
from tests.stream.test_processor import chunks, shop_messages

pytestmark = [pytest.mark.services]


@pytest.fixture(scope="module")
def single_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    proc = start_redis(tmp_path_factory.mktemp("single"), free_port())
    wait_ready(proc)
    yield proc
    proc.stop()


@pytest.fixture
def cluster_client(redis_cluster: RedisClusterProcesses) -> Iterator[RedisCluster]:
    client = RedisCluster.from_url(redis_cluster.url)
    yield client
    client.close()


def settings_for(url: str, cluster: bool, **overrides: object) -> Settings:
    values: dict = dict(redis_url=url, redis_cluster=cluster, prefix=f"t-{uuid.uuid4().hex[:8]}:",
                        max_neighbours=100_000, rec_throttle_s=0,
                        demand=False)  # demand is not on a cluster yet: both sides compare without it
    values.update(overrides)
    return replace(Settings(), **values)


def handle_all(state: RedisState, settings: Settings, batches: list) -> list:
    async def go() -> list:
        processor = Processor(state, settings)
        try:
            return [await processor.handle(batch) for batch in batches]
        finally:
            await state.close()
    return asyncio.run(go())


def test_replay_into_the_cluster_equals_replay_into_one_redis_key_for_key(
    single_redis: ServiceProcess, redis_cluster: RedisClusterProcesses, cluster_client: RedisCluster,
    tmp_path: Path,
) -> None:
    events = tmp_path / "events.jsonl"
    write_single_topic_events(events, 3000)
    snapshots = []
    for url, cluster, client in ((single_redis.url, False, redis.Redis.from_url(single_redis.url)),
                                 (redis_cluster.url, True, cluster_client)):
        settings = settings_for(url, cluster)
        asyncio.run(replay(ReplayConfig(inputs=[events], redis_url=url, progress=False, batch_size=150,
                                        settings=settings)))
        snapshots.append(redis_state_snapshot(client, settings.prefix))
    single, on_cluster = snapshots
    assert len(single) > 300 and any(k.startswith("user:") for k in single)
    assert on_cluster == single
    # And the cluster really spread them: users, rows and control on several masters.
    assert len({cluster_client.keyslot(k) for k in cluster_client.scan_iter(match="t-*", count=1000)}) > 20


def test_many_partitions_and_batch_sizes_give_the_state_of_one_redis(
    single_redis: ServiceProcess, redis_cluster: RedisClusterProcesses, cluster_client: RedisCluster,
) -> None:
    messages = shop_messages(600, seed=3, partitions=4)
    expected_settings = settings_for(single_redis.url, False)
    handle_all(RedisState(expected_settings), expected_settings, chunks(messages, 50))
    expected = redis_state_snapshot(redis.Redis.from_url(single_redis.url), expected_settings.prefix)
    for size in (1, 50, 600):
        settings = settings_for(redis_cluster.url, True)
        handle_all(open_state(settings), settings, chunks(messages, size))
        assert redis_state_snapshot(cluster_client, settings.prefix) == expected


class CrashAfterJournal(ClusterState):
    """A worker that dies right after step 1 of a commit, or after applying
    only the first ``parts_applied`` slot parts of its journal."""

    def __init__(self, settings: Settings, parts_applied: int = 0) -> None:
        super().__init__(settings)
        self.parts_applied = parts_applied

    async def _apply(self, batch: dict, docs: list, seqs: list, parts: dict | None = None) -> list[int]:
        parts = split_batch(batch, docs, self.keys)
        for tag in list(parts)[: self.parts_applied]:
            doc, own = parts[tag]
            await self._apply_part(keys=[self.keys.fence(tag)],
                                   args=[orjson.dumps({**doc, "fence": seqs}), *own])
        raise ConnectionError("killed between the journal and its application")


@pytest.mark.parametrize("parts_applied", [0, 3])
def test_a_crash_between_journal_and_apply_is_recovered_exactly_once(
    parts_applied: int, redis_cluster: RedisClusterProcesses, cluster_client: RedisCluster,
) -> None:
    """The first worker commits a batch's journal (and offsets) and dies before
    applying it, or halfway; the batch is delivered again (Kafka's offsets
    were never acked) to a second worker, which finds the journal pending,
    applies what is missing, skips the batch's events as applied, and goes on.
    The state equals an undisturbed run's."""
    messages = shop_messages(400, seed=9, partitions=4)
    batches = chunks(messages, 80)
    undisturbed = settings_for(redis_cluster.url, True)
    handle_all(open_state(undisturbed), undisturbed, batches)
    expected = redis_state_snapshot(cluster_client, undisturbed.prefix)

    settings = settings_for(redis_cluster.url, True)
    handle_all(open_state(settings), settings, batches[:2])
    crashing = CrashAfterJournal(settings, parts_applied)
    with pytest.raises(ConnectionError):
        handle_all(crashing, settings, batches[2:3])
    keys = ClusterKeys(settings.prefix, settings.partitions)
    assert cluster_client.hlen(keys.pending) > 0  # the journal is committed and pending
    assert redis_state_snapshot(cluster_client, settings.prefix) != expected
    survivor = ClusterState(settings)
    results = handle_all(survivor, settings, batches[2:])
    assert survivor.journals_recovered == 1
    assert results[0].processed == 0 and results[0].already_applied == len(batches[2])
    assert cluster_client.hlen(keys.pending) == 0
    assert not list(cluster_client.scan_iter(match=f"{settings.prefix}*journal:*"))
    assert redis_state_snapshot(cluster_client, settings.prefix) == expected


def test_a_journal_that_moved_no_offset_still_stops_a_commit_read_before_it(
    redis_cluster: RedisClusterProcesses, cluster_client: RedisCluster,
) -> None:
    """Two workers on one partition (a rebalance): the old owner's sweep was
    read before the new owner committed a journal of the same partition that
    moved no offset (a sweep too) and died before applying it. The old
    owner's commit is refused: it would otherwise take the next number, and
    its fences would hide the pending journal from its recovery."""
    messages = shop_messages(200, seed=2, partitions=2)
    settings = settings_for(redis_cluster.url, True)
    handle_all(open_state(settings), settings, chunks(messages, 50))
    partition = [(messages[0].topic, messages[0].partition)]

    async def race() -> bool:
        old = ClusterState(settings)
        new = CrashAfterJournal(settings)
        try:
            swept = await Processor(old, settings).process([], partitions=partition)
            with pytest.raises(ConnectionError):
                await Processor(new, settings).sweep(partition)
            return await old.commit(swept.view)
        finally:
            await old.close()
            await new.close()

    assert asyncio.run(race()) is False


def test_a_journal_applied_twice_changes_nothing_the_second_time(
    redis_cluster: RedisClusterProcesses, cluster_client: RedisCluster,
) -> None:
    """A late second attempt (a worker that read the journal pending just
    before its owner finished it) finds every slot's fence and does nothing."""
    settings = settings_for(redis_cluster.url, True)
    state = ClusterState(settings)
    captured: list = []
    apply = state._apply

    async def remember(batch: dict, docs: list, seqs: list, parts: dict | None = None) -> list[int]:
        captured.append((batch, docs, seqs))
        return await apply(batch, docs, seqs, parts)

    state._apply = remember  # type: ignore[method-assign]
    handle_all(state, settings, [shop_messages(200, seed=4, partitions=4)])
    before = redis_state_snapshot(cluster_client, settings.prefix)

    async def again() -> list[int]:
        late = ClusterState(settings)
        try:
            return await late._apply(*captured[0])
        finally:
            await late.close()

    assert asyncio.run(again()) == [0] * len(captured[0][0]["checked"])
    assert redis_state_snapshot(cluster_client, settings.prefix) == before


def test_a_url_that_names_a_cluster_is_enough(
    single_redis: ServiceProcess, redis_cluster: RedisClusterProcesses,
) -> None:
    async def kinds() -> list[str]:
        out = []
        for url in (redis_cluster.url, single_redis.url, f"redis://127.0.0.1:{free_port()}/0"):
            state = open_state(settings_for(url, False))
            out.append(type(state).__name__)
            await state.close()
        return out

    # A Redis that does not answer: the flag decides (off here).
    assert asyncio.run(kinds()) == ["ClusterState", "RedisState", "RedisState"]


def test_keys_are_tagged_by_user_partition_and_item_bucket() -> None:
    keys = ClusterKeys("ss:", partitions=4)
    assert keys.user("alice").endswith(":user:alice") and tag_of(keys.user("alice")).startswith("{u")
    assert tag_of(keys.user("alice")) == tag_of(keys.recs("alice")) == tag_of(keys.session("alice#3"))
    assert tag_of(keys.neighbours("i1")) == keys.item_tag("i1")
    assert tag_of(keys.offset(("clicks", 3))) == "{ctl}"


def test_a_batch_field_the_cluster_layout_does_not_know_is_refused() -> None:
    keys = ClusterKeys("ss:", partitions=4)
    with pytest.raises(RuntimeError, match="does not know the batch's \\['new_thing'\\]"):
        split_batch({"offsets": [], "new_thing": [["ss:x", 1]]}, [], keys)


def test_session_neighbours_on_a_cluster_are_refused_with_a_clear_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from stream.config import ConfigError

    monkeypatch.setenv("SHOPSTREAM_REDIS_CLUSTER", "1")
    monkeypatch.setenv("SHOPSTREAM_NEIGHBOUR_WEIGHT", "2")
    with pytest.raises(ConfigError, match="not supported with SHOPSTREAM_REDIS_CLUSTER=1"):
        Settings.from_env()


def test_profiles_recommendations_and_forget_on_the_cluster(
    redis_cluster: RedisClusterProcesses, cluster_client: RedisCluster,
) -> None:
    """The web views' reads find a user's keys by their tag, every profile is
    listed, and forget erases the user's keys and index entries."""
    messages = shop_messages(300, seed=6, partitions=4)
    settings = settings_for(redis_cluster.url, True)
    handle_all(open_state(settings), settings, chunks(messages, 60))
    users = {orjson.loads(m.value)["user_id"] for m in messages}

    async def check() -> tuple:
        state = ClusterState(settings)
        try:
            listed = {p.user_id async for p in state.all_profiles()}
            profile = await state.profile("u3")
            recs = await state.recommendations("u3")
            erased = await state.forget("u3")
            return listed, profile, recs, erased, await state.profile("u3")
        finally:
            await state.close()

    listed, profile, recs, erased, after = asyncio.run(check())
    assert listed == users
    assert profile is not None and profile.user_id == "u3" and recs is not None
    assert erased["profile"] == 1 and erased["recommendations"] == 1 and erased["index_entries"] >= 1
    assert after is None
