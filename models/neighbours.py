"""One item's co-occurrence neighbours: a mapping of item to weight, laid out
for ranking.

Ranking walks every entry of a few rows for each prediction. In a dict each
entry is a key object and a boxed float somewhere on the heap; here the items,
their hashes and their weights sit in three parallel arrays, so the compiled
ranking (:mod:`models.cooccurrence_rank`) reads a row as contiguous memory.

>>> row = Neighbours.from_pairs([("stove", 2.0), ("mat", 1.0)])
>>> row.add("mat", 3.0)
>>> row.add("tent", 1.0)
>>> row
Neighbours({'stove': 2.0, 'mat': 4.0, 'tent': 1.0})
>>> row["mat"], "lamp" in row, len(row)
(4.0, False, 3)
>>> row == {"stove": 2.0, "mat": 4.0, "tent": 1.0}
True
"""

from __future__ import annotations

import sys
from array import array
from typing import Iterable, Iterator, Mapping


class Neighbours(Mapping[str, float]):
    __slots__ = ("item_ids", "weights", "_hashes", "_slot")

    def __init__(self) -> None:
        self.item_ids: list[str] = []
        self.weights = array("d")
        self._hashes: array | None = array("q")  # hash(item): ranking need not visit the str
        self._slot: dict[str, int] | None = {}

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, float]]) -> Neighbours:
        """A row of distinct items, in the given order."""
        row = cls()
        for item_id, weight in pairs:
            row.add(item_id, weight)
        return row

    @classmethod
    def from_flat(cls, flat: list) -> Neighbours:
        """A row from a flat ``[item, weight, item, weight, ...]`` list of
        distinct items (a Redis WITHSCORES reply), without a per-item loop in
        Python."""
        row = cls()
        # Interned, like events' item ids: the ranking then finds an item in
        # its table by identity instead of comparing strings.
        row.item_ids = list(map(sys.intern, flat[0::2]))
        row.weights = array("d", map(float, flat[1::2]))
        # Built when first needed: a worker loads many rows it never ranks or learns into.
        row._hashes = None
        row._slot = None
        return row

    def copy(self) -> Neighbours:
        """An independent row with the same entries, in the same order.

        >>> row = Neighbours.from_pairs([("stove", 2.0)])
        >>> twin = row.copy()
        >>> twin.add("stove", 1.0)
        >>> row["stove"], twin["stove"]
        (2.0, 3.0)
        """
        row = Neighbours.__new__(Neighbours)
        row.item_ids = self.item_ids.copy()
        row.weights = array("d", self.weights)
        row._hashes = None if self._hashes is None else array("q", self._hashes)
        row._slot = None if self._slot is None else self._slot.copy()
        return row

    def best(self, m: int) -> Neighbours:
        """The ``m`` heaviest entries, heaviest first; ties keep the larger id,
        as a Redis sorted set trimmed by rank does. Self if it has no more.

        >>> Neighbours.from_pairs([("mat", 1.0), ("tent", 3.0), ("lamp", 1.0)]).best(2)
        Neighbours({'tent': 3.0, 'mat': 1.0})
        """
        if len(self.item_ids) <= m:
            return self
        # (weight, item, hash) tuples compare in C, on weight and the distinct
        # items: no key function per entry. The hashes go along, so a trimmed
        # row is ranked without hashing its items again.
        _, hashes, _ = self.arrays()
        keep = sorted(zip(self.weights, self.item_ids, hashes), reverse=True)[:m]
        weights, item_ids, kept_hashes = zip(*keep) if keep else ((), (), ())
        row = Neighbours.__new__(Neighbours)
        row.item_ids = list(item_ids)
        row.weights = array("d", weights)
        row._hashes = array("q", kept_hashes)
        row._slot = None
        return row

    def add(self, item_id: str, weight: float) -> None:
        slot = self._slots().get(item_id)
        if slot is None:
            self._slot[item_id] = len(self.item_ids)  # type: ignore[index]
            self.item_ids.append(item_id)
            self.weights.append(weight)
            if self._hashes is not None:
                self._hashes.append(hash(item_id))
        else:
            self.weights[slot] += weight

    def pairs(self) -> Iterator[tuple[str, float]]:
        """(item, weight) in insertion order; faster than ``items()``."""
        return zip(self.item_ids, self.weights)

    def arrays(self) -> tuple[list[str], array, array]:
        """Items, their hashes (array of 'q') and weights (array of 'd'), in
        step: what the compiled ranking reads."""
        if self._hashes is None:
            self._hashes = array("q", map(hash, self.item_ids))
        return self.item_ids, self._hashes, self.weights

    def _slots(self) -> dict[str, int]:
        if self._slot is None:
            self._slot = dict(zip(self.item_ids, range(len(self.item_ids))))
        return self._slot

    def __getitem__(self, item_id: str) -> float:
        return self.weights[self._slots()[item_id]]

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._slots()

    def __iter__(self) -> Iterator[str]:
        return iter(self.item_ids)

    def __len__(self) -> int:
        return len(self.item_ids)

    def __repr__(self) -> str:
        return f"Neighbours({dict(self.pairs())!r})"

    def __reduce__(self) -> tuple:
        return (Neighbours.from_pairs, (list(self.pairs()),))


class NumberedVotes(Neighbours):
    """A row whose items are numbers in a list of item ids (``ids``, the
    :class:`models.session_votes.SessionIndex`'s own, which only grows): what
    the compiled session-neighbour votes return. The compiled ranking reads
    the items through the numbers, without a list of its own whose making and
    freeing would visit each item's string; anything else sees a plain row
    (``item_ids`` is made on first use).

    >>> ids = ["tent", "stove", "mat"]
    >>> votes = NumberedVotes.of(ids, array("i", [2, 0]), array("d", [0.5, 0.25]))
    >>> len(votes), votes.item_ids, votes["tent"]
    (2, ['mat', 'tent'], 0.25)
    """

    __slots__ = ("ids", "numbers", "addresses")

    @classmethod
    def of(cls, ids: list[str], numbers: array, weights: array, hashes: array | None = None,
           addresses: array | None = None) -> NumberedVotes:
        """``addresses``: where each item's string is (``id()``), which the
        compiled ranking reads instead; only the index that owns ``ids`` gives them."""
        row = cls.__new__(cls)
        row.ids, row.numbers, row.weights, row._hashes, row._slot = ids, numbers, weights, hashes, None
        row.addresses = addresses
        return row

    @property  # type: ignore[override]
    def item_ids(self) -> list[str]:  # noqa: F811
        try:
            return _ITEM_IDS.__get__(self, NumberedVotes)  # type: ignore[no-any-return]
        except AttributeError:
            ids = self.ids
            made = [ids[n] for n in self.numbers]
            _ITEM_IDS.__set__(self, made)
            return made

    def __len__(self) -> int:
        return len(self.weights)

    def __repr__(self) -> str:
        return f"NumberedVotes({dict(self.pairs())!r})"


_ITEM_IDS = Neighbours.__dict__["item_ids"]  # the slot under the property
