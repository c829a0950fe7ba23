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

from typing import Callable, Collection, Iterable, Mapping, NamedTuple, Sequence

from models.neighbours import Neighbours
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
# A ranking: items best first, and their scores (two lists: one object per
# item fewer than pairs, which a prediction every few events notices).
Ranked = tuple[list[str], list[float]]


def rank_votes(
    rows: Sequence[Neighbours],
    relatives: Sequence[float],
    k: int,
    excluded: Collection[str],
    popularity: Mapping[str, float],
    scale: float = 1.0,
) -> Ranked:
    """The best ``k`` of the items the rows vote for, and their scores.

    The first row's weights count as they are, each later row's times its
    ``relatives`` entry; the sums are ranked, then multiplied by ``scale``.
    ``excluded`` items are left out. Ties go to the more popular item, then
    the smaller id. This is the reference for the compiled
    :mod:`models.cooccurrence_rank`, which must agree bit for bit.

    >>> rows = [Neighbours.from_pairs([("stove", 3.0), ("mat", 1.0)]),
    ...         Neighbours.from_pairs([("mat", 4.0), ("tent", 8.0)])]
    >>> rank_votes(rows, [1.0, 0.25], 2, set(), {})
    (['stove', 'mat'], [3.0, 2.0])
    >>> rank_votes(rows, [1.0, 0.25], 2, {"stove"}, {"tent": 9.0})
    (['tent', 'mat'], [2.0, 2.0])
    """
    if not rows or k <= 0:
        return [], []
    scores = dict(rows[0].pairs())
    get = scores.get
    for row, relative in zip(rows[1:], relatives[1:]):
        for target, w in row.pairs():
            scores[target] = get(target, 0.0) + w * relative
    for item_id in excluded:
        scores.pop(item_id, None)
    pop = popularity.get
    if len(scores) > k:
        # Everything tied with the k-th best competes on popularity, then id.
        floor = sorted(scores.values(), reverse=True)[k - 1]
        ranked = [(-s, -(pop(i) or 0.0), i) for i, s in scores.items() if s >= floor]
    else:
        ranked = [(-s, -(pop(i) or 0.0), i) for i, s in scores.items()]
    ranked.sort()  # plain tuples: compared in C, no key function per item
    return [i for _, _, i in ranked[:k]], [-s * scale for s, _, _ in ranked[:k]]


try:
    from models.cooccurrence_learn import learn_one as compiled_learn_one
    from models.cooccurrence_rank import rank_session as compiled_rank_session
except ImportError:  # not built (no C compiler at install): the Python reference serves
    compiled_learn_one = compiled_rank_session = None
COMPILED = compiled_rank_session is not None and compiled_learn_one is not None


