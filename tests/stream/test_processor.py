"""The Processor against memory and a real Redis: counts, exactly-once, equivalence."""

from __future__ import annotations

import asyncio
import os
import random

import orjson
import pytest
import redis

from stream.config import Settings
from stream.outputs import Message
from stream.processor import Processor
from stream.redis_state import RedisState
from stream.state import MemoryState
from tests.support import MODEL_OUTPUTS, Services, isolated_settings, redis_state_snapshot


def shop_messages(n: int, seed: int = 7, partitions: int = 2) -> list[Message]:
    """Clicks and views of a few users over a few items, partitioned by user."""
    rng = random.Random(seed)
    offsets = {p: 0 for p in range(partitions)}
    out = []
    for i in range(n):
        user = f"u{rng.randint(0, 9)}"
        kind = rng.choice(["view", "click", "purchase"])
        event = {"event_id": f"e{i}", "type": kind, "user_id": user,
                 "item_id": f"i{rng.randint(0, 14)}", "ts": 1_700_000_000 + i * 7}
        if kind == "purchase":
            event["price"] = 10.0
        topic = {"view": "views", "click": "clicks", "purchase": "purchases"}[kind]
        p = int(user[1:]) % partitions
        out.append(Message(orjson.dumps(event), topic, p, offsets[p], user.encode()))
        offsets[p] += 1
    return out


def run(processor: Processor, batches: list[list[Message]]) -> list:
    async def go() -> list:
        return [await processor.handle(b) for b in batches]
    return asyncio.run(go())


