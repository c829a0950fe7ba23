"""State on Redis Cluster (``SHOPSTREAM_REDIS_CLUSTER=1``), exactly once
without cross-slot transactions.

Keys are those of :mod:`stream.redis_state` with a hash tag after the prefix
that says which slot they live in:

=================================  ===========================================
``{u<n>}:user:…``, ``recs:…``,     a user's keys, with their input partition
``session:…``, ``open-sessions``,  ``n`` (Kafka's default partitioner:
``churn-checks``                   murmur2 of the user id)
``{i<b>}:item:…:next``,            an item's row, with its occurrences and
``item-occurrences``,              version in its bucket ``b`` (CRC32 of the
``row-versions``, ``…:sessions``   id modulo ``ITEM_BUCKETS``)
``{pop}:popular``                  decayed popularity, one key
``{camp}:campaign-outcomes``,      the campaigns' totals, the offers sent per
``offers-sent``, ``campaign-day``  day and the last campaign day closed
``{ctl}:offset:…``, ``journal:…``, the input offsets, the journals of
``pending``, ``jseq``              batches not yet applied everywhere, and
                                   each partition's journal number
``{…}:fence``                      per slot group: partition -> the number of
                                   the last journal of it applied here
=================================  ===========================================

A batch's commit is three steps. (1) One script in the ``{ctl}`` slot checks
that the batch's offsets, and its partitions' journal numbers, are still
those it read (the numbers catch a journal that moved no offset: a sweep, a
batch delivered again), sets the new offsets, numbers
the batch's journal once per partition (``jseq``), and stores the journal
(the whole batch as the single-Redis commit would write it) and marks it
pending for each partition, all atomically: the batch is committed here.
(2) The journal is split by slot group and each part is applied by one
script in its slot (the single-Redis ``COMMIT_BATCH`` behind a fence): the
part is skipped if the slot's fence already holds the journal's number for
its partitions, else applied and the fence set, atomically. (3) The journal
is cleared. A batch's load reads its offsets and pending journals in one
script; a pending journal (its worker crashed, or lost the partitions, after
step 1) is applied and cleared before the batch reads anything else.

Why the fence is enough: a new journal of a partition is committed only by a
batch that read no journal of it pending and whose read number is still the
partition's, so every earlier journal of it is applied everywhere by then: in every slot a partition's
journals are applied in their order, and a late second attempt (a worker
that read a journal pending just before its owner finished it) finds a
number at least as high in the fence and does nothing.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections import defaultdict
from dataclasses import replace
from typing import Any, AsyncIterator

import orjson
from kafka.partitioner.default import murmur2
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import NoScriptError

from stream.config import Settings
from stream.redis_scripts import COMMIT_BATCH
from stream.redis_state import CLOSE_PER_BATCH, BatchRead, RedisKeys, RedisState, _glob
from stream.state import BatchView, TopicPartition

log = logging.getLogger(__name__)

ITEM_BUCKETS = 256
CONTROL = "{ctl}"
POPULAR = "{pop}"
CAMPAIGNS = "{camp}"


def user_partition(user_id: str, partitions: int) -> int:
    """The input partition Kafka's default partitioner gives a user's events.

    >>> user_partition("u1", 4) == (murmur2(b"u1") & 0x7FFFFFFF) % 4
    True
    """
    return (murmur2(user_id.encode()) & 0x7FFFFFFF) % partitions


def item_bucket(item_id: str) -> int:
    return zlib.crc32(item_id.encode()) % ITEM_BUCKETS


def tag_of(key: str) -> str:
    """The hash tag of a key, braces included (Redis hashes what is inside).

    >>> tag_of("ss:{u3}:user:alice")
    '{u3}'
    """
    start = key.find("{")
    end = key.find("}", start + 1)
    if start < 0 or end < 0:
        raise RuntimeError(f"key {key!r} has no hash tag: ClusterKeys in stream/redis_cluster.py "
                           "must say which slot it lives in")
    return key[start:end + 1]


def plain_name(name: str) -> str:
    """A cluster key's name (after the prefix) as single Redis names it.

    >>> plain_name("{i7}:item:abc:next"), plain_name("user:x")
    ('item:abc:next', 'user:x')
    """
    if name.startswith("{") and "}:" in name:
        return name[name.index("}:") + 2:]
    return name


class ClusterKeys(RedisKeys):
    def __init__(self, prefix: str, partitions: int) -> None:
        super().__init__(prefix)
        self.partitions = partitions
        self.popular = f"{prefix}{POPULAR}:popular"
        # Per item bucket: see occurrences_in and row_versions_in.
        self.occurrences = self.row_versions = ""
        self.campaign_outcomes = f"{prefix}{CAMPAIGNS}:campaign-outcomes"
        self.campaign_day = f"{prefix}{CAMPAIGNS}:campaign-day"
        self.offers_sent = f"{prefix}{CAMPAIGNS}:offers-sent"
        self.pending = f"{prefix}{CONTROL}:pending"
        self.jseq = f"{prefix}{CONTROL}:jseq"

    def _u(self, user_id: str) -> str:
        return f"{self.prefix}{{u{user_partition(user_id, self.partitions)}}}:"

    def _i(self, item_id: str) -> str:
        return f"{self.prefix}{{i{item_bucket(item_id)}}}:"

    def user(self, user_id: str) -> str:
        return f"{self._u(user_id)}user:{user_id}"

    def recs(self, user_id: str) -> str:
        return f"{self._u(user_id)}recs:{user_id}"

    def session(self, session_id: str) -> str:
        return f"{self._u(session_id.rsplit('#', 1)[0])}session:{session_id}"

    def neighbours(self, item_id: str) -> str:
        return f"{self._i(item_id)}item:{item_id}:next"

    def user_voice(self, user_id: str) -> str:
        return f"{self._u(user_id)}voice:user:{user_id}"

    def texts(self, user_id: str) -> str:
        return f"{self._u(user_id)}text:{user_id}"

    def item_voice(self, item_id: str) -> str:
        return f"{self._i(item_id)}voice:item:{item_id}"

    def item_sessions(self, item_id: str) -> str:
        return f"{self._i(item_id)}item:{item_id}:sessions"

    def occurrences_in(self, tag: str) -> str:
        return f"{self.prefix}{tag}:item-occurrences"

    def row_versions_in(self, tag: str) -> str:
        return f"{self.prefix}{tag}:row-versions"

    def item_tag(self, item_id: str) -> str:
        return f"{{i{item_bucket(item_id)}}}"

    def open_sessions(self, partition: int) -> str:
        return f"{self.prefix}{{u{partition}}}:open-sessions"

    def churn_checks(self, partition: int) -> str:
        return f"{self.prefix}{{u{partition}}}:churn-checks"

    def offset(self, tp: TopicPartition) -> str:
        return f"{self.prefix}{CONTROL}:offset:{tp[0]}:{tp[1]}"

    def journal(self, journal_id: str) -> str:
        return f"{self.prefix}{CONTROL}:journal:{journal_id}"

    def fence(self, tag: str) -> str:
        return f"{self.prefix}{tag}:fence"


# -- scripts ------------------------------------------------------------------------

READ_CONTROL = """\
-- The batch's offsets, the journals pending for its partitions and the
-- partitions' journal numbers, at one moment.
-- KEYS[1]: pending hash (partition -> journal id), KEYS[2]: jseq hash
-- ARGV: JSON {"offsets": [keys], "tps": [fields]}
local r = cjson.decode(ARGV[1])
local offsets, pending, seqs = {}, {}, {}
for i, k in ipairs(r.offsets) do offsets[i] = redis.call('GET', k) or '' end
for i, tp in ipairs(r.tps) do
    pending[i] = redis.call('HGET', KEYS[1], tp) or ''
    seqs[i] = redis.call('HGET', KEYS[2], tp) or '0'
