"""Next-item accuracy: hit rate and mean reciprocal rank at several cut-offs.

The protocol of the session-based recommendation literature (session-rec,
GRU4Rec): at every click after the first of a session, rank items from the
session so far and score the clicked item. HR@k is 1 when it is in the top
k; MRR@k is 1/rank when rank <= k, else 0. Both are micro-averaged over all
prediction points.

>>> m = NextItemMetrics(cutoffs=(1, 3))
>>> m.update("b", ["a", "b", "c"])
2
>>> m.update("z", ["a", "b", "c"])
>>> m.get()
{'HR@1': 0.0, 'HR@3': 0.5, 'MRR@1': 0.0, 'MRR@3': 0.25, 'points': 2}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence


@dataclass
class NextItemMetrics:
    cutoffs: tuple[int, ...] = (5, 10, 20)
    points: int = 0
    hits: dict[int, int] = field(default_factory=dict)
    reciprocal: dict[int, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for k in self.cutoffs:
            self.hits.setdefault(k, 0)
            self.reciprocal.setdefault(k, 0.0)

    def update(self, target: str, ranked: Sequence[str]) -> int | None:
        """Score one prediction point; return the target's 1-based rank, or None."""
        self.points += 1
        try:
            rank = ranked.index(target) + 1
        except ValueError:
            return None
        for k in self.cutoffs:
            if rank <= k:
                self.hits[k] += 1
                self.reciprocal[k] += 1.0 / rank
        return rank

    def get(self) -> dict[str, float | int]:
        n = max(self.points, 1)
        out: dict[str, float | int] = {}
        for k in self.cutoffs:
            out[f"HR@{k}"] = round(self.hits[k] / n, 4)
        for k in self.cutoffs:
            out[f"MRR@{k}"] = round(self.reciprocal[k] / n, 4)
        out["points"] = self.points
        return out