def chunks(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def test_every_message_is_processed_or_dead_lettered() -> None:
    messages = shop_messages(300)
    messages[10] = Message(b"{broken", "clicks", 0, messages[10].offset)
    messages[20] = Message(orjson.dumps({"event_id": "x", "type": "purchase", "user_id": "u",
                                         "item_id": "i", "ts": 1.7e9}), "views", 1, messages[20].offset)
    results = run(Processor(MemoryState()), chunks(messages, 64))
    processed = sum(r.processed for r in results)
    dead = [d for r in results for d in r.dead_letters]
    assert processed + len(dead) == 300
    reasons = sorted(d.reason for d in dead)
    assert reasons[0].startswith("not valid JSON")
    assert reasons[1] == "type 'purchase' does not belong on topic 'views'"
    assert all(d.to_dict()["original_b64"] for d in dead)


def test_recommendations_are_throttled_per_user() -> None:
    settings = Settings(rec_throttle_s=1e9)
    results = run(Processor(MemoryState(settings), settings), chunks(shop_messages(400), 50))
    published = [r.user_id for res in results for r in res.recommendations]
    assert sorted(published) == sorted(set(published))  # once per user at most
    settings = Settings(rec_throttle_s=0)
    results = run(Processor(MemoryState(settings), settings), chunks(shop_messages(400), 50))
    # Without a throttle: every user of every batch (10 users, 8 batches).
    assert sum(len(r.recommendations) for r in results) == 10 * 8


def test_replayed_batches_and_duplicate_events_apply_once() -> None:
    state = MemoryState()
    processor = Processor(state)
    messages = shop_messages(200)
    run(processor, chunks(messages, 40))
    before = {u: p.to_dict() for u, p in state.profiles.items()}
    # Kafka redelivers everything after a crash: nothing changes.
    again = run(processor, chunks(messages, 70))
    assert sum(r.already_applied for r in again) == 200
    assert {u: p.to_dict() for u, p in state.profiles.items()} == before
    # The same event under a new offset (a producer retry) is a duplicate.
    dup = Message(messages[-1].value, messages[-1].topic, messages[-1].partition, 10_000)
    [result] = run(processor, [[dup]])
    assert result.duplicates == 1 and result.processed == 0


@pytest.mark.services
def test_redis_and_memory_states_agree_and_batching_does_not_matter(
    services: Services, redis_client: redis.Redis
) -> None:
    messages = shop_messages(500, seed=3)
    memory = MemoryState()
    run(Processor(memory), chunks(messages, 100))

    snapshots = []
    for size in (1, 37, 500):
        settings = isolated_settings(services)
        state = RedisState(settings)
        run(Processor(state, settings), chunks(messages, size))
        snapshots.append(redis_state_snapshot(redis_client, settings.prefix))
        for user_id, profile in memory.profiles.items():
            expected = {k: v for k, v in profile.to_dict().items() if k not in MODEL_OUTPUTS}
            assert snapshots[-1][f"user:{user_id}"] == expected
        for item_id, row in memory.cooccurrence.neighbours.items():
            assert {k.decode(): v for k, v in snapshots[-1][f"item:{item_id}:next"].items()} == row
    assert snapshots[0] == snapshots[1] == snapshots[2]


@pytest.mark.services
def test_session_neighbours_round_trip_through_redis(services: Services, redis_client: redis.Redis) -> None:
    """Each item's sessions and each session's items in Redis are the memory
    model's, whatever the batch size (lists trimmed to 3 sessions, so that
    trimming happens), and so are the recommendations, reasons included."""
    messages = shop_messages(500, seed=11)
    memory_settings = Settings(sessions_per_item=3, neighbour_weight=2.0, rec_throttle_s=0)
    memory = MemoryState(memory_settings)
    expected = [(r.user_id, r.items) for res in run(Processor(memory, memory_settings), chunks(messages, 50))
                for r in res.recommendations]
    model = memory.session_neighbours
    assert model.sessions and all(len(row) <= 3 for row in model.item_sessions.values())
    assert any(r.similar_sessions for _, items in expected for r in items)
    for size in (1, 50):
        settings = isolated_settings(services, sessions_per_item=3, neighbour_weight=2.0, rec_throttle_s=0)
        results = run(Processor(RedisState(settings), settings), chunks(messages, size))
        snapshot = redis_state_snapshot(redis_client, settings.prefix)
        lists = {key[len("item:"):-len(":sessions")]: {m.decode(): ts for m, ts in row.items()}
                 for key, row in snapshot.items() if key.endswith(":sessions")}
        assert lists == {item: row for item, row in model.item_sessions.items() if row}
        docs = {key[len("session:"):]: doc.decode().split("\t")
                for key, doc in snapshot.items() if key.startswith("session:")}
        assert docs == {sid: items for sid, (items, _) in model.sessions.items()}
        if size == 50:  # the same batches: the same recommendations
            assert [(r.user_id, r.items) for res in results for r in res.recommendations] == expected


@pytest.mark.services
def test_workers_keep_rows_between_batches_and_read_again_what_another_changed(
    services: Services, redis_client: redis.Redis
) -> None:
    """Two workers take turns on one Redis, each keeping the rows it read or
    wrote: recommendations and state are those of workers that read every row
    each batch, trimming included (15 items, 4 neighbours kept)."""
    batches = chunks(shop_messages(600, seed=5), 40)

    def run_two(row_cache_rows: int) -> tuple[list, dict, RedisState]:
        settings = isolated_settings(services, max_neighbours=4, row_cache_rows=row_cache_rows)
        states = [RedisState(settings), RedisState(settings)]
        processors = [Processor(state, settings) for state in states]

        async def go() -> list:
            recs = []
            for i, batch in enumerate(batches):
                # The first worker takes three batches in four: the other's
                # batch changes rows the first has cached.
                result = await processors[1 if i % 4 == 3 else 0].handle(batch)
                recs += [(r.user_id, r.event_id, [(x.item_id, x.score, x.because) for x in r.items])
                         for r in result.recommendations]
            for state in states:
                await state.close()
            return recs

        recs = asyncio.run(go())
        return recs, redis_state_snapshot(redis_client, settings.prefix), states[0]

    cached_recs, cached_state, first = run_two(20_000)
    plain_recs, plain_state, plain = run_two(0)
    assert cached_recs == plain_recs
    assert cached_state == plain_state
    assert plain.rows_cached == 0
    assert first.rows_cached > first.rows_read > 0


@pytest.mark.services
def test_a_conflicting_commit_is_detected_and_the_batch_redone(
    services: Services, redis_client: redis.Redis
) -> None:
    settings = isolated_settings(services)
    state = RedisState(settings)
    processor = Processor(state, settings)
    messages = shop_messages(50)

    async def go() -> None:
        decoded, dead = processor.decode(messages)
        result = await processor.process(decoded, dead)
        # Another worker commits the same partitions meanwhile.
        redis_client.set(f"{settings.prefix}offset:{messages[0].topic}:{messages[0].partition}", 5)
        assert await state.commit(result.view) is False
        redone = await processor.handle(messages)
        assert redone.already_applied > 0
        await state.close()

    asyncio.run(go())


@pytest.mark.services
def test_model_snapshots_round_trip_through_redis(services: Services) -> None:
    from stream.learner import Learner, ModelRow
    from stream.snapshots import SnapshotStore

    settings = isolated_settings(services)
    learner = Learner()
    rows = [ModelRow("user", f"u{i}", f"e{i}", 1.7e9 + i,
                     {"sessions_per_week": i % 7, "purchases_per_view": (i % 3) / 10,
                      "mean_price": 10 + i % 50, "events_per_session": 1 + i % 9})
            for i in range(400)]
    learner.learn(rows)
    models = learner.snapshot()

    async def go() -> None:
        state = RedisState(settings)
        store = SnapshotStore(settings, state.client)
        assert await store.load_newer(0) is None
        await store.save(models.version, models)
        await store.save_learner(learner)
        version, loaded = await store.load_newer(0)
        assert version == models.version == 1
        assert await store.load_newer(version) is None
        x = rows[17].x
        assert loaded.segments.predict_one(x) == models.segments.predict_one(x) is not None
        assert loaded.propensity.predict_one(x) == models.propensity.predict_one(x)
        restored = await store.load_learner()
        assert restored.version == learner.version and restored.updates == learner.updates
        await state.close()

    asyncio.run(go())


@pytest.mark.services
def test_forget_erases_a_user_everywhere_and_expired_users_leave_the_indexes(
    services: Services, redis_client: redis.Redis, tmp_path
) -> None:
    import subprocess
    import sys

    from tests.support import ROOT, settings_env

    settings = isolated_settings(services, neighbour_weight=2.0)  # their sessions are erased too
    prefix = settings.prefix
    messages = shop_messages(200, partitions=2)
    later = [Message(orjson.dumps({"event_id": f"late{p}", "type": "view", "user_id": f"z{p}",
                                   "item_id": "i1", "ts": 1_800_000_000}), "views", p, 10_000)
             for p in range(2)]

    def zsets() -> list:
        return [k for k in redis_client.scan_iter(match=f"{prefix}*:*") if redis_client.type(k) == b"zset"]

    async def go() -> None:
        state = RedisState(settings)
        processor = Processor(state, settings)
        for batch in chunks(messages, 50):
            await processor.handle(batch)
        assert redis_client.exists(f"{prefix}user:u3")
        assert any(redis_client.zscore(k, "u3") is not None for k in zsets())
        sessions = list(redis_client.scan_iter(match=f"{prefix}session:u3#*"))
        assert sessions and any(redis_client.zscore(k, "u3#1") is not None for k in zsets())
        erased, row = await processor.forget("u3")
        assert erased["profile"] == 1 and erased["index_entries"] >= 1
        assert erased["sessions"] == len(sessions)
        assert not any(redis_client.exists(k) for k in sessions)
        assert all(m.decode().split("#")[0] != "u3" for k in zsets() for m in redis_client.zrange(k, 0, -1))
        assert row.kind == "forget" and row.user_id == "u3"
        assert not redis_client.exists(f"{prefix}user:u3") and not redis_client.exists(f"{prefix}recs:u3")
        assert all(redis_client.zscore(k, "u3") is None for k in zsets())
        # A profile that expired (its TTL) leaves the indexes when the sweep meets it.
        redis_client.delete(f"{prefix}user:u5")
        assert any(redis_client.zscore(k, "u5") is not None for k in zsets())
        await processor.handle(later)
        assert all(redis_client.zscore(k, "u5") is None for k in zsets())
        await state.close()

    asyncio.run(go())

    # The script does the same by the shop's id, and says what it erased.
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "forget.py"), "u4", "--no-learner"],
                          env={**os.environ, **settings_env(settings)},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert orjson.loads(done.stdout)["erased"]["profile"] == 1
    assert not redis_client.exists(f"{prefix}user:u4")