end
return {offsets, pending, seqs}
"""

COMMIT_JOURNAL = """\
-- Step 1 of a cluster commit: if the offsets and the partitions' journal
-- numbers are still those read (no other journal of them since, even one that
-- moved no offset), number the journal per partition, store it, mark it
-- pending, move the offsets. 0 if not.
-- KEYS[1]: pending hash, KEYS[2]: jseq hash, KEYS[3]: the journal's key
-- ARGV[1]: JSON {"offsets": [[key, expected or "", new]], "tps": [fields],
--                "seqs": [journal number read, per tps], "id": id}
-- ARGV[2]: the journal
local b = cjson.decode(ARGV[1])
for _, o in ipairs(b.offsets) do
    if (redis.call('GET', o[1]) or '') ~= o[2] then return 0 end
end
for i, tp in ipairs(b.tps) do
    if (redis.call('HGET', KEYS[2], tp) or '0') ~= b.seqs[i] then return 0 end
end
local seqs = {}
for i, tp in ipairs(b.tps) do
    seqs[i] = {tp, tostring(redis.call('HINCRBY', KEYS[2], tp, 1))}
end
local encoded = cjson.encode(seqs)
redis.call('HSET', KEYS[3], 'body', ARGV[2], 'seqs', encoded)
for _, tp in ipairs(b.tps) do redis.call('HSET', KEYS[1], tp, b.id) end
for _, o in ipairs(b.offsets) do redis.call('SET', o[1], o[3]) end
return encoded
"""

CLEAR_JOURNAL = """\
-- Step 3: the journal is applied everywhere. KEYS[1]: pending, KEYS[2]: journal
-- ARGV: its id, then its partitions.
for i = 2, #ARGV do
    if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[1] then redis.call('HDEL', KEYS[1], ARGV[i]) end
