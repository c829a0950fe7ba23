"""Item popularity with forward exponential decay, for cold-start fallback.

Forward decay: an event at time ``ts`` adds ``2 ** ((ts - origin) / half_life)``
instead of 1, so scores never need rescaling and increments commute (Redis
ZINCRBY from any worker, in any order, gives the same scores). Ranking by
these scores is ranking by the decayed count at any common time.

>>> pop = Popularity(half_life_s=86400.0, origin=0.0)
>>> pop.learn_one("old", ts=0.0)
1.0
>>> pop.learn_one("new", ts=86400.0)
2.0
>>> pop.top(2)
['new', 'old']
>>> pop.score("new") / pop.score("old")
2.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

# Fixed origin (2000-01-01) keeps weights in float range for ~centuries at a
# 7-day half-life: 2**(100 years / 7 days) would overflow, so cap exponents.
DEFAULT_ORIGIN = 946684800.0
MAX_EXPONENT = 900.0


def decay_weight(ts: float, origin: float, half_life_s: float | None) -> float:
    """The forward-decay multiplier of an event at ``ts``; 1 without decay."""
    if not half_life_s:
        return 1.0
    return 2.0 ** min((ts - origin) / half_life_s, MAX_EXPONENT)


@dataclass
class Popularity:
    """Decayed event counts per item, with an exact top-``keep`` list.

    Scores only ever increase, so an item can only enter the top list when
    its own score rises: keeping the top list up to date on each increment
    is exact and costs O(keep) at worst.
    """

    half_life_s: float | None = 7 * 86400.0
    origin: float = DEFAULT_ORIGIN
    keep: int = 100
    scores: dict[str, float] = field(default_factory=dict)
    _top: dict[str, float] = field(default_factory=dict, repr=False)
    _floor: float = field(default=-math.inf, repr=False)

    def weight(self, ts: float) -> float:
        return decay_weight(ts, self.origin, self.half_life_s)

    def learn_one(self, item_id: str, ts: float, weight: float = 1.0) -> float:
        """Count one event of ``item_id`` at ``ts``; return the increment applied."""
        inc = weight * self.weight(ts)
        self.add(item_id, inc)
        return inc

    def add(self, item_id: str, increment: float) -> None:
        old = self.scores.get(item_id, 0.0)
        score = old + increment
        self.scores[item_id] = score
        top = self._top
        was_top = item_id in top
        if was_top or len(top) < self.keep:
            top[item_id] = score
            if len(top) == self.keep and (not was_top or old <= self._floor):
                self._floor = min(top.values())
        elif score > self._floor:
            top[item_id] = score
            del top[min(top, key=top.__getitem__)]
            self._floor = min(top.values())

    def score(self, item_id: str) -> float:
        return self.scores.get(item_id, 0.0)

    def top(self, k: int) -> list[str]:
        """The ``k`` most popular items, best first (ties by item id)."""
        return [i for _, i in sorted([(-s, i) for i, s in self._top.items()])[:k]]
