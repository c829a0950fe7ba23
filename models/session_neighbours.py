"""Session neighbours: user-based collaborative filtering on sessions.

"Shoppers whose sessions looked like yours went on to these." The model
keeps, for each item, the sessions that touched it most recently (at most
``sessions_per_item``, newest kept) and each session's distinct items. To
score a current session, its latest ``horizon`` items look up the sessions
that share them; a session's similarity is the summed weight of the items it
shares (the latest item weighs 1, each earlier one ``position_decay`` times
the next, rare items more: see ``idf``) over its length ** ``length_norm``.
The ``neighbours`` most similar sessions vote for their items, each vote
their similarity times ``item_decay`` ** (how far the item is from the latest
item that session shares with this one). Votes are divided by the
neighbours' summed similarity, so an item's vote is the weighted share of
similar sessions that hold it: a number on a par with co-occurrence scores,
which :meth:`models.cooccurrence.ItemCooccurrence.rank` adds in (``extra``).

A session is a string id (``user#n``) and its distinct items, latest last,
as the user's profile holds them (:meth:`models.profile.UserProfile.session_items`).

>>> model = SessionNeighbours()
>>> def visit(session_id, items, ts):
...     for n in range(1, len(items) + 1):
...         _ = model.learn_one(session_id, items[:n], ts, items[: n - 1])
>>> visit("u1#1", ["tent", "stove", "mat"], 10.0)
>>> visit("u2#1", ["tent", "lamp"], 20.0)
>>> visit("u3#1", ["chair", "table"], 30.0)
>>> model.item_sessions["tent"], model.items("u1#1")
({'u1#1': 10.0, 'u2#1': 20.0}, ['tent', 'stove', 'mat'])
>>> model.learn_one("u1#1", ["tent", "stove", "mat", "lamp"], 40.0, ["tent", "stove", "mat"])
True
>>> model.item_sessions["lamp"]
{'u2#1': 20.0, 'u1#1': 40.0}
>>> votes = model.votes(["stove", "lamp"])
>>> max(votes, key=votes.get)
'lamp'
>>> model.explain(["stove", "lamp"], ["mat"])
{'mat': (('lamp', 'stove'), 1)}
"""

from __future__ import annotations

import heapq
import math
import sys
from typing import Iterable, Mapping, Sequence

from array import array

from models.neighbours import Neighbours

# Occurrences are counted in 1/UNIT (models.cooccurrence.UNIT): one click is 840.
UNIT = 840.0


