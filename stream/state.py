"""Where the Processor reads and writes state: the batch view and the stores.

A batch is processed against a :class:`BatchView`: the profiles of the
batch's users, the co-occurrence rows of the items involved, popularity, and
the offsets already applied. The Processor mutates the view and journals
what it changed; the store then persists the journal in one transaction
(:mod:`stream.redis_state`) or, in memory, has nothing left to do.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Protocol, Sequence

from models.cooccurrence import ItemCooccurrence
from models.popularity import Popularity
from models.profile import UserProfile
from models.session_neighbours import SessionNeighbours
from stream.config import Settings
from stream.demand import DemandBook, Forecast
from stream.events import Event
from stream.outputs import UserRecommendations
from stream.voice import VoiceDocs

TopicPartition = tuple[str, int]


@dataclass
class BatchView:
    profiles: dict[str, UserProfile]
    cooccurrence: ItemCooccurrence
    popularity: Popularity
    session_neighbours: SessionNeighbours
    offsets: dict[TopicPartition, int]
    last_published: dict[str, float]
    journal: bool = True
    # What this batch changed, for stores that persist it.
    dirty_users: set[str] = field(default_factory=set)
    pairs: dict[tuple[str, str], float] = field(default_factory=dict)  # summed increments
    occurrences: list[tuple[str, float]] = field(default_factory=list)
    popular: list[tuple[str, float]] = field(default_factory=list)
    touched_items: set[str] = field(default_factory=set)  # sources of the pairs: rows to trim
    # Sessions learned (session id -> its items), and the items they touched:
    # (item, session, time).
    session_docs: dict[str, list[str]] = field(default_factory=dict)
    session_touches: list[tuple[str, str, float]] = field(default_factory=list)
    # Sessions listed by an item whose items are gone (expired, erased): to unlist.
    sessions_gone: list[tuple[str, str]] = field(default_factory=list)
    latest: dict[str, UserRecommendations] = field(default_factory=dict)
    published: dict[str, float] = field(default_factory=dict)
    new_offsets: dict[TopicPartition, int] = field(default_factory=dict)
    # Users of the batch's partitions due for a look although they sent
    # nothing: their session has gone quiet, or their churn check is due.
    due: dict[str, tuple[int, UserProfile]] = field(default_factory=dict)
    # Changes to the open-sessions index (user -> last seen) and to the churn
    # schedule (user -> event time of their check; None: unscheduled).
    opened: dict[tuple[int, str], float] = field(default_factory=dict)
    closed: set[tuple[int, str]] = field(default_factory=set)
    churn_checks: dict[tuple[int, str], float | None] = field(default_factory=dict)
    # Increments of the campaign totals (stream/campaigns.py), and the last
    # day whose close was summarised (as read; as it is after the batch).
    campaign_counts: dict[str, int] = field(default_factory=dict)
    campaign_day: int | None = None
    new_campaign_day: int | None = None
    # Treated offers of budgeted campaigns per campaign and day (stream/targeting.py):
    # as read, and this batch's.
    offers_sent: dict[str, int] = field(default_factory=dict)
    offers_added: dict[str, int] = field(default_factory=dict)
    token: Any = None  # the store's own handle for this batch
    demand: DemandBook | None = None  # stream/demand.py; None: not kept by this store
    voice: VoiceDocs | None = None  # the batch's texts' state, when it has texts (stream/voice.py)


class UserTimes:
    """Users by a time (last event, next churn check), to find those due."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []

    def set(self, user_id: str, ts: float) -> None:
        self.times[user_id] = ts
        heapq.heappush(self._heap, (ts, user_id))

    def remove(self, user_id: str) -> None:
        self.times.pop(user_id, None)

    def due(self, before: float, inclusive: bool = False) -> list[str]:
        """Users whose time is before ``before`` (each returned once until set again)."""
        out = []
        while self._heap and (self._heap[0][0] <= before if inclusive else self._heap[0][0] < before):
            ts, user_id = heapq.heappop(self._heap)
            if self.times.get(user_id) == ts:
                out.append(user_id)
        return out


