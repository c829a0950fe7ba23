"""Session-aware item co-occurrence: "people who looked at this went on to that".

Every event pairs its item with the items earlier in the same session. The
pair is directed and weighted: forward (earlier item → this item) by
``1 / distance`` times the event type's weight (a purchase says more than a
view), backward by ``backward`` times that. Going back to an item viewed
earlier is learned too, as the pair (item → item): how often shoppers return
to an item is a property of the item, and many next clicks are such returns. Weights can decay with event time (forward decay, see
:mod:`models.popularity`), so increments commute and can be applied by any
worker in any order.

To recommend, the current session's items vote for their neighbours, the
latest item with weight 1 and each earlier one ``position_decay`` times the
one after it; a source item's votes are divided by its occurrences to the
power ``normalise`` so that popular items do not drown the rest.

>>> model = ItemCooccurrence()
>>> for session in (["tent", "stove", "mat"], ["tent", "stove"], ["tent", "mat"]):
...     seen = []
...     for item in session:
...         _ = model.learn_one(seen, item, "view", ts=0.0)
...         seen.append(item)
>>> [(r.item_id, r.because) for r in model.recommend(["tent"], k=2)]
[('stove', ('tent',)), ('mat', ('tent',))]
>>> [r.item_id for r in model.recommend(["tent"], k=2, exclude={"stove"})]
['mat']
"""

from __future__ import annotations

import heapq
from typing import Callable, Iterable, Mapping, NamedTuple, Sequence

from models.popularity import DEFAULT_ORIGIN, decay_weight

DEFAULT_TYPE_WEIGHTS: Mapping[str, float] = {
    "view": 1.0,
    "click": 1.0,
    "cart": 3.0,
    "purchase": 5.0,
}

# Increments are whole numbers of 1/UNIT (UNIT is divisible by 1..8), so sums
# are exact in any order and any grouping: two workers, or a run that was
# killed and resumed, reach bit-identical weights.
UNIT = 840.0

# (source item, neighbour item, weight): one co-occurrence increment.
Increment = tuple[str, str, float]


class Recommendation(NamedTuple):
    item_id: str
    score: float
    because: tuple[str, ...]  # the session items that led to it, latest first