class SessionNeighbours:
    """Streaming session-based kNN (sknn, with position and rarity weights).

    Parameters
    ----------
    sessions_per_item
        Sessions kept per item, the newest; memory per item is bounded by it.
    horizon
        How many of the current session's latest items look for neighbours.
    position_decay
        Each earlier item of the current session weighs this many times less
        than the one after it.
    idf
        A shared item's weight is divided by ``(1 + log(1 + clicks)) ** idf``
        (its clicks from ``occurrences``): sharing a rare item says more.
    neighbours
        How many of the most similar sessions vote.
    length_norm
        A session's similarity is divided by its length ** length_norm
        (0.5: the cosine of item sets).
    item_decay
        A neighbour's items vote ``item_decay`` times less per step away
        from the latest item it shares with the current session.
    max_session_items
        Items kept per session (the latest).
    compiled
        Vote with :mod:`models.session_votes` when it is built (same
        results, several times faster).
    """

    def __init__(
        self,
        sessions_per_item: int = 100,
        horizon: int = 5,
        position_decay: float = 0.5,
        idf: float = 3.0,
        neighbours: int = 100,
        length_norm: float = 0.5,
        item_decay: float = 0.7,
        max_session_items: int = 20,
        compiled: bool = True,
    ) -> None:
        self.sessions_per_item = sessions_per_item
        self.horizon = horizon
        self.position_decay = position_decay
        self.idf = idf
        self.neighbours = neighbours
        self.length_norm = length_norm
        self.item_decay = item_decay
        self.max_session_items = max_session_items
        # item -> {session: the latest event time it touched the item}
        self.item_sessions: dict[str, dict[str, float]] = {}
        # session -> its items, latest last, and their hashes: voting reads a
        # few hundred items and would otherwise visit each one's string.
        self.sessions: dict[str, tuple[list[str], array]] = {}
        self.compiled = compiled and SessionIndex is not None
        # The same lists as numbers in C arrays, for the compiled votes; kept
        # in step by every method here that changes the dicts.
        self._index = SessionIndex(self.max_session_items) if self.compiled else None

    def learn_one(
        self, session_id: str, session_items: Sequence[str], ts: float, before: Sequence[str] = (),
    ) -> bool:
        """A session's event at ``ts``: its items now, latest last (the latest
        is the event's item), and ``before`` the event. A session lists at
        most ``max_session_items`` items: a new item beyond them is not
        learned, so the items a session lists are always those the item lists
        know it by (what erasing a session relies on). Returns whether it
        was learned."""
        if not session_items:
            return False
        item_id = session_items[-1]
        if len(before) >= self.max_session_items and item_id not in before:
            return False
        session_id = sys.intern(session_id)
        self.load(session_id, list(session_items))
        self.touch(item_id, session_id, ts)
        return True

    def items(self, session_id: str) -> list[str]:
        """A session's items, latest last (empty if unknown)."""
        found = self.sessions.get(session_id)
        return found[0] if found else []

    def touch(self, item_id: str, session_id: str, ts: float) -> str | None:
        """The session touched the item at ``ts`` (a time never goes back);
        the oldest session is dropped beyond ``sessions_per_item`` (ties: the
        smaller id, as a Redis sorted set trimmed by rank drops)."""
        row = self.item_sessions.get(item_id)
        if row is None:
            row = self.item_sessions[item_id] = {}
        session_id = sys.intern(session_id)  # one object per session: compiled voting relies on it
        old = row.get(session_id)
        if old is None or ts > old:
            row[session_id] = ts
        if self._index is not None:
            self._index.touch(item_id, session_id, ts)
        if len(row) <= self.sessions_per_item:
            return None
        oldest = min(row.items(), key=lambda kv: (kv[1], kv[0]))[0]
        del row[oldest]
        if self._index is not None:
            self._index.unlist(item_id, oldest)
        return oldest

    def list_sessions(self, item_id: str, row: dict[str, float]) -> None:
        """The item's sessions and their times, as a store keeps them (the
        row is the model's from now on)."""
        if self._index is not None:
            self._index.list_row(item_id, row)
        self.item_sessions[item_id] = row

    def load(self, session_id: str, items: list[str]) -> None:
        """A session as a store keeps it."""
        session_id = sys.intern(session_id)
        self.sessions[session_id] = (items, array("q", map(hash, items)))
        if self._index is not None:
            self._index.load(session_id, items)

    def weights(self, session_items: Sequence[str], occurrences: Mapping[str, float]) -> dict[str, float]:
        """The current session's items that look for neighbours, and their weights."""
        weights: dict[str, float] = {}
        w = 1.0
        for item in reversed(session_items[-self.horizon :]):
            if item not in weights:
                rarity = math.pow(1.0 + math.log1p(occurrences.get(item, 0.0) / UNIT), self.idf)
                weights[item] = w / rarity
            w *= self.position_decay
        return weights

    def similar(
        self, session_items: Sequence[str], own: str | None = None,
        occurrences: Mapping[str, float] | None = None,
    ) -> list[tuple[str, float]]:
        """The most similar sessions, most similar first (ties: the one that
        touched a shared item last, then the larger id), and their
        similarity; ``own`` (the current session) is never its own neighbour."""
        weights = self.weights(session_items, occurrences or {})
        dots: dict[str, float] = {}
        latest: dict[str, float] = {}
        for item, w in weights.items():
            for session_id, ts in self.item_sessions.get(item, {}).items():
                dots[session_id] = dots.get(session_id, 0.0) + w
                latest[session_id] = max(ts, latest.get(session_id, ts))
        dots.pop(own, None)  # type: ignore[arg-type]
        norm = self.length_norm
        scored = []
        for session_id, dot in dots.items():
            items = self.items(session_id)
            if items:
                scored.append((dot / math.pow(len(items), norm), latest[session_id], session_id))
        return [(session_id, sim) for sim, _, session_id in heapq.nlargest(self.neighbours, scored)]

    def votes_python(
        self, session_items: Sequence[str], own: str | None = None,
        occurrences: Mapping[str, float] | None = None,
    ) -> dict[str, float]:
        """:meth:`votes` in Python: the reference for :mod:`models.session_votes`."""
        weights = self.weights(session_items, occurrences or {})
        votes: dict[str, float] = {}
        total = 0.0
        decay = self.item_decay
        for session_id, sim in self.similar(session_items, own, occurrences):
            total += sim
            items = self.items(session_id)
            anchor = len(items) - 1
            while anchor > 0 and items[anchor] not in weights:
                anchor -= 1
            for i, item in enumerate(items):
                votes[item] = votes.get(item, 0.0) + sim * math.pow(decay, abs(i - anchor))
        if total > 0:
            for item in votes:
                votes[item] /= total
        return votes

    def votes(
        self, session_items: Sequence[str], own: str | None = None,
        occurrences: Mapping[str, float] | None = None,
    ) -> Neighbours:
        """Each candidate item's vote (the similarity-weighted share of the
        nearest sessions that hold it), as a row the co-occurrence ranking
        adds in."""
        if self._index is not None:
            return self._index.votes(session_items, occurrences or {}, own, self.horizon, self.position_decay,
                                     self.idf, self.neighbours, self.length_norm, self.item_decay)
        return Neighbours.from_pairs(self.votes_python(session_items, own, occurrences).items())

    def explain(
        self, session_items: Sequence[str], targets: Iterable[str], own: str | None = None,
        occurrences: Mapping[str, float] | None = None, most: int = 3,
    ) -> dict[str, tuple[tuple[str, ...], int]]:
        """For each target the nearest sessions hold: the current session's
        items those sessions share (latest first, at most ``most``), and how
        many of them hold it."""
        weights = self.weights(session_items, occurrences or {})
        wanted = set(targets)
        shared: dict[str, set[str]] = {}
        counts: dict[str, int] = {}
        for session_id, _ in self.similar(session_items, own, occurrences):
            items = self.items(session_id)
            common = [i for i in items if i in weights]
            for item in wanted.intersection(items):
                shared.setdefault(item, set()).update(common)
                counts[item] = counts.get(item, 0) + 1
        order = list(weights)  # latest first
        return {item: (tuple([i for i in order if i in shared[item]][:most]), counts[item])
                for item in shared}

    def __getstate__(self) -> dict:
        # String hashes differ between processes: a copy computes its own.
        # The index is C memory: a copy builds its own.
        state = dict(self.__dict__)
        state["sessions"] = {sid: items for sid, (items, _) in self.sessions.items()}
        del state["_index"]
        return state

    def __setstate__(self, state: dict) -> None:
        sessions = state.pop("sessions")
        rows = state.pop("item_sessions")
        self.__dict__.update(state)
        self.compiled = self.compiled and SessionIndex is not None
        self._index = SessionIndex(self.max_session_items) if self.compiled else None
        self.sessions, self.item_sessions = {}, {}
        for session_id, items in sessions.items():
            self.load(session_id, items)
        for item_id, row in rows.items():
            self.list_sessions(item_id, row)

    def forget(self, session_ids: Iterable[str]) -> None:
        """Erase sessions (a user's) from the model."""
        for session_id in session_ids:
            for item in self.sessions.pop(session_id, ([], None))[0]:
                row = self.item_sessions.get(item)
                if row is not None:
                    row.pop(session_id, None)
                if self._index is not None:
                    self._index.unlist(item, session_id)
            if self._index is not None:
                self._index.load(session_id, [])


try:
    from models.session_votes import SessionIndex
except ImportError:  # not built (no C compiler at install): the Python reference serves
    SessionIndex = None