def new_cooccurrence(settings: Settings) -> ItemCooccurrence:
    return ItemCooccurrence(max_neighbours=settings.max_neighbours)


def new_session_neighbours(settings: Settings) -> SessionNeighbours:
    return SessionNeighbours(
        sessions_per_item=settings.sessions_per_item,
        neighbours=settings.session_neighbours,
        max_session_items=settings.recent_items,
    )


def new_demand_book(settings: Settings) -> DemandBook | None:
    if not settings.demand:
        return None
    return DemandBook(settings.timezone, settings.surge_level, settings.surge_min_units,
                      settings.demand_close_after_s, settings.restock_days)


def session_id(profile: UserProfile) -> str:
    """The id of the user's current session in the session-neighbour state."""
    return f"{profile.user_id}#{profile.sessions}"


def new_profile(settings: Settings, user_id: str) -> UserProfile:
    return UserProfile(user_id, max_recent=settings.recent_items)


class State(Protocol):
    """A store the Processor can run batches against."""

    settings: Settings

    async def load(
        self, events: Sequence[Event], partitions: Sequence[TopicPartition], close_before: float,
        check_until: float, stock_items: Sequence[str] = (),
    ) -> BatchView:
        """The state this batch needs (profiles, item rows, offsets), and the
        users of these partitions whose session was last active before
        ``close_before`` or whose churn check is due by ``check_until``;
        the demand of ``stock_items`` too (the batch's stock readings)."""
        ...

    async def commit(self, view: BatchView) -> bool:
        """Persist the batch atomically; False if another worker got there first."""
        ...

    async def profile(self, user_id: str) -> UserProfile | None: ...

    async def campaign_counts(self) -> dict[str, int]:
        """The campaign totals (stream/campaigns.py), field -> count."""
        ...

    async def forget(self, user_id: str) -> dict[str, int]:
        """Erase everything kept about one user; how much of each kind there was."""
        ...

    def all_profiles(self) -> AsyncIterator[UserProfile]:
        """Every user's profile (for exports; a scan, not for the hot path)."""
        ...

    async def recommendations(self, user_id: str) -> UserRecommendations | None: ...

    async def load_voice(self, users: Sequence[str], items: Sequence[str]) -> VoiceDocs:
        """The voice state of a batch's texts (read only when it has any)."""
        ...

    async def item_voice(self, item_id: str) -> dict | None: ...

    async def user_voice(self, user_id: str) -> dict | None: ...

    async def forget_voice(self, user_id: str) -> dict[str, int]:
        """Erase the user's texts, sentiment and snippets; how many there were."""
        ...

    async def close(self) -> None: ...