class ItemCooccurrence:
    """Incremental, directed, event-type-weighted item co-occurrence.

    Parameters
    ----------
    window
        How many of the session's latest items an event is paired with.
    horizon
        How many of the session's latest items vote when recommending
        (with ``position_decay``, older ones would add almost nothing).
    backward
        Weight of the reverse direction (this item → earlier item).
    repeat
        Weight of returning to an item seen earlier in the session (the pair
        item → item), divided by how far back it was.
    position_decay
        When recommending, each earlier session item votes this many times
        less than the one after it.
    normalise
        A source item's votes are divided by its occurrences ** normalise.
    max_neighbours
        Neighbour lists are trimmed to their best ``max_neighbours`` by
        :meth:`trim`; memory per item is bounded by it.
    half_life_s
        Half-life of co-occurrence weights in event time; None for no decay.
    """

    def __init__(
        self,
        window: int = 10,
        horizon: int = 4,
        backward: float = 0.5,
        repeat: float = 3.0,
        position_decay: float = 0.25,
        normalise: float = 1.0,
        max_neighbours: int = 100,
        type_weights: Mapping[str, float] | None = None,
        half_life_s: float | None = None,
        origin: float = DEFAULT_ORIGIN,
    ) -> None:
        self.window = window
        self.horizon = horizon
        self.backward = backward
        self.repeat = repeat
        self.position_decay = position_decay
        self.normalise = normalise
        self.max_neighbours = max_neighbours
        self.type_weights = dict(type_weights or DEFAULT_TYPE_WEIGHTS)
        self.half_life_s = half_life_s
        self.origin = origin
        self.neighbours: dict[str, dict[str, float]] = {}
        self.occurrences: dict[str, float] = {}

    def increments(
        self, session_items: Sequence[str], item_id: str, event_type: str, ts: float
    ) -> tuple[list[Increment], float]:
        """What learning this event adds: pair increments and the item's
        occurrence increment. ``session_items`` are the session's distinct
        items before this event, oldest first."""
        w = UNIT * self.type_weights.get(event_type, 1.0) * decay_weight(
            ts, self.origin, self.half_life_s
        )
        pairs: list[Increment] = []
        distance = 0
        for earlier in reversed(session_items):
            distance += 1
            if distance > self.window:
                break
            if earlier == item_id:
                pairs.append((item_id, item_id, round(self.repeat * w / distance)))
                continue
            pairs.append((earlier, item_id, round(w / distance)))
            if self.backward:
                pairs.append((item_id, earlier, round(self.backward * w / distance)))
        return pairs, round(w)

    def apply(self, pairs: Iterable[Increment], item_id: str, occurrence: float) -> None:
        neighbours = self.neighbours
        for source, target, w in pairs:
            row = neighbours.get(source)
            if row is None:
                neighbours[source] = {target: w}
            else:
                row[target] = row.get(target, 0.0) + w
        self.occurrences[item_id] = self.occurrences.get(item_id, 0.0) + occurrence

    def learn_one(
        self, session_items: Sequence[str], item_id: str, event_type: str, ts: float
    ) -> tuple[list[Increment], float]:
        """Learn one event; return the increments applied (for a store to persist)."""
        pairs, occurrence = self.increments(session_items, item_id, event_type, ts)
        self.apply(pairs, item_id, occurrence)
        return pairs, occurrence

    def trim(self, item_ids: Iterable[str]) -> None:
        """Keep only the best ``max_neighbours`` neighbours of these items."""
        m = self.max_neighbours
        for item_id in item_ids:
            row = self.neighbours.get(item_id)
            if row is not None and len(row) > m:
                # Same order as a Redis sorted set: ties keep the larger id.
                keep = heapq.nlargest(m, row.items(), key=lambda kv: (kv[1], kv[0]))
                self.neighbours[item_id] = dict(keep)

    def _relative_scores(self, session_items: Sequence[str]) -> tuple[dict[str, float], float]:
        """Scores up to a common factor, and that factor (ranking needs no more)."""
        scores: dict[str, float] | None = None
        base = 1.0
        vote = 1.0
        for distance, source in enumerate(reversed(session_items)):
            if distance >= self.horizon:
                break
            row = self.neighbours.get(source)
            if row:
                occ = self.occurrences.get(source, 0.0)
                scale = vote / occ**self.normalise if occ > 0 else vote
                if scores is None:
                    # Copy the first row as it is (fast) and express every
                    # later vote relative to its scale.
                    scores, base = dict(row), scale
                else:
                    get = scores.get
                    relative = scale / base
                    for target, w in row.items():
                        scores[target] = get(target, 0.0) + w * relative
            vote *= self.position_decay
        return ({}, 1.0) if scores is None else (scores, base)

    def recommend(
        self,
        session_items: Sequence[str],
        k: int = 20,
        exclude: Iterable[str] = (),
        fallback: Callable[[int], Sequence[str]] | Sequence[str] = (),
        popularity: Mapping[str, float] | None = None,
        explain: bool = True,
    ) -> list[Recommendation]:
        """The top ``k`` items for a session, with the session items behind each.

        Ties are broken by ``popularity`` (higher first), then item id. When
        the session's neighbours give fewer than ``k`` items, ``fallback``
        items (e.g. the most popular; a list, or a function of how many are
        wanted) fill the list with an empty ``because``. ``explain=False``
        skips the ``because`` lists (for evaluation).
        """
        scores, base = self._relative_scores(session_items)
        excluded = set(exclude)
        for item_id in excluded:
            scores.pop(item_id, None)
        best = self._top(scores, k, popularity or {})
        if explain:
            out = [Recommendation(i, scores[i] * base, self._because(i, session_items)) for i in best]
        else:
            out = [Recommendation(i, scores[i] * base, ()) for i in best]
        if len(out) < k:
            wanted = k + len(excluded) + len(out)
            candidates = fallback(wanted) if callable(fallback) else fallback
            for item_id in candidates:
                if item_id not in excluded and item_id not in scores:
                    out.append(Recommendation(item_id, 0.0, ()))
                    if len(out) == k:
                        break
        return out

    @staticmethod
    def _top(scores: dict[str, float], k: int, popularity: Mapping[str, float]) -> list[str]:
        pop = popularity.get
        if len(scores) > k:
            # Everything tied with the k-th best competes on popularity, then id.
            floor = sorted(scores.values(), reverse=True)[k - 1]
            ranked = [(-s, -(pop(i) or 0.0), i) for i, s in scores.items() if s >= floor]
        else:
            ranked = [(-s, -(pop(i) or 0.0), i) for i, s in scores.items()]
        ranked.sort()  # plain tuples: compared in C, no key function per item
        return [i for _, _, i in ranked[:k]]

    def _because(self, target: str, session_items: Sequence[str], most: int = 3) -> tuple[str, ...]:
        found = []
        for source in reversed(session_items[-self.horizon :]):
            if target in self.neighbours.get(source, ()):
                found.append(source)
                if len(found) == most:
                    break
        return tuple(found)