@pytest.mark.services
def test_a_late_event_after_its_session_closed_does_not_keep_the_user_in_the_sweep(
    services: Services, redis_client: redis.Redis
) -> None:
    """An event older than the user's latest, arriving after the session was
    closed, puts the user back in the open-sessions index; the next sweep
    must take them out again, not load their profile in every batch."""
    settings = isolated_settings(services)
    index = f"{settings.prefix}open-sessions:0"
    t0 = 1_700_000_000

    def view(event_id: str, user: str, ts: float, offset: int) -> Message:
        event = {"event_id": event_id, "type": "view", "user_id": user, "item_id": "i1", "ts": ts,
                 "session_id": f"{user}-s1"}
        return Message(orjson.dumps(event), "views", 0, offset, user.encode())

    async def go() -> None:
        state = RedisState(settings)
        processor = Processor(state, settings)
        await processor.handle([view("a1", "u1", t0, 0), view("a2", "u1", t0 + 60, 1)])
        await processor.handle([view("b1", "u2", t0 + 7200, 2)])  # u1's session goes quiet
        assert redis_client.zscore(index, "u1") is None
        await processor.handle([view("a0", "u1", t0 + 30, 3)])  # late, within the closed session
        await processor.handle([view("b2", "u2", t0 + 9000, 4)])
        assert redis_client.zscore(index, "u1") is None
        profile = await state.profile("u1")
        assert profile is not None and profile.closed_at == profile.last_seen == t0 + 60
        assert profile.sessions == 1
        await state.close()

    asyncio.run(go())