class MemoryState:
    """All state in this process: for replay, tests and notebooks."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self.profiles: dict[str, UserProfile] = {}
        self.cooccurrence = new_cooccurrence(self.settings)
        self.popularity = Popularity()
        self.session_neighbours = new_session_neighbours(self.settings)
        self.offsets: dict[TopicPartition, int] = {}
        self.latest: dict[str, UserRecommendations] = {}
        self.last_published: dict[str, float] = {}
        self.sessions: dict[int, UserTimes] = {}
        self.churn_checks: dict[int, UserTimes] = {}
        self.campaigns: dict[str, int] = {}
        self.campaign_day: int | None = None
        self.offers_sent: dict[str, int] = {}
        self.demand = new_demand_book(self.settings)
        self.voice = VoiceDocs()

    async def load(
        self, events: Sequence[Event], partitions: Sequence[TopicPartition], close_before: float,
        check_until: float, stock_items: Sequence[str] = (),
    ) -> BatchView:
        due: dict[str, tuple[int, UserProfile]] = {}
        for partition in sorted({p for _, p in partitions}):
            quiet = self.sessions.setdefault(partition, UserTimes()).due(close_before)
            checks = self.churn_checks.setdefault(partition, UserTimes()).due(check_until, inclusive=True)
            for user_id in quiet + checks:
                due[user_id] = (partition, self.profiles[user_id])
        return BatchView(
            profiles=self.profiles,
            cooccurrence=self.cooccurrence,
            popularity=self.popularity,
            session_neighbours=self.session_neighbours,
            offsets=self.offsets,
            last_published=self.last_published,
            journal=False,
            due=due,
            campaign_day=self.campaign_day,
            offers_sent=self.offers_sent,
            demand=self.demand,
        )

    async def commit(self, view: BatchView) -> bool:
        for (partition, user_id), last_seen in view.opened.items():
            self.sessions.setdefault(partition, UserTimes()).set(user_id, last_seen)
        for partition, user_id in view.closed:
            self.sessions.setdefault(partition, UserTimes()).remove(user_id)
        for (partition, user_id), check in view.churn_checks.items():
            times = self.churn_checks.setdefault(partition, UserTimes())
            if check is None:
                times.remove(user_id)
            else:
                times.set(user_id, check)
        self.cooccurrence.trim(view.touched_items)
        self.offsets.update(view.new_offsets)
        self.latest.update(view.latest)
        for name, increment in view.offers_added.items():
            self.offers_sent[name] = self.offers_sent.get(name, 0) + increment
        for name, increment in view.campaign_counts.items():
            self.campaigns[name] = self.campaigns.get(name, 0) + increment
        if view.new_campaign_day is not None:
            old = self.campaign_day
            self.campaign_day = view.new_campaign_day if old is None else max(old, view.new_campaign_day)
        return True

    async def campaign_counts(self) -> dict[str, int]:
        return dict(self.campaigns)

    async def profile(self, user_id: str) -> UserProfile | None:
        return self.profiles.get(user_id)

    async def forget(self, user_id: str) -> dict[str, int]:
        profile = self.profiles.get(user_id)
        mine = [f"{user_id}#{n}" for n in range(1, profile.sessions + 1)] if profile else []
        sessions = sum(sid in self.session_neighbours.sessions for sid in mine)
        self.session_neighbours.forget(mine)
        entries = 0
        for times in (*self.sessions.values(), *self.churn_checks.values()):
            entries += user_id in times.times
            times.remove(user_id)
        self.last_published.pop(user_id, None)
        return {"profile": int(self.profiles.pop(user_id, None) is not None),
                "recommendations": int(self.latest.pop(user_id, None) is not None),
                "index_entries": entries, "sessions": sessions}

    async def recommendations(self, user_id: str) -> UserRecommendations | None:
        return self.latest.get(user_id)

    async def demand_forecast(self, series: str) -> Forecast | None:
        """A series' next days as of the last day closed (``item:{id}``, ``category:{name}``)."""
        return self.demand.forecast(series) if self.demand is not None else None

    async def demand_trending(self, kind: str = "item", n: int = 20) -> tuple[int | None, list[dict]]:
        """Series selling above their forecast on the latest open day (``DemandBook.trending``)."""
        return self.demand.trending(kind, n) if self.demand is not None else (None, [])

    async def load_voice(self, users: Sequence[str], items: Sequence[str]) -> VoiceDocs:
        self.voice.profiles = self.profiles
        return self.voice

    async def item_voice(self, item_id: str) -> dict | None:
        return self.voice.items.get(item_id)

    async def user_voice(self, user_id: str) -> dict | None:
        return self.voice.users.get(user_id)

    async def forget_voice(self, user_id: str) -> dict[str, int]:
        from stream.satisfaction import forget_user

        user = self.voice.users.pop(user_id, None)
        texts = self.voice.texts.pop(user_id, [])
        snippets = sum(forget_user(self.voice.items[i], user_id)
                       for i in (user or {}).get("items", []) if i in self.voice.items)
        return {"voice": int(user is not None), "texts": len(texts), "snippets": snippets}

    async def all_profiles(self) -> AsyncIterator[UserProfile]:
        for profile in list(self.profiles.values()):
            yield profile

    async def close(self) -> None:
        return None