end
redis.call('DEL', KEYS[2])
return 1
"""

_DECODE = "local b = cjson.decode(ARGV[1])\n"
_DONE = "return {1, flags}"
if _DECODE not in COMMIT_BATCH or _DONE not in COMMIT_BATCH:  # pragma: no cover
    raise ImportError("COMMIT_BATCH changed shape: stream/redis_cluster.py builds APPLY_PART from it")
# Step 2: COMMIT_BATCH on one slot's part (no offsets), behind the slot's fence.
# KEYS[1]: the fence hash; the part's "fence": [[partition, journal number]].
APPLY_PART = COMMIT_BATCH.replace(_DECODE, _DECODE + """\
local f = b.fence[1]
if tonumber(redis.call('HGET', KEYS[1], f[1]) or '0') >= tonumber(f[2]) then return 0 end
""").replace(_DONE, """\
for _, f in ipairs(b.fence) do redis.call('HSET', KEYS[1], f[1], f[2]) end
""" + _DONE)


# -- splitting a batch by slot -------------------------------------------------------

# Fields of COMMIT_BATCH's document, by how they are split.
_SCALARS = {"ttl", "keep", "token", "sess_keep", "occ_key", "pop_key", "ver_key", "offsets",
            "camp_key", "sent_key", "day_key"}
_KEYED = {"pairs", "opened", "closed", "checks", "sess_docs", "sess_gone", "sess_touches"}
_DOCS = {"users", "recs"}  # [key, index of the document among the arguments]
_ITEMS = {"occ", "touched", "checked"}  # by the item's bucket
_CAMPAIGN = {"camp", "sent"}  # all in the campaigns' slot, as is "day"
_VOICE = {"voice"}  # [key, index of the document, expiry] (stream/voice_batch.py)


def split_batch(batch: dict, docs: list[bytes], keys: ClusterKeys) -> dict[str, tuple[dict, list[bytes]]]:
    """COMMIT_BATCH's document and documents, one part per hash tag; every
    part has every field (empty where nothing of it falls there)."""
    # "cas" is dropped: a slot's part is applied after the batch committed, too late to run
    # it again, so an item's satisfaction is the last writer's on a cluster (README; demand,
    # the other user of "cas", is off on a cluster).
    batch = {name: v for name, v in batch.items() if name != "cas"}
    unknown = set(batch) - _SCALARS - _KEYED - _DOCS - _ITEMS - _CAMPAIGN - _VOICE - {"trim", "pop", "day"}
    if unknown:
        raise RuntimeError(f"the Redis Cluster layout does not know the batch's {sorted(unknown)} yet "
                           "(stream/redis_cluster.py split_batch)")
    empty = {name: [] for name in batch if name not in _SCALARS and name != "day"}
    parts: dict[str, tuple[dict, list[bytes]]] = {}

    def part(tag: str) -> tuple[dict, list[bytes]]:
        if tag not in parts:
            doc = {name: batch[name] for name in _SCALARS if name in batch}
            doc.update({name: [] for name in empty})
            if "day" in batch:
                doc["day"] = ""
            doc.update(offsets=[], occ_key=keys.occurrences_in(tag), ver_key=keys.row_versions_in(tag),
                       pop_key=keys.popular)
            parts[tag] = (doc, [])
        return parts[tag]

    for name in _KEYED:
        for entry in batch.get(name, ()):
            part(tag_of(entry[0]))[0][name].append(entry)
    for key in batch.get("trim", ()):
        part(tag_of(key))[0]["trim"].append(key)
    for name in _DOCS:
        for key, index in batch.get(name, ()):
            doc, own = part(tag_of(key))
            own.append(docs[index - 2])
            doc[name].append((key, 1 + len(own)))
    for key, index, ttl in batch.get("voice", ()):
        doc, own = part(tag_of(key))
        own.append(docs[index - 2])
        doc["voice"].append((key, 1 + len(own), ttl))
    for name in _ITEMS:
        for entry in batch.get(name, ()):
            item = entry if isinstance(entry, str) else entry[0]
            part(keys.item_tag(item))[0][name].append(entry)
    for entry in batch.get("pop", ()):
        part(POPULAR)[0]["pop"].append(entry)
    for name in _CAMPAIGN:
        for entry in batch.get(name, ()):
            part(CAMPAIGNS)[0][name].append(entry)
    if batch.get("day"):
        part(CAMPAIGNS)[0]["day"] = batch["day"]
    return parts


class ClusterState(RedisState):
    """:class:`RedisState` on a Redis Cluster: same reads and writes, laid
    out by hash tag, committed through a journal (see the module)."""

    def __init__(self, settings: Settings, client: RedisCluster | None = None) -> None:
        if settings.neighbour_weight > 0:
            raise ValueError("session neighbours (SHOPSTREAM_NEIGHBOUR_WEIGHT > 0) are not "
                             "supported on Redis Cluster yet")
        if settings.demand:
            raise ValueError("demand forecasting is not supported on Redis Cluster yet (open_state turns it off)")
        client = client or connect_cluster(settings.redis_url)
        super().__init__(settings, client)  # type: ignore[arg-type]
        self.keys: ClusterKeys = ClusterKeys(settings.prefix, settings.partitions)
        self._read_control = client.register_script(READ_CONTROL)
        self._commit_journal = client.register_script(COMMIT_JOURNAL)
        self._clear_journal = client.register_script(CLEAR_JOURNAL)
        self._apply_part = client.register_script(APPLY_PART)
        self.journals_recovered = 0

    async def ping(self) -> bool:
        """Every master answers: PING alone goes to one node, and a batch
        stalls on any master that does not answer."""
        replies = await self.client.ping(target_nodes=RedisCluster.PRIMARIES)
        return bool(replies) if not isinstance(replies, dict) else all(replies.values())

    # -- reads

    async def _read_start(self, offset_keys: list[str], users: list[str], numbers: list[int],
                          close_before: float, check_until: float,
                          extra: Any = None) -> tuple[list, list, list, Any, dict, list, list]:
        assert extra is None, "demand is refused on a cluster (see __init__)"
        offsets_raw = await self._offsets_after_pending(offset_keys)
        keys = self.keys
        client: Any = self.client
        profiles_raw = await client.mget_nonatomic([keys.user(u) for u in users]) if users else []
        recs_raw = await client.mget_nonatomic([keys.recs(u) for u in users]) if users else []
        pipe = client.pipeline()
        pipe.get(keys.campaign_day)
        pipe.hgetall(keys.offers_sent)
        for partition in numbers:
            pipe.zrangebyscore(keys.open_sessions(partition), "-inf", f"({close_before!r}",
                               start=0, num=CLOSE_PER_BATCH)
            pipe.zrangebyscore(keys.churn_checks(partition), "-inf", repr(check_until),
                               start=0, num=CLOSE_PER_BATCH)
        campaign_day, sent, *quiet = await pipe.execute()
        return offsets_raw, profiles_raw, recs_raw, campaign_day, sent, quiet, []

    async def _offsets_after_pending(self, offset_keys: list[str]) -> list[bytes | None]:
        """The offsets, once no journal of these partitions is pending (any
        found is applied and cleared first)."""
        tps = [_field(k, self.keys) for k in offset_keys]
        request = orjson.dumps({"offsets": offset_keys, "tps": tps})
        while True:
            offsets, pending, seqs = await self._read_control(keys=[self.keys.pending, self.keys.jseq],
                                                              args=[request])
            waiting: dict[str, list[str]] = defaultdict(list)  # journal id -> partitions naming it
            for tp, journal_id in zip(tps, pending):
                if journal_id:
                    waiting[journal_id.decode()].append(tp)
            if not waiting:
                self._seqs_read = {tp: seq.decode() for tp, seq in zip(tps, seqs)}
                return [o or None for o in offsets]
            for journal_id, named_by in waiting.items():
                await self._recover(journal_id, named_by)

    async def _recover(self, journal_id: str, named_by: list[str]) -> None:
        """Apply a journal left pending and clear it (from every partition it
        was pending for; from ``named_by`` at least, should it be gone)."""
        raw = await self.client.hgetall(self.keys.journal(journal_id))
        tps = named_by
        if raw:
            batch, docs = orjson.loads(raw[b"body"])
            seqs = orjson.loads(raw[b"seqs"])
            await self._apply(batch, [d.encode() for d in docs], seqs)
            self.journals_recovered += 1
            tps = [tp for tp, _ in seqs]
        await self._clear(journal_id, tps)

    async def _read_docs(self, names: list[str]) -> list[bytes | None]:
        return await self.client.mget_nonatomic(names)  # type: ignore[attr-defined]

    async def _read_rows(self, request: dict) -> dict:
        """LOAD_ROWS once per item bucket, popularity from its own slot; the
        replies joined in the request's order."""
        keys = self.keys
        items: list[str] = request["items"]
        buckets: dict[str, list[int]] = defaultdict(list)
        for i, item in enumerate(items):
            buckets[keys.item_tag(item)].append(i)
        calls: list[tuple[list[str], list]] = []
        for tag, where in buckets.items():
            part = {"rows": [request["rows"][i] for i in where], "items": [items[i] for i in where],
                    "known": [request["known"][i] for i in where], "occ": keys.occurrences_in(tag),
                    "ver": keys.row_versions_in(tag), "pop": f"{keys.prefix}{tag}:no-popular",
                    "top": 1, "sess": [], "sess_prefix": request["sess_prefix"]}
            calls.append(([keys.occurrences_in(tag)], [orjson.dumps(part)]))
        pipe = self.client.pipeline()  # type: ignore[attr-defined]
        pipe.zrevrange(keys.popular, 0, request["top"] - 1, withscores=True)
        if items:
            pipe.zmscore(keys.popular, items)
        parts, (top, *scores) = await asyncio.gather(self._scripts(self._load_rows, calls), pipe.execute())
        n = len(items)
        reply: dict = {"rows": [None] * n, "occ": [""] * n, "ver": [""] * n,
                       "pop": [("" if s is None else repr(s)) for s in (scores[0] if scores else [])],
                       "top": [x for member, score in top for x in (member.decode(), score)],
                       "srows": [], "sids": [], "sdocs": []}
        for where, raw in zip(buckets.values(), parts):
            got = orjson.loads(raw)
            for name in ("rows", "occ", "ver"):
                for i, value in zip(where, got[name]):
                    reply[name][i] = value
        return reply

    async def load(self, *args: Any, **kwargs: Any) -> BatchView:
        self._seqs_read: dict[str, str] = {}
        view = await super().load(*args, **kwargs)
        view.token.seqs = self._seqs_read  # the partitions' journal numbers, for the commit
        return view

    # -- the write

    async def commit(self, view: BatchView) -> bool:
        self._read: BatchRead = view.token  # for _write: every partition the batch read
        return await super().commit(view)

    async def _write(self, batch: dict, docs: list[bytes]) -> list | None:
        # The journal is numbered and fenced for every partition the batch
        # read, those whose offset does not move included (checked unchanged).
        moved = {key: new for key, _, new in batch["offsets"]}
        offsets = []
        for tp, raw in self._read.offsets.items():
            key, expected = self.keys.offset(tp), (raw or b"").decode()
            offsets.append((key, expected, moved.pop(key, expected)))
        if moved or not offsets:
            raise RuntimeError("a cluster commit needs the offsets of every partition it moves")
        tps = [_field(key, self.keys) for key, _, _ in offsets]
        parts = split_batch(batch, docs, self.keys)  # what it cannot split fails before any write
        journal_id = batch["token"]
        read_seqs = self._read.seqs  # type: ignore[attr-defined]
        head = orjson.dumps({"offsets": offsets, "tps": tps, "seqs": [read_seqs[tp] for tp in tps],
                             "id": journal_id})
        body = orjson.dumps([batch, [d.decode() for d in docs]])
        seqs = await self._commit_journal(
            keys=[self.keys.pending, self.keys.jseq, self.keys.journal(journal_id)], args=[head, body])
        if not seqs:
            return None
        flags = await self._apply(batch, docs, orjson.loads(seqs), parts)
        await self._clear(journal_id, tps)
        return [1, flags]

    async def _apply(self, batch: dict, docs: list[bytes], seqs: list[list[str]],
                     parts: dict[str, tuple[dict, list[bytes]]] | None = None) -> list[int]:
        """Step 2: every slot's part behind its fence; the flags of the
        batch's checked rows (0 where a part had been applied already)."""
        parts = parts if parts is not None else split_batch(batch, docs, self.keys)
        tags = list(parts)
        replies = await self._scripts(self._apply_part, [
            ([self.keys.fence(tag)], [orjson.dumps({**parts[tag][0], "fence": seqs}), *parts[tag][1]])
            for tag in tags])
        flag_of: dict[str, int] = {}
        for tag, reply in zip(tags, replies):
            checked = parts[tag][0]["checked"]
            flags = reply[1] if reply else [0] * len(checked)
            for (item, _), flag in zip(checked, flags or ()):
                flag_of[item] = int(flag)
        return [flag_of.get(item, 0) for item, _ in batch["checked"]]

    async def _scripts(self, script: Any, calls: list[tuple[list[str], list]]) -> list:
        """One script over many slots: one pipeline, so one round trip per
        master (not a connection per call); loaded where it is missing."""
        if not calls:
            return []
        for _ in range(2):
            pipe = self.client.pipeline()  # type: ignore[attr-defined]
            for keys, args in calls:
                pipe.evalsha(script.sha, len(keys), *keys, *args)
            replies = await pipe.execute(raise_on_error=False)
            if not any(isinstance(r, NoScriptError) for r in replies):
                break
            await self.client.script_load(script.script)  # every master
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies

    async def _clear(self, journal_id: str, tps: list[str]) -> None:
        await self._clear_journal(keys=[self.keys.pending, self.keys.journal(journal_id)],
                                  args=[journal_id, *tps])

    # -- users

    async def forget(self, user_id: str) -> dict[str, int]:
        keys = self.keys
        pipe = self.client.pipeline()  # type: ignore[attr-defined]
        pipe.delete(keys.user(user_id))
        pipe.delete(keys.recs(user_id))
        for partition in range(keys.partitions):
            pipe.zrem(keys.open_sessions(partition), user_id)
            pipe.zrem(keys.churn_checks(partition), user_id)
        profile, recs, *removed = await pipe.execute()
        return {"profile": profile, "recommendations": recs, "index_entries": sum(removed),
                "sessions": 0}

    async def _forget_snippets(self, key: str, user_id: str, forget_user: Any) -> int:
        """As on one Redis, without the transaction (a batch writing the item's
        document in the same moment can put a snippet back or lose its update)."""
        raw = await self.client.get(key)
        if raw is None:
            return 0
        doc = orjson.loads(raw)
        found = forget_user(doc, user_id)
        if found:
            ttl = await self.client.ttl(key)
            await self.client.set(key, orjson.dumps(doc), ex=ttl if ttl > 0 else self.settings.user_ttl_s)
        return found

    async def all_profiles(self) -> AsyncIterator:  # type: ignore[override]
        from models.profile import UserProfile

        async for key in self.client.scan_iter(match=f"{_glob(self.keys.prefix)}{{u*}}:user:*",
                                               count=1000):
            raw = await self.client.get(key)
            if raw is not None:
                yield UserProfile.from_dict(orjson.loads(raw))