def test_the_learner_forgets_a_user() -> None:
    from stream.learner import FORGET, Learner, ModelRow

    learner = Learner()
    x = {"sessions_per_week": 1.0, "mean_price": 10.0}
    learner.learn([ModelRow("example", "u1", "e1", 1.7e9, x, 0.5), ModelRow("user", "u1", "e2", 1.7e9, x)])
    assert len(learner.pending) == 1 and "u1" in learner.segments.sample
    learner.learn([ModelRow(FORGET, "u1", "forget:u1", 0.0)])
    assert len(learner.pending) == 0 and "u1" not in learner.segments.sample


@pytest.mark.services
def test_an_older_model_version_never_replaces_a_newer_one(services: Services) -> None:
    from stream.learner import Learner
    from stream.snapshots import SnapshotStore

    settings = isolated_settings(services)

    async def go() -> None:
        state = RedisState(settings)
        store = SnapshotStore(settings, state.client)
        assert await store.save(2, Learner().snapshot())
        assert not await store.save(2, Learner().snapshot())  # a late save of the same number
        assert not await store.save(1, Learner().snapshot())
        assert await store.version() == 2
        assert await store.save(3, Learner().snapshot()) and await store.version() == 3
        await state.close()

    asyncio.run(go())


@pytest.mark.services
def test_a_save_in_the_background_keeps_versions_and_the_learner(services: Services) -> None:
    """The worker's own path: a forked child saves, under the same rule."""
    import time

    from stream.learner import Learner
    from stream.snapshots import FAILED, NEWER_THERE, SAVED, SnapshotStore

    settings = isolated_settings(services)

    def saved(store: SnapshotStore, version: int, learner: Learner, with_learner: bool = True) -> int:
        pending = store.save_in_background(version, learner.snapshot(),
                                           learner if with_learner else None)
        deadline = time.monotonic() + 30
        while (outcome := pending.outcome()) is None and time.monotonic() < deadline:
            time.sleep(0.01)
        return FAILED if outcome is None else outcome

    async def go() -> None:
        state = RedisState(settings)
        store = SnapshotStore(settings, state.client)
        learner = Learner()
        learner.updates = 7
        assert saved(store, 2, learner) == SAVED and await store.version() == 2
        assert (await store.load_learner()).updates == 7
        learner.updates = 8
        assert saved(store, 2, learner) == NEWER_THERE  # a late save of the same number
        assert saved(store, 1, learner) == NEWER_THERE
        assert (await store.load_learner()).updates == 7  # not the late save's learner
        assert saved(store, 3, learner) == SAVED and (await store.load_newer(2))[0] == 3
        learner.updates = 9  # models alone: the learner's state stays as last saved
        assert saved(store, 4, learner, with_learner=False) == SAVED
        assert (await store.load_newer(3))[0] == 4 and (await store.load_learner()).updates == 8
        await state.close()

    asyncio.run(go())
