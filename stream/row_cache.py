"""A worker's copy of the co-occurrence rows it read or wrote last.

Reading a batch's rows from Redis costs more than anything else a small batch
does: a few hundred rows of 100 neighbours each, encoded by a Lua script and
parsed again in Python. Most of them have not changed since this worker's
previous batch. Every commit marks the rows it changes with a version of its
own (``row-versions`` in Redis), so a row is read again only when its version
there differs from the one cached here: another worker changed it, or this
worker's copy was dropped.

>>> from models.neighbours import Neighbours
>>> cache = RowCache(max_rows=2)
>>> cache.put("tent", "w1:1", Neighbours.from_pairs([("stove", 2.0)]))
>>> cache.get("tent")[0], cache.get("lamp")
('w1:1', None)
>>> cache.put("mat", "w1:1", Neighbours())
>>> cache.put("lamp", "w1:2", Neighbours())  # the least recently used makes room
>>> cache.get("tent"), len(cache)
(None, 2)
"""

from __future__ import annotations

from models.neighbours import Neighbours


class RowCache:
    """Rows by item, each with the version it has in Redis; at most ``max_rows``
    (the longest unused go first; 0 keeps none)."""

    def __init__(self, max_rows: int) -> None:
        self.max_rows = max_rows
        self._rows: dict[str, tuple[str, Neighbours]] = {}

    def get(self, item_id: str) -> tuple[str, Neighbours] | None:
        """(version, row); the row is the cache's own: copy it before changing it."""
        entry = self._rows.pop(item_id, None)
        if entry is not None:
            self._rows[item_id] = entry  # now the most recently used
        return entry

    def put(self, item_id: str, version: str, row: Neighbours) -> None:
        """Keep ``row`` (not copied: the caller hands it over) as ``version``."""
        self._rows.pop(item_id, None)
        if not version or self.max_rows <= 0:
            return
        self._rows[item_id] = (version, row)
        while len(self._rows) > self.max_rows:
            del self._rows[next(iter(self._rows))]

    def drop(self, item_id: str) -> None:
        self._rows.pop(item_id, None)

    def __len__(self) -> int:
        return len(self._rows)
