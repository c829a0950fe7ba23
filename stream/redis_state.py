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
``item:{item_id}:sessions``      sorted set: session -> latest event time it
                                 touched the item, the newest
                                 ``SHOPSTREAM_SESSIONS_PER_ITEM`` kept
``session:{user_id}#{n}``        the user's n-th session: its distinct items,
                                 latest last, tab-separated; expires as a
                                 profile does, after the session's last event
``row-versions``                 hash: item -> version of its neighbour row
                                 (the commit that last changed it; see
                                 :mod:`stream.row_cache`)
``offset:{topic}:{partition}``   last input offset applied to this state
``open-sessions:{partition}``    sorted set: user -> last event time, for users
                                 whose session has not been closed yet
``churn-checks:{partition}``     sorted set: user -> event time at which their
                                 silence would make them a churn risk
``campaign-outcomes``            hash: the campaign totals, "kind, campaign,
                                 segment, day, group, stat" -> integer
                                 (:mod:`stream.campaigns`)
``offers-sent``                  hash: "campaign, day" -> treated offers of
                                 budgeted campaigns (:mod:`stream.targeting`)
``campaign-day``                 the last day whose close was summarised on
                                 ``campaign-results``
===============================  =============================================

A batch is read with two round trips (users, offsets and the users whose
session has gone quiet, then a Lua script returning the rows of the items
they touch as one JSON document, except those still at the version this
worker holds, with the sessions that share those items; a third fetches the
quiet users' profiles when there are any)
and written
with one Lua script that applies every change and stores the batch's offsets
atomically, but only if the offsets are still those read at the start of the
batch: if another worker committed the same partitions meanwhile (a
rebalance), nothing is written and the batch is processed again.
"""

from __future__ import annotations

import itertools
import sys
import uuid
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable, Iterator, Sequence

import orjson
import redis.asyncio as aioredis
from redis.exceptions import WatchError

from models.neighbours import Neighbours
from models.popularity import Popularity
from models.profile import UserProfile
from models.session_neighbours import SessionNeighbours
from stream.config import Settings
from stream.events import Event
from stream.outputs import UserRecommendations
from stream.redis_scripts import COMMIT_BATCH, LOAD_ROWS
from stream.voice import VoiceDocs
from stream.row_cache import RowCache
from stream import demand_redis
from stream.demand import DemandBook, Forecast
from stream.state import BatchView, TopicPartition, new_cooccurrence, new_demand_book, new_session_neighbours


class RedisKeys:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.occurrences = f"{prefix}item-occurrences"
        self.popular = f"{prefix}popular"
        self.row_versions = f"{prefix}row-versions"
        self.campaign_outcomes = f"{prefix}campaign-outcomes"
        self.campaign_day = f"{prefix}campaign-day"
        self.offers_sent = f"{prefix}offers-sent"

    def user(self, user_id: str) -> str:
        return f"{self.prefix}user:{user_id}"

    def user_voice(self, user_id: str) -> str:
        return f"{self.prefix}voice:user:{user_id}"

    def texts(self, user_id: str) -> str:
        return f"{self.prefix}text:{user_id}"

    def item_voice(self, item_id: str) -> str:
        return f"{self.prefix}voice:item:{item_id}"

    def recs(self, user_id: str) -> str:
        return f"{self.prefix}recs:{user_id}"

    def neighbours(self, item_id: str) -> str:
        return f"{self.prefix}item:{item_id}:next"

    def item_sessions(self, item_id: str) -> str:
        return f"{self.prefix}item:{item_id}:sessions"

    def session(self, session_id: str) -> str:
        return f"{self.prefix}session:{session_id}"

    def open_sessions(self, partition: int) -> str:
        return f"{self.prefix}open-sessions:{partition}"

    def churn_checks(self, partition: int) -> str:
        return f"{self.prefix}churn-checks:{partition}"

    def offset(self, tp: TopicPartition) -> str:
        return f"{self.prefix}offset:{tp[0]}:{tp[1]}"


# Quiet sessions closed, and churn checks made, per partition and batch at most
# (the rest wait for the next batch).
CLOSE_PER_BATCH = 500


def _glob(text: str) -> str:
    """``text`` matched literally in a SCAN pattern."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def _pairs(flat: list | dict) -> Iterator[tuple[str, float]]:
    """(member, score) pairs of a flat WITHSCORES reply (Lua encodes [] as {})."""
    if not flat:
        return iter(())
    it = iter(flat)
    return zip(it, map(float, it))


@dataclass
class BatchRead:
    """What a batch read, for its commit to check: the offsets, and the
    version of each row it read (those that had one)."""

    offsets: dict[TopicPartition, bytes | None]
    row_versions: dict[str, str]
    demand: "demand_redis.Loaded | None" = None


def connect(url: str) -> aioredis.Redis:
    return aioredis.Redis.from_url(
        url, socket_connect_timeout=2.0, socket_timeout=10.0, health_check_interval=10
    )


class RedisState:
    def __init__(self, settings: Settings, client: aioredis.Redis | None = None) -> None:
        self.settings = settings
        self.client = client or connect(settings.redis_url)
        self.keys = RedisKeys(settings.prefix)
        # Rows are read for the items recommendations start from.
        self.horizon = max(new_cooccurrence(settings).horizon, new_session_neighbours(settings).horizon)
        self._load_rows = self.client.register_script(LOAD_ROWS)
        self._commit_batch = self.client.register_script(COMMIT_BATCH)
        self.rows = RowCache(settings.row_cache_rows)
        self.demand_keys = demand_redis.DemandKeys(settings.prefix)
        self.demand_days = new_demand_book(settings) or DemandBook(settings.timezone)  # its clock only
        self.rows_read = self.rows_cached = 0  # rows of batches, from Redis or from the cache
        self._commits = (f"{uuid.uuid4().hex[:12]}:{n}" for n in itertools.count(1))

    async def ping(self) -> bool:
        return bool(await self.client.ping())

    async def load(
        self, events: Sequence[Event], partitions: Sequence[TopicPartition], close_before: float,
        check_until: float, stock_items: Sequence[str] = (),
    ) -> BatchView:
        keys = self.keys
        users = list(dict.fromkeys(e.user_id for e in events))
        offset_keys = [keys.offset(tp) for tp in partitions]
        numbers = sorted({p for _, p in partitions})
        demand_series: list[str] = []
        today: int | None = None
        if self.settings.demand:  # in the same round trip (stream/demand_redis.py)
            today = self.demand_days.closing_day(check_until)
            demand_series = demand_redis.batch_series(events, stock_items)

        def queue_demand(pipe: Any) -> None:
            pipe.eval(demand_redis.LOAD, 0, demand_redis.load_request(
                self.demand_keys, demand_series, head=True, today=today))

        offsets_raw, profiles_raw, recs_raw, campaign_day, sent, quiet, demand_replies = await self._read_start(
            offset_keys, users, numbers, close_before, check_until,
            queue_demand if self.settings.demand else None)
        # Two replies per partition: quiet sessions, then churn checks due.
        owners = [p for p in numbers for _ in (0, 1)]
        due_ids = list(dict.fromkeys(
            (p, m.decode()) for p, members in zip(owners, quiet) for m in members
        ))
        due: dict[str, tuple[int, UserProfile]] = {}
        gone: list[tuple[int, str]] = []  # expired or erased: their index entries go too
        if due_ids:
            docs = await self._read_docs([keys.user(u) for _, u in due_ids])
            for (partition, user_id), raw in zip(due_ids, docs):
                if raw is not None:
                    due[user_id] = (partition, UserProfile.from_dict(orjson.loads(raw)))
                else:
                    gone.append((partition, user_id))

        profiles: dict[str, UserProfile] = {}
        last_published: dict[str, float] = {}
        for user_id, raw, recs in zip(users, profiles_raw, recs_raw):
            if raw is not None:
                profiles[user_id] = UserProfile.from_dict(orjson.loads(raw))
            if recs is not None:
                last_published[user_id] = orjson.loads(recs)["published_ts"]
        # Rows are read only to score recommendations: the batch's items and
        # the items each user's recommendations start from.
        horizon = self.horizon
        items = list(
            dict.fromkeys(
                [e.item_id for e in events]
                + [i for p in profiles.values() for i in p.recent[-horizon:]]
            )
        )
        cached = [self.rows.get(i) for i in items]
        request = {
            "rows": [keys.neighbours(i) for i in items],
            "occ": keys.occurrences,
            "pop": keys.popular,
            "ver": keys.row_versions,
            "items": items,
            "known": [entry[0] if entry else "" for entry in cached],
            "top": Popularity.keep,
            "sess": [keys.item_sessions(i) for i in items] if self.settings.neighbour_weight > 0 else [],
            "sess_prefix": f"{keys.prefix}session:",
        }
        reply = await self._read_rows(request)
        cooccurrence = new_cooccurrence(self.settings)
        popularity = Popularity()
        for member, score in _pairs(reply["top"]):
            popularity.add(member, score)
        row_versions: dict[str, str] = {}
        for item_id, row, version, entry, occ, pop in zip(
            items, reply["rows"], reply["ver"], cached, reply["occ"], reply["pop"]
        ):
            if row is False:  # unchanged since this worker cached it
                assert entry is not None
                cooccurrence.neighbours[item_id] = entry[1].copy()
                self.rows_cached += 1
            elif row:
                neighbours = Neighbours.from_flat(row)
                cooccurrence.neighbours[item_id] = neighbours
                self.rows.put(item_id, version, neighbours.copy())
                self.rows_read += 1
            if version:
                row_versions[item_id] = version
            if occ:
                cooccurrence.occurrences[item_id] = float(occ)
            if pop and item_id not in popularity.scores:
                popularity.add(item_id, float(pop))
        session_neighbours, sessions_gone = self._sessions(items, reply)
        demand = loaded = None
        if self.settings.demand:
            demand, loaded = await self._demand(demand_series, demand_replies[0], today)
        return BatchView(
            profiles=profiles,
            cooccurrence=cooccurrence,
            popularity=popularity,
            session_neighbours=session_neighbours,
            sessions_gone=sessions_gone,
            offsets={tp: int(raw) for tp, raw in zip(partitions, offsets_raw) if raw is not None},
            last_published=last_published,
            due=due,
            closed=set(gone),
            churn_checks=dict.fromkeys(gone),
            campaign_day=None if campaign_day is None else int(campaign_day),
            offers_sent={k.decode(): int(v) for k, v in sent.items()},
            token=BatchRead({tp: raw for tp, raw in zip(partitions, offsets_raw)}, row_versions, loaded),
            demand=demand,
        )

    # The reads and the write, apart from what is made of them: a store on
    # Redis Cluster (stream/redis_cluster.py) does these its own way.

    async def _read_start(self, offset_keys: list[str], users: list[str], numbers: list[int],
                          close_before: float, check_until: float,
                          extra: Callable[[Any], None] | None = None) -> tuple[list, list, list, Any, dict, list, list]:
        """The batch's offsets, its users' profiles and recommendations, the
        last campaign day closed and the offers sent per day, per partition
        the quiet sessions and the churn checks due, and the replies of what
        ``extra`` queued on the same pipeline."""
        keys = self.keys
        pipe = self.client.pipeline(transaction=False)
        pipe.mget(offset_keys or [keys.offset(("-", 0))])
        pipe.mget([keys.user(u) for u in users] or [keys.user("-")])
        pipe.mget([keys.recs(u) for u in users] or [keys.recs("-")])
        pipe.get(keys.campaign_day)
        pipe.hgetall(keys.offers_sent)
        for partition in numbers:
            pipe.zrangebyscore(keys.open_sessions(partition), "-inf", f"({close_before!r}",
                               start=0, num=CLOSE_PER_BATCH)
            pipe.zrangebyscore(keys.churn_checks(partition), "-inf", repr(check_until),
                               start=0, num=CLOSE_PER_BATCH)
        if extra is not None:
            extra(pipe)
        offsets_raw, profiles_raw, recs_raw, campaign_day, sent, *rest = await pipe.execute()
        cut = 2 * len(numbers)
        return offsets_raw, profiles_raw, recs_raw, campaign_day, sent, rest[:cut], rest[cut:]

    async def _demand(self, series: list[str], reply: list, today: int | None
                      ) -> tuple[DemandBook, demand_redis.Loaded]:
        """The demand book of this batch: its series, and those due for a day
        close with the last closing day's views and carts (one more round trip,
        only when a day closes)."""
        first = demand_redis.read(reply)
        head, rest = first.head, first.series
        due = [m.decode() for m in head[2]] if len(head) > 2 else []
        partial, due = len(due) > demand_redis.CLOSE_PER_BATCH, due[:demand_redis.CLOSE_PER_BATCH]
        loaded_already = set(series)
        more = [k for k in due if k not in loaded_already]
        signals = None
        closed = demand_redis.closed_through(head[0])
        if today is not None and (series or more) and (due or closed is None or today - 1 > closed):  # a day may close
            second = demand_redis.read(await self.client.eval(demand_redis.LOAD, 0, demand_redis.load_request(
                self.demand_keys, more, signals_day=today - 1, signal_series=series + more)), series + more)
            rest, signals = rest + second.series, second.signals
        book = new_demand_book(self.settings)
        assert book is not None
        book.journaled()
        loaded = demand_redis.build(book, self.demand_keys, head, series + more, rest)
        book.partial_close = partial
        if signals is not None:
            assert today is not None
            book.signals[today - 1] = signals
        return book, loaded

    async def _read_docs(self, names: list[str]) -> list[bytes | None]:
        return await self.client.mget(names)

    async def _read_rows(self, request: dict) -> dict:
        """``LOAD_ROWS``'s reply to ``request``."""
        return orjson.loads(await self._load_rows(args=[orjson.dumps(request)]))

    async def _write(self, batch: dict, docs: list[bytes]) -> list | None:
        """``COMMIT_BATCH``: None if the offsets moved, else [1, flags]."""
        return await self._commit_batch(args=[orjson.dumps(batch), *docs]) or None

    def _sessions(self, items: list[str], reply: dict) -> tuple[SessionNeighbours, list[tuple[str, str]]]:
        """The session-neighbour state of the batch's items; the listed
        sessions whose items are gone (expired or erased), to unlist."""
        model = new_session_neighbours(self.settings)
        docs: dict[str, str | None] = dict(zip(reply["sids"] or (), reply["sdocs"] or ()))
        for sid, doc in docs.items():
            if doc:
                model.load(sid, list(map(sys.intern, doc.split("\t"))))
        gone = []
        for item_id, flat in zip(items, reply["srows"] or ()):
            row = {}
            for sid, ts in _pairs(flat):
                if docs.get(sid):
                    row[sys.intern(sid)] = ts
                else:
                    gone.append((self.keys.item_sessions(item_id), sid))
            if row:
                model.list_sessions(item_id, row)
        return model, gone

    async def commit(self, view: BatchView) -> bool:
        keys = self.keys
        pairs = view.pairs
        occurrences: dict[str, float] = defaultdict(float)
        for item_id, w in view.occurrences:
            occurrences[item_id] += w
        popular: dict[str, float] = defaultdict(float)
        for item_id, w in view.popular:
            popular[item_id] += w
        # Documents travel as arguments of their own, each key naming its
        # argument: inside the JSON they would be escaped and parsed once more.
        # orjson writes a dataclass as its to_dict() would be written, 10x faster.
        dirty = list(view.dirty_users)
        docs = [orjson.dumps(view.profiles[u]) for u in dirty]
        users = [(keys.user(u), 2 + i) for i, u in enumerate(dirty)]
        recs = []
        for user_id, latest in view.latest.items():
            doc = latest.to_dict()
            doc["published_ts"] = view.published.get(user_id, view.last_published.get(user_id))
            recs.append((keys.recs(user_id), 2 + len(docs)))
            docs.append(orjson.dumps(doc))
        read: BatchRead = view.token
        touched = list(view.touched_items)
        # Rows this batch read whole: if still at the version read, the row
        # after the commit is the view's, trimmed as the script trims.
        checked = [i for i in touched if i in read.row_versions]
        token = next(self._commits)
        batch = {
            "offsets": [
                (keys.offset(tp), (read.offsets.get(tp) or b"").decode(), str(offset))
                for tp, offset in view.new_offsets.items()
            ],
            "ttl": self.settings.user_ttl_s,
            "users": users,
            "recs": recs,
            "pairs": [(keys.neighbours(s), t, repr(w)) for (s, t), w in pairs.items()],
            "occ_key": keys.occurrences,
            "occ": [(i, repr(w)) for i, w in occurrences.items()],
            "pop_key": keys.popular,
            "pop": [(i, repr(w)) for i, w in popular.items()],
            "opened": [(keys.open_sessions(p), u, repr(ts)) for (p, u), ts in view.opened.items()],
            "closed": [(keys.open_sessions(p), u) for p, u in view.closed],
            "checks": [(keys.churn_checks(p), u, "" if t is None else repr(t))
                       for (p, u), t in view.churn_checks.items()],
            "trim": [keys.neighbours(s) for s in touched],
            "keep": self.settings.max_neighbours,
            "ver_key": keys.row_versions,
            "token": token,
            "touched": touched,
            "checked": [(i, read.row_versions[i]) for i in checked],
            "sess_docs": [(keys.session(sid), "\t".join(items)) for sid, items in view.session_docs.items()],
            "sess_gone": view.sessions_gone,
            "sess_touches": [(keys.item_sessions(item), sid, repr(ts))
                             for item, sid, ts in view.session_touches],
            "sess_keep": self.settings.sessions_per_item,
            "camp_key": keys.campaign_outcomes,
            "camp": [(name, str(n)) for name, n in view.campaign_counts.items() if n],
            "sent_key": keys.offers_sent,
            "sent": [(name, str(n)) for name, n in view.offers_added.items() if n],
            "day_key": keys.campaign_day,
            "day": "" if view.new_campaign_day is None else str(view.new_campaign_day),
        }
        # Documents every worker may rewrite (demand series and the shop's rhythm,
        # items' satisfaction): written only if still as this batch read them.
        cas: list[tuple[str, str]] = []
        if view.demand is not None and read.demand is not None:
            batch["demand"], cas = demand_redis.commit_args(view.demand, self.demand_keys, read.demand)
        if view.voice is not None:
            batch["voice"] = self._voice_writes(view.voice, docs)
            cas += [(self.keys.item_voice(i), (view.voice.items_read.get(i) or b"").decode())
                    for i in sorted(view.voice.dirty_items)]
        if cas:
            batch["cas"] = cas
        reply = await self._write(batch, docs)
        if not reply:
            return False
        self._remember_rows(view, token, checked, reply[1])
        return True

    def _voice_writes(self, voice: VoiceDocs, docs: list[bytes]) -> list[tuple[str, int, int]]:
        """The voice documents a batch changed, as (key, argument, expiry) of the
        commit script; their documents appended to ``docs``."""
        keys, settings = self.keys, self.settings
        writes = []

        def put(key: str, doc: object, ttl: int) -> None:
            writes.append((key, 2 + len(docs), ttl))
            docs.append(orjson.dumps(doc))

        for user_id in voice.dirty_users:
            put(keys.user_voice(user_id), voice.users[user_id], settings.user_ttl_s)
            texts = voice.texts.get(user_id)
            put(keys.texts(user_id), texts or [], settings.text_ttl_s if texts else 0)
        for item_id in voice.dirty_items:
            put(keys.item_voice(item_id), voice.items[item_id], settings.user_ttl_s)
        return writes

    async def load_voice(self, users: Sequence[str], items: Sequence[str]) -> VoiceDocs:
        keys = self.keys
        users, items = list(users), list(items)
        # A few keys a batch of texts (rare next to clicks): one MGET each kind.
        voices = await self._read_docs([keys.user_voice(u) for u in users]) if users else []
        texts = await self._read_docs([keys.texts(u) for u in users]) if users else []
        item_docs = await self._read_docs([keys.item_voice(i) for i in items]) if items else []
        profiles = await self._read_docs([keys.user(u) for u in users]) if users else []
        docs = VoiceDocs()
        for user_id, voice, text, profile in zip(users, voices, texts, profiles):
            if voice is not None:
                docs.users[user_id] = orjson.loads(voice)
            if text is not None:
                docs.texts[user_id] = orjson.loads(text)
            if profile is not None:
                docs.profiles[user_id] = UserProfile.from_dict(orjson.loads(profile))
        for item_id, doc in zip(items, item_docs):
            docs.items_read[item_id] = doc
            if doc is not None:
                docs.items[item_id] = orjson.loads(doc)
        return docs

    async def item_voice(self, item_id: str) -> dict | None:
        raw = await self.client.get(self.keys.item_voice(item_id))
        return None if raw is None else orjson.loads(raw)

    async def user_voice(self, user_id: str) -> dict | None:
        raw = await self.client.get(self.keys.user_voice(user_id))
        return None if raw is None else orjson.loads(raw)

    async def forget_voice(self, user_id: str) -> dict[str, int]:
        """The user's voice and texts go; their snippets leave the items they
        reviewed (one transaction per item, retried if a batch wrote it meanwhile)."""
        from stream.satisfaction import forget_user

        keys = self.keys
        user = await self.user_voice(user_id)
        snippets = 0
        for item_id in (user or {}).get("items", []):
            snippets += await self._forget_snippets(keys.item_voice(item_id), user_id, forget_user)
        voice, texts = await self.client.delete(keys.user_voice(user_id)), 0
        raw = await self.client.get(keys.texts(user_id))
        if raw is not None:
            texts = len(orjson.loads(raw))
        await self.client.delete(keys.texts(user_id))
        return {"voice": voice, "texts": texts, "snippets": snippets}

    async def _forget_snippets(self, key: str, user_id: str, forget_user: Any) -> int:
        """Take the user's snippets out of one item's document, in a
        transaction retried if a batch wrote the document meanwhile."""
        async with self.client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    raw = await pipe.get(key)
                    if raw is None:
                        return 0
                    doc = orjson.loads(raw)
                    found = forget_user(doc, user_id)
                    if not found:
                        return 0
                    ttl = await pipe.ttl(key)
                    pipe.multi()
                    pipe.set(key, orjson.dumps(doc), ex=ttl if ttl > 0 else self.settings.user_ttl_s)
                    await pipe.execute()
                    return found
                except WatchError:
                    continue

    def _remember_rows(self, view: BatchView, token: str, checked: list[str], flags: list[int]) -> None:
        """Cache the rows the commit wrote as they now are in Redis (trimmed as
        the script trims); drop those another worker had changed meanwhile."""
        keep = self.settings.max_neighbours
        for item, still_read in zip(checked, flags):
            if still_read:
                self.rows.put(item, token, view.cooccurrence.neighbours[item].best(keep))
            else:
                self.rows.drop(item)

    async def forget(self, user_id: str) -> dict[str, int]:
        """Erase one user's keys and index entries; how many of each were there."""
        keys = self.keys
        indexes = []
        for pattern in ("open-sessions:*", "churn-checks:*"):
            indexes += [key async for key in self.client.scan_iter(match=f"{keys.prefix}{pattern}")]
        # The user's sessions, and the item lists that name them.
        head = keys.session(f"{user_id}#")
        mine = [key async for key in self.client.scan_iter(match=f"{_glob(head)}[0-9]*")
                if key.decode()[len(head):].isdigit()]  # not another user's, named "{user_id}#..."
        docs = await self.client.mget(mine) if mine else []
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(keys.user(user_id))
        pipe.delete(keys.recs(user_id))
        for index in indexes:
            pipe.zrem(index, user_id)
        prefix = len(keys.session(""))
        for key, doc in zip(mine, docs):
            sid = key.decode()[prefix:]
            for item_id in (doc.decode().split("\t") if doc else ()):
                pipe.zrem(keys.item_sessions(item_id), sid)
            pipe.delete(key)
        profile, recs, *removed = await pipe.execute()
        return {"profile": profile, "recommendations": recs,
                "index_entries": sum(removed[: len(indexes)]), "sessions": len(mine)}

    async def campaign_counts(self) -> dict[str, int]:
        raw = await self.client.hgetall(self.keys.campaign_outcomes)
        return {k.decode(): int(v) for k, v in raw.items()}

    async def profile(self, user_id: str) -> UserProfile | None:
        raw = await self.client.get(self.keys.user(user_id))
        return None if raw is None else UserProfile.from_dict(orjson.loads(raw))

    async def all_profiles(self) -> AsyncIterator[UserProfile]:
        async for key in self.client.scan_iter(match=f"{self.keys.prefix}user:*", count=1000):
            raw = await self.client.get(key)
            if raw is not None:
                yield UserProfile.from_dict(orjson.loads(raw))

    async def demand_forecast(self, series: str) -> Forecast | None:
        """A series' next days as of the last day closed (``item:{id}``, ``category:{name}``)."""
        reply = demand_redis.read(await self.client.eval(demand_redis.LOAD, 0, demand_redis.load_request(
            self.demand_keys, [series], head=True)))
        book = new_demand_book(self.settings) or DemandBook(self.settings.timezone)
        demand_redis.build(book, self.demand_keys, reply.head, [series], reply.series)
        return book.forecast(series)

    async def demand_trending(self, kind: str = "item", n: int = 20) -> tuple[int | None, list[dict]]:
        """``DemandBook.trending`` over the series with open days (at most
        ``TRENDING_READ`` of them, those open longest first)."""
        keys = self.demand_keys
        pipe = self.client.pipeline(transaction=False)
        demand_redis.queue_head(pipe, keys, None)
        pipe.zrangebyscore(keys.pending, "-inf", "+inf", start=0, num=demand_redis.TRENDING_READ)
        shop, totals, pending = await pipe.execute()
        series = [k for k in (m.decode() for m in pending) if k.startswith(kind + ":")]
        replies = demand_redis.read(await self.client.eval(
            demand_redis.LOAD, 0, demand_redis.load_request(keys, series))).series if series else []
        book = new_demand_book(self.settings) or DemandBook(self.settings.timezone)
        demand_redis.build(book, keys, [shop, totals], series, replies)
        return book.trending(kind, n)

    async def recommendations(self, user_id: str) -> UserRecommendations | None:
        raw = await self.client.get(self.keys.recs(user_id))
        return None if raw is None else UserRecommendations.from_dict(orjson.loads(raw))

    async def close(self) -> None:
        await self.client.aclose()
