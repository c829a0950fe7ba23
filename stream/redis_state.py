"""State in Redis, shared by all workers.

Keys (all under ``SHOPSTREAM_PREFIX``, ``ss:`` by default):

===============================  =============================================
``user:{user_id}``               the user's profile (JSON), expires after the
                                 retention (``SHOPSTREAM_USER_TTL_DAYS``)
``recs:{user_id}``               latest recommendations (JSON), same expiry
``item:{item_id}:next``          sorted set: neighbour item -> weight, trimmed
                                 to ``SHOPSTREAM_MAX_NEIGHBOURS``
``item-occurrences``             hash: item -> weighted occurrences
``popular``                      sorted set: item -> decayed popularity
``offset:{topic}:{partition}``   last input offset applied to this state
===============================  =============================================

A batch is read with two pipelined round trips (users and offsets, then the
rows of the items they touch) and written with one MULTI/EXEC that also
stores the batch's offsets. The offsets are WATCHed from the start of the
batch, so if another worker commits the same partitions meanwhile (a
rebalance), the transaction fails and the batch is processed again.
"""

from __future__ import annotations

from collections import defaultdict
from typing import AsyncIterator, Sequence

import orjson
import redis.asyncio as aioredis
from redis.exceptions import WatchError

from models.popularity import Popularity
from models.profile import UserProfile
from stream.config import Settings
from stream.events import Event
from stream.outputs import UserRecommendations
from stream.state import BatchView, TopicPartition, new_cooccurrence


class RedisKeys:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.occurrences = f"{prefix}item-occurrences"
        self.popular = f"{prefix}popular"

    def user(self, user_id: str) -> str:
        return f"{self.prefix}user:{user_id}"

    def recs(self, user_id: str) -> str:
        return f"{self.prefix}recs:{user_id}"

    def neighbours(self, item_id: str) -> str:
        return f"{self.prefix}item:{item_id}:next"

    def offset(self, tp: TopicPartition) -> str:
        return f"{self.prefix}offset:{tp[0]}:{tp[1]}"


def connect(url: str) -> aioredis.Redis:
    return aioredis.Redis.from_url(
        url, socket_connect_timeout=2.0, socket_timeout=10.0, health_check_interval=10
    )


class RedisState:
    def __init__(self, settings: Settings, client: aioredis.Redis | None = None) -> None:
        self.settings = settings
        self.client = client or connect(settings.redis_url)
        self.keys = RedisKeys(settings.prefix)

    async def ping(self) -> bool:
        return bool(await self.client.ping())

    async def load(self, events: Sequence[Event], partitions: Sequence[TopicPartition]) -> BatchView:
        keys = self.keys
        users = list(dict.fromkeys(e.user_id for e in events))
        offset_keys = [keys.offset(tp) for tp in partitions]
        watcher = self.client.pipeline(transaction=True)
        try:
            if offset_keys:
                await watcher.watch(*offset_keys)
            pipe = self.client.pipeline(transaction=False)
            if offset_keys:
                pipe.mget(offset_keys)
            if users:
                pipe.mget([keys.user(u) for u in users])
                pipe.mget([keys.recs(u) for u in users])
            pipe.zrevrange(keys.popular, 0, Popularity.keep - 1, withscores=True)
            replies = list(await pipe.execute())
            offsets_raw = replies.pop(0) if offset_keys else []
            profiles_raw = replies.pop(0) if users else []
            recs_raw = replies.pop(0) if users else []
            top = replies.pop(0)

            profiles: dict[str, UserProfile] = {}
            for user_id, raw in zip(users, profiles_raw):
                if raw is not None:
                    profiles[user_id] = UserProfile.from_dict(orjson.loads(raw))
            last_published: dict[str, float] = {}
            for user_id, raw in zip(users, recs_raw):
                if raw is not None:
                    last_published[user_id] = orjson.loads(raw)["published_ts"]
            items = list(
                dict.fromkeys(
                    [e.item_id for e in events] + [i for p in profiles.values() for i in p.recent]
                )
            )
            cooccurrence = new_cooccurrence(self.settings)
            popularity = Popularity()
            for member, score in top:
                popularity.add(member.decode(), score)
            if items:
                pipe = self.client.pipeline(transaction=False)
                for item_id in items:
                    pipe.zrange(keys.neighbours(item_id), 0, -1, withscores=True)
                pipe.hmget(keys.occurrences, items)
                pipe.zmscore(keys.popular, items)
                replies = await pipe.execute()
                for item_id, row in zip(items, replies):
                    if row:
                        cooccurrence.neighbours[item_id] = {m.decode(): s for m, s in row}
                for item_id, occ in zip(items, replies[-2]):
                    if occ is not None:
                        cooccurrence.occurrences[item_id] = float(occ)
                for item_id, score in zip(items, replies[-1]):
                    if score is not None and item_id not in popularity.scores:
                        popularity.add(item_id, score)
        except BaseException:
            await watcher.reset()
            raise
        return BatchView(
            profiles=profiles,
            cooccurrence=cooccurrence,
            popularity=popularity,
            offsets={tp: int(raw) for tp, raw in zip(partitions, offsets_raw) if raw is not None},
            last_published=last_published,
            token=watcher,
        )

    async def commit(self, view: BatchView) -> bool:
        keys = self.keys
        ttl = self.settings.user_ttl_s
        pipe = view.token
        try:
            pipe.multi()
            for user_id in view.dirty_users:
                pipe.set(keys.user(user_id), orjson.dumps(view.profiles[user_id].to_dict()), ex=ttl)
            pairs: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
            for source, target, w in view.pairs:
                pairs[source][target] += w
            for source, row in pairs.items():
                for target, w in row.items():
                    pipe.zincrby(keys.neighbours(source), w, target)
            occurrences: dict[str, float] = defaultdict(float)
            for item_id, w in view.occurrences:
                occurrences[item_id] += w
            for item_id, w in occurrences.items():
                pipe.hincrbyfloat(keys.occurrences, item_id, w)
            for item_id, inc in view.popular:
                pipe.zincrby(keys.popular, inc, item_id)
            m = self.settings.max_neighbours
            for source in pairs:
                pipe.zremrangebyrank(keys.neighbours(source), 0, -(m + 1))
            for user_id, recs in view.latest.items():
                doc = recs.to_dict()
                doc["published_ts"] = view.published.get(user_id, view.last_published.get(user_id))
                pipe.set(keys.recs(user_id), orjson.dumps(doc), ex=ttl)
            for tp, offset in view.new_offsets.items():
                pipe.set(keys.offset(tp), offset)
            await pipe.execute()
            return True
        except WatchError:
            return False
        finally:
            await pipe.reset()

    async def profile(self, user_id: str) -> UserProfile | None:
        raw = await self.client.get(self.keys.user(user_id))
        return None if raw is None else UserProfile.from_dict(orjson.loads(raw))

    async def all_profiles(self) -> AsyncIterator[UserProfile]:
        async for key in self.client.scan_iter(match=f"{self.keys.prefix}user:*", count=1000):
            raw = await self.client.get(key)
            if raw is not None:
                yield UserProfile.from_dict(orjson.loads(raw))

    async def recommendations(self, user_id: str) -> UserRecommendations | None:
        raw = await self.client.get(self.keys.recs(user_id))
        return None if raw is None else UserRecommendations.from_dict(orjson.loads(raw))

    async def close(self) -> None:
        await self.client.aclose()