def _field(offset_key: str, keys: ClusterKeys) -> str:
    """The partition's field in the control hashes: ``topic:partition``."""
    return offset_key[len(f"{keys.prefix}{CONTROL}:offset:"):]


def connect_cluster(url: str) -> RedisCluster:
    return RedisCluster.from_url(url, socket_connect_timeout=2.0, socket_timeout=10.0)


def with_cluster_detected(settings: Settings, timeout: float = 2.0) -> Settings:
    """``settings`` with ``redis_cluster`` on if the Redis at the URL says it
    runs in cluster mode (``INFO cluster``). Unchanged if the flag is on
    already or the server does not answer: where Redis may be down when a
    worker starts, set SHOPSTREAM_REDIS_CLUSTER=1."""
    if settings.redis_cluster:
        return settings
    import dataclasses

    import redis

    client = redis.Redis.from_url(settings.redis_url, socket_timeout=timeout,
                                  socket_connect_timeout=timeout)
    try:
        enabled = int(client.info("cluster").get("cluster_enabled", 0))
    except Exception:  # down, or no INFO: the flag decides
        return settings
    finally:
        client.close()
    return dataclasses.replace(settings, redis_cluster=True) if enabled else settings


def open_state(settings: Settings) -> RedisState:
    """The state store the settings ask for, or the URL names: Redis Cluster
    or one Redis."""
    settings = with_cluster_detected(settings)
    if not settings.redis_cluster:
        return RedisState(settings)
    if settings.demand:
        log.warning("demand forecasting is off on Redis Cluster (not supported there yet)")
        settings = replace(settings, demand=False)
    return ClusterState(settings)