class Recommendation(NamedTuple):
    item_id: str
    score: float
    because: tuple[str, ...]  # the session items that led to it, latest first
    similar_sessions: int = 0  # how many of the nearest sessions hold it (session neighbours)


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
    compiled
        Learn and rank with :mod:`models.cooccurrence_learn` and
        :mod:`models.cooccurrence_rank` when they are built; False learns
        and ranks in Python (same results, several times slower).
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
        compiled: bool = True,
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
        self.neighbours: dict[str, Neighbours] = {}
        self.occurrences: dict[str, float] = {}
        self.compiled = compiled and COMPILED

    def weight(self, event_type: str, ts: float) -> float:
        """An event's weight, in 1/UNIT: its type's, decayed to ``ts``."""
        return UNIT * self.type_weights.get(event_type, 1.0) * decay_weight(
            ts, self.origin, self.half_life_s
        )

    def increments(
        self, session_items: Sequence[str], item_id: str, event_type: str, ts: float
    ) -> tuple[list[Increment], float]:
        """What learning this event adds: pair increments and the item's
        occurrence increment. ``session_items`` are the session's distinct
        items before this event, oldest first."""
        w = self.weight(event_type, ts)
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
                row = neighbours[source] = Neighbours()
            row.add(target, w)
        self.occurrences[item_id] = self.occurrences.get(item_id, 0.0) + occurrence

    def learn_one(
        self, session_items: Sequence[str], item_id: str, event_type: str, ts: float,
        totals: dict[tuple[str, str], float] | None = None,
    ) -> tuple[list[Increment], float]:
        """Learn one event; return the increments applied. ``totals``, if
        given, sums them by (source, target): what a store persists of a batch."""
        if self.compiled:
            return compiled_learn_one(self, session_items, item_id, self.weight(event_type, ts), totals)
        pairs, occurrence = self.increments(session_items, item_id, event_type, ts)
        self.apply(pairs, item_id, occurrence)
        if totals is not None:
            for source, target, w in pairs:
                totals[source, target] = totals.get((source, target), 0.0) + w
        return pairs, occurrence

    def trim(self, item_ids: Iterable[str]) -> None:
        """Keep only the best ``max_neighbours`` neighbours of these items."""
        m = self.max_neighbours
        for item_id in item_ids:
            row = self.neighbours.get(item_id)
            if row is not None and len(row) > m:
                self.neighbours[item_id] = row.best(m)

    def _votes(
        self, session_items: Sequence[str], extra: Neighbours | None = None, extra_weight: float = 0.0,
    ) -> tuple[list[Neighbours], list[float], float]:
        """The rows that vote, each one's weight relative to the first, and
        the first one's weight (ranking needs only the relative ones);
        ``extra`` votes last, with weight ``extra_weight``."""
        rows: list[Neighbours] = []
        relatives: list[float] = []
        base = 1.0
        vote = 1.0
        for distance, source in enumerate(reversed(session_items)):
            if distance >= self.horizon:
                break
            row = self.neighbours.get(source)
            if row:
                occ = self.occurrences.get(source, 0.0)
                scale = vote / occ**self.normalise if occ > 0 else vote
                if not rows:
                    base = scale
                rows.append(row)
                relatives.append(scale / base)
            vote *= self.position_decay
        if extra and extra_weight > 0:
            if rows:
                rows.append(extra)
                relatives.append(extra_weight / base)
            else:
                rows, relatives, base = [extra], [1.0], extra_weight
        return rows, relatives, base

    def rank_python(
        self, session_items: Sequence[str], k: int, excluded: Collection[str],
        popularity: Mapping[str, float], extra: Neighbours | None = None, extra_weight: float = 0.0,
    ) -> Ranked:
        """The neighbours' best ``k`` (no fallback), in Python: the reference
        for :func:`models.cooccurrence_rank.rank_session`."""
        rows, relatives, base = self._votes(session_items, extra, extra_weight)
        return rank_votes(rows, relatives, k, excluded, popularity, base)

    def rank(
        self,
        session_items: Sequence[str],
        k: int = 20,
        exclude: Iterable[str] = (),
        fallback: Callable[[int], Sequence[str]] | Sequence[str] = (),
        popularity: Mapping[str, float] | None = None,
        extra: Neighbours | None = None,
        extra_weight: float = 0.0,
    ) -> Ranked:
        """The top ``k`` items for a session, and their scores.

        Ties are broken by ``popularity`` (higher first), then item id. When
        the session's neighbours give fewer than ``k`` items, ``fallback``
        items (e.g. the most popular; a list, or a function of how many are
        wanted) fill the list with score 0. ``extra`` votes (another
        scorer's, e.g. :class:`models.session_neighbours.SessionNeighbours`)
        are added to the co-occurrence scores times ``extra_weight``.
        """
        excluded = exclude if isinstance(exclude, (set, frozenset)) else set(exclude)
        rank = compiled_rank_session if self.compiled else ItemCooccurrence.rank_python
        items, scores = rank(self, session_items, k, excluded, popularity or {}, extra, extra_weight)
        if len(items) < k:
            # Every candidate the neighbours had is in the list already.
            taken = set(items)
            wanted = k + len(excluded) + len(items)
            candidates = fallback(wanted) if callable(fallback) else fallback
            for item_id in candidates:
                if item_id not in excluded and item_id not in taken:
                    items.append(item_id)
                    scores.append(0.0)
                    if len(items) == k:
                        break
        return items, scores

    def recommend(
        self,
        session_items: Sequence[str],
        k: int = 20,
        exclude: Iterable[str] = (),
        fallback: Callable[[int], Sequence[str]] | Sequence[str] = (),
        popularity: Mapping[str, float] | None = None,
    ) -> list[Recommendation]:
        """:meth:`rank`, with the session items behind each recommendation
        (an empty ``because`` for fallback items)."""
        return self.explain(session_items, self.rank(session_items, k, exclude, fallback, popularity))

    def explain(self, session_items: Sequence[str], ranked: Ranked) -> list[Recommendation]:
        """A ranking of this session's, with the session items behind each item."""
        items, scores = ranked
        return [
            Recommendation(i, s, self._because(i, session_items) if s else ())
            for i, s in zip(items, scores)
        ]

    def _because(self, target: str, session_items: Sequence[str], most: int = 3) -> tuple[str, ...]:
        found = []
        for source in reversed(session_items[-self.horizon :]):
            if target in self.neighbours.get(source, ()):
                found.append(source)
                if len(found) == most:
                    break
        return tuple(found)
